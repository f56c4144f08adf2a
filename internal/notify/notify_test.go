package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const (
	testApp    = "com.example.app"
	testSecret = "receiver-secret"
)

// received is one delivery as a receiver saw it.
type received struct {
	header http.Header
	body   []byte
	err    error // Verify's verdict
}

// receiver is a real HTTP server on loopback that verifies every delivery with the
// documented procedure and answers with the status its answer function picks.
type testReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	calls  int
	answer func(call int, w http.ResponseWriter) // nil: 204
	notify chan struct{}
}

func newReceiver(t *testing.T, answer func(call int, w http.ResponseWriter)) *testReceiver {
	t.Helper()
	r := &testReceiver{answer: answer, notify: make(chan struct{}, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.calls++
	call := r.calls
	r.mu.Unlock()
	if r.answer != nil {
		r.answer(call, w)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	r.mu.Lock()
	r.got = append(r.got, received{header: req.Header.Clone(), body: body, err: Verify([]byte(testSecret), req.Header, body, time.Now())})
	r.mu.Unlock()
	r.notify <- struct{}{}
}

func (r *testReceiver) deliveries() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// waitCalls waits until the receiver has answered n requests.
func (r *testReceiver) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		c := len(r.got)
		r.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", c, n)
		}
	}
}

// testConfig parses a config whose app has the given notifications YAML (a list).
func testConfig(t *testing.T, notifications string) *channel.Config {
	t.Helper()
	y := `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels: {production: {}}
    notifications:
` + notifications
	cfg, err := channel.ParseConfig([]byte(y))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return cfg
}

func getenv(name string) string {
	if name == "HOOK_SECRET" {
		return testSecret
	}
	return ""
}

// fast are options with short waits, so retries happen within a test.
func fast(cfg *channel.Config, reg prometheus.Registerer) Options {
	return Options{Config: cfg, Getenv: getenv, Registerer: reg, BaseDelay: 20 * time.Millisecond, MaxDelay: 80 * time.Millisecond,
		AttemptTimeout: 2 * time.Second}
}

