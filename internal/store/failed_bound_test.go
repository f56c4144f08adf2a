package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// The bound on devices with failed versions (docs/security.md, anonymous stats): made-up
// device ids reporting update_fail cannot keep more than MaxFailedDevices records per app.

func TestBoltFailedDevicesBounded(t *testing.T) {
	t.Parallel()
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{MaxFailedDevices: 20})
	storetest.FailedDevicesBounded(t, b, 20)
}

func TestRedisFailedDevicesBounded(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	r := openRedisT(t, redisURL(srv), RedisOptions{MaxFailedDevices: 20})
	storetest.FailedDevicesBounded(t, r, 20)
}

// TestBoltFailedIndexFromOlderFile: a file written before the bound has failed sets but no
// failed_age index; the first failure builds the index, so the older devices count
// towards the bound and are evicted first.
func TestBoltFailedIndexFromOlderFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ferry.db")
	opts := BoltOptions{MaxFailedDevices: 3, SweepInterval: -1}
	b := openBoltT(t, path, opts)
	app := "com.example.app"
	// The older layout: failed/<device>\x00<version> -> expiry, nothing else.
	old := time.Now().Add(time.Hour)
	err := b.db.Update(func(tx *bolt.Tx) error {
		f, err := appWrite(tx, app, bFailed)
		if err != nil {
			return err
		}
		for i, d := range []string{"old-a", "old-b", "old-c"} {
			exp := expiry(old.Add(time.Duration(i) * time.Minute))
			for _, v := range []string{"1.0.0", "1.0.1"} {
				if err := f.Put([]byte(d+"\x00"+v), exp); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Reopened, as a relay upgraded over that file would open it.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBoltT(t, path, opts)
	if err := b.RecordStats(ctx, app, []channel.StatEvent{{Device: "new", Version: "1.0.2", Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]int{"old-a": 0, "old-b": 2, "old-c": 2, "new": 1} {
		if got, err := b.FailedVersions(ctx, app, d); err != nil || len(got) != want {
			t.Errorf("FailedVersions(%s) = %v, %v; want %d versions", d, got, err, want)
		}
	}
	var n uint64
	if err := b.db.View(func(tx *bolt.Tx) error {
		n = appSub(tx, app, bFailedAge).Sequence()
		return nil
	}); err != nil || n != 3 {
		t.Errorf("failed_age count = %d, %v; want 3", n, err)
	}
}

// TestBoltFailedSweepKeepsCount: sweeping expired failed sets also removes them from the
// index and its count, so expired devices do not take room under the bound.
func TestBoltFailedSweepKeepsCount(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{MaxFailedDevices: 5, FailedTTL: 200 * time.Millisecond, SweepInterval: -1})
	app := "com.example.app"
	for i := range 5 {
		if err := b.RecordStats(ctx, app, []channel.StatEvent{{Device: fmt.Sprint("d", i), Version: "1.0.0", Action: "update_fail"}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n, err := b.sweep(); err != nil || n != 5 {
		t.Fatalf("sweep = %d, %v; want 5 records", n, err)
	}
	var n uint64
	if err := b.db.View(func(tx *bolt.Tx) error {
		n = appSub(tx, app, bFailedAge).Sequence()
		return nil
	}); err != nil || n != 0 {
		t.Errorf("failed_age count after the sweep = %d, %v; want 0", n, err)
	}
}

// TestRedisCheckEviction runs real redis-servers with each kind of memory setting.
func TestRedisCheckEviction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want error
	}{
		{"no maxmemory", nil, nil},
		{"no maxmemory, lru policy", []string{"--maxmemory-policy", "allkeys-lru"}, nil},
		{"noeviction", []string{"--maxmemory", "10mb", "--maxmemory-policy", "noeviction"}, nil},
		{"allkeys-lru", []string{"--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"}, ErrEvictionPolicy},
		{"volatile-ttl", []string{"--maxmemory", "10mb", "--maxmemory-policy", "volatile-ttl"}, ErrEvictionPolicy},
		{"CONFIG disabled (managed Redis)", []string{"--maxmemory", "10mb", "--rename-command", "CONFIG", ""}, ErrConfigUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := testpeers.Redis(t, tc.args...)
			r := openRedisT(t, redisURL(srv), RedisOptions{})
			err := r.CheckEviction(t.Context())
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CheckEviction = %v, want %v", err, tc.want)
			}
			if errors.Is(tc.want, ErrEvictionPolicy) {
				for _, s := range []string{tc.args[3], "maxmemory-policy noeviction"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("CheckEviction error %q does not name %q", err, s)
					}
				}
			}
		})
	}
}

// TestRedisOOMIsUnavailable: under maxmemory with noeviction, Redis refuses writes with
// OOM; RecordStats reports that as channel.ErrUnavailable (the relay answers 503 and the
// plugin retries), never as success.
func TestRedisOOMIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testpeers.Redis(t, "--maxmemory", "10mb", "--maxmemory-policy", "noeviction")
	r := openRedisT(t, redisURL(srv), RedisOptions{})
	fillRedis(t, r)
	err := r.RecordStats(ctx, "com.example.app", []channel.StatEvent{{Device: "d1", Version: "1.0.0", Action: "update_fail"}})
	if !errors.Is(err, channel.ErrUnavailable) {
		t.Fatalf("RecordStats on a full Redis = %v, want ErrUnavailable", err)
	}
	if got, err := r.FailedVersions(ctx, "com.example.app", "d1"); err != nil || len(got) != 0 {
		t.Errorf("FailedVersions after the refused write = %v, %v; want none", got, err)
	}
}

// fillRedis writes values, large and then small ones, until Redis refuses even a small
// one with OOM (a large write also counts its own query buffer, so its refusal alone does
// not mean the server is full).
func fillRedis(t *testing.T, r *Redis) {
	t.Helper()
	i := 0
	for _, size := range []int{512 << 10, 16 << 10, 256} {
		v := strings.Repeat("x", size)
		for ; ; i++ {
			if i > 100000 {
				t.Fatal("Redis never refused a write with OOM")
			}
			err := r.rdb.Set(t.Context(), fmt.Sprint("filler:", i), v, 0).Err()
			if err != nil && strings.HasPrefix(err.Error(), "OOM") {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBoltFailedSet: the in-memory set of devices with failed versions, which lets
// FailedVersions skip the read transaction, never misses a device: a failure is seen by
// the next lookup, survives a reopen, and a device cleared and swept is dropped from the
// set without another device's record being lost.
func TestBoltFailedSet(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ferry.db")
	opts := BoltOptions{SweepInterval: -1}
	b := openBoltT(t, path, opts)
	app := "com.example.app"
	fail := func(b *Bolt, device, version string) {
		t.Helper()
		if err := b.RecordStats(ctx, app, []channel.StatEvent{{Device: device, Version: version, Action: "update_fail"}}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(b *Bolt, device string, versions ...string) {
		t.Helper()
		got, err := b.FailedVersions(ctx, app, device)
		if err != nil || strings.Join(got, ",") != strings.Join(versions, ",") {
			t.Errorf("FailedVersions(%s) = %v, %v; want %v", device, got, err, versions)
		}
	}
	want(b, "dev-a")
	if b.failed.mayHave(app, "dev-a") {
		t.Fatal("a device that never failed is in the set")
	}
	fail(b, "dev-a", "1.0.1")
	fail(b, "dev-b", "1.0.1")
	want(b, "dev-a", "1.0.1")
	if _, err := b.ClearFailedVersions(ctx, app, "dev-a", nil); err != nil {
		t.Fatal(err)
	}
	want(b, "dev-a")
	if !b.failed.mayHave(app, "dev-a") {
		t.Error("a cleared device left the set before the sweep (the set may only shrink under the writer lock)")
	}
	if _, err := b.sweep(); err != nil {
		t.Fatal(err)
	}
	if b.failed.mayHave(app, "dev-a") || !b.failed.mayHave(app, "dev-b") {
		t.Errorf("after the sweep: dev-a in set %v (want false), dev-b %v (want true)",
			b.failed.mayHave(app, "dev-a"), b.failed.mayHave(app, "dev-b"))
	}
	want(b, "dev-b", "1.0.1")
	fail(b, "dev-a", "1.0.2")
	want(b, "dev-a", "1.0.2")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBoltT(t, path, opts)
	want(b, "dev-a", "1.0.2")
	want(b, "dev-b", "1.0.1")
	want(b, "dev-c")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.FailedVersions(cctx, app, "dev-c"); err == nil {
		t.Error("FailedVersions with a canceled context succeeded")
	}
}
