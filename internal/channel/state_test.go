package channel

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPromote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		in          State
		version     string
		want        State
		wantChanged bool
	}{
		{"first promotion", State{}, "1.0.0", State{Version: "1.0.0"}, true},
		{"next version", State{Version: "1.0.0"}, "1.1.0", State{Version: "1.1.0", History: []string{"1.0.0"}}, true},
		{"same version", State{Version: "1.1.0", History: []string{"1.0.0"}}, "1.1.0",
			State{Version: "1.1.0", History: []string{"1.0.0"}}, false},
		{"older version from history leaves history", State{Version: "1.2.0", History: []string{"1.1.0", "1.0.0"}}, "1.0.0",
			State{Version: "1.0.0", History: []string{"1.2.0", "1.1.0"}}, true},
		{"clears rollout of version", State{Version: "1.0.0", Rollout: &Rollout{Version: "1.1.0", Percent: 10}}, "1.1.0",
			State{Version: "1.1.0", History: []string{"1.0.0"}}, true},
		{"keeps rollout of another version", State{Version: "1.0.0", Rollout: &Rollout{Version: "1.2.0", Percent: 10}}, "1.1.0",
			State{Version: "1.1.0", History: []string{"1.0.0"}, Rollout: &Rollout{Version: "1.2.0", Percent: 10}}, true},
		{"stable again clears its rollout", State{Version: "1.0.0", Rollout: &Rollout{Version: "1.0.0", Percent: 10}}, "1.0.0",
			State{Version: "1.0.0"}, true},
		{"new version clears the release name", State{Version: "1.0.0", Release: "v1.0.0"}, "1.1.0",
			State{Version: "1.1.0", History: []string{"1.0.0"}}, true},
		{"same version keeps the release name", State{Version: "1.0.0", Release: "v1.0.0"}, "1.0.0",
			State{Version: "1.0.0", Release: "v1.0.0"}, false},
		{"builtin", State{Version: "1.0.0"}, builtin, State{Version: builtin, History: []string{"1.0.0"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.in
			if got := Promote(&s, tc.version); got != tc.wantChanged {
				t.Errorf("Promote(%q) = %v, want %v", tc.version, got, tc.wantChanged)
			}
			if diff := cmp.Diff(tc.want, s); diff != "" {
				t.Errorf("Promote(%q) state mismatch (-want +got):\n%s", tc.version, diff)
			}
		})
	}
}

