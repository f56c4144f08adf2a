package relaytest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

func TestWaitFor(t *testing.T) {
	t.Parallel()
	calls := 0
	relaytest.WaitFor(t, 5*time.Second, "the third call", func() bool {
		calls++
		return calls == 3
	})
	if calls != 3 {
		t.Errorf("WaitFor called cond %d times, want 3 (it stops once cond holds)", calls)
	}

	start := time.Now()
	msg := failure(t, func(tb testing.TB) {
		relaytest.WaitFor(tb, 200*time.Millisecond, "a condition that never holds", func() bool { return false })
	})
	if !strings.Contains(msg, "timed out after 200ms waiting for a condition that never holds") {
		t.Errorf("failure %q, want the timeout and what was awaited", msg)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("WaitFor gave up after %s, want soon after 200ms", d)
	}
}
