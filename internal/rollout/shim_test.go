package rollout

import (
	"context"
	"sync"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

// seriesShim adds the counters to a store until the stores implement store.Series.
type seriesShim struct {
	storeBase
	mu  sync.Mutex
	pts []channel.SeriesPoint
}

type storeBase interface {
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error)
	GetState(ctx context.Context, app, ch string) (*channel.State, error)
	ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error)
	store.Lease
	Close() error
}

func withSeries(b storeBase) testStore { return &seriesShim{storeBase: b} }

func (s *seriesShim) AddSeries(_ context.Context, _ string, pts []channel.SeriesPoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pts {
		p.Start = p.Start.Truncate(channel.SeriesFine)
		s.pts = append(s.pts, p)
	}
	return nil
}

func (s *seriesShim) Series(_ context.Context, _ string, q channel.SeriesQuery) ([]channel.SeriesPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []channel.SeriesPoint
	for _, p := range s.pts {
		if !p.Start.Before(q.From) && p.Start.Before(q.To) && (q.Version == "" || q.Version == p.Version) {
			out = append(out, p)
		}
	}
	return out, nil
}
