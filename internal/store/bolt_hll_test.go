package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/channel"
)

// TestBoltStatsDevicesBounded posts 100,000 distinct, long device ids for one version (what
// an anonymous attacker can do through POST /stats) and checks that the file stays small
// while the distinct-device estimate stays within 2 %.
func TestBoltStatsDevicesBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	b := openBoltT(t, path, BoltOptions{})
	ctx := context.Background()
	const n, batch = 100_000, 1000
	pad := strings.Repeat("x", 100)
	for i := 0; i < n; i += batch {
		events := make([]channel.StatEvent, 0, batch)
		for j := i; j < i+batch; j++ {
			events = append(events, channel.StatEvent{Device: fmt.Sprintf("%s-%d", pad, j), Version: "1.0.0", Action: "get"})
		}
		if err := b.RecordStats(ctx, "app", events); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Stats(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Actions["get"] != n {
		t.Fatalf("Stats = %+v, want one version with %d gets", got, n)
	}
	if d := got[0].Devices; d < n*98/100 || d > n*102/100 {
		t.Errorf("Devices = %d, want %d within 2%%", d, n)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2<<20 {
		t.Errorf("file size after %d distinct devices = %d bytes, want at most 2 MiB", n, fi.Size())
	}
	t.Logf("devices %d (estimate %d), file %d bytes", n, got[0].Devices, fi.Size())
}

// TestBoltStatsOldDevices opens a file with the per-device keys of an older release: Stats
// reports the old exact count, and the next device event folds the old ids into the
// estimate (a device already counted is not counted twice) and deletes the old bucket.
func TestBoltStatsOldDevices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	b := openBoltT(t, path, BoltOptions{})
	ctx := context.Background()
	if err := b.RecordStats(ctx, "app", []channel.StatEvent{{Version: "1.0.0", Action: "set"}}); err != nil {
		t.Fatal(err)
	}
	// Write the old layout by hand: devices/<device> and devices_n, no registers.
	if err := b.db.Update(func(tx *bolt.Tx) error {
		vb := tx.Bucket(bApps).Bucket([]byte("app")).Bucket(bStats).Bucket([]byte("1.0.0"))
		devices, err := vb.CreateBucket(bDevices)
		if err != nil {
			return err
		}
		for _, d := range []string{"a", "b", "c"} {
			if err := devices.Put([]byte(d), []byte{1}); err != nil {
				return err
			}
		}
		return vb.Put(kDevices, u64(3))
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Stats(ctx, "app"); err != nil || len(got) != 1 || got[0].Devices != 3 {
		t.Fatalf("Stats before migration = %+v, %v; want 3 devices", got, err)
	}
	if err := b.RecordStats(ctx, "app", []channel.StatEvent{{Device: "a", Version: "1.0.0", Action: "set"}, {Device: "d", Version: "1.0.0", Action: "set"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Stats(ctx, "app"); err != nil || len(got) != 1 || got[0].Devices != 4 {
		t.Fatalf("Stats after migration = %+v, %v; want 4 devices", got, err)
	}
	if err := b.db.View(func(tx *bolt.Tx) error {
		vb := tx.Bucket(bApps).Bucket([]byte("app")).Bucket(bStats).Bucket([]byte("1.0.0"))
		if vb.Bucket(bDevices) != nil || vb.Get(kDevices) != nil {
			t.Error("old devices bucket or devices_n still present after migration")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
