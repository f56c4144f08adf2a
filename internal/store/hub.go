package store

import (
	"context"
	"sync"
)

// hub fans app ids out to in-process subscribers. Sends never block: a subscriber whose
// buffer is full misses that notification.
type hub struct {
	mu     sync.Mutex
	subs   map[chan string]struct{}
	closed bool
	done   chan struct{} // closed by close
}

func newHub() *hub {
	return &hub{subs: make(map[chan string]struct{}), done: make(chan struct{})}
}

// subscribe returns a channel closed when ctx ends or the hub closes.
func (h *hub) subscribe(ctx context.Context) <-chan string {
	c := make(chan string, SubscriberBuffer)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(c)
		return c
	}
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			h.remove(c)
		case <-h.done:
		}
	}()
	return c
}

func (h *hub) remove(c chan string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[c]; ok {
		delete(h.subs, c)
		close(c)
	}
}

func (h *hub) publish(app string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- app:
		default:
		}
	}
}

// close closes every subscriber channel; later subscriptions get a closed channel.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}
