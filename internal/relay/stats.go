package relay

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// statusOK is the body of every accepted /stats and channel POST/DELETE.
type statusOK struct {
	Status string `json:"status"`
}

// stats answers POST /stats (spec §2): one event object or an array of them, unknown
// actions accepted, 200 {"status":"ok"}. Events are counted per version and action (see
// statVersion and statAction for what is counted as "other"). Events of apps this relay does not serve are
// dropped (and still answered 200, so the plugin does not retry them). When the store is
// unreachable the answer is 503, which makes the plugin keep the batch and retry it: an
// update_fail report must not be lost. A body that is not JSON objects is refused with 400,
// which makes the plugin drop it.
func (s *Server) stats(c *gin.Context) {
	body, ok := readBody(c)
	if !ok {
		return
	}
	reqs, err := parseStats(body)
	if err != nil {
		writeRequestError(c, err, "")
		return
	}
	ctx := c.Request.Context()
	byApp := map[string][]channel.StatEvent{}
	snaps := map[string]*channel.Snapshot{}
	checked := map[string]string{} // app\x00version → the label it is counted under
	for _, r := range reqs {
		e, ok := s.apps[r.Info.AppID]
		if !ok || r.Action == "" {
			continue
		}
		snap, ok := snaps[e.app.ID]
		if !ok {
			snap, _ = s.snapshot(ctx, e) // nil when never loaded and the store is down
			snaps[e.app.ID] = snap
		}
		v, known := statVersion(snap, r.Action, r.Info.VersionName)
		if !known {
			// Not in this relay's (possibly seconds-old) snapshot: a bundle promoted through
			// another relay may not be in it yet, and its update_fail must not be lost.
			v = s.registeredVersion(ctx, e.app.ID, v, checked)
		}
		byApp[e.app.ID] = append(byApp[e.app.ID], channel.StatEvent{
			Device:  r.Info.DeviceID,
			Version: v,
			Action:  statAction(r.Action),
		})
	}
	for app, events := range byApp {
		if err := s.recordStats(ctx, app, events); err != nil {
			if errors.Is(err, channel.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
				writeJSON(c, http.StatusServiceUnavailable, errorBody{Error: codeUnavailable, Message: "Stats could not be stored; retry later"})
				return
			}
			// Anything else would fail again on retry; log it and let the plugin drop it.
			loggerFrom(ctx, s.log).ErrorContext(ctx, "record stats; dropping them", "app", app, "events", len(events), "error", err)
		}
	}
	writeJSON(c, http.StatusOK, statusOK{Status: "ok"})
}

func (s *Server) recordStats(ctx context.Context, app string, events []channel.StatEvent) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	if err := s.store.RecordStats(cctx, app, events); err != nil {
		s.metrics.storeErrors.WithLabelValues("record_stats").Inc()
		return err
	}
	s.metrics.statsEvents.Add(float64(len(events)))
	return nil
}

// Labels for stats the relay cannot attribute (see statVersion and statAction).
const (
	statOtherVersion = "other"
	statOtherAction  = "other"
)

// statVersion is the version a stat event is counted under, and whether the snapshot knows
// it. Per-file download failures name "<version>:<file>" (spec §2), which is counted under
// the version. Versions the app's channels serve or served (the snapshot's states and
// history), "builtin" and "" are known; the caller checks the others against the store.
func statVersion(snap *channel.Snapshot, action, v string) (string, bool) {
	if strings.HasPrefix(action, "download_manifest_") || action == "manifest_path_fail" {
		if i := strings.IndexByte(v, ':'); i > 0 {
			v = v[:i]
		}
	}
	if v == "builtin" || v == "" {
		return v, true
	}
	if snap != nil {
		if _, ok := snap.Bundles[v]; ok {
			return v, true
		}
		for _, st := range snap.States {
			if st != nil && st.Version == v {
				return v, true
			}
		}
	}
	return v, false
}

// registeredVersion returns v if the app has a bundle of that version, else "other", so
// that unauthenticated posts cannot create unbounded stats keys in the store. When the store
// cannot say, v is kept (recording will then fail and the plugin retry). checked caches the
// answers of one request.
func (s *Server) registeredVersion(ctx context.Context, app, v string, checked map[string]string) string {
	key := app + "\x00" + v
	if label, ok := checked[key]; ok {
		return label
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	label := v
	if _, err := s.store.GetBundle(cctx, app, v); errors.Is(err, channel.ErrNotFound) {
		label = statOtherVersion
	} else if err != nil {
		s.metrics.storeErrors.WithLabelValues("get_bundle").Inc()
	}
	checked[key] = label
	return label
}

// statAction keeps an action that looks like the plugin's (lowercase letters, digits and
// '_', at most 64 bytes: known or not, e.g. session_key_required) and counts anything else
// as "other".
func statAction(a string) string {
	if len(a) > 64 {
		return statOtherAction
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return statOtherAction
		}
	}
	return a
}
