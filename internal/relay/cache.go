package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// appEntry caches the snapshot of one configured app. Readers load it without locks; one
// goroutine at a time refills it (the others wait for that fill, or keep using the expired
// snapshot while it runs).
type appEntry struct {
	app *channel.App
	// gen counts invalidations; a snapshot loaded under an older gen is not used again.
	gen    atomic.Uint64
	cur    atomic.Pointer[loaded]
	fillMu sync.Mutex
}

// loaded is a snapshot with the generation it was loaded under, when it was loaded and
// when it expires. stale marks a snapshot kept because a reload failed.
type loaded struct {
	snap     *channel.Snapshot
	gen      uint64
	loadedAt time.Time
	expires  time.Time
	stale    bool
}

func newAppEntry(app *channel.App) *appEntry { return &appEntry{app: app} }

func (e *appEntry) invalidate() { e.gen.Add(1) }

// snapshot returns the app's snapshot for answering a device.
//
//   - A snapshot loaded under the current generation and not expired is returned as is.
//   - An expired one (TTL only, no invalidation since) is refreshed by the first caller; the
//     others keep getting it meanwhile instead of waiting.
//   - After an invalidation callers wait for the fill, so a change made through this relay
//     is visible to the very next request.
//   - When the store cannot be reached the last snapshot is kept (and served) and the store
//     is asked again after storeRetry; only an app never loaded returns an error.
func (s *Server) snapshot(ctx context.Context, e *appEntry) (*channel.Snapshot, error) {
	now := s.now()
	l := e.cur.Load()
	if l != nil && l.gen == e.gen.Load() {
		if now.Before(l.expires) {
			if l.stale {
				s.metrics.staleServed.Inc()
			}
			return l.snap, nil
		}
		if !e.fillMu.TryLock() {
			return l.snap, nil // another request is refreshing it
		}
	} else {
		e.fillMu.Lock()
	}
	defer e.fillMu.Unlock()

	l = e.cur.Load()
	gen := e.gen.Load()
	if l != nil && l.gen == gen && s.now().Before(l.expires) {
		return l.snap, nil // filled while we waited
	}
	fillCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.StoreTimeout)
	defer cancel()
	snap, err := s.loadSnapshot(fillCtx, e.app)
	if err != nil {
		s.metrics.fills.WithLabelValues("error").Inc()
		log := loggerFrom(ctx, s.log)
		if l == nil {
			log.ErrorContext(ctx, "load app state", "app", e.app.ID, "error", err)
			return nil, err
		}
		log.WarnContext(ctx, "load app state; serving the last snapshot", "app", e.app.ID, "error", err,
			"snapshot_age", s.now().Sub(l.loadedAt).String())
		s.metrics.staleServed.Inc()
		e.cur.Store(&loaded{snap: l.snap, gen: gen, loadedAt: l.loadedAt, expires: s.now().Add(storeRetry), stale: true})
		return l.snap, nil
	}
	s.metrics.fills.WithLabelValues("ok").Inc()
	t := s.now()
	e.cur.Store(&loaded{snap: snap, gen: gen, loadedAt: t, expires: t.Add(s.opts.SnapshotTTL)})
	return snap, nil
}

// loadSnapshot reads an app's channel states and the bundles they reference: two store
// round trips.
func (s *Server) loadSnapshot(ctx context.Context, app *channel.App) (*channel.Snapshot, error) {
	states, err := s.store.ListStates(ctx, app.ID)
	if err != nil {
		s.metrics.storeErrors.WithLabelValues("list_states").Inc()
		return nil, fmt.Errorf("list states of %q: %w", app.ID, err)
	}
	snap := &channel.Snapshot{
		App:     app,
		States:  make(map[string]*channel.State, len(states)),
		Bundles: map[string]*channel.Bundle{},
	}
	for _, st := range states {
		snap.States[st.Channel] = st
	}
	if vs := snap.Versions(); len(vs) > 0 {
		bundles, err := s.store.GetBundles(ctx, app.ID, vs)
		if err != nil {
			s.metrics.storeErrors.WithLabelValues("get_bundles").Inc()
			return nil, fmt.Errorf("get bundles of %q: %w", app.ID, err)
		}
		snap.Bundles = bundles
		if snap.Bundles == nil {
			snap.Bundles = map[string]*channel.Bundle{}
		}
	}
	return snap, nil
}
