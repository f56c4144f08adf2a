package relaytest

import (
	"testing"
	"time"
)

// WaitFor calls cond every 50ms until it returns true, and fails the test, naming what it
// waited for, when timeout passes first. It blocks, and must run on the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
