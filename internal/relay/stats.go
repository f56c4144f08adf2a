package relay

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/internal/channel"
)

// statusOK is the body of every accepted /stats and channel POST/DELETE.
type statusOK struct {
	Status string `json:"status"`
}

// stats answers POST /stats (docs/protocol.md §2): one event object or an array of them,
// 200 {"status":"ok"} once the events are stored. The request is anonymous, so nothing in
// it may grow the store without bound: events are counted per version and action, where
// the version must be registered for the app ("builtin" aside; others, and those beyond
// maxStatLookups per request, are counted as "other") and the action one the plugin sends
// (others are counted as "other"); events with a device id the update check would refuse
// (channel.ValidDeviceID), without an action or version, or of apps this relay does not serve are
// dropped; only update_fail of a registered version records a failed version for the
// device (which the store bounds per app). What is dropped or folded into "other" is
// counted in ferry_stats_dropped_total{reason}. Dropped events are still answered 200, so
// the plugin does not retry them. When the store cannot say which versions are registered
// or cannot store the events (unreachable, out of memory), the answer is 503 with
// Retry-After, which makes the plugin keep the batch and retry it: an update_fail must not
// be lost, and 200 is never answered for events that were not stored. A body that is not
// JSON objects is refused with 400, which makes the plugin drop it.
func (s *Server) stats(ctx context.Context, w http.ResponseWriter, _ *http.Request, body string) {
	reqs, err := parseStats(body)
	if err != nil {
		writeRequestError(ctx, w, err, "")
		return
	}
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
		switch {
		case !ok:
			s.metrics.statsDropped.WithLabelValues(dropUnknownApp).Inc()
			continue
		case r.Action == "":
			s.metrics.statsDropped.WithLabelValues(dropNoAction).Inc()
			continue
		case !channel.ValidDeviceID(r.Info.DeviceID):
			s.metrics.statsDropped.WithLabelValues(dropInvalidDevice).Inc()
			continue
		}
		snap, ok := snaps[e.app.ID]
		if !ok {
			snap, _ = s.snapshot(ctx, e) // nil when never loaded and the store is down
			snaps[e.app.ID] = snap
		}
		v, known := statVersion(snap, r.Action, r.Info.VersionName)
		if v == "" {
			s.metrics.statsDropped.WithLabelValues(dropNoVersion).Inc()
			continue
		}
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
		action := statAction(r.Action)
		if action == statOtherAction {
			s.metrics.statsDropped.WithLabelValues(dropUnknownAction).Inc()
		}
		// Cloned: the request's strings are slices of the body (parseStats), and the store
		// may keep these (the failed set keeps device ids) long after the request.
		events = append(events, event{app: e.app.ID, ev: channel.StatEvent{
			Device:  strings.Clone(r.Info.DeviceID),
			Version: strings.Clone(v),
			Action:  strings.Clone(action),
		}})
	}
	for app, vs := range unknown {
		if err := s.registeredVersions(ctx, app, vs, labels); err != nil {
			s.statsUnavailable(ctx, w, "look up versions", app, err)
			return
		}
	}
	byApp := map[string][]channel.StatEvent{}
	devices := map[string][]string{} // byApp's device ids, kept for the series' dedupe
	for _, e := range events {
		if label, ok := labels[e.app+"\x00"+e.ev.Version]; ok && label != e.ev.Version {
			reason := dropUnregistered
			if !slices.Contains(unknown[e.app], e.ev.Version) {
				reason = dropVersionLimit // never looked up
			}
			s.metrics.statsDropped.WithLabelValues(reason).Inc()
			e.ev.Version = label
		}
		devices[e.app] = append(devices[e.app], e.ev.Device)
		if e.ev.Action == "update_fail" && (e.ev.Version == statOtherVersion || e.ev.Version == "builtin") {
			// No failed-version record for a version that cannot be offered: without the
			// device, the event is only counted.
			e.ev.Device = ""
		}
		byApp[e.app] = append(byApp[e.app], e.ev)
	}
	for app, events := range byApp {
		if err := s.recordStats(ctx, app, events); err != nil {
			s.statsUnavailable(ctx, w, "record stats", app, err)
			return
		}
		if s.series != nil {
			s.series.stats(app, events, devices[app])
		}
	}
	respond(ctx, w, http.StatusOK, statusOK{Status: "ok"})
}

