package channel

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSetNative(t *testing.T) {
	t.Parallel()
	held := func() State {
		return State{Channel: "production", Version: "1.2.0", History: []string{"1.1.0"},
			Rollout: &Rollout{Version: "1.3.0", Percent: 10}}
	}
	tests := []struct {
		name, version, rng string
		before             map[string]string
		want               map[string]string
		wantChanged        bool
	}{
		{"stable version", "1.2.0", ">=2.0.0 <3.0.0", nil, map[string]string{"1.2.0": ">=2.0.0 <3.0.0"}, true},
		{"history version", "1.1.0", "^2", nil, map[string]string{"1.1.0": "^2"}, true},
		{"rollout version", "1.3.0", "~2.1", nil, map[string]string{"1.3.0": "~2.1"}, true},
		{"trimmed", "1.2.0", "  >=2 ", nil, map[string]string{"1.2.0": ">=2"}, true},
		{"same range again", "1.2.0", ">=2", map[string]string{"1.2.0": ">=2"}, map[string]string{"1.2.0": ">=2"}, false},
		{"replaced", "1.2.0", ">=3", map[string]string{"1.2.0": ">=2"}, map[string]string{"1.2.0": ">=3"}, true},
		{"empty clears", "1.2.0", "", map[string]string{"1.2.0": ">=2", "1.1.0": "^2"}, map[string]string{"1.1.0": "^2"}, true},
		{"clearing the last leaves no map", "1.2.0", "", map[string]string{"1.2.0": ">=2"}, nil, true},
		{"clearing nothing", "1.2.0", "", nil, nil, false},
		{"every version", "1.2.0", "*", nil, map[string]string{"1.2.0": "*"}, true},
		{"prunes a stale entry", "1.2.0", ">=2", map[string]string{"0.1.0": "^1"}, map[string]string{"1.2.0": ">=2"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := held()
			s.Native = tc.before
			shared := maps.Clone(tc.before)
			changed, err := SetNative(&s, tc.version, tc.rng)
			if err != nil {
				t.Fatalf("SetNative(%q, %q): %v", tc.version, tc.rng, err)
			}
			if changed != tc.wantChanged {
				t.Errorf("SetNative(%q, %q) changed = %v, want %v", tc.version, tc.rng, changed, tc.wantChanged)
			}
			if diff := cmp.Diff(tc.want, s.Native); diff != "" {
				t.Errorf("Native after SetNative (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(shared, tc.before); diff != "" {
				t.Errorf("SetNative wrote into the caller's map (-was +now):\n%s", diff)
			}
		})
	}
}

func TestSetNativeRefusesAndChangesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, version, rng string
		want               error
	}{
		{"range does not parse", "1.2.0", ">=banana", ErrInvalidRange},
		{"empty alternative", "1.2.0", ">=2 ||", ErrInvalidRange},
		{"control character", "1.2.0", ">=2\n<3", ErrInvalidRange},
		{"too long", "1.2.0", fmt.Sprintf("%01100d", 1), ErrInvalidRange},
		{"builtin", builtin, ">=2", ErrInvalidRange},
		{"version not in the channel", "9.9.9", ">=2", ErrNotInChannel},
		{"no version", "", ">=2", ErrNotInChannel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := State{Channel: "production", Version: "1.2.0", History: []string{builtin, "1.1.0"},
				Native: map[string]string{"1.1.0": "^1", "0.1.0": "stale, pruned only by a change"}}
			before := s
			before.Native = maps.Clone(s.Native)
			changed, err := SetNative(&s, tc.version, tc.rng)
			if !errors.Is(err, tc.want) || changed {
				t.Errorf("SetNative(%q, %q) = %v, %v; want an error wrapping %v", tc.version, tc.rng, changed, err, tc.want)
			}
			if diff := cmp.Diff(before, s); diff != "" {
				t.Errorf("a refused SetNative changed the state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNativeFor(t *testing.T) {
	t.Parallel()
	own := &Bundle{Version: "1.2.0", Native: ">=1"}
	var none *State
	if r, ok := none.NativeFor("1.2.0"); ok || r != "" || none.NativeRange(own) != ">=1" {
		t.Errorf("nil state: NativeFor = %q, %v; NativeRange = %q", r, ok, none.NativeRange(own))
	}
	s := &State{Version: "1.2.0", Native: map[string]string{"1.2.0": ">=2"}}
	if r, ok := s.NativeFor("1.2.0"); !ok || r != ">=2" {
		t.Errorf("NativeFor(1.2.0) = %q, %v; want the override", r, ok)
	}
	if r := s.NativeRange(own); r != ">=2" {
		t.Errorf("NativeRange = %q; the override wins over the bundle's own", r)
	}
	if r := s.NativeRange(&Bundle{Version: "1.1.0", Native: "^1"}); r != "^1" {
		t.Errorf("NativeRange without an override = %q; want the bundle's own", r)
	}
}

// TestNativePruned checks that the overrides stay bounded by the channel's history: the
// state changes drop the override of every version that leaves the channel.
func TestNativePruned(t *testing.T) {
	t.Parallel()
	s := &State{Channel: "production"}
	for i := range MaxHistory + 10 {
		v := fmt.Sprintf("1.%d.0", i)
		Promote(s, v)
		if _, err := SetNative(s, v, fmt.Sprintf(">=%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Native) != MaxHistory+1 {
		t.Errorf("after %d promotions Native holds %d entries, want %d (stable + history)", MaxHistory+10, len(s.Native), MaxHistory+1)
	}
	for v := range s.Native {
		if !s.holds(v) {
			t.Errorf("Native keeps %q, which the channel no longer holds", v)
		}
	}

	// Rollback drops the version rolled back from, and its override.
	from := s.Version
	if _, err := Rollback(s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.NativeFor(from); ok {
		t.Errorf("override of %q survived its rollback", from)
	}
	// A cancelled rollout's version leaves the channel, and its override with it.
	if err := SetRollout(s, "5.0.0", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := SetNative(s, "5.0.0", ">=5"); err != nil {
		t.Fatal(err)
	}
	shared := s.Native
	if err := CancelRollout(s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.NativeFor("5.0.0"); ok {
		t.Error("override of a cancelled rollout's version survived")
	}
	if _, ok := shared["5.0.0"]; !ok {
		t.Error("pruning wrote into the map the caller held")
	}
	// Promoting a version from History keeps its override.
	old := s.History[2]
	want, _ := s.NativeFor(old)
	Promote(s, old)
	if got, ok := s.NativeFor(old); !ok || got != want {
		t.Errorf("promoting %q from history: override %q, %v; want %q kept", old, got, ok, want)
	}
}
