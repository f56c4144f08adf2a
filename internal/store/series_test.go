package store

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

func TestBoltSeriesInvalid(t *testing.T) {
	t.Parallel()
	storetest.SeriesInvalid(t, openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{}), ErrInvalid)
}

func TestRedisSeriesInvalid(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	storetest.SeriesInvalid(t, openRedisT(t, redisURL(srv), RedisOptions{}), ErrInvalid)
}

// TestBoltSeriesPrune checks that buckets past retention are deleted from the file by the
// next AddSeries, not only hidden from reads.
func TestBoltSeriesPrune(t *testing.T) {
	t.Parallel()
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.clock = func() time.Time { return t0 }
	p := func(at time.Time, v string) channel.SeriesPoint {
		return channel.SeriesPoint{Start: at, Channel: "production", Version: v, Metric: channel.MetricCheck, N: 1}
	}
	if err := b.AddSeries(t.Context(), "app", []channel.SeriesPoint{p(t0, "1.0.0")}); err != nil {
		t.Fatal(err)
	}
	keys := func(res string) (starts []time.Time) {
		t.Helper()
		err := b.db.View(func(tx *bolt.Tx) error {
			return appSub(tx, "app", bSeries).Bucket([]byte(res)).ForEach(func(k, _ []byte) error {
				starts = append(starts, time.Unix(int64(binary.BigEndian.Uint64(k)), 0).UTC())
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return starts
	}
	later := t0.Add(channel.SeriesFineRetention + time.Hour)
	b.clock = func() time.Time { return later }
	if err := b.AddSeries(t.Context(), "app", []channel.SeriesPoint{p(later, "1.0.1")}); err != nil {
		t.Fatal(err)
	}
	if got := keys("5m"); len(got) != 1 || !got[0].Equal(later) {
		t.Errorf("fine bucket starts after %s = %v, want only %v", channel.SeriesFineRetention, got, later)
	}
	if got := keys("1h"); len(got) != 2 {
		t.Errorf("coarse bucket starts = %v, want t0's and the later one (within %s)", got, channel.SeriesCoarseRetention)
	}
	last := later.Add(channel.SeriesCoarseRetention + time.Hour)
	b.clock = func() time.Time { return last }
	if err := b.AddSeries(t.Context(), "app", []channel.SeriesPoint{p(last, "1.0.2")}); err != nil {
		t.Fatal(err)
	}
	if got := keys("1h"); len(got) != 1 || !got[0].Equal(last) {
		t.Errorf("coarse bucket starts after %s = %v, want only %v", channel.SeriesCoarseRetention, got, last)
	}
}

// TestRedisSeriesExpiry checks that each bucket's hash expires when it leaves retention.
func TestRedisSeriesExpiry(t *testing.T) {
	t.Parallel()
	r := openRedisT(t, redisURL(testpeers.Redis(t)), RedisOptions{})
	at := time.Now().UTC().Add(-time.Hour)
	err := r.AddSeries(t.Context(), "app", []channel.SeriesPoint{{Start: at, Channel: "beta", Version: "1.0.0", Metric: channel.MetricCheck, N: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range seriesResolutions {
		start := seriesBucket(at, res.step)
		key := seriesKeyRedis("app", res, start)
		exp, err := r.rdb.PExpireTime(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(res.keep).UnixMilli(); exp.Milliseconds() != want {
			t.Errorf("%s expires at %d ms, want %d (bucket start + %s)", key, exp.Milliseconds(), want, res.keep)
		}
	}
}

// seriesDay writes a day of counters for one app as the relay would: every fine bucket of
// the last 24 hours holds 3 versions × 2 channels × 12 metrics. It returns the number of
// counters written per fine bucket.
func seriesDay(t *testing.T, s Store, app string) int {
	t.Helper()
	end := seriesBucket(time.Now(), channel.SeriesFine)
	metrics := []string{channel.MetricCheck, channel.MetricOffered, channel.MetricNoUpdate,
		"download", "download_complete", "download_fail", "set", "update_fail", "app_reload", "checksum_fail", "rollback", "other"}
	per := 0
	for i := range int(24 * time.Hour / channel.SeriesFine) {
		start := end.Add(-time.Duration(i) * channel.SeriesFine)
		var ps []channel.SeriesPoint
		for _, v := range []string{"1.4.0", "1.4.1", "1.5.0"} {
			for _, ch := range []string{"production", "beta"} {
				for j, m := range metrics {
					ps = append(ps, channel.SeriesPoint{Start: start, Channel: ch, Version: v, Metric: m, N: int64(1000 + j*17)})
				}
			}
		}
		if err := s.AddSeries(t.Context(), app, ps); err != nil {
			t.Fatal(err)
		}
		per = len(ps)
	}
	return per
}

// TestSeriesDaySize measures what a day of series costs one app in each store (bbolt file
// growth and allocated pages; Redis MEMORY USAGE of the bucket hashes). docs/stats.md
// quotes its output: go test -run TestSeriesDaySize -v ./internal/store/
func TestSeriesDaySize(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ferry.db")
	b := openBoltT(t, path, BoltOptions{})
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	per := seriesDay(t, b, "com.example.app")
	var alloc int
	err := b.db.View(func(tx *bolt.Tx) error {
		st := appSub(tx, "com.example.app", bSeries).Stats()
		alloc = st.BranchAlloc + st.LeafAlloc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Series(t.Context(), "com.example.app", channel.SeriesQuery{From: time.Now().Add(-25 * time.Hour), To: time.Now().Add(time.Hour), Step: channel.SeriesFine})
	if err != nil {
		t.Fatal(err)
	}
	if want := 288 * per; len(got) != want {
		t.Fatalf("a day of fine counters read back %d points, want %d", len(got), want)
	}
	t.Logf("bbolt: one day, %d counters per 5-minute bucket: file grew %d bytes, series pages allocated %d bytes", per, size()-before, alloc)

	r := openRedisT(t, redisURL(testpeers.Redis(t)), RedisOptions{})
	seriesDay(t, r, "com.example.app")
	var mem, keys int64
	iter := r.rdb.Scan(t.Context(), 0, appKey("com.example.app", "series:*"), 1000).Iterator()
	for iter.Next(t.Context()) {
		n, err := r.rdb.MemoryUsage(t.Context(), iter.Val(), 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		mem += n
		keys++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if keys < 288 {
		t.Fatalf("a day of series left %d keys, want at least 288 fine buckets", keys)
	}
	t.Logf("redis: one day, %d counters per 5-minute bucket: %d keys, MEMORY USAGE sum %d bytes", per, keys, mem)
}