// statsUnavailable answers a /stats request whose events could not be stored: 503 with
// Retry-After, so the plugin keeps the batch and retries it.
func (s *Server) statsUnavailable(ctx context.Context, w http.ResponseWriter, op, app string, err error) {
	loggerFrom(ctx, s.log).WarnContext(ctx, op+"; answering 503 so the device retries", "app", app, "error", err)
	w.Header().Set("Retry-After", strconv.Itoa(statsRetryAfter))
	respond(ctx, w, http.StatusServiceUnavailable, errorBody{Error: codeUnavailable, Message: "Stats could not be stored; retry later"})
}

// statsRetryAfter is the Retry-After, in seconds, of a 503 answer to /stats.
const statsRetryAfter = 5

// Reasons of ferry_stats_dropped_total: events dropped, or counted under "other" instead
// of what they named.
const (
	dropUnknownApp    = "unknown_app"          // dropped: an app this relay does not serve
	dropNoAction      = "missing_action"       // dropped: no action
	dropNoVersion     = "missing_version"      // dropped: no version_name
	dropInvalidDevice = "invalid_device_id"    // dropped: a device id the update check refuses
	dropUnknownAction = "unknown_action"       // counted under action "other"
	dropUnregistered  = "unregistered_version" // counted under version "other"
	dropVersionLimit  = "version_limit"        // counted under "other": past maxStatLookups
)

var dropReasons = []string{dropUnknownApp, dropNoAction, dropNoVersion, dropInvalidDevice, dropUnknownAction, dropUnregistered, dropVersionLimit}

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
// asks the store once (GetBundles) and returns its error when the store cannot say.
func (s *Server) registeredVersions(ctx context.Context, app string, vs []string, labels map[string]string) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	found, err := s.store.GetBundles(cctx, app, vs)
	if err != nil {
		s.metrics.storeErrors.WithLabelValues("get_bundles").Inc()
		return err
	}
	for _, v := range vs {
		if _, ok := found[v]; !ok {
			labels[app+"\x00"+v] = statOtherVersion
		}
	}
	return nil
}

// statAction keeps an action the plugin sends (pluginActions) and counts anything else as
// "other", so made-up action names add one counter per version at most.
func statAction(a string) string {
	if _, ok := pluginActions[a]; ok {
		return a
	}
	return statOtherAction
}

// pluginActions are the stat actions @capgo/capacitor-updater sends (8.51.23; docs/protocol.md
// §2). A future plugin's new action is counted as "other" until it is added here.
var pluginActions = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, a := range []string{
		// Lifecycle
		"set", "set_next", "set_fail", "reset", "delete", "update_fail",
		"app_moved_to_foreground", "app_moved_to_background", "blocked_by_server_url",
		"os_version_changed", "native_app_version_changed",
		// Download
		"download_complete", "download_fail", "download_zip_start", "download_zip_complete",
		"download_manifest_start", "download_manifest_complete", "download_manifest_file_fail",
		"download_manifest_checksum_fail", "download_manifest_brotli_fail", "finish_download_fail",
		"low_mem_fail", "insufficient_disk_space",
		// Integrity
		"checksum_fail", "checksum_required", "session_key_required", "decrypt_fail",
		// Paths
		"unzip_fail", "windows_path_fail", "canonical_path_fail", "directory_path_fail", "manifest_path_fail",
		// Health
		"app_launch_start", "app_launch_ready", "app_launch_timeout",
		"app_crash", "app_crash_native", "app_anr", "app_killed_low_memory",
		"app_killed_excessive_resource_usage", "app_initialization_failure", "app_memory_warning",
		"webview_javascript_error", "webview_unhandled_rejection", "webview_resource_error",
		"webview_security_policy_violation", "webview_unclean_restart", "webview_render_process_gone",
		"webview_content_process_terminated", "webview_dom_content_loaded", "webview_page_loaded",
		// Rate limit
		"rate_limit_reached",
	} {
		m[a] = struct{}{}
	}
	for p := 0; p <= 90; p += 10 {
		m["download_"+strconv.Itoa(p)] = struct{}{}
	}
	return m
}()