func newNotifier(t *testing.T, o Options) *Notifier {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func percentOf(p int) *int { return &p }

// waitStatus waits until every delivery in app's log has left pending.
func waitSettled(t *testing.T, n *Notifier, app string, want int) []relayclient.NotificationDelivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds := n.Deliveries(app, 0)
		settled := len(ds) == want
		for _, d := range ds {
			settled = settled && d.Status != relayclient.DeliveryPending
		}
		if settled {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries did not settle: %+v", ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEveryEventOnceSignedInOrder(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	n := newNotifier(t, fast(testConfig(t, "      - {url: "+rcv.srv.URL+"/hook, secret_env: HOOK_SECRET}\n"), reg))

	var sent []channel.Event
	for i, k := range channel.EventKinds {
		ev := channel.Event{Kind: k, App: testApp, Channel: "production", Version: fmt.Sprintf("1.%d.0", i), From: "1.0.0",
			Actor: &channel.Actor{Kind: "person", Name: "Ada"}, Cause: "admin"}
		if k != channel.EventPromoted {
			ev.Percent = percentOf(10 * i)
		}
		n.Notify(ev)
		sent = append(sent, ev)
	}
	// An event of another app reaches none of this app's receivers.
	n.Notify(channel.Event{Kind: channel.EventPromoted, App: "com.example.other", Channel: "production", Version: "9.9.9"})
	rcv.waitCalls(t, len(sent))
	ds := waitSettled(t, n, testApp, len(sent))

	got := rcv.deliveries()
	if len(got) != len(sent) {
		t.Fatalf("receiver got %d deliveries, want %d", len(got), len(sent))
	}
	ids := map[string]bool{}
	for i, r := range got {
		if r.err != nil {
			t.Errorf("delivery %d: Verify: %v", i, r.err)
		}
		var ev channel.Event
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("delivery %d: body %s: %v", i, r.body, err)
		}
		if ev.Kind != sent[i].Kind || ev.Version != sent[i].Version || ev.From != "1.0.0" || ev.Actor == nil || ev.Actor.Name != "Ada" {
			t.Errorf("delivery %d = %+v, want kind %s version %s in emission order", i, ev, sent[i].Kind, sent[i].Version)
		}
		if (ev.Percent == nil) != (sent[i].Percent == nil) || ev.Percent != nil && *ev.Percent != *sent[i].Percent {
			t.Errorf("delivery %d: percent %v, want %v", i, ev.Percent, sent[i].Percent)
		}
		if ev.ID == "" || ids[ev.ID] || r.header.Get(HeaderDelivery) != ev.ID {
			t.Errorf("delivery %d: id %q (header %q) missing or repeated", i, ev.ID, r.header.Get(HeaderDelivery))
		}
		ids[ev.ID] = true
		if r.header.Get(HeaderEvent) != string(ev.Kind) || r.header.Get("Content-Type") != "application/json" || ev.Time.IsZero() {
			t.Errorf("delivery %d: headers %v, time %v", i, r.header, ev.Time)
		}
	}
	for _, d := range ds {
		if d.Status != relayclient.DeliveryDelivered || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusNoContent {
			t.Errorf("log entry = %+v, want delivered in one attempt", d)
		}
		if strings.Contains(d.Receiver, "/hook") {
			t.Errorf("log shows the receiver's path: %q", d.Receiver)
		}
	}
	if v := testutil.ToFloat64(n.total.WithLabelValues(testApp, "delivered")); v != float64(len(sent)) {
		t.Errorf("ferry_notifications_total{result=delivered} = %v, want %d", v, len(sent))
	}
	if c, err := testutil.GatherAndCount(reg, "ferry_notifications_total"); err != nil || c != 1 {
		t.Errorf("registered series = %d, %v", c, err)
	}
}

// A receiver that is down (connection refused) and then comes up on the same address gets
// the event by a retry; the same with 503 and 429 with Retry-After.
func TestRetriesUntilReceiverUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: nothing listens there
	o := fast(testConfig(t, "      - {url: http://"+addr+"/hook, secret_env: HOOK_SECRET}\n"), nil)
	o.BaseDelay, o.MaxDelay, o.MaxAttempts = 100*time.Millisecond, 200*time.Millisecond, 20
	n := newNotifier(t, o)
	n.Notify(channel.Event{Kind: channel.EventPromoted, App: testApp, Channel: "production", Version: "1.2.0"})

	// Let at least two attempts fail before the receiver comes up.
	deadline := time.Now().Add(10 * time.Second)
	for ds := n.Deliveries(testApp, 1); len(ds[0].Attempts) < 2; ds = n.Deliveries(testApp, 1) {
		if time.Now().After(deadline) {
			t.Fatalf("no retries: %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rcv := &testReceiver{notify: make(chan struct{}, 10)}
	up, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(rcv.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(up) }()
	t.Cleanup(func() { srv.Close() })

	rcv.waitCalls(t, 1)
	d := waitSettled(t, n, testApp, 1)[0]
	if d.Status != relayclient.DeliveryDelivered || len(d.Attempts) < 3 {
		t.Fatalf("delivery = %+v, want delivered after failed attempts", d)
	}
	for _, a := range d.Attempts[:len(d.Attempts)-1] {
		if a.StatusCode != 0 || a.Error == "" {
			t.Errorf("failed attempt = %+v, want a network error", a)
		}
	}
	if got := rcv.deliveries(); len(got) != 1 || got[0].err != nil {
		t.Errorf("receiver got %d deliveries (verify: %v), want 1 valid", len(got), got[0].err)
	}
}

func TestRetryStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answer   func(call int, w http.ResponseWriter)
		status   string
		attempts int
		minWait  time.Duration
	}{
		{"503 then 200", func(call int, w http.ResponseWriter) {
			if call < 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}, relayclient.DeliveryDelivered, 3, 0},
		{"429 Retry-After 1 then 200", func(call int, w http.ResponseWriter) {
			if call == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			}
		}, relayclient.DeliveryDelivered, 2, time.Second},
		{"400 is not retried", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadRequest) },
			relayclient.DeliveryFailed, 1, 0},
		{"410 is not retried", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) },
			relayclient.DeliveryFailed, 1, 0},
		{"500 forever gives up", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) },
			relayclient.DeliveryFailed, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, tc.answer)
			o := fast(testConfig(t, "      - {url: "+rcv.srv.URL+", secret_env: HOOK_SECRET}\n"), nil)
			o.MaxAttempts = 4
			n := newNotifier(t, o)
			n.Notify(channel.Event{Kind: channel.EventRolledBack, App: testApp, Channel: "production", Version: "1.0.0", From: "1.1.0"})
			d := waitSettled(t, n, testApp, 1)[0]
			if d.Status != tc.status || len(d.Attempts) != tc.attempts {
				t.Fatalf("delivery = %+v, want %s after %d attempts", d, tc.status, tc.attempts)
			}
			if gap := d.Attempts[len(d.Attempts)-1].Time.Sub(d.Attempts[0].Time); gap < tc.minWait {
				t.Errorf("retried after %v, want at least %v (Retry-After)", gap, tc.minWait)
			}
			got := rcv.deliveries()
			if len(got) != tc.attempts {
				t.Fatalf("receiver got %d requests, want %d", len(got), tc.attempts)
			}
			for _, r := range got {
				if r.err != nil || r.header.Get(HeaderDelivery) != d.Event {
					t.Errorf("attempt: verify %v, delivery id %q, want %q on every attempt", r.err, r.header.Get(HeaderDelivery), d.Event)
				}
			}
		})
	}
}

