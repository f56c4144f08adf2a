package relay

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/ferryhq/ferry/internal/channel"
)

// Codes the relay itself answers with (the decision's own codes come from channel.Decide).
const (
	// codeUnknownApp answers devices of an app this relay does not serve. It is a 200 with
	// kind "failed", never a 429 (which would put the plugin into rate-limit mode).
	codeUnknownApp = channel.CodeAppNotFound
	// codeUnavailable answers when the app's state has never been loaded and the store is
	// unreachable.
	codeUnavailable = "service_unavailable"
	// codeReleaseUnavailable is the metrics outcome of an update check that would have
	// offered a private repository's bundle while GitHub gives no download link (the device
	// is told no_new_version_available).
	codeReleaseUnavailable = "release_unavailable"
)

// errStoreSkipped is returned by failedVersions while it skips the store after a failure.
var errStoreSkipped = errors.New("store skipped after a recent failure")

// updates answers POST /updates (docs/protocol.md §1): HTTP 200 with the decision's JSON, except
// for a body that is not a usable info object (400), too large (413) or rate limited (429).
func (s *Server) updates(ctx context.Context, w http.ResponseWriter, _ *http.Request, body string) {
	var req deviceRequest
	if err := parseObjectInto(body, &req); err != nil {
		s.metrics.decided("invalid_request")
		writeRequestError(ctx, w, err, channel.KindFailed)
		return
	}
	e, ok := s.apps[req.Info.AppID]
	if ok && !s.deviceAllowed(ctx, w, req.Info.AppID, req.Info.DeviceID) {
		return
	}
	if !ok {
		s.metrics.decided(codeUnknownApp)
		respond(ctx, w, http.StatusOK, errorBody{
			Error:   codeUnknownApp,
			Message: "App " + req.Info.AppID + " is not served by this update server",
			Kind:    channel.KindFailed,
		})
		return
	}
	snap, err := s.snapshot(ctx, e)
	if err != nil {
		s.metrics.decided(codeUnavailable)
		respond(ctx, w, http.StatusOK, errorBody{
			Error:   codeUnavailable,
			Message: "The update server cannot reach its store; try again later",
			Kind:    channel.KindFailed,
		})
		return
	}
	d := s.decide(ctx, snap, &req.Info)
	if d.Bundle != nil && d.Bundle.Assets != nil && s.downloads != nil && !s.downloads.available(req.Info.AppID, d.Bundle.Assets.Archive.ID) {
		// GitHub's rate limit or an outage: a URL offered now would fail on the device.
		d = channel.Decision{Outcome: codeReleaseUnavailable, Channel: d.Channel,
			Response: channel.UpdateResponse{Error: channel.CodeNoNewVersion, Message: "No update right now: the bundle's download is unavailable, try again later", Kind: channel.KindUpToDate}}
	}
	s.metrics.decided(d.Outcome)
	if s.series != nil {
		s.series.check(snap, &d, &req.Info)
	}
	respondUpdate(ctx, w, http.StatusOK, &d.Response)
}

// decide runs channel.Decide. Only when the answer offers a bundle does it look up the
// versions this device reported update_fail for (one store round trip), and decides again
// without the offered version if the device failed it. If that lookup fails, the first
// answer stands: a store outage must not stop updates.
func (s *Server) decide(ctx context.Context, snap *channel.Snapshot, info *channel.DeviceInfo) channel.Decision {
	d := channel.Decide(snap, info, nil)
	if d.Bundle == nil {
		return d
	}
	failed, err := s.failedVersions(ctx, info.AppID, info.DeviceID)
	if err != nil || !slices.Contains(failed, d.Bundle.Version) {
		return d
	}
	return channel.Decide(snap, info, failed)
}

// failedVersions calls Store.FailedVersions with the store timeout (none for a store
// with local lookups, nor when the store's filter knows the device has none). After a
// failure it skips the store for storeRetry, so an outage costs one timeout per interval
// rather than one per request.
func (s *Server) failedVersions(ctx context.Context, app, device string) ([]string, error) {
	if s.failedFilter != nil && s.failedFilter.NoFailedVersions(app, device) {
		return nil, nil
	}
	if !s.failedGate.open(s.now) {
		return nil, errStoreSkipped
	}
	cctx := ctx
	if !s.localLookups {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, s.opts.StoreTimeout)
		defer cancel()
	}
	failed, err := s.store.FailedVersions(cctx, app, device)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // the client went away; not the store's fault
		}
		s.metrics.storeErrors.WithLabelValues("failed_versions").Inc()
		s.failedGate.shut(s.now(), storeRetry)
		loggerFrom(ctx, s.log).WarnContext(ctx, "look up failed versions; answering without them",
			"app", app, "error", err)
		return nil, err
	}
	return failed, nil
}
