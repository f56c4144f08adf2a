package channel

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// NativeFor returns the native-version range set for version when it was promoted (see
// [SetNative]), and whether one was set. A nil state has none.
func (s *State) NativeFor(version string) (string, bool) {
	if s == nil {
		return "", false
	}
	r, ok := s.Native[version]
	return r, ok
}

// NativeRange returns the native-version range that applies to bundle b in this channel:
// the range set when b's version was promoted, else the bundle's own Native.
func (s *State) NativeRange(b *Bundle) string {
	if r, ok := s.NativeFor(b.Version); ok {
		return r
	}
	return b.Native
}

// holds reports whether version is the channel's stable version, in its History, or its
// rollout's version: the versions a native-range override may be kept for.
func (s *State) holds(version string) bool {
	return version != "" && (version == s.Version || slices.Contains(s.History, version) ||
		(s.Rollout != nil && s.Rollout.Version == version))
}

// SetNative sets the native-version range rng (syntax as in [NativeAllows]) that [Decide]
// checks instead of the bundle's own range for version, which the channel must hold (as
// its stable version, in History or as its rollout's version); an empty rng removes the
// override, so the bundle's own range applies again. It reports whether s changed. It
// returns an error wrapping [ErrInvalidRange] (a range that does not parse, holds a control
// character, or is set for "builtin") or [ErrNotInChannel], and leaves s unchanged. Like
// the other state changes it never writes into a map the caller shares, and it prunes
// overrides of versions the channel no longer holds.
func SetNative(s *State, version, rng string) (changed bool, err error) {
	rng = strings.TrimSpace(rng)
	if err := checkOverride(s, version, rng); err != nil {
		return false, err
	}
	old, had := s.Native[version]
	if (rng == "" && !had) || (had && old == rng) {
		return pruneNative(s), nil
	}
	m := maps.Clone(s.Native)
	if m == nil {
		m = map[string]string{}
	}
	if rng == "" {
		delete(m, version)
		if len(m) == 0 {
			m = nil
		}
	} else {
		m[version] = rng
	}
	s.Native = m
	pruneNative(s)
	return true, nil
}

// CheckNativeOverride reports whether rng may be set at promotion as version's native
// range ([SetNative] without the channel's history): not for "builtin", no control
// characters, and the range syntax of [NativeAllows]. Errors wrap [ErrInvalidRange].
func CheckNativeOverride(version, rng string) error {
	if version == builtin {
		return fmt.Errorf("%w: %q serves the app's built-in assets, which have no native range", ErrInvalidRange, version)
	}
	if strings.ContainsFunc(rng, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: %q holds a control character", ErrInvalidRange, rng)
	}
	return ParseRange(rng)
}

// checkOverride validates a native-range override of version on s.
func checkOverride(s *State, version, rng string) error {
	if err := CheckNativeOverride(version, rng); err != nil {
		return err
	}
	if !s.holds(version) {
		return fmt.Errorf("native range of %q: %w %q", version, ErrNotInChannel, s.Channel)
	}
	return nil
}

// pruneNative drops the overrides of versions s no longer holds, so Native stays bounded
// by the channel's history. It replaces the map rather than writing into it, and reports
// whether it dropped any.
func pruneNative(s *State) bool {
	stale := false
	for v := range s.Native {
		if !s.holds(v) {
			stale = true
			break
		}
	}
	if !stale {
		return false
	}
	m := make(map[string]string, len(s.Native))
	for v, r := range s.Native {
		if s.holds(v) {
			m[v] = r
		}
	}
	if len(m) == 0 {
		m = nil
	}
	s.Native = m
	return true
}
