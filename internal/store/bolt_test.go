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
	b := openBoltT(t, filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{
		AuditLimit: 5, FailedTTL: 300 * time.Millisecond, PendingTTL: 300 * time.Millisecond, SweepInterval: -1,
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
	if err := b.RecordStats(ctx, app, []channel.StatEvent{{Device: "d", Version: "1", Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPending(ctx, app, "c", channel.Pending{Channel: "p", Ref: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SeenDelivery(ctx, "x", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if f, _ := b.FailedVersions(ctx, app, "d"); len(f) != 1 {
		t.Fatalf("FailedVersions = %v, want one", f)
	}
	time.Sleep(500 * time.Millisecond)
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
