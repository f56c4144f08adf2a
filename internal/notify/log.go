package notify

import (
	"slices"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// ring keeps an app's most recent deliveries, oldest overwritten first.
type ring struct {
	recs []*relayclient.NotificationDelivery
	next int // where the next record goes once recs is full
}

// record appends rec to app's log.
func (n *Notifier) record(app string, rec *relayclient.NotificationDelivery) {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	r := n.logs[app]
	if r == nil {
		r = &ring{}
		n.logs[app] = r
	}
	if len(r.recs) < n.opts.LogSize {
		r.recs = append(r.recs, rec)
		return
	}
	r.recs[r.next] = rec
	r.next = (r.next + 1) % len(r.recs)
}

// Deliveries returns app's most recent deliveries, newest first, at most limit (all kept
// when limit <= 0), as copies: status and attempts as they are now.
func (n *Notifier) Deliveries(app string, limit int) []relayclient.NotificationDelivery {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	r := n.logs[app]
	out := []relayclient.NotificationDelivery{}
	if r == nil {
		return out
	}
	// Oldest first: recs[next:] then recs[:next].
	ordered := append(slices.Clone(r.recs[r.next:]), r.recs[:r.next]...)
	for i := len(ordered) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		c := *ordered[i]
		c.Attempts = slices.Clone(c.Attempts)
		out = append(out, c)
	}
	return out
}
