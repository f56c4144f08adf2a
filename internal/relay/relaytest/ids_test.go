package relaytest_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

func TestHex(t *testing.T) {
	t.Parallel()
	long := relaytest.Hex("label", 150) // more than two SHA-256 blocks
	if !regexp.MustCompile(`^[0-9a-f]{150}$`).MatchString(long) {
		t.Fatalf("Hex(label, 150) = %q, want 150 lowercase hex digits", long)
	}
	for _, n := range []int{0, 1, 40, 64, 65, 128} {
		if got := relaytest.Hex("label", n); got != long[:n] {
			t.Errorf("Hex(label, %d) = %q, want the first %d digits of Hex(label, 150)", n, got, n)
		}
	}
	if a, b := relaytest.Hex("a", 64), relaytest.Hex("b", 64); a == b {
		t.Errorf("Hex(a, 64) = Hex(b, 64) = %s, want labels to differ", a)
	}
	if strings.Count(long, long[:32]) != 1 {
		t.Errorf("Hex repeats its first block: %s", long)
	}
}

func TestCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		label, want string
	}{
		{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"}, // SHA-1 of the empty string
		{"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			t.Parallel()
			if got := relaytest.Commit(tc.label); got != tc.want {
				t.Errorf("Commit(%q) = %q, want %q", tc.label, got, tc.want)
			}
		})
	}
}
