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

// stats answers POST /stats (docs/protocol.md §2): one event object or an array of them, unknown
// actions accepted, 200 {"status":"ok"}. Events are counted per version and action (see
// statVersion, maxStatLookups and statAction for what is counted as "other"). Events of
// apps this relay does not serve are dropped (and still answered 200, so the plugin does not retry them). When the store is
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
	type event struct {
		app string
		ev  channel.StatEvent
	}
	events := make([]event, 0, len(reqs))
	snaps := map[string]*channel.Snapshot{}
	// Versions outside this relay's (possibly seconds-old) snapshot: a bundle promoted
	// through another relay may not be in it yet, and its update_fail must not be lost, so
	// they are looked up in the store, in one GetBundles per app. labels maps
	// app\x00version to the label it is counted under.
	unknown := map[string][]string{}
	labels := map[string]string{}
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
			key := e.app.ID + "\x00" + v
			if _, seen := labels[key]; !seen {
				if len(labels) < maxStatLookups {
					labels[key] = v // until the store says otherwise
					unknown[e.app.ID] = append(unknown[e.app.ID], v)
				} else {
					labels[key] = statOtherVersion
				}
			}
		}
		events = append(events, event{app: e.app.ID, ev: channel.StatEvent{
			Device:  r.Info.DeviceID,
			Version: v,
			Action:  statAction(r.Action),
		}})
	}
	for app, vs := range unknown {
		s.registeredVersions(ctx, app, vs, labels)
	}
	byApp := map[string][]channel.StatEvent{}
	for _, e := range events {
		if label, ok := labels[e.app+"\x00"+e.ev.Version]; ok {
			e.ev.Version = label
		}
		byApp[e.app] = append(byApp[e.app], e.ev)
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
// it. Per-file download failures name "<version>:<file>" (docs/protocol.md §2), which is counted
// under the version. Versions the app's channels serve or served (the snapshot's states and
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

// maxStatLookups is the most distinct versions outside the snapshot one /stats request
// looks up in the store; further ones are counted as "other". A real plugin batch names one
// or two versions.
const maxStatLookups = 32

// registeredVersions sets labels[app\x00v] to "other" for each v of vs that is not a bundle
// of app, so that unauthenticated posts cannot create unbounded stats keys in the store. It
// asks the store once (GetBundles); when the store cannot say, the labels keep their
// versions (recording will then fail and the plugin retry).
func (s *Server) registeredVersions(ctx context.Context, app string, vs []string, labels map[string]string) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	found, err := s.store.GetBundles(cctx, app, vs)
	if err != nil {
		s.metrics.storeErrors.WithLabelValues("get_bundles").Inc()
		return
	}
	for _, v := range vs {
		if _, ok := found[v]; !ok {
			labels[app+"\x00"+v] = statOtherVersion
		}
	}
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
