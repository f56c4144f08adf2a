package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

func redisURL(p *testpeers.Process) string { return "redis://" + p.Addr + "/0" }

func openRedisT(t *testing.T, url string, opts RedisOptions) *Redis {
	t.Helper()
	r, err := OpenRedis(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openRedisT(t, redisURL(srv), RedisOptions{})
	})
}

func TestRedisAccessInvalid(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	storetest.AccessInvalid(t, openRedisT(t, redisURL(srv), RedisOptions{}), ErrInvalid)
}

func TestRedisAssetLinkInvalid(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	storetest.AssetLinkInvalid(t, openRedisT(t, redisURL(srv), RedisOptions{}), ErrInvalid)
}

func TestRedisPageBundlesInvalid(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	storetest.PageBundlesInvalid(t, openRedisT(t, redisURL(srv), RedisOptions{}), ErrInvalid)
}

func TestRedisShared(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	storetest.RunShared(t, func(t *testing.T) storetest.Store {
		return openRedisT(t, redisURL(srv), RedisOptions{})
	})
}

// TestRedisDurability kills redis-server (SIGKILL) after the writes and restarts it: with
// AOF and appendfsync always, every acknowledged write survives.
func TestRedisDurability(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t, "--appendonly", "yes", "--appendfsync", "always")
	storetest.RunDurability(t, func(t *testing.T) storetest.Store {
		return openRedisT(t, redisURL(srv), RedisOptions{})
	}, func(t *testing.T) {
		srv.Stop()
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	addr := "127.0.0.1:" + strconv.Itoa(testpeers.FreePort(t))
	start := time.Now()
	_, err := OpenRedis(ctx, "redis://"+addr, RedisOptions{})
	if !errors.Is(err, channel.ErrUnavailable) {
		t.Fatalf("OpenRedis of a closed port: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("OpenRedis of a closed port took %s, want well under 3s", d)
	}

	r := openRedisT(t, "redis://"+addr, RedisOptions{Lazy: true})
	app := storetest.NewApp(t)
	calls := map[string]func() error{
		"Ping":      func() error { return r.Ping(ctx) },
		"GetBundle": func() error { _, err := r.GetBundle(ctx, app, "1.0.0"); return err },
		"PutBundle": func() error { _, _, err := r.PutBundle(ctx, storetest.Bundle(app, "1.0.0", "c"), nil); return err },
		"UpdateState": func() error {
			_, err := r.UpdateState(ctx, app, "production", func(*channel.State) (*channel.AuditEntry, error) {
				return &channel.AuditEntry{Action: "promote"}, nil
			})
			return err
		},
		"SeenDelivery":   func() error { _, err := r.SeenDelivery(ctx, "d", time.Hour); return err },
		"ForgetDelivery": func() error { return r.ForgetDelivery(ctx, "d") },
		"MarkDelivery":   func() error { return r.MarkDelivery(ctx, "d", time.Hour) },
		"FailedVersions": func() error { _, err := r.FailedVersions(ctx, app, "d"); return err },
		"RecordStats": func() error {
			return r.RecordStats(ctx, app, []channel.StatEvent{{Device: "d", Version: "1", Action: "set"}})
		},
		"PutToken":      func() error { return r.PutToken(ctx, storetest.Token(t, "ci", time.Now())) },
		"GetToken":      func() error { _, err := r.GetToken(ctx, "t"); return err },
		"ListTokens":    func() error { _, err := r.ListTokens(ctx); return err },
		"RevokeToken":   func() error { _, err := r.RevokeToken(ctx, "t", time.Now()); return err },
		"TouchToken":    func() error { return r.TouchToken(ctx, "t", time.Now()) },
		"PutSession":    func() error { return r.PutSession(ctx, storetest.Session(t, time.Now().Add(time.Hour))) },
		"GetSession":    func() error { _, err := r.GetSession(ctx, "h"); return err },
		"TouchSession":  func() error { return r.TouchSession(ctx, "h", time.Now()) },
		"DeleteSession": func() error { return r.DeleteSession(ctx, "h") },
		"PutLogin":      func() error { return r.PutLogin(ctx, storetest.Login(t, time.Now().Add(time.Hour))) },
		"TakeLogin":     func() error { _, err := r.TakeLogin(ctx, "s"); return err },
		"PutAssetLink": func() error {
			return r.PutAssetLink(ctx, app, 1, "https://objects.example.com/a", time.Now().Add(time.Minute))
		},
		"GetAssetLink": func() error { _, _, _, err := r.GetAssetLink(ctx, app, 1); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, channel.ErrUnavailable) {
			t.Errorf("%s on an unreachable Redis: err = %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s on an unreachable Redis took %s", name, d)
		}
	}
}

// TestRedisOutage stops the server under a connected store, checks errors wrap
// ErrUnavailable, and that the store recovers when the server is back.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{})
	app := storetest.NewApp(t)
	if _, _, err := r.PutBundle(ctx, storetest.Bundle(app, "1.0.0", "c"), nil); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := r.GetBundle(ctx, app, "1.0.0"); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("GetBundle during the outage: err = %v, want ErrUnavailable", err)
	}
	if err := r.Ping(ctx); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Ping during the outage: err = %v, want ErrUnavailable", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The server came back empty (no persistence): the store works again.
	if err := r.Ping(ctx); err != nil {
		t.Errorf("Ping after the outage = %v", err)
	}
	if _, created, err := r.PutBundle(ctx, storetest.Bundle(app, "1.0.0", "c"), nil); err != nil || !created {
		t.Errorf("PutBundle after the outage = %v, %v", created, err)
	}
}

