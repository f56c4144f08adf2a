package store

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// benchStores opens one store of each kind for a benchmark.
func benchStores(b *testing.B) map[string]storetest.Store {
	b.Helper()
	bolt, err := OpenBolt(filepath.Join(b.TempDir(), "ferry.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bolt.Close() })
	srv := testpeers.Redis(b)
	rd, err := OpenRedis(b.Context(), "redis://"+srv.Addr, RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rd.Close() })
	return map[string]storetest.Store{"bolt": bolt, "redis": rd}
}

// BenchmarkGetBundles reads the three bundles an update check needs (stable, rollout
// candidate, previous) out of 200 registered.
func BenchmarkGetBundles(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			app := storetest.NewApp(b)
			for i := range 200 {
				if _, _, err := s.PutBundle(ctx, storetest.Bundle(app, fmt.Sprintf("1.%d.0", i), "c"), nil); err != nil {
					b.Fatal(err)
				}
			}
			want := []string{"1.199.0", "1.198.0", "1.150.0"}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					got, err := s.GetBundles(ctx, app, want)
					if err != nil || len(got) != 3 {
						b.Errorf("GetBundles = %d, %v", len(got), err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkFailedVersions reads one device's failed set among 1000 devices with failures.
func BenchmarkFailedVersions(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			app := storetest.NewApp(b)
			var events []channel.StatEvent
			for d := range 1000 {
				for v := range 3 {
					events = append(events, channel.StatEvent{Device: fmt.Sprintf("device-%04d", d), Version: fmt.Sprintf("1.%d.0", v), Action: "update_fail"})
				}
			}
			if err := s.RecordStats(ctx, app, events); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var i atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := i.Add(1)
					got, err := s.FailedVersions(ctx, app, fmt.Sprintf("device-%04d", n%1000))
					if err != nil || len(got) != 3 {
						b.Errorf("FailedVersions = %v, %v", got, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkUpdateState promotes one channel over and over (each an fsync for bbolt, a
// script for Redis).
func BenchmarkUpdateState(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			app := storetest.NewApp(b)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_, err := s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
					st.Version = fmt.Sprint(i)
					return &channel.AuditEntry{Action: "promote", Version: st.Version}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdateStateContended promotes one channel from 16 concurrent writers per CPU,
// as a burst of tag-push webhooks and console promotes does: every writer but one per
// round finds the channel changed and tries again. ns/op is per successful change.
func BenchmarkUpdateStateContended(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			app := storetest.NewApp(b)
			var n, tries atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v := fmt.Sprint(n.Add(1))
					_, err := s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
						tries.Add(1)
						st.Version = v
						return &channel.AuditEntry{Action: "promote", Version: v}, nil
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(tries.Load())/float64(b.N), "tries/op")
		})
	}
}

// BenchmarkDeliveryMarks marks and then extends webhook delivery ids from 16 concurrent
// writers per CPU, as a burst of webhooks does (bbolt coalesces them into shared
// transactions).
func BenchmarkDeliveryMarks(b *testing.B) {
	var n atomic.Int64 // ids stay distinct over the runs b.Run makes
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("bench-%s-%d", name, n.Add(1))
					if seen, err := s.SeenDelivery(ctx, id, time.Minute); err != nil || seen {
						b.Errorf("SeenDelivery(%s) = %v, %v", id, seen, err)
						return
					}
					if err := s.MarkDelivery(ctx, id, time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDeliveryMarksLone is BenchmarkDeliveryMarks with one writer: a webhook on a
// quiet relay, whose batched writes have no company to wait for.
func BenchmarkDeliveryMarksLone(b *testing.B) {
	var n atomic.Int64
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				id := fmt.Sprintf("bench-lone-%s-%d", name, n.Add(1))
				if seen, err := s.SeenDelivery(ctx, id, time.Minute); err != nil || seen {
					b.Fatalf("SeenDelivery(%s) = %v, %v", id, seen, err)
				}
				if err := s.MarkDelivery(ctx, id, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordStats records batches of 20 events from 16 concurrent reporters per CPU
// (bbolt coalesces them into shared transactions).
func BenchmarkRecordStats(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			app := storetest.NewApp(b)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					events := make([]channel.StatEvent, 20)
					for j := range events {
						events[j] = channel.StatEvent{Device: fmt.Sprintf("d%d", (i*20+int64(j))%5000), Version: "1.0.0", Action: "set"}
					}
					if err := s.RecordStats(ctx, app, events); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
