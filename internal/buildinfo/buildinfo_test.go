package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc1234def5678"}, {Key: "vcs.modified", Value: "false"}}},
			"ferry v1.2.0 commit abc1234"},
		{"modified", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc1234def5678"}, {Key: "vcs.modified", Value: "true"}}},
			"ferry (devel) commit abc1234 (modified)"},
		{"no vcs", debug.BuildInfo{}, "ferry (devel)"},
	}
	for _, tc := range tests {
		if got := format("ferry", &tc.bi); got != tc.want {
			t.Errorf("%s: format = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := String("relay"); !strings.HasPrefix(got, "relay ") {
		t.Errorf("String = %q", got)
	}
}
