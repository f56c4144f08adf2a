package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store/storetest"
)

func openBoltT(t *testing.T, path string, opts BoltOptions) *Bolt {
	t.Helper()
	b, err := OpenBolt(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBoltConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{})
	})
}

func TestBoltAccessInvalid(t *testing.T) {
	t.Parallel()
	storetest.AccessInvalid(t, openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{}), ErrInvalid)
}

func TestBoltAssetLinkInvalid(t *testing.T) {
	t.Parallel()
	storetest.AssetLinkInvalid(t, openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{}), ErrInvalid)
}

// TestBoltAssetLinksBounded: the embedded store keeps at most MaxAssetLinks links.
func TestBoltAssetLinksBounded(t *testing.T) {
	t.Parallel()
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{MaxAssetLinks: 20})
	storetest.AssetLinksBounded(t, b, 20)
}

// TestBoltAssetLinkSweep: expired links, which reads already ignore, are deleted from the
// file by the sweeper (the link and its expiry index entry), and live ones are kept.
func TestBoltAssetLinkSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{SweepInterval: -1})
	app := storetest.NewApp(t)
	for id, exp := range map[int64]time.Time{1: time.Now().Add(300 * time.Millisecond), 2: time.Now().Add(time.Hour)} {
		if err := b.PutAssetLink(ctx, app, id, "https://objects.example.com/"+strconv.FormatInt(id, 10), exp); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	if n, err := b.sweep(); err != nil || n != 1 {
		t.Errorf("sweep after one link expired = %d, %v; want 1", n, err)
	}
	var links, index int
	var count uint64
	if err := b.db.View(func(tx *bolt.Tx) error {
		links, index = tx.Bucket(bAssetLinks).Stats().KeyN, tx.Bucket(bAssetLinkAge).Stats().KeyN
		count = tx.Bucket(bAssetLinks).Sequence()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if links != 1 || index != 1 || count != 1 {
		t.Errorf("after the sweep: %d links, %d index entries, count %d; want 1, 1, 1", links, index, count)
	}
	if _, _, ok, err := b.GetAssetLink(ctx, app, 2); err != nil || !ok {
		t.Errorf("the live link after the sweep: ok %v, %v", ok, err)
	}
}

func TestBoltPageBundlesInvalid(t *testing.T) {
	t.Parallel()
	storetest.PageBundlesInvalid(t, openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{}), ErrInvalid)
}

// TestBoltAccessSweep checks that expired sessions and logins, which reads already ignore,
// are deleted from the file by the sweeper, and live ones are kept.
func TestBoltAccessSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{SweepInterval: -1})
	short, long := time.Now().Add(300*time.Millisecond), time.Now().Add(time.Hour)
	var keep []string
	for _, exp := range []time.Time{short, long} {
		s, l := storetest.Session(t, exp), storetest.Login(t, exp)
		if err := b.PutSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := b.PutLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		if exp.Equal(long) {
			keep = append(keep, s.IDHash, l.State)
		}
	}
	if n, err := b.sweep(); err != nil || n != 0 {
		t.Fatalf("sweep before anything expired = %d, %v; want 0", n, err)
	}
	time.Sleep(500 * time.Millisecond)
	if n, err := b.sweep(); err != nil || n != 2 {
		t.Errorf("sweep after the short records expired = %d, %v; want 2", n, err)
	}
	var left []string
	if err := b.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bSessions, bLogins} {
			if err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
				left = append(left, string(k))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != strings.Join(keep, ",") {
		t.Errorf("records left after the sweep = %q, want the live ones %q", left, keep)
	}
}

// TestBoltAccessBucketsAdded opens a file written before the access records existed (no
// tokens, sessions or logins buckets): OpenBolt adds them, with the same schema version.
func TestBoltAccessBucketsAdded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ferry.db")
	b, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bTokens, bSessions, bLogins} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openBoltT(t, path, BoltOptions{})
	tok := storetest.Token(t, "ci", time.Now().UTC())
	if err := b.PutToken(t.Context(), tok); err != nil {
		t.Fatalf("PutToken on a file of the previous layout: %v", err)
	}
	if list, err := b.ListTokens(t.Context()); err != nil || len(list) != 1 {
		t.Errorf("ListTokens = %v, %v; want the one token", list, err)
	}
}

func TestBoltDurability(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ferry.db")
	storetest.RunDurability(t, func(t *testing.T) storetest.Store {
		return openBoltT(t, path, BoltOptions{})
	}, nil)
}

func TestBoltLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ferry.db")
	openBoltT(t, path, BoltOptions{})
	start := time.Now()
	_, err := OpenBolt(path, BoltOptions{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenBolt err = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second OpenBolt took %s, want about the lock timeout", d)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestBoltSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ferry.db")
	b, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put(kSchema, []byte("999"))
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := OpenBolt(path, BoltOptions{}); !errors.Is(err, ErrSchema) {
		t.Errorf("OpenBolt of a newer schema: err = %v, want ErrSchema", err)
	}
}

func TestBoltClosed(t *testing.T) {
	t.Parallel()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub := b.Subscribe(t.Context())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, ok := <-sub; ok {
		t.Errorf("subscription still open after Close")
	}
	if err := b.Ping(t.Context()); err == nil {
		t.Errorf("Ping after Close = nil, want an error")
	}
}

// TestBoltBounds checks the growth bounds: the audit log is trimmed, and expired failed
// versions, pending promotions and delivery marks are ignored and then swept.
func TestBoltBounds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const ttl = time.Second
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{
		AuditLimit: 5, FailedTTL: ttl, PendingTTL: ttl, SweepInterval: -1,
	})
	app := "com.example.app"
	for i := range 12 {
		if err := b.AppendAudit(ctx, channel.AuditEntry{App: app, Action: "register", Version: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	audit, err := b.ListAudit(ctx, app, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range audit {
		got = append(got, e.Version)
	}
	if strings.Join(got, ",") != "11,10,9,8,7" {
		t.Errorf("audit after 12 appends with limit 5 = %v, want 11..7", got)
	}
	recorded := time.Now()
	if err := b.RecordStats(ctx, app, []channel.StatEvent{{Device: "d", Version: "1", Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPending(ctx, app, "c", channel.Pending{Channel: "p", Ref: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SeenDelivery(ctx, "x", ttl); err != nil {
		t.Fatal(err)
	}
	f, _ := b.FailedVersions(ctx, app, "d")
	// On a machine so loaded that the TTL passed before this read, no record is the right
	// answer; the sweep below still checks all three records.
	if time.Since(recorded) < ttl && len(f) != 1 {
		t.Fatalf("FailedVersions = %v, want one", f)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if f, _ := b.FailedVersions(ctx, app, "d"); len(f) != 0 {
		t.Errorf("FailedVersions after the TTL = %v, want none", f)
	}
	if p, _ := b.ListPending(ctx, app, "c"); len(p) != 0 {
		t.Errorf("ListPending after the TTL = %v, want none", p)
	}
	n, err := b.sweep()
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("sweep deleted %d records, want 3", n)
	}
	if n, err := b.sweep(); err != nil || n != 0 {
		t.Errorf("second sweep = %d, %v; want 0", n, err)
	}
}

// TestBoltCrash kills a child process that writes bundles (SIGKILL, no Close) and checks
// that every bundle it acknowledged is in the file.
func TestBoltCrash(t *testing.T) {
	t.Parallel()
	if os.Getenv("FERRY_BOLT_CRASH_CHILD") != "" {
		t.Skip("child")
	}
	path := filepath.Join(t.TempDir(), "ferry.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "FERRY_BOLT_CRASH_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 1<<16)
	acked := 0
	deadline := time.Now().Add(20 * time.Second)
	for acked < 30 && time.Now().Before(deadline) {
		chunk := make([]byte, 4096)
		n, err := out.Read(chunk)
		buf = append(buf, chunk[:n]...)
		acked = strings.Count(string(buf), "acked ")
		if err != nil {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	// Everything printed as acknowledged before the kill must be present.
	acked = strings.Count(string(buf), "acked ")
	if acked < 30 {
		t.Fatalf("child acknowledged only %d bundles:\n%s", acked, buf)
	}
	b := openBoltT(t, path, BoltOptions{})
	list, err := b.ListBundles(t.Context(), "com.example.crash", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < acked {
		t.Errorf("after SIGKILL the file has %d bundles, the child acknowledged %d", len(list), acked)
	}
}

// TestBoltCrashChild is the child process of TestBoltCrash: it writes until killed.
func TestBoltCrashChild(t *testing.T) {
	t.Parallel()
	path := os.Getenv("FERRY_BOLT_CRASH_CHILD")
	if path == "" {
		t.Skip("run by TestBoltCrash")
	}
	b, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		bd := storetest.Bundle("com.example.crash", fmt.Sprintf("1.0.%d", i), "c")
		if _, _, err := b.PutBundle(context.Background(), bd, nil); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", i)
	}
}
