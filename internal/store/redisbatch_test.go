package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// pipelineCounter is a go-redis hook counting the pipelines sent and the commands in them.
type pipelineCounter struct{ pipelines, cmds atomic.Int64 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// pauseClients makes redis-server hold every client's commands for d (CLIENT PAUSE ALL),
// from a connection of its own.
func pauseClients(t *testing.T, srv *testpeers.Process, d time.Duration) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	if err := c.Do(t.Context(), "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
}

// TestFailedVersionsPipelined: lookups made while a round trip is under way go out
// together in the next pipeline, and every caller gets its own device's answer.
func TestFailedVersionsPipelined(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{NoFailedFilter: true}) // every lookup goes to Redis
	app := storetest.NewApp(t)
	const devices = 200
	var events []channel.StatEvent
	for i := range devices {
		if i%2 == 0 { // odd devices have no failures
			events = append(events, channel.StatEvent{Device: fmt.Sprint("d", i), Version: fmt.Sprint("1.0.", i), Action: "update_fail"})
		}
	}
	if err := r.RecordStats(ctx, app, events); err != nil {
		t.Fatal(err)
	}
	var count pipelineCounter
	r.rdb.AddHook(&count)

	// Hold the server so the first pipeline waits and the other lookups queue behind it.
	pauseClients(t, srv, 300*time.Millisecond)
	var wg sync.WaitGroup
	for i := range devices {
		wg.Go(func() {
			got, err := r.FailedVersions(ctx, app, fmt.Sprint("d", i))
			want := []string{}
			if i%2 == 0 {
				want = []string{fmt.Sprint("1.0.", i)}
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("FailedVersions(d%d) = %v, %v; want %v", i, got, err, want)
			}
		})
	}
	wg.Wait()
	// The first lookup (perhaps with a few others) waits out the pause; the rest are queued
	// by then and need at most two pipelines of maxBatch.
	p, c := count.pipelines.Load(), count.cmds.Load()
	if c != devices || p > 1+(devices+maxBatch-1)/maxBatch {
		t.Errorf("%d lookups went out as %d commands in %d pipelines; want %d commands in at most %d",
			devices, c, p, devices, 1+(devices+maxBatch-1)/maxBatch)
	}
}

// TestFailedVersionsDeadline: a lookup stuck behind an unresponsive server returns when its
// own context ends, as unavailability, not when the server answers.
func TestFailedVersionsDeadline(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{NoFailedFilter: true}) // every lookup goes to Redis
	app := storetest.NewApp(t)
	if _, err := r.FailedVersions(t.Context(), app, "warm"); err != nil { // connect first
		t.Fatal(err)
	}
	pauseClients(t, srv, 3*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.FailedVersions(ctx, app, "d1")
	if took := time.Since(start); took > time.Second || !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("FailedVersions on a paused server = %v after %v; want ErrUnavailable after about 100ms", err, took)
	}

	// A caller that gave up does not hold back the next one, answered when the pause ends.
	got, err := r.FailedVersions(t.Context(), app, "d1")
	if err != nil || len(got) != 0 {
		t.Errorf("FailedVersions after the pause = %v, %v; want none", got, err)
	}
}

// TestFailedVersionsClosed: after Close a lookup fails at once.
func TestFailedVersionsClosed(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{NoFailedFilter: true}) // every lookup goes to Redis
	if _, err := r.FailedVersions(t.Context(), "com.example.app", "d1"); err != nil {
		t.Fatal(err)
	}
	r.Close()
	done := make(chan error, 1)
	go func() {
		_, err := r.FailedVersions(context.Background(), "com.example.app", "d1")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("FailedVersions after Close succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FailedVersions after Close did not return")
	}
}
