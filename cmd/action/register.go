package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Registration authentication headers (HMAC), as the relay reads them.
const (
	headerSignature = "X-Ferry-Signature-256"
	headerTimestamp = "X-Ferry-Timestamp"
)

// maxRelayAnswer bounds what is read of the relay's answer.
const maxRelayAnswer = 1 << 20

// errConflict means the relay already has this version with another checksum.
var errConflict = errors.New("version conflict")

// registration is the relay's answer to POST /api/v1/bundles.
type registration struct {
	Bundle   *channel.Bundle `json:"bundle"`
	Created  bool            `json:"created"`
	Channel  string          `json:"channel"`
	Promoted bool            `json:"promoted"`
	Reason   string          `json:"reason"`
}

// registrar registers bundles with the relay.
type registrar struct {
	url     string // relay base URL
	secret  []byte // HMAC; nil: OIDC
	token   func(ctx context.Context) (string, error)
	client  *http.Client
	log     *slog.Logger
	backoff time.Duration // first retry delay
	maxWait time.Duration // cap on one delay
}

// register posts b until the relay acknowledges it (201 or 200), refuses it for good (4xx),
// or ctx ends. 5xx, 429 and transport errors are retried with exponential backoff, honouring
// Retry-After.
func (r *registrar) register(ctx context.Context, b *channel.Bundle) (*registration, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	delay := r.backoff
	for attempt := 1; ; attempt++ {
		reg, retryAfter, err := r.post(ctx, body)
		if err == nil {
			return reg, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return nil, err
		}
		wait := delay
		if retryAfter > 0 {
			wait = retryAfter
		}
		wait = min(wait, r.maxWait)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("relay did not acknowledge the registration before the deadline (%d attempts): %w", attempt, err)
		}
		r.log.WarnContext(ctx, "registration not acknowledged, retrying", "attempt", attempt, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("relay did not acknowledge the registration (%d attempts): %w", attempt, err)
		case <-t.C:
		}
		delay = min(delay*2, r.maxWait)
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// post makes one attempt. It returns a *permanentError for answers a retry cannot change.
func (r *registrar) post(ctx context.Context, body []byte) (*registration, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/api/v1/bundles", bytes.NewReader(body))
	if err != nil {
		return nil, 0, &permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-action")
	if r.secret != nil {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha256.New, r.secret)
		m.Write([]byte(ts + "."))
		m.Write(body)
		req.Header.Set(headerTimestamp, ts)
		req.Header.Set(headerSignature, "sha256="+hex.EncodeToString(m.Sum(nil)))
	} else {
		tok, err := r.token(ctx)
		if err != nil {
			// The runner's token endpoint can fail for a moment; inputs were validated up
			// front (ACTIONS_ID_TOKEN_REQUEST_URL is set), so retry within the deadline.
			return nil, 0, fmt.Errorf("get OIDC token for the relay: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRelayAnswer))
	if err != nil {
		return nil, 0, fmt.Errorf("read relay answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		var reg registration
		if err := json.Unmarshal(raw, &reg); err != nil {
			return nil, 0, &permanentError{fmt.Errorf("relay answered %d with an unreadable body: %w", resp.StatusCode, err)}
		}
		return &reg, 0, nil
	case resp.StatusCode == http.StatusConflict:
		return nil, 0, &permanentError{fmt.Errorf("%w: %s", errConflict, relayMessage(raw))}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("relay answered %d: %s", resp.StatusCode, relayMessage(raw))
	default:
		return nil, 0, &permanentError{fmt.Errorf("relay refused the registration with %d: %s", resp.StatusCode, relayMessage(raw))}
	}
}

func retryAfter(h string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}

// relayMessage extracts {error, message} from a relay error body.
func relayMessage(raw []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && (e.Error != "" || e.Message != "") {
		return strings.TrimSpace(e.Error + ": " + e.Message)
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
