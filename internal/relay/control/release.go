package control

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ferryhq/ferry/internal/channel"
)

// One tag push, one promotion (docs/relay.md, "Tags and releases"). A tag names a commit.
// Whichever comes first moves the tag's channel to a bundle of that commit: the webhook
// finding one already registered (a build of the branch), or the registration of the
// first bundle built from the commit (the tag's own build, or a branch build the push was
// waiting for). The other then finds the channel serving a bundle of the commit and does
// not move it again; the channel records the tag as the release name of what it serves.

// errServedMoved reports that a channel's version changed between reading it and updating
// it: the caller looks again.
var errServedMoved = errors.New("the channel's version changed meanwhile")

// servedFromCommit returns st's stable version when the bundle it names was built from
// commit, else "".
func (a *API) servedFromCommit(ctx context.Context, st *channel.State, commit string) (string, error) {
	if st.Version == "" || commit == "" {
		return "", nil
	}
	b, err := a.store.GetBundle(ctx, st.App, st.Version)
	switch {
	case errors.Is(err, channel.ErrNotFound):
		return "", nil // "builtin", or a version no bundle backs
	case err != nil:
		return "", storeError("get bundle", err)
	case b.Commit == commit:
		return st.Version, nil
	default:
		return "", nil
	}
}

// promoteRegistration moves channel ch of app to the registered bundle b, as
// promoteRegistered does. For a bundle built from a tag (the workflow also runs on tags),
// a channel that already serves a bundle of the same commit (the tag push promoted the
// branch's build) is left alone, so the tag promotes once; promoted says whether the
// channel moved, and reason why not.
func (a *API) promoteRegistration(ctx context.Context, app *channel.App, ch string, b *channel.Bundle, cause string, actor *channel.Actor, onlyIfNew bool) (promoted bool, reason string, err error) {
	release := channel.ReleaseName(b.Ref)
	if release == "" {
		moved, err := a.promoteRegistered(ctx, app, ch, b.Ref, b.Version, "", cause, actor, onlyIfNew, nil)
		return moved, "", err
	}
	for range 3 {
		st, err := a.store.GetState(ctx, app.ID, ch)
		if err != nil {
			return false, "", storeError("get state", err)
		}
		served, err := a.servedFromCommit(ctx, st, b.Commit)
		if err != nil {
			return false, "", err
		}
		if served != "" && served != b.Version {
			return false, a.sameCommitReason(ctx, st, b), nil
		}
		// Promote only if the channel still serves what was looked at: a tag push may
		// have put a bundle of this commit there meanwhile.
		moved, err := a.promoteRegistered(ctx, app, ch, b.Ref, b.Version, release, cause, actor, onlyIfNew, func(s *channel.State) error {
			if s.Version != st.Version {
				return errServedMoved
			}
			return nil
		})
		if !errors.Is(err, errServedMoved) {
			return moved, "", err
		}
	}
	return false, "", errServedMoved
}

// sameCommitReason says why a tag's build did not move channel st: it serves a bundle of
// the same commit.
func (a *API) sameCommitReason(ctx context.Context, st *channel.State, b *channel.Bundle) string {
	content := "other bytes (the build is not reproducible, or embeds the version)"
	if sb, err := a.store.GetBundle(ctx, st.App, st.Version); err == nil && sb.SHA256 == b.SHA256 {
		content = "the same content"
	}
	by := ""
	if st.Release != "" {
		by = ", released as " + st.Release
	}
	return fmt.Sprintf("channel %q already serves %s%s, built from the same commit %s with %s: a tag promotes once, so the channel keeps it; %s is registered, and `ferry admin promote --version %s` serves it under its own name",
		st.Channel, st.Version, by, shortCommit(b.Commit), content, b.Version, b.Version)
}

func shortCommit(c string) string { return c[:min(len(c), 12)] }

// promoteRegistered promotes version on (app, ch) for a registration of ref, or starts the
// rollout plan the ref's rule names (see deploy), naming the release release (a tag's name,
// or "" for a branch build) when it promotes. For a re-registration (onlyIfNew), a channel
// that serves the version or served it before is left alone: a late retry of an old
// registration must not move a channel back. A non-nil guard is checked against the state
// first; its error is returned and nothing changes.
func (a *API) promoteRegistered(ctx context.Context, app *channel.App, ch, ref, version, release, cause string, actor *channel.Actor, onlyIfNew bool, guard func(*channel.State) error) (bool, error) {
	changed := false
	_, err := a.updateState(ctx, app.ID, ch, func(s *channel.State) (*channel.AuditEntry, error) {
		changed = false
		if guard != nil {
			if err := guard(s); err != nil {
				return nil, err
			}
		}
		if onlyIfNew && (s.Version == version || slices.Contains(s.History, version)) {
			return nil, nil
		}
		from := s.Version
		moved, action := a.deploy(s, app, ref, ch, version)
		if !moved {
			return nil, nil
		}
		changed = true
		e := &channel.AuditEntry{Time: a.now().UTC(), App: app.ID, Channel: ch, Action: action, Version: version, From: from, Cause: cause, Actor: actor}
		if action == "promote" {
			s.Release, e.Release = release, release
		}
		return e, nil
	})
	if err != nil {
		return false, err
	}
	if changed {
		a.metrics.promotions.WithLabelValues("registration").Inc()
	}
	return changed, nil
}
