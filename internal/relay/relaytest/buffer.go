package relaytest

import (
	"bytes"
	"sync"
)

// Buffer collects what a process writes while tests read it. It is safe for concurrent use;
// the zero value is an empty buffer that keeps everything.
type Buffer struct {
	// Limit, when positive, bounds the buffer for chatty processes: a write that finds more
	// than Limit bytes held first drops the oldest Limit/2, so the recent output stays.
	Limit int

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.b.Len() > b.Limit {
		b.b.Next(b.Limit / 2)
	}
	return b.b.Write(p)
}

// String returns what the buffer holds.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset empties the buffer.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// Tail returns the last n bytes of s, marked with a leading "…" when it cut anything, for
// failure messages that quote long output.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
