package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ferryhq/ferry/internal/channel"
)

// StatusDeleted marks a failed bundle whose files were deleted (autoDeleteFailed, the
// plugin's default). Such a bundle is downloaded again if the relay keeps offering it.
const StatusDeleted Status = "deleted"

// Result is what one [Client.Update] did.
type Result struct {
	// Response is the relay's answer.
	Response *channel.UpdateResponse
	// Outcome is [Outcome] of the answer: "update", "same_version", "builtin", "invalid",
	// "up_to_date", "blocked" or "failed".
	Outcome string
	// Bundle is the bundle installed when Outcome is "update" and nothing failed.
	Bundle *Bundle
	// Reused reports that the bundle was already downloaded and was not fetched again.
	Reused bool
	// Events are the stats the device sent.
	Events []Event
}

// Update runs one auto-update cycle as the plugin does in its direct-update modes
// (docs/protocol.md §1.4): check; on a refusal of kind "failed" or an unusable answer report
// download_fail; on a new version download, decrypt, verify and unpack it (reporting the
// failure's own stat and download_fail if any step fails), report download_complete,
// switch to it and report set. A version this device marked as failed is aborted with
// [ErrBundleFailed]. The returned error is nil for refusals and "no update" answers; the
// caller reads Result.Outcome.
func (c *Client) Update(ctx context.Context) (*Result, error) {
	resp, err := c.Check(ctx)
	if err != nil && resp == nil {
		return nil, err
	}
	res := &Result{Response: resp, Outcome: Outcome(resp, c.Running())}
	if err != nil {
		res.Outcome = channel.KindFailed
	}
	switch res.Outcome {
	case channel.KindUpToDate, channel.KindBlocked, "same_version":
		return res, nil
	case channel.KindFailed:
		res.Events = []Event{{Action: "download_fail", VersionName: resp.Version}}
		return res, errors.Join(err, c.SendStats(ctx, res.Events...))
	case "invalid":
		res.Events = []Event{{Action: "download_fail", VersionName: resp.Version}}
		return res, errors.Join(withCode(ErrDownloadFail, fmt.Errorf("update: no url or wrong format in the answer")), c.SendStats(ctx, res.Events...))
	case "builtin":
		old := c.Running()
		c.Info.VersionName = "builtin"
		res.Events = []Event{{Action: "reset", VersionName: "builtin", OldVersionName: old}}
		return res, c.SendStats(ctx, res.Events...)
	}

	c.mu.Lock()
	existing := c.bundles[resp.Version]
	c.mu.Unlock()
	var b *Bundle
	switch {
	case existing != nil && existing.Status == StatusError:
		return res, fmt.Errorf("update to %s: %w", resp.Version, ErrBundleFailed)
	case existing != nil && existing.Status != StatusDeleted:
		b, res.Reused = existing, true
	default:
		b, err = c.Download(ctx, resp)
		if err != nil {
			code := Code(err)
			res.Events = []Event{{Action: code, VersionName: resp.Version}}
			if code != ErrDownloadFail.Error() {
				res.Events = append(res.Events, Event{Action: "download_fail", VersionName: resp.Version})
			}
			return res, errors.Join(err, c.SendStats(ctx, res.Events...))
		}
		res.Events = append(res.Events, Event{Action: "download_complete", VersionName: b.Version})
	}
	old := c.Running()
	if err := c.activate(b.Version); err != nil {
		res.Events = append(res.Events, Event{Action: "set_fail", VersionName: b.Version})
		return res, errors.Join(err, c.SendStats(ctx, res.Events...))
	}
	res.Events = append(res.Events, Event{Action: "set", VersionName: b.Version, OldVersionName: old})
	res.Bundle = b
	return res, c.SendStats(ctx, res.Events...)
}

// Set switches the device to a downloaded bundle and reports "set", like the plugin's
// set(). The bundle is pending until [Client.NotifyAppReady].
func (c *Client) Set(ctx context.Context, version string) error {
	old := c.Running()
	if err := c.activate(version); err != nil {
		return errors.Join(err, c.SendStats(ctx, Event{Action: "set_fail", VersionName: version}))
	}
	return c.SendStats(ctx, Event{Action: "set", VersionName: version, OldVersionName: old})
}

func (c *Client) activate(version string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bundles[version]
	if b == nil || b.Status == StatusDeleted || b.Status == StatusError {
		return fmt.Errorf("set %s: %w", version, ErrSetFail)
	}
	if _, err := os.Stat(filepath.Join(b.Path, "index.html")); err != nil {
		return fmt.Errorf("set %s: %w", version, ErrSetFail)
	}
	c.Info.VersionName = version
	return nil
}

// NotifyAppReady is the app's call to notifyAppReady(): it marks the running bundle
// successful, which makes it the fallback for later rollbacks.
func (c *Client) NotifyAppReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.info().VersionName
	if b := c.bundles[v]; b != nil {
		b.Status = StatusSuccess
	}
	c.fallback = v
}

// AppReadyTimeout simulates the running bundle not calling notifyAppReady() within
// appReadyTimeout: the device reports app_launch_timeout and update_fail for it, marks it
// failed, deletes its files (autoDeleteFailed, the default; its status becomes
// [StatusDeleted]) and resets to the last successful bundle or builtin, reporting reset.
// waitedMS is the time the bundle was given, sent as duration_ms. It returns the version
// the device runs afterwards.
func (c *Client) AppReadyTimeout(ctx context.Context, waitedMS int64) (string, error) {
	failed := c.Running()
	if failed == "builtin" {
		return failed, nil
	}
	c.mu.Lock()
	if b := c.bundles[failed]; b != nil {
		b.Status = StatusDeleted
		_ = os.RemoveAll(b.Path)
	}
	back := c.fallback
	if back == "" || back == failed {
		back = "builtin"
	}
	c.mu.Unlock()
	c.Info.VersionName = back
	return back, c.SendStats(ctx,
		Event{Action: "app_launch_timeout", VersionName: failed, Metadata: map[string]string{"duration_ms": strconv.FormatInt(waitedMS, 10)}},
		Event{Action: "update_fail", VersionName: failed},
		Event{Action: "reset", VersionName: back, OldVersionName: failed},
	)
}