// A receiver that never answers delays nobody: Notify returns at once, another receiver of
// the same app gets its events meanwhile, a full queue drops what does not fit, and Close
// gives up at its deadline.
func TestHangingReceiverBlocksNothing(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := newReceiver(t, func(int, http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) }) // before the server closes (cleanups run last first)
	ok := newReceiver(t, nil)
	o := fast(testConfig(t, "      - {url: "+hang.srv.URL+"}\n      - {url: "+ok.srv.URL+"}\n"), nil)
	o.AttemptTimeout, o.QueueSize = time.Minute, 4
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	const events = 10
	for i := range events {
		start := time.Now()
		n.Notify(channel.Event{Kind: channel.EventPromoted, App: testApp, Channel: "production", Version: fmt.Sprintf("1.0.%d", i)})
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("Notify took %v with a hanging receiver", d)
		}
		ok.waitCalls(t, i+1) // the healthy receiver is not held up
	}
	if got := n.Deliveries(testApp, 0); countStatus(got, relayclient.DeliveryDropped) != events-1-4 {
		t.Errorf("dropped before Close = %d, want %d (1 in flight, 4 queued)", countStatus(got, relayclient.DeliveryDropped), events-1-4)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = n.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v past its 200ms deadline", d)
	}
	byStatus := map[string]int{}
	for _, d := range n.Deliveries(testApp, 0) {
		if d.Receiver == strings.TrimSuffix(hang.srv.URL, "/") {
			byStatus[d.Status]++
		}
	}
	// One in flight, 4 queued, 5 dropped at once for the full queue; at Close all 10 are
	// dropped: none was delivered, none left pending.
	if byStatus[relayclient.DeliveryDropped] != events {
		t.Errorf("hanging receiver's deliveries by status = %v, want all %d dropped", byStatus, events)
	}
	if v := testutil.ToFloat64(n.total.WithLabelValues(testApp, "dropped")); v != events {
		t.Errorf("dropped counter = %v, want %d", v, events)
	}
	n.Notify(channel.Event{Kind: channel.EventPromoted, App: testApp, Channel: "production", Version: "2.0.0"})
	if d := n.Deliveries(testApp, 1)[0]; d.Version != "2.0.0" || d.Status != relayclient.DeliveryDropped {
		t.Errorf("after Close: %+v, want dropped", d)
	}
}

