package channel

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Promote makes version the stable version of s. The previous stable version moves to the
// front of History, which keeps distinct versions, most recent first, at most [MaxHistory];
// version itself leaves History; and a rollout of version is cleared (it is now stable for
// everyone). It reports whether s changed: promoting the stable version again with no
// rollout of it is a no-op. A new version clears Release (the caller names the new one).
// Promote does not touch Rev or UpdatedAt: the store sets them.
// The caller validates version (it names a registered bundle, or "builtin" to send devices
// back to the app's built-in assets).
func Promote(s *State, version string) (changed bool) {
	if s.Rollout != nil && s.Rollout.Version == version {
		s.Rollout = nil
		changed = true
	}
	endPlanWithRollout(s)
	if s.Version == version {
		pruneNative(s)
		return changed
	}
	if i := slices.Index(s.History, version); i >= 0 {
		s.History = slices.Delete(slices.Clone(s.History), i, i+1)
	}
	if s.Version != "" {
		h := make([]string, 0, min(len(s.History)+1, MaxHistory))
		h = append(h, s.Version)
		for _, v := range s.History {
			if len(h) == MaxHistory {
				break
			}
			if v != s.Version {
				h = append(h, v)
			}
		}
		s.History = h
	}
	s.Version = version
	s.Release = ""
	pruneNative(s)
	return true
}

// ReleaseName is the release name a ref gives the version it promotes: the tag's name
// ("v2.0.0" for refs/tags/v2.0.0), or "" for a ref that is not a tag.
func ReleaseName(ref string) string {
	name, ok := strings.CutPrefix(ref, "refs/tags/")
	if !ok {
		return ""
	}
	return name
}

// Rollback makes History[0] the stable version again and drops it from History. The version
// rolled back from is not kept in History (the audit log records it), so native-version
// fallbacks never pick it again, and its native-range override (see [SetNative]) goes too. A rollout of the restored version is cleared; any other
// rollout is kept. It returns the restored version, or an error wrapping [ErrNoHistory]
// and leaves s unchanged.
func Rollback(s *State) (to string, err error) {
	if len(s.History) == 0 {
		return "", fmt.Errorf("roll back channel %q: %w", s.Channel, ErrNoHistory)
	}
	to = s.History[0]
	s.History = slices.Clone(s.History[1:])
	if len(s.History) == 0 {
		s.History = nil
	}
	s.Version = to
	s.Release = ""
	if s.Rollout != nil && s.Rollout.Version == to {
		s.Rollout = nil
	}
	endPlanWithRollout(s)
	pruneNative(s)
	return to, nil
}

// SetRollout offers version to percent percent of the channel's devices (see [InCohort]),
// replacing any rollout in progress and unpausing it, and ending a rollout plan (a person
// setting the percent takes the rollout over); the other devices keep the stable
// version. It returns an error wrapping [ErrInvalidRollout], and leaves s unchanged, when
// percent is outside 0..100, version is empty or already stable, or the channel has no
// stable version yet (promote one first). A rollout at 100 serves everyone but stays a
// rollout until [CompleteRollout].
func SetRollout(s *State, version string, percent int) error {
	switch {
	case percent < 0 || percent > 100:
		return fmt.Errorf("rollout of %q at %d%%: %w: percent must be 0..100", version, percent, ErrInvalidRollout)
	case version == "":
		return fmt.Errorf("rollout: %w: no version", ErrInvalidRollout)
	case s.Version == "":
		return fmt.Errorf("rollout of %q: %w: channel %q has no stable version; promote one first", version, ErrInvalidRollout, s.Channel)
	case version == s.Version:
		return fmt.Errorf("rollout of %q: %w: it is already the stable version", version, ErrInvalidRollout)
	}
	s.Rollout = &Rollout{Version: version, Percent: percent}
	s.Plan = nil
	return nil
}

