package relaytest_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// TestBuffer: concurrent writers and readers are safe (under -race), and a limited buffer
// drops its oldest half once it is past the limit.
func TestBuffer(t *testing.T) {
	t.Parallel()
	var b relaytest.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 800 {
		t.Errorf("unlimited buffer holds %d lines, want 800", got)
	}

	l := relaytest.Buffer{Limit: 10}
	_, _ = l.Write([]byte("0123456789")) // 10: not past the limit
	_, _ = l.Write([]byte("a"))          // finds 10 held: keeps all
	_, _ = l.Write([]byte("b"))          // finds 11 held: drops the oldest 5
	if got, want := l.String(), "56789ab"; got != want {
		t.Errorf("limited buffer = %q, want %q", got, want)
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"cut", "abcdefgh", 3, "…fgh"},
		{"empty", "", 3, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := relaytest.Tail(tc.s, tc.n); got != tc.want {
				t.Errorf("Tail(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
}
