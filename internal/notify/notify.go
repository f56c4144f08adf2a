package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// Defaults of [Options].
const (
	DefaultMaxAttempts    = 6
	DefaultBaseDelay      = time.Second
	DefaultMaxDelay       = time.Minute
	DefaultAttemptTimeout = 10 * time.Second
	DefaultQueueSize      = 256
	DefaultLogSize        = 200
	// MaxRetryAfter caps the wait a receiver's Retry-After asks for.
	MaxRetryAfter = 5 * time.Minute
)

// HTTP headers of a delivery, besides relayclient.HeaderSignature and
// relayclient.HeaderTimestamp.
const (
	// HeaderEvent carries the event's kind.
	HeaderEvent = "X-Ferry-Event"
	// HeaderDelivery carries the event's id, the same on every attempt and receiver.
	HeaderDelivery = "X-Ferry-Delivery"
)

// Options configures a [Notifier]. Config is required; zero values take the defaults.
type Options struct {
	// Config lists the apps and their notification receivers.
	Config *channel.Config
	// Getenv reads the variables the receivers' secret_env name; nil reads none, and New
	// then refuses a receiver that names one.
	Getenv func(string) string
	// Client sends the deliveries; nil means a client that follows no redirect. Each
	// attempt is bounded by AttemptTimeout whatever the client's own timeout.
	Client *http.Client
	// Logger receives a line per failed attempt and dropped delivery; nil discards.
	Logger *slog.Logger
	// Registerer, when set, receives ferry_notifications_total.
	Registerer prometheus.Registerer
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxAttempts bounds the attempts of one delivery (DefaultMaxAttempts).
	MaxAttempts int
	// BaseDelay is the wait before the first retry, doubled for each next one up to
	// MaxDelay; each wait is drawn uniformly from its upper half (jitter).
	BaseDelay, MaxDelay time.Duration
	// AttemptTimeout bounds one POST, answer included (DefaultAttemptTimeout).
	AttemptTimeout time.Duration
	// QueueSize bounds the deliveries waiting per receiver (DefaultQueueSize); a delivery
	// beyond it is dropped.
	QueueSize int
	// LogSize bounds the deliveries kept per app for [Notifier.Deliveries] (DefaultLogSize).
	LogSize int
}

// Notifier delivers events to the receivers configured for their app. It is safe for
// concurrent use. Create it with [New], stop it with [Notifier.Close].
type Notifier struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	client  *http.Client
	total   *prometheus.CounterVec
	byApp   map[string][]*receiver
	ctx     context.Context // cancelled when Close gives up draining
	cancel  context.CancelFunc
	senders sync.WaitGroup

	mu     sync.RWMutex // guards closed and sends on the receivers' queues
	closed bool

	logMu sync.Mutex
	logs  map[string]*ring
}

// receiver is one configured receiver with its queue and secret.
type receiver struct {
	app    string
	cfg    channel.Notification
	secret []byte
	shown  string // URL without path and query
	queue  chan *delivery
}

// delivery is one event for one receiver; rec is its entry in the app's log.
type delivery struct {
	ev   channel.Event
	body []byte
	rec  *relayclient.NotificationDelivery
}

// New validates the receivers' secrets (each secret_env must be set and non-empty) and
// starts one sender per receiver.
func New(opts Options) (*Notifier, error) {
	if opts.Config == nil {
		return nil, errors.New("notify: config is required")
	}
	setDefaults(&opts)
	n := &Notifier{opts: opts, log: opts.Logger, now: opts.Now, client: opts.Client,
		byApp: map[string][]*receiver{}, logs: map[string]*ring{}}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if n.client == nil {
		n.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	var errs []error
	for i := range opts.Config.Apps {
		app := &opts.Config.Apps[i]
		for k, nc := range app.Notifications {
			r := &receiver{app: app.ID, cfg: nc, shown: origin(nc.URL), queue: make(chan *delivery, opts.QueueSize)}
			if r.cfg.Format == "" {
				r.cfg.Format = channel.FormatGeneric
			}
			if nc.SecretEnv != "" {
				var v string
				if opts.Getenv != nil {
					v = opts.Getenv(nc.SecretEnv)
				}
				if v == "" {
					errs = append(errs, fmt.Errorf("notify: app %q notifications[%d]: secret_env %s is not set in the environment", app.ID, k, nc.SecretEnv))
				}
				r.secret = []byte(v)
			}
			n.byApp[app.ID] = append(n.byApp[app.ID], r)
		}
	}
	n.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_notifications_total",
		Help: "Outgoing notification deliveries by app and final result: delivered (2xx), failed (refused, or every attempt failed) and dropped (queue full or relay stopping).",
	}, []string{"app", "result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(n.total); err != nil {
			errs = append(errs, fmt.Errorf("notify: register metric: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, rs := range n.byApp {
		for _, r := range rs {
			n.senders.Add(1)
			go n.send(r)
		}
	}
	return n, nil
}

func setDefaults(o *Options) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = DefaultBaseDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.LogSize <= 0 {
		o.LogSize = DefaultLogSize
	}
}

// Notify queues ev for every receiver of ev.App that wants its kind and returns at once.
// It fills an empty ID with a new random one and a zero Time with now. A delivery that
// finds its receiver's queue full, or the Notifier closed, is logged as dropped.
func (n *Notifier) Notify(ev channel.Event) {
	rs := n.byApp[ev.App]
	if len(rs) == 0 {
		return
	}
	if ev.ID == "" {
		ev.ID = newID()
	}
	if ev.Time.IsZero() {
		ev.Time = n.now().UTC()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, r := range rs {
		if !r.cfg.Wants(ev.Kind) {
			continue
		}
		d := &delivery{ev: ev, rec: &relayclient.NotificationDelivery{Event: ev.ID, Kind: ev.Kind, Channel: ev.Channel,
			Version: ev.Version, Receiver: r.shown, Format: r.cfg.Format, Status: relayclient.DeliveryPending,
			Queued: n.now().UTC(), Attempts: []relayclient.NotificationAttempt{}}}
		body, err := encode(r.cfg.Format, ev)
		n.record(ev.App, d.rec)
		switch {
		case err != nil:
			n.finish(r, d, relayclient.DeliveryFailed, "cannot encode the event", err)
			continue
		case n.closed:
			n.finish(r, d, relayclient.DeliveryDropped, "the relay is stopping", nil)
			continue
		}
		d.body = body
		select {
		case r.queue <- d:
		default:
			n.finish(r, d, relayclient.DeliveryDropped, "the receiver's queue is full", nil)
		}
	}
}

// Close stops accepting events and delivers what is queued until ctx ends; then it
// abandons the attempts in progress and marks every undelivered delivery dropped. It
// returns ctx's error when it had to abandon deliveries.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, rs := range n.byApp {
			for _, r := range rs {
				close(r.queue)
			}
		}
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.senders.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return fmt.Errorf("notify: undelivered notifications dropped: %w", ctx.Err())
	}
}

