package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestAdminPromoteNative drives `ferry admin promote --native` against the real control
// plane: the flag goes before or after the arguments, the relay stores the range for the
// promoted version and the answer shows it; "" restores the bundle's own range; a range
// that does not parse is a usage error before anything is sent.
func TestAdminPromoteNative(t *testing.T) {
	t.Parallel()
	relay, tokenFile := adminRelay(t)
	base := []string{"admin", "--relay", relay, "--app", "com.example.app", "--token-file", tokenFile}
	ferry := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append(append([]string{}, base...), args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	channelNative := func() map[string]string {
		t.Helper()
		code, out, errOut := ferry("--json", "channels")
		var list relayclient.ChannelList
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("channels: exit %d %s %s", code, out, errOut)
		}
		for _, c := range list.Channels {
			if c.Name == "production" {
				return c.State.Native
			}
		}
		t.Fatal("no production channel")
		return nil
	}

	if code, out, errOut := ferry("promote", "--native", ">=2.0.0 <3.0.0", "production", "1.0.0"); code != 0 ||
		!strings.Contains(out, `production changed: serves 1.0.0, native ">=2.0.0 <3.0.0" (set at promotion)`) {
		t.Fatalf("promote --native before the arguments: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := ferry("promote", "production", "1.0.1", "--native=^2.1"); code != 0 || !strings.Contains(out, `native "^2.1"`) {
		t.Fatalf("promote --native= after the arguments: exit %d\n%s%s", code, out, errOut)
	}
	if got := channelNative(); got["1.0.0"] != ">=2.0.0 <3.0.0" || got["1.0.1"] != "^2.1" {
		t.Errorf("stored overrides = %v", got)
	}
	if code, out, errOut := ferry("promote", "production", "1.0.1", "--native", ""); code != 0 || strings.Contains(out, "native") {
		t.Fatalf(`promote --native "": exit %d\n%s%s`, code, out, errOut)
	}
	if got := channelNative(); got["1.0.1"] != "" || got["1.0.0"] != ">=2.0.0 <3.0.0" {
		t.Errorf("after removing 1.0.1's override: %v", got)
	}

	before := channelNative()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"promote", "production", "1.1.0", "--native", ">=banana"}, "--native: invalid native version range"},
		{[]string{"promote", "production", "1.1.0", "--native"}, "--native needs a range"},
		{[]string{"promote", "--native", "^2", "--native", "^3", "production", "1.1.0"}, "--native is given twice"},
		{[]string{"promote", "--native", "^2", "production"}, "usage: promote <channel> <version> [--native RANGE]"},
	} {
		if code, _, errOut := ferry(tc.args...); code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("ferry admin %q: exit %d, want 2 naming %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
	// The relay refuses what the CLI cannot check: a range for builtin.
	if code, _, errOut := ferry("promote", "production", "builtin", "--native", "^2"); code != 1 || !strings.Contains(errOut, "400 bad_request") {
		t.Errorf("promote builtin --native: exit %d, want 1 with the relay's 400:\n%s", code, errOut)
	}
	if got := channelNative(); len(got) != len(before) || got["1.0.0"] != before["1.0.0"] {
		t.Errorf("refused promotions changed the overrides: %v, before %v", got, before)
	}
}
