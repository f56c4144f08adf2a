package store

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// FailuresChannel is the Redis pub/sub channel on which RecordStats announces, in the
// same MULTI/EXEC that stores them, the devices that reported update_fail
// ("<app>\x00<device>"), and on which each store instance publishes its heartbeats
// ("\x00<instance>\x00<unix ns>").
const FailuresChannel = "ferry:failures"

// Timing of the failed-device filter (see redisFailedSet).
const (
	// failedHeartbeat is how often each instance publishes a heartbeat.
	failedHeartbeat = 250 * time.Millisecond
	// failedFresh is how old the newest heartbeat received back may be for the filter
	// to be trusted: it bounds how late a failure recorded through another instance can
	// be seen here, whatever happened to the subscription's connection.
	failedFresh = time.Second
	// failedReload is how often a loaded app's set is read again from the index, which
	// drops the devices cleared, evicted or expired since.
	failedReload = 10 * time.Minute
	// failedQuiet is how long heartbeats pause after one could not be published.
	failedQuiet = 5 * time.Second
)

// redisFailedSet lets FailedVersions skip the round trip for devices that have no failed
// versions, the great majority, while every instance sharing the Redis still sees every
// failure.
//
// Per app it holds a superset of the app's failed_devices index: loaded with one ZRANGE
// after the subscription to [FailuresChannel] is confirmed, then kept by the messages
// RecordStats publishes (a failure recorded through this instance is added before
// RecordStats returns). A device missing from a ready set may be answered "no failed
// versions" without asking Redis only while the filter is fresh: this instance received
// back, within failedFresh, a heartbeat it published, so every failure published before
// that heartbeat has been received too (one connection delivers in order). When the
// subscription reconnects, messages may have been lost: every set is dropped and loaded
// again. So a failure recorded through another instance is seen here within the pub/sub
// delivery time (well under a millisecond on a healthy connection) and at most
// failedFresh plus one heartbeat late when the connection breaks; until then and whenever
// the filter is not trusted, lookups go to Redis as before.
type redisFailedSet struct {
	rdb      redis.UniversalClient
	instance string
	max      int // an app's set is reloaded when it grows beyond this
	now      func() time.Time

	mu   sync.Mutex
	gen  uint64 // bumped when the subscription (re)connects; older loads are discarded
	apps map[string]*appFailed
	// heard is the send time of the newest own heartbeat received back (zero: none yet).
	heard time.Time
}

type appFailed struct {
	devs   map[string]struct{}
	ready  bool // the ZRANGE has been merged in
	gen    uint64
	loaded time.Time
}

func newRedisFailedSet(rdb redis.UniversalClient, limit int) *redisFailedSet {
	return &redisFailedSet{
		rdb:      rdb,
		instance: strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(uint64(rand.Uint32()), 36),
		max:      limit,
		now:      time.Now,
		apps:     map[string]*appFailed{},
	}
}

// skip reports whether FailedVersions may answer device of app "none" without Redis. It
// starts loading the app's set when it is not loaded.
func (f *redisFailedSet) skip(app, device string) bool {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.apps[app]
	if a == nil || (a.ready && now.Sub(a.loaded) > failedReload) || len(a.devs) > f.max {
		f.startLoad(app)
		return false
	}
	if !a.ready || f.heard.IsZero() || now.Sub(f.heard) > failedFresh {
		return false
	}
	_, failed := a.devs[device]
	return !failed
}

// add records that device of app has failed versions (RecordStats through this instance).
func (f *redisFailedSet) add(app, device string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.apps[app]; a != nil {
		a.devs[device] = struct{}{}
	}
}

// startLoad replaces app's set by a loading one and reads the index in the background.
// Messages received meanwhile are kept. f.mu must be held.
func (f *redisFailedSet) startLoad(app string) {
	if a := f.apps[app]; a != nil && !a.ready && a.gen == f.gen {
		return // a load is under way
	}
	a := &appFailed{devs: map[string]struct{}{}, gen: f.gen}
	f.apps[app] = a
	if f.heard.IsZero() {
		return // not subscribed yet: loaded again once the subscription is confirmed
	}
	go f.load(app, a)
}

func (f *redisFailedSet) load(app string, a *appFailed) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	devs, err := f.rdb.ZRange(ctx, appKey(app, "failed_devices"), 0, -1).Result()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.apps[app] != a {
		return // replaced meanwhile
	}
	if err != nil || a.gen != f.gen {
		delete(f.apps, app) // the next lookup starts again
		return
	}
	for _, d := range devs {
		a.devs[d] = struct{}{}
	}
	a.ready = true
	a.loaded = f.now()
}

// run keeps the subscription and the heartbeats until done is closed.
func (f *redisFailedSet) run(done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-done
		cancel()
	}()
	ps := f.rdb.Subscribe(ctx, FailuresChannel)
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions()
	tk := time.NewTicker(failedHeartbeat)
	defer tk.Stop()
	var quietUntil time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if time.Now().Before(quietUntil) {
				continue
			}
			beat := "\x00" + f.instance + "\x00" + strconv.FormatInt(f.now().UnixNano(), 10)
			pctx, pcancel := context.WithTimeout(ctx, failedHeartbeat)
			if f.rdb.Publish(pctx, FailuresChannel, beat).Err() != nil {
				// A lost beat only makes the filter stale. While Redis is away, beats
				// every 250 ms would fill the pool with dial errors, after which go-redis
				// fails every caller fast for a while: wait for the subscription to come
				// back (or failedQuiet) before the next one.
				quietUntil = time.Now().Add(failedQuiet)
			}
			pcancel()
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if _, ok := m.(*redis.Subscription); ok {
				quietUntil = time.Time{}
			}
			f.receive(m)
		}
	}
}

// receive applies one item of the subscription.
func (f *redisFailedSet) receive(m any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m := m.(type) {
	case *redis.Subscription:
		// (Re)subscribed: anything published while the connection was down is lost, so
		// every set is loaded again, and the filter waits for a heartbeat of this
		// subscription.
		f.gen++
		f.heard = time.Time{}
		clear(f.apps)
	case *redis.Message:
		if rest, ok := strings.CutPrefix(m.Payload, "\x00"); ok {
			inst, sent, ok := strings.Cut(rest, "\x00")
			ns, err := strconv.ParseInt(sent, 10, 64)
			if !ok || err != nil || inst != f.instance {
				return
			}
			wasZero := f.heard.IsZero()
			if t := time.Unix(0, ns); t.After(f.heard) {
				f.heard = t
			}
			if wasZero {
				// Loads asked for before the subscription was confirmed start now.
				for app, a := range f.apps {
					if !a.ready {
						go f.load(app, a)
					}
				}
			}
			return
		}
		app, device, ok := strings.Cut(m.Payload, "\x00")
		if !ok {
			return
		}
		if a := f.apps[app]; a != nil {
			a.devs[device] = struct{}{}
		}
	}
}
