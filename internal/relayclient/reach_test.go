package relayclient_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRegisterBundleUnreachable: a relay URL whose host does not resolve, or whose port
// refuses connections, fails after one attempt, naming the URL, instead of retrying until
// the deadline.
func TestRegisterBundleUnreachable(t *testing.T) {
	t.Parallel()
	for name, base := range map[string]string{
		"connection refused": "http://" + closedAddr(t),
		"no such host":       "https://relay.invalid",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := relayclient.New(base, relayclient.Options{HMACSecret: []byte(secret), RetryBackoff: 50 * time.Millisecond,
				Logger: slog.New(slog.DiscardHandler), HTTPClient: &http.Client{Timeout: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = c.RegisterBundle(t.Context(), bundle)
			if !errors.Is(err, relayclient.ErrUnreachable) || !strings.Contains(err.Error(), "relay "+base+" is unreachable") {
				t.Fatalf("RegisterBundle = %v, want ErrUnreachable naming %s", err, base)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: the unreachable relay was retried", d)
			}
		})
	}
}

// TestRegisterBundleRestart: once the relay has answered, a refused connection is a relay
// restarting, and the registration keeps retrying until it is back.
func TestRegisterBundleRestart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var attempts atomic.Int32
	down := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if attempts.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, relayclient.ErrorBody{Code: "store_unavailable", Message: "retry later"})
			close(down)
			return
		}
		writeJSON(w, http.StatusCreated, relayclient.Registration{Bundle: &channel.Bundle{AppID: bundle.AppID, Version: bundle.Version}, Created: true})
	})
	first := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = first.Serve(ln) }()
	go func() {
		<-down
		// The relay goes away (connections refused), then comes back on the same address.
		// Shutdown, not Close: the 503 must reach the client before the connection goes, or
		// the client never saw the relay answer and rightly calls the refused address a typo.
		_ = first.Shutdown(context.Background())
		time.Sleep(300 * time.Millisecond)
		ln2, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		second := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
		t.Cleanup(func() { _ = second.Close() })
		_ = second.Serve(ln2)
	}()
	c, err := relayclient.New("http://"+addr, relayclient.Options{HMACSecret: []byte(secret), RetryBackoff: 20 * time.Millisecond,
		RetryMaxWait: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.RegisterBundle(t.Context(), bundle)
	if err != nil {
		t.Fatalf("RegisterBundle across a restart = %v", err)
	}
	if !got.Created || attempts.Load() != 2 {
		t.Errorf("registration %+v after %d answered attempts, want created after 2", got, attempts.Load())
	}
}
