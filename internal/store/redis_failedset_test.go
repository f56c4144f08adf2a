package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// eventually polls cond every 5 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRedisFailedFilter: two relays' stores on one Redis. Devices that never failed are
// answered from memory once the filter is loaded and fresh, with no command sent; a
// failure recorded through one instance is seen by the other over pub/sub; a device
// recorded through an instance is seen by that instance at once.
func TestRedisFailedFilter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	a := openRedisT(t, redisURL(srv), RedisOptions{})
	b := openRedisT(t, redisURL(srv), RedisOptions{})
	app := storetest.NewApp(t)
	fail := func(r *Redis, device, version string) {
		t.Helper()
		if err := r.RecordStats(ctx, app, []channel.StatEvent{{Device: device, Version: version, Action: "update_fail"}}); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(r *Redis, device string) string {
		t.Helper()
		got, err := r.FailedVersions(ctx, app, device)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}
	fail(a, "d1", "1.0.1")
	if got := lookup(b, "d1"); got != "[1.0.1]" {
		t.Fatalf("B before its filter is loaded: FailedVersions(d1) = %s; want [1.0.1]", got)
	}
	eventually(t, 5*time.Second, "B's filter loads and turns fresh", func() bool { return b.failed.skip(app, "clean") })

	var count pipelineCounter
	b.rdb.AddHook(&count)
	sent := func() int64 { return count.cmds.Load() }
	if got := lookup(b, "clean"); got != "[]" {
		t.Errorf("FailedVersions(clean) = %s; want []", got)
	}
	if n := sent(); n != 0 {
		t.Errorf("a device without failures cost %d commands; want 0", n)
	}
	if got := lookup(b, "d1"); got != "[1.0.1]" || sent() != 1 {
		t.Errorf("FailedVersions(d1) = %s with %d commands; want [1.0.1] from Redis", got, sent())
	}

	// Through A while B's filter is loaded: B learns of it over pub/sub.
	fail(a, "d2", "1.0.2")
	eventually(t, failedFresh, "B sees d2's failure", func() bool { return lookup(b, "d2") == "[1.0.2]" })
	// Through B itself: seen at once.
	fail(b, "d3", "1.0.3")
	if got := lookup(b, "d3"); got != "[1.0.3]" {
		t.Errorf("B right after recording d3 through itself: %s; want [1.0.3]", got)
	}

	// The subscription's connection is cut: B drops its sets and loads them again, and a
	// failure recorded meanwhile through A is not missed.
	killer := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer killer.Close()
	if err := killer.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	fail(a, "d4", "1.0.4")
	eventually(t, 5*time.Second, "B sees d4's failure after the reconnect", func() bool { return lookup(b, "d4") == "[1.0.4]" })
	eventually(t, 5*time.Second, "B's filter turns fresh again", func() bool { return b.failed.skip(app, "clean") })
	if got := lookup(b, "d2"); got != "[1.0.2]" {
		t.Errorf("after the reload FailedVersions(d2) = %s; want [1.0.2]", got)
	}
}

// TestRedisFailedFilterStale: when B stops hearing its own heartbeats (Redis holds every
// client), it stops trusting its filter within failedFresh and asks Redis again.
func TestRedisFailedFilterStale(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	b := openRedisT(t, redisURL(srv), RedisOptions{})
	app := storetest.NewApp(t)
	if _, err := b.FailedVersions(ctx, app, "clean"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the filter loads and turns fresh", func() bool { return b.failed.skip(app, "clean") })
	pauseClients(t, srv, 3*time.Second)
	eventually(t, failedFresh+time.Second, "the filter goes stale while Redis is paused", func() bool { return !b.failed.skip(app, "clean") })
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := b.FailedVersions(cctx, app, "clean"); err == nil {
		t.Error("a lookup with a stale filter answered without Redis (which is paused)")
	}
}