// send is a receiver's sender: it delivers the receiver's queue in order.
func (n *Notifier) send(r *receiver) {
	defer n.senders.Done()
	for d := range r.queue {
		if n.ctx.Err() != nil {
			n.finish(r, d, relayclient.DeliveryDropped, "the relay stopped before sending it", nil)
			continue
		}
		n.deliver(r, d)
	}
}

// deliver makes up to MaxAttempts attempts, waiting between them.
func (n *Notifier) deliver(r *receiver, d *delivery) {
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := n.attempt(r, d)
		switch {
		case err == nil && status/100 == 2:
			n.finish(r, d, relayclient.DeliveryDelivered, "", nil)
			return
		case !retryable(status, err):
			n.finish(r, d, relayclient.DeliveryFailed, fmt.Sprintf("refused with HTTP %d (not retried)", status), nil)
			return
		case attempt == n.opts.MaxAttempts:
			n.finish(r, d, relayclient.DeliveryFailed, fmt.Sprintf("gave up after %d attempts", attempt), err)
			return
		}
		wait := n.backoff(attempt)
		if retryAfter > 0 {
			wait = min(retryAfter, MaxRetryAfter)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			n.finish(r, d, relayclient.DeliveryDropped, "the relay stopped while it waited for a retry", nil)
			return
		}
	}
}

// retryable reports whether an attempt that got status (0 without an answer) or err is
// worth repeating: network errors, 5xx and 429.
func retryable(status int, err error) bool {
	return err != nil || status >= 500 || status == http.StatusTooManyRequests
}

// backoff is the wait after failed attempt number attempt (from 1): BaseDelay doubled per
// attempt up to MaxDelay, drawn from its upper half.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.opts.BaseDelay << min(attempt-1, 30)
	if d <= 0 || d > n.opts.MaxDelay {
		d = n.opts.MaxDelay
	}
	return d/2 + mrand.N(d/2+1)
}

// attempt POSTs d once, signed now, and logs the attempt. It returns the status (0 without
// an answer), the wait a 429 or 503 asked for in Retry-After, and the transport error.
func (n *Notifier) attempt(r *receiver, d *delivery) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.AttemptTimeout)
	defer cancel()
	start := n.now()
	status, retryAfter, err := n.post(ctx, r, d, start)
	a := relayclient.NotificationAttempt{Time: start.UTC(), StatusCode: status, DurationMS: n.now().Sub(start).Milliseconds()}
	if err != nil {
		a.Error = err.Error()
	}
	n.logMu.Lock()
	d.rec.Attempts = append(d.rec.Attempts, a)
	n.logMu.Unlock()
	if err != nil || status/100 != 2 {
		n.log.Warn("notification attempt failed", "app", r.app, "receiver", r.shown, "event", d.ev.ID, "kind", d.ev.Kind,
			"attempt", len(d.rec.Attempts), "status", status, "error", err)
	}
	return status, retryAfter, err
}

func (n *Notifier) post(ctx context.Context, r *receiver, d *delivery, now time.Time) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(d.body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-relay-notifications")
	req.Header.Set(HeaderEvent, string(d.ev.Kind))
	req.Header.Set(HeaderDelivery, d.ev.ID)
	if r.secret != nil {
		relayclient.SetSignature(req.Header, r.secret, now, d.body)
	} else {
		req.Header.Set(relayclient.HeaderTimestamp, relayclient.Stamp(now))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may hold the receiver's secret
		}
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, retryAfter(resp, n.now()), nil
}

// retryAfter reads Retry-After (seconds or an HTTP date) of a 429 or 503; 0 when absent.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// finish sets d's final status, counts it and logs why it was not delivered.
func (n *Notifier) finish(r *receiver, d *delivery, status, why string, err error) {
	n.logMu.Lock()
	d.rec.Status = status
	n.logMu.Unlock()
	n.total.WithLabelValues(r.app, status).Inc()
	if status != relayclient.DeliveryDelivered {
		n.log.Error("notification not delivered", "app", r.app, "receiver", r.shown, "event", d.ev.ID, "kind", d.ev.Kind,
			"status", status, "reason", why, "error", err)
	}
}

// origin is u without user info, path and query (the path of a Slack webhook is its
// secret), for logs and the delivery log.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "<invalid URL>"
	}
	return p.Scheme + "://" + p.Host
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