func TestReleaseName(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{
		"refs/tags/v2.0.0": "v2.0.0", "refs/tags/channel/staging": "channel/staging",
		"refs/heads/main": "", "refs/pull/1/merge": "", "": "",
	} {
		if got := ReleaseName(ref); got != want {
			t.Errorf("ReleaseName(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestPromoteBoundsHistory(t *testing.T) {
	t.Parallel()
	var s State
	for i := range 50 {
		Promote(&s, fmt.Sprintf("1.0.%d", i))
	}
	if len(s.History) != MaxHistory {
		t.Fatalf("len(History) = %d, want %d", len(s.History), MaxHistory)
	}
	if s.Version != "1.0.49" || s.History[0] != "1.0.48" || s.History[MaxHistory-1] != fmt.Sprintf("1.0.%d", 49-MaxHistory) {
		t.Errorf("state = %+v", s)
	}
}

// TestPromoteDoesNotAlias checks that Promote never writes into the History array it was
// given: stores hand a shallow copy of the cached state.
func TestPromoteDoesNotAlias(t *testing.T) {
	t.Parallel()
	hist := []string{"1.1.0", "1.0.0", "0.9.0"}
	orig := append([]string(nil), hist...)
	s := State{Version: "1.2.0", History: hist}
	Promote(&s, "1.0.0")
	if _, err := Rollback(&s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig, hist); diff != "" {
		t.Errorf("caller's History changed (-want +got):\n%s", diff)
	}
}

func TestRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      State
		wantTo  string
		want    State
		wantErr error
	}{
		{"back one", State{Version: "1.2.0", History: []string{"1.1.0", "1.0.0"}}, "1.1.0",
			State{Version: "1.1.0", History: []string{"1.0.0"}}, nil},
		{"back to last", State{Version: "1.1.0", History: []string{"1.0.0"}}, "1.0.0", State{Version: "1.0.0"}, nil},
		{"clears the release name", State{Version: "2.0.0", Release: "v2.0.0", History: []string{"1.0.0"}}, "1.0.0", State{Version: "1.0.0"}, nil},
		{"nothing to roll back to", State{Version: "1.0.0"}, "", State{Version: "1.0.0"}, ErrNoHistory},
		{"never promoted", State{}, "", State{}, ErrNoHistory},
		{"clears rollout of restored version", State{Version: "1.2.0", History: []string{"1.1.0"}, Rollout: &Rollout{Version: "1.1.0", Percent: 5}},
			"1.1.0", State{Version: "1.1.0"}, nil},
		{"keeps other rollout", State{Version: "1.2.0", History: []string{"1.1.0"}, Rollout: &Rollout{Version: "1.3.0", Percent: 5}},
			"1.1.0", State{Version: "1.1.0", Rollout: &Rollout{Version: "1.3.0", Percent: 5}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.in
			to, err := Rollback(&s)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Rollback() error = %v, want %v", err, tc.wantErr)
			}
			if to != tc.wantTo {
				t.Errorf("Rollback() = %q, want %q", to, tc.wantTo)
			}
			if diff := cmp.Diff(tc.want, s); diff != "" {
				t.Errorf("Rollback() state mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRolloutChanges(t *testing.T) {
	t.Parallel()
	stable := func() State { return State{Channel: "production", Version: "1.0.0"} }
	withRollout := func(paused bool) State {
		s := stable()
		s.Rollout = &Rollout{Version: "1.1.0", Percent: 20, Paused: paused}
		return s
	}
	tests := []struct {
		name    string
		in      State
		op      func(*State) error
		want    State
		wantErr error
	}{
		{"set", stable(), func(s *State) error { return SetRollout(s, "1.1.0", 20) }, withRollout(false), nil},
		{"set replaces and unpauses", withRollout(true), func(s *State) error { return SetRollout(s, "1.2.0", 50) },
			State{Channel: "production", Version: "1.0.0", Rollout: &Rollout{Version: "1.2.0", Percent: 50}}, nil},
		{"set 0 and 100", stable(), func(s *State) error {
			if err := SetRollout(s, "1.1.0", 0); err != nil {
				return err
			}
			return SetRollout(s, "1.1.0", 100)
		}, State{Channel: "production", Version: "1.0.0", Rollout: &Rollout{Version: "1.1.0", Percent: 100}}, nil},
		{"percent too high", stable(), func(s *State) error { return SetRollout(s, "1.1.0", 101) }, stable(), ErrInvalidRollout},
		{"percent negative", stable(), func(s *State) error { return SetRollout(s, "1.1.0", -1) }, stable(), ErrInvalidRollout},
		{"no version", stable(), func(s *State) error { return SetRollout(s, "", 10) }, stable(), ErrInvalidRollout},
		{"stable version", stable(), func(s *State) error { return SetRollout(s, "1.0.0", 10) }, stable(), ErrInvalidRollout},
		{"no stable", State{}, func(s *State) error { return SetRollout(s, "1.0.0", 10) }, State{}, ErrInvalidRollout},
		{"pause", withRollout(false), PauseRollout, withRollout(true), nil},
		{"pause paused", withRollout(true), PauseRollout, withRollout(true), nil},
		{"pause none", stable(), PauseRollout, stable(), ErrNoRollout},
		{"resume", withRollout(true), ResumeRollout, withRollout(false), nil},
		{"resume running", withRollout(false), ResumeRollout, withRollout(false), nil},
		{"resume none", stable(), ResumeRollout, stable(), ErrNoRollout},
		{"complete", withRollout(false), CompleteRollout,
			State{Channel: "production", Version: "1.1.0", History: []string{"1.0.0"}}, nil},
		{"complete paused", withRollout(true), CompleteRollout,
			State{Channel: "production", Version: "1.1.0", History: []string{"1.0.0"}}, nil},
		{"complete none", stable(), CompleteRollout, stable(), ErrNoRollout},
		{"cancel", withRollout(false), CancelRollout, stable(), nil},
		{"cancel none", stable(), CancelRollout, stable(), ErrNoRollout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.in
			shared := s.Rollout
			var before Rollout
			if shared != nil {
				before = *shared
			}
			if err := tc.op(&s); !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, s); diff != "" {
				t.Errorf("state mismatch (-want +got):\n%s", diff)
			}
			if shared != nil && *shared != before {
				t.Errorf("the caller's Rollout was modified in place: %+v", *shared)
			}
		})
	}
}

func TestCheckAndRecordPush(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1763980000, 0)
	k1, k2 := PushKey("refs/tags/v1", "0", "a"), PushKey("refs/tags/v2", "0", "b")
	var s State
	if CheckPush(&s, t0, k1) != PushNew {
		t.Fatal("first push is not new")
	}
	RecordPush(&s, t0, k1)
	shared := s.LastPush
	for _, tc := range []struct {
		name string
		at   time.Time
		key  string
		want PushOrder
	}{
		{"same push", t0, k1, PushApplied},
		{"same push, sub-second time", t0.Add(300 * time.Millisecond), k1, PushApplied},
		{"another push of the same second", t0, k2, PushNew},
		{"older push", t0.Add(-time.Second), k2, PushStale},
		{"newer push", t0.Add(time.Second), k1, PushNew},
		{"no time", time.Time{}, k1, PushNew},
	} {
		if got := CheckPush(&s, tc.at, tc.key); got != tc.want {
			t.Errorf("%s: CheckPush = %v, want %v", tc.name, got, tc.want)
		}
	}
	RecordPush(&s, t0, k2)
	if diff := cmp.Diff(&PushMark{At: t0.UTC(), Keys: []string{k1, k2}}, s.LastPush); diff != "" {
		t.Errorf("mark after two pushes of one second (-want +got):\n%s", diff)
	}
	if len(shared.Keys) != 1 {
		t.Error("RecordPush wrote into the previous mark's slice")
	}
	RecordPush(&s, time.Time{}, "x") // no time: nothing recorded
	RecordPush(&s, t0.Add(-time.Hour), "y")
	if len(s.LastPush.Keys) != 2 || !s.LastPush.At.Equal(t0) {
		t.Errorf("mark changed by a push without time or an older one: %+v", s.LastPush)
	}
	RecordPush(&s, t0.Add(time.Minute), k1)
	if diff := cmp.Diff(&PushMark{At: t0.Add(time.Minute).UTC(), Keys: []string{k1}}, s.LastPush); diff != "" {
		t.Errorf("mark after a newer push (-want +got):\n%s", diff)
	}
	// The keys of one second are bounded.
	for i := range MaxPushKeys + 5 {
		RecordPush(&s, t0.Add(2*time.Minute), fmt.Sprint(i))
	}
	if n := len(s.LastPush.Keys); n != MaxPushKeys {
		t.Errorf("%d keys recorded for one second, want at most %d", n, MaxPushKeys)
	}
}