func TestRedisCancelledIsNotUnavailable(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.GetBundle(ctx, "com.example.app", "1")
	if !errors.Is(err, context.Canceled) || errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("GetBundle with a cancelled ctx: err = %v, want context.Canceled only", err)
	}
}

// TestRedisBounds checks the growth bounds and key layout on the server itself.
func TestRedisBounds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{AuditLimit: 5, FailedTTL: time.Hour, PendingTTL: 2 * time.Hour})
	app := "com.example.app"
	for i := range 12 {
		if _, err := r.UpdateState(ctx, app, "production", func(s *channel.State) (*channel.AuditEntry, error) {
			s.Version = strconv.Itoa(i)
			return &channel.AuditEntry{Action: "promote", Version: s.Version}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := r.AppendAudit(ctx, channel.AuditEntry{App: app, Action: "register", Version: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.rdb.LLen(ctx, "ferry:{com.example.app}:audit").Val(); n != 5 {
		t.Errorf("audit list length = %d, want 5", n)
	}
	if err := r.RecordStats(ctx, app, []channel.StatEvent{{Device: "d1", Version: "1.0.0", Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPending(ctx, app, "abc", channel.Pending{Channel: "production", Ref: "refs/tags/v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SeenDelivery(ctx, "delivery-1", 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]time.Duration{
		"ferry:{com.example.app}:failed:d1":   time.Hour,
		"ferry:{com.example.app}:pending:abc": 2 * time.Hour,
		"ferry:delivery:delivery-1":           30 * time.Minute,
	} {
		ttl := r.rdb.PTTL(ctx, key).Val()
		if ttl <= want-time.Minute || ttl > want {
			t.Errorf("PTTL(%s) = %s, want about %s", key, ttl, want)
		}
	}
	keys := r.rdb.Keys(ctx, "*").Val()
	for _, k := range keys {
		if !strings.HasPrefix(k, "ferry:{com.example.app}:") && !strings.HasPrefix(k, "ferry:delivery:") && k != schemaKey {
			t.Errorf("key %q is outside the documented layout", k)
		}
	}
	if v := r.rdb.Get(ctx, schemaKey).Val(); v != strconv.Itoa(SchemaVersion) {
		t.Errorf("schema key = %q, want %d", v, SchemaVersion)
	}
}

func TestRedisSchemaMismatch(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{})
	if err := r.rdb.Set(t.Context(), schemaKey, "999", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRedis(t.Context(), redisURL(srv), RedisOptions{}); !errors.Is(err, ErrSchema) {
		t.Errorf("OpenRedis of a newer schema: err = %v, want ErrSchema", err)
	}
}

func TestRedisBadURL(t *testing.T) {
	t.Parallel()
	_, err := OpenRedis(t.Context(), "redis-cluster://user:s3cret@h1:1,,h2", RedisOptions{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("OpenRedis(bad url) err = %v, want ErrInvalid", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q leaks the password", err)
	}
}

// TestRedisScriptsRetrySafe runs each write script twice with the same arguments, as
// go-redis does when a reply is lost after the server executed the script: the second
// run must report success and change nothing.
func TestRedisScriptsRetrySafe(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{})
	app := storetest.NewApp(t)

	bundleKeys := []string{appKey(app, "bundles"), appKey(app, "order"), appKey(app, "commits"), appKey(app, "audit")}
	for i := range 2 {
		res, err := putBundleScript.Run(ctx, r.rdb, bundleKeys, "1.0.0", `{"v":1}`, "c", `{"a":0}`, 100).Slice()
		if err != nil {
			t.Fatal(err)
		}
		if res[0] != int64(1) {
			t.Errorf("put bundle script run %d = %v, want created", i+1, res)
		}
	}
	if n := r.rdb.LLen(ctx, bundleKeys[1]).Val(); n != 1 {
		t.Errorf("order list has %d entries after a retried put, want 1", n)
	}
	if n := r.rdb.LLen(ctx, bundleKeys[3]).Val(); n != 1 {
		t.Errorf("audit has %d entries after a retried put, want 1", n)
	}
	if res, _ := putBundleScript.Run(ctx, r.rdb, bundleKeys, "1.0.0", `{"v":2}`, "c", `{"a":9}`, 100).Slice(); res[0] != int64(0) {
		t.Errorf("put bundle script with other bytes = %v, want existing", res)
	}
	if n := r.rdb.LLen(ctx, bundleKeys[3]).Val(); n != 1 {
		t.Errorf("audit has %d entries after a put of an existing version, want 1", n)
	}
	r.rdb.Del(ctx, bundleKeys[3])

	stateKeys := []string{appKey(app, "states"), appKey(app, "audit"), appKey(app, "state_writes")}
	for i := range 2 { // one write, then go-redis retrying it with the same token
		ok, err := updateStateScript.Run(ctx, r.rdb, stateKeys, "production", "", `{"rev":1}`, `{"a":1}`, 100, app, ChangesChannel, "w1").Int()
		if err != nil {
			t.Fatal(err)
		}
		if ok != 1 {
			t.Errorf("update state script run %d = %d, want 1", i+1, ok)
		}
	}
	if n := r.rdb.LLen(ctx, stateKeys[1]).Val(); n != 1 {
		t.Errorf("audit has %d entries after a retried update, want 1", n)
	}
	// A second writer that read the same state and built the same bytes has lost the race:
	// it must be told so (0) and retry, not be reported as written.
	if ok, _ := updateStateScript.Run(ctx, r.rdb, stateKeys, "production", "", `{"rev":1}`, `{"a":1}`, 100, app, ChangesChannel, "w2").Int(); ok != 0 {
		t.Errorf("update state script of a second writer with identical bytes = %d, want 0", ok)
	}
	if ok, _ := updateStateScript.Run(ctx, r.rdb, stateKeys, "production", "", `{"rev":1,"x":2}`, `{"a":2}`, 100, app, ChangesChannel, "w3").Int(); ok != 0 {
		t.Errorf("update state script from a stale state = %d, want 0", ok)
	}

	for range 2 {
		if err := appendAuditScript.Run(ctx, r.rdb, stateKeys[1:2], `{"a":3}`, 100).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.rdb.LLen(ctx, stateKeys[1]).Val(); n != 2 {
		t.Errorf("audit has %d entries after a retried append, want 2", n)
	}
}

// TestRedisPutBundleAuditRefused makes Redis refuse the write of the audit entry (an ACL
// denying the app's audit key, as a stand-in for a crash between two writes): PutBundle
// fails and stores nothing, so the client's retry creates the bundle with its entry.
func TestRedisPutBundleAuditRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{})
	app := storetest.NewApp(t)
	acl := func(keys ...string) {
		t.Helper()
		args := append([]any{"ACL", "SETUSER", "default", "resetkeys"}, toAny(keys)...)
		if err := r.rdb.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Every key stays readable; writes are allowed everywhere except the app's audit list.
	acl("%R~*", "~ferry:{"+app+"}:[^a]*", "~ferry:delivery:*")
	entry := &channel.AuditEntry{Action: "register", Version: "1.0.0", Cause: "registration"}
	if _, created, err := r.PutBundle(ctx, storetest.Bundle(app, "1.0.0", "c"), entry); err == nil || created {
		t.Fatalf("PutBundle with its audit write refused = created %v, err %v; want an error", created, err)
	}
	acl("~*")
	if _, err := r.GetBundle(ctx, app, "1.0.0"); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("a PutBundle whose audit write failed stored the bundle: GetBundle err = %v", err)
	}
	if _, err := r.BundleByCommit(ctx, app, "c"); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("a PutBundle whose audit write failed indexed its commit: err = %v", err)
	}
	if _, created, err := r.PutBundle(ctx, storetest.Bundle(app, "1.0.0", "c"), entry); err != nil || !created {
		t.Fatalf("retried PutBundle = created %v, %v; want true, nil", created, err)
	}
	audit, err := r.ListAudit(ctx, app, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 1 || audit[0].Action != "register" || audit[0].Version != "1.0.0" {
		t.Errorf("audit after the retry = %+v, want one register entry for 1.0.0", audit)
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
