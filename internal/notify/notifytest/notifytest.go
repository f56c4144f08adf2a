// Package notifytest is a notification receiver for tests: a loopback HTTP server that
// checks every delivery's signature as docs/notifications.md tells receivers to, and keeps
// the events.
package notifytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/notify"
)

// Receiver is a loopback receiver. Its URL is a valid notification url (http to a loopback
// host). It is closed when the test ends.
type Receiver struct {
	URL    string
	secret []byte
	hang   chan struct{}
	mu     sync.Mutex
	evs    []channel.Event
	bad    []error
}

// New starts a receiver verifying deliveries signed with secret; with hang it accepts
// connections but never answers, until the test ends.
func New(t testing.TB, secret string, hang bool) *Receiver {
	t.Helper()
	r := &Receiver{secret: []byte(secret)}
	if hang {
		r.hang = make(chan struct{})
	}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	if hang {
		t.Cleanup(func() { close(r.hang) }) // runs before the server closes
	}
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.hang != nil {
		<-r.hang
		return
	}
	body, _ := io.ReadAll(req.Body)
	var ev channel.Event
	err := notify.Verify(r.secret, req.Header, body, time.Now())
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad = append(r.bad, err)
		return
	}
	r.evs = append(r.evs, ev)
}

// Events returns the verified events received so far, in arrival order, and the errors of
// the deliveries that failed verification.
func (r *Receiver) Events() ([]channel.Event, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]channel.Event(nil), r.evs...), append([]error(nil), r.bad...)
}