// PauseRollout stops offering the rollout's version to devices that do not run it yet:
// they get the stable version, and devices already on the candidate keep it. Pausing a
// paused rollout is a no-op. It returns an error wrapping [ErrNoRollout] when there is none.
func PauseRollout(s *State) error {
	if s.Rollout == nil {
		return fmt.Errorf("pause rollout of channel %q: %w", s.Channel, ErrNoRollout)
	}
	if !s.Rollout.Paused {
		r := *s.Rollout
		r.Paused = true
		s.Rollout = &r
	}
	return nil
}

// ResumeRollout resumes a paused rollout; resuming a running one is a no-op. It returns an
// error wrapping [ErrNoRollout] when there is none.
func ResumeRollout(s *State) error {
	if s.Rollout == nil {
		return fmt.Errorf("resume rollout of channel %q: %w", s.Channel, ErrNoRollout)
	}
	if s.Rollout.Paused {
		r := *s.Rollout
		r.Paused = false
		s.Rollout = &r
	}
	return nil
}

// CompleteRollout promotes the rollout's version to stable for every device, as [Promote]
// does, and clears the rollout. It returns an error wrapping [ErrNoRollout] when there is
// none.
func CompleteRollout(s *State) error {
	if s.Rollout == nil {
		return fmt.Errorf("complete rollout of channel %q: %w", s.Channel, ErrNoRollout)
	}
	Promote(s, s.Rollout.Version)
	return nil
}

// CancelRollout ends the rollout without promoting it: every device, including those that
// already took the candidate, is offered the stable version again. It returns an error
// wrapping [ErrNoRollout] when there is none.
func CancelRollout(s *State) error {
	if s.Rollout == nil {
		return fmt.Errorf("cancel rollout of channel %q: %w", s.Channel, ErrNoRollout)
	}
	s.Rollout = nil
	s.Plan = nil
	pruneNative(s)
	return nil
}

// PushMark is the newest GitHub push applied to a channel: the time GitHub stamped on it
// (the push event's repository.pushed_at, in whole seconds) and the identities of the
// pushes applied at that second (see [PushKey]).
type PushMark struct {
	At   time.Time `json:"at"`
	Keys []string  `json:"keys,omitempty"`
}

// MaxPushKeys bounds PushMark.Keys: pushes to one channel within one second of GitHub's
// clock. Beyond it, further pushes of that second are treated as already applied.
const MaxPushKeys = 32

// PushKey identifies one push of ref: the object the ref pointed to before and after it.
// A tag moved back and forth produces a new key each time; a replay of one push does not.
func PushKey(ref, before, after string) string { return ref + " " + before + ".." + after }

// PushOrder is how a push compares with a channel's [PushMark].
type PushOrder int

const (
	// PushNew is a push newer than every push applied to the channel (or one that carries
	// no time, which cannot be ordered).
	PushNew PushOrder = iota
	// PushApplied is a push the channel already recorded: a replay.
	PushApplied
	// PushStale is a push older than one the channel already applied.
	PushStale
)

// CheckPush orders the push (at, key) against the newest push recorded on s. A zero at
// (a payload without a push time) is PushNew: it cannot be ordered, and only a sender
// holding the webhook secret can produce one.
func CheckPush(s *State, at time.Time, key string) PushOrder {
	m := s.LastPush
	at = at.Truncate(time.Second)
	switch {
	case at.IsZero() || m == nil:
		return PushNew
	case at.Before(m.At):
		return PushStale
	case at.Equal(m.At):
		if slices.Contains(m.Keys, key) || len(m.Keys) >= MaxPushKeys {
			return PushApplied
		}
		return PushNew
	default:
		return PushNew
	}
}

// RecordPush records the push (at, key) as applied on s, for [CheckPush]. It does nothing
// for a zero at or a push that is not [PushNew], and never writes into s's shared slices.
func RecordPush(s *State, at time.Time, key string) {
	if at.IsZero() || CheckPush(s, at, key) != PushNew {
		return
	}
	at = at.UTC().Truncate(time.Second)
	if s.LastPush != nil && s.LastPush.At.Equal(at) {
		s.LastPush = &PushMark{At: at, Keys: append(slices.Clone(s.LastPush.Keys), key)}
		return
	}
	s.LastPush = &PushMark{At: at, Keys: []string{key}}
}