func countStatus(ds []relayclient.NotificationDelivery, status string) int {
	c := 0
	for _, d := range ds {
		if d.Status == status {
			c++
		}
	}
	return c
}

func TestSlackFormat(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	n := newNotifier(t, fast(testConfig(t, "      - {url: "+rcv.srv.URL+", format: slack, events: [rollout_paused]}\n"), nil))
	n.Notify(channel.Event{Kind: channel.EventPromoted, App: testApp, Channel: "production", Version: "1.0.0"}) // filtered out
	n.Notify(channel.Event{Kind: channel.EventRolloutPaused, App: testApp, Channel: "production", Version: "1.3.0", From: "1.2.0",
		Percent: percentOf(10), Actor: &channel.Actor{Kind: "controller", Name: "<!channel>"}, Reason: "health gate failed",
		Figures: map[string]float64{"failure_ratio": 0.31, "devices": 412}})
	rcv.waitCalls(t, 1)
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("got %d deliveries, want the paused one only", len(got))
	}
	if !errors.Is(got[0].err, ErrUnsigned) {
		t.Errorf("Verify of an unsigned delivery = %v, want ErrUnsigned", got[0].err)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Elements []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	dec := json.NewDecoder(strings.NewReader(string(got[0].body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		t.Fatalf("slack body %s: %v", got[0].body, err)
	}
	want := "com.example.app/production: rollout of 1.3.0 paused at 10% (was 1.2.0): health gate failed [devices=412, failure_ratio=0.31]"
	if msg.Text != want {
		t.Errorf("text = %q, want %q", msg.Text, want)
	}
	if len(msg.Blocks) != 2 || msg.Blocks[0].Type != "section" || msg.Blocks[0].Text == nil || msg.Blocks[0].Text.Type != "mrkdwn" ||
		msg.Blocks[0].Text.Text != want || msg.Blocks[1].Type != "context" || len(msg.Blocks[1].Elements) != 1 {
		t.Fatalf("blocks = %+v", msg.Blocks)
	}
	if ctx := msg.Blocks[1].Elements[0].Text; !strings.Contains(ctx, "by controller &lt;!channel&gt;") || strings.Contains(ctx, "<!channel>") {
		t.Errorf("context %q: the actor's name must be escaped, not a mention", ctx)
	}
}

func TestNewRefusesUnsetSecret(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "      - {url: https://hooks.example.com/x, secret_env: MISSING_SECRET}\n")
	_, err := New(Options{Config: cfg, Getenv: getenv})
	if err == nil || !strings.Contains(err.Error(), "secret_env MISSING_SECRET is not set") {
		t.Errorf("New = %v, want a refusal naming MISSING_SECRET", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without a config succeeded")
	}
}

func TestDeliveryLogIsBounded(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	o := fast(testConfig(t, "      - {url: "+rcv.srv.URL+"}\n"), nil)
	o.LogSize = 5
	n := newNotifier(t, o)
	for i := range 12 {
		n.Notify(channel.Event{Kind: channel.EventPromoted, App: testApp, Channel: "production", Version: fmt.Sprintf("1.0.%d", i)})
	}
	rcv.waitCalls(t, 12)
	ds := waitSettled(t, n, testApp, 5)
	for i, d := range ds {
		if want := fmt.Sprintf("1.0.%d", 11-i); d.Version != want {
			t.Errorf("log[%d] = %s, want %s (newest first)", i, d.Version, want)
		}
	}
	if got := n.Deliveries(testApp, 2); len(got) != 2 || got[0].Version != "1.0.11" {
		t.Errorf("limit 2 = %+v", got)
	}
}
