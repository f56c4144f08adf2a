package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestRegisterRetriesOIDCToken: when the runner's token endpoint fails for a moment, the
// registration asks for a token again (with backoff) instead of giving up, and the relay
// sees only requests that carry a token; when it never recovers, the error says so.
func TestRegisterRetriesOIDCToken(t *testing.T) {
	t.Parallel()
	var posts atomic.Int32
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		if r.Header.Get("Authorization") != "Bearer tok-3" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var b channel.Bundle
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, `{"error":"bad_request"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(relayclient.Registration{Bundle: &b, Created: true, Channel: "beta"})
	}))
	t.Cleanup(relay.Close)
	bundle := &channel.Bundle{AppID: "com.example.app", Version: "1.0.0"}
	newRegistrar := func(token func(context.Context) (string, error)) *relayclient.Client {
		c, err := relayclient.New(relay.URL, relayclient.Options{IDToken: token, HTTPClient: relay.Client(),
			Logger: slog.New(slog.DiscardHandler), RetryBackoff: 10 * time.Millisecond, RetryMaxWait: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("recovers", func(t *testing.T) {
		var calls atomic.Int32
		r := newRegistrar(func(context.Context) (string, error) {
			n := calls.Add(1)
			if n < 3 {
				return "", errors.New("token endpoint answered 503")
			}
			return fmt.Sprintf("tok-%d", n), nil
		})
		reg, err := r.RegisterBundle(t.Context(), bundle)
		if err != nil || reg.Channel != "beta" || reg.Bundle.Version != "1.0.0" {
			t.Fatalf("register = %+v, %v; want beta 1.0.0", reg, err)
		}
		if calls.Load() != 3 || posts.Load() != 1 {
			t.Errorf("%d token requests and %d posts; want 3 and 1 (no post without a token)", calls.Load(), posts.Load())
		}
	})

	t.Run("never recovers", func(t *testing.T) {
		before := posts.Load()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		r := newRegistrar(func(context.Context) (string, error) { return "", errors.New("token endpoint answered 503") })
		_, err := r.RegisterBundle(ctx, bundle)
		if err == nil || !strings.Contains(err.Error(), "get OIDC token for the relay") || !strings.Contains(err.Error(), "attempts") {
			t.Errorf("register with no token = %v; want an error naming the token and the attempts", err)
		}
		if posts.Load() != before {
			t.Errorf("the relay got %d requests without a token", posts.Load()-before)
		}
	})
}

// TestRegisterNoRuleFails: a build whose ref no rule of the relay matches would ship
// nowhere, so the run fails at the relay's preflight, before any upload, with an annotation
// listing the relay's rules, unless register-only says that is intended (a tag push promotes
// it later).
func TestRegisterNoRuleFails(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)
	relay := startRelay(t, relayBin, "")
	for i, tc := range []struct {
		registerOnly string
		wantCode     int
	}{{"", 1}, {"true", 0}} {
		r := newRunner(t, "refs/heads/feature", commitA, "")
		webBuild(t, filepath.Join(r.dir, "dist"), "norule"+tc.registerOnly)
		r.inputs = map[string]string{"app-id": testApp, "version": fmt.Sprintf("3.0.%d", i),
			"destination": "file://" + filepath.ToSlash(filepath.Join(r.dir, "b")), "public-base-url": "https://d.test",
			"signing": "none", "relay-url": relay.URL, "relay-secret": hmacSecret, "register-only": tc.registerOnly}
		res := r.exec(t, actionBin)
		if res.code != tc.wantCode {
			t.Errorf("register-only=%q: exit %d, want %d", tc.registerOnly, res.code, tc.wantCode)
		}
		if tc.wantCode == 1 {
			// The relay's preflight refuses the run before anything is uploaded.
			for _, want := range []string{"::error", "no channel would serve it", `no rule of the app matches the ref "refs/heads/feature"`,
				"its rules: refs/heads/main → beta, refs/tags/v* → production", "register-only: true", "Nothing was uploaded"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("annotation lacks %q:\n%s", want, res.stdout)
				}
			}
			if entries, err := os.ReadDir(filepath.Join(r.dir, "b")); err == nil && len(entries) > 0 {
				t.Errorf("the refused run uploaded %d files", len(entries))
			}
		}
	}
}
