package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestFlowsOnRedis runs the registration and webhook flows on the Redis store against a real
// redis-server (each flow in its own logical database).
func TestFlowsOnRedis(t *testing.T) {
	t.Parallel()
	const databases = 64
	srv := testpeers.Redis(t, "--databases", fmt.Sprint(databases))
	var db atomic.Int32
	mk := func(t *testing.T) fullStore {
		t.Helper()
		n := db.Add(1)
		if n >= databases {
			t.Fatal("more flows than Redis databases")
		}
		st, err := store.OpenRedis(t.Context(), fmt.Sprintf("redis://%s/%d", srv.Addr, n), store.RedisOptions{})
		if err != nil {
			t.Fatalf("OpenRedis: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	flows := []struct {
		name string
		fn   func(t *testing.T, mk storeMaker)
	}{
		{"TagCreatedPromotes", testWebhookTagCreatedPromotes},
		{"AnnotatedTagUsesHeadCommit", testWebhookAnnotatedTagUsesHeadCommit},
		{"MovedTag", testWebhookMovedTag},
		{"PendingAppliedOnRegistration", testWebhookPendingAppliedOnRegistration},
		{"MovedTagCancelsOlderPending", testWebhookMovedTagCancelsOlderPending},
		{"DeletedTag", testWebhookDeletedTag},
		{"ReplayedDelivery", testWebhookReplayedDelivery},
		{"ReplayUnderNewDeliveryID", testWebhookReplayUnderNewDeliveryID},
		{"FailedDeliveryCanBeRedelivered", testWebhookFailedDeliveryCanBeRedelivered},
		{"ConcurrentCopies", testWebhookConcurrentCopies},
		{"CrashRedeliveredAfterLease", testWebhookCrashRedeliveredAfterLease},
		{"RegisterReplyLost", testRegisterReplyLost},
		{"IdempotentAndConflict", testRegisterIdempotentAndConflict},
		{"LateRetryDoesNotMoveChannelBack", testRegisterLateRetryDoesNotMoveChannelBack},
		{"RetryCompletesInterruptedPromotion", testRegisterRetryCompletesInterruptedPromotion},
		{"OIDCTokenClaimsWinOverBody", testRegisterOIDCTokenClaimsWinOverBody},
		{"EncryptedBundle", testRegisterEncryptedBundle},
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			f.fn(t, mk)
		})
	}
}

// TestRevokeReachesOtherInstanceOnRedis runs two relays with their control planes on one
// real redis-server, as two replicas would: a token revoked through the first stops working
// on the second, which had it cached, within the store's notification latency (well below
// TokenCacheTTL).
func TestRevokeReachesOtherInstanceOnRedis(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var handlers []http.Handler
	for range 2 {
		st, err := store.OpenRedis(t.Context(), "redis://"+srv.Addr+"/0", store.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		rs, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: testLogger(t), RateLimit: -1})
		if err != nil {
			t.Fatal(err)
		}
		api, err := New(t.Context(), Options{Config: cfg, Store: st, Logger: testLogger(t), AdminToken: adminToken})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(api.Close)
		rs.Mount(api)
		done := make(chan struct{})
		go func() { defer close(done); rs.Watch(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		handlers = append(handlers, rs.Handler())
	}
	send := func(i int, method, path string, body []byte, h http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), method, path, bytes.NewReader(body))
		req.Header = h
		w := httptest.NewRecorder()
		handlers[i].ServeHTTP(w, req)
		return w
	}
	w := send(0, "POST", relayclient.TokensPath, mustJSON(t, relayclient.TokenRequest{Name: "r", Grants: grant(appID, access.Viewer)}), adminHeader())
	var tok relayclient.CreatedToken
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	read := func(i int) int {
		return send(i, "GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok.Token)).Code
	}
	if c := read(1); c != http.StatusOK {
		t.Fatalf("instance 2 with the new token: %d", c)
	}
	// Let both subscriptions settle before revoking (Redis pub/sub drops what is published
	// before a subscriber is listening).
	time.Sleep(200 * time.Millisecond)
	if w := send(0, "DELETE", relayclient.TokensPath+"/"+tok.Record.ID, nil, adminHeader()); w.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	start := time.Now()
	for read(1) != http.StatusUnauthorized {
		if time.Since(start) > TokenCacheTTL/2 {
			t.Fatalf("instance 2 still accepts the revoked token after %v", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("revocation reached instance 2 after %v", time.Since(start))
}
