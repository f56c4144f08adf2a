package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// openGroup opens a bbolt file with one bucket, "b", and a groupCommit on it.
func openGroup(t *testing.T) *groupCommit {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.MaxBatchDelay = time.Hour // a write that waited for company, as db.Batch does, would hang
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return &groupCommit{db: db}
}

func put(key string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(key), []byte("v")) }
}

func stored(t *testing.T, g *groupCommit, key string) bool {
	t.Helper()
	var ok bool
	if err := g.db.View(func(tx *bolt.Tx) error { ok = tx.Bucket([]byte("b")).Get([]byte(key)) != nil; return nil }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// waitPending waits until n calls are queued behind the transaction under way.
func waitPending(t *testing.T, g *groupCommit, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.mu.Lock()
		got := len(g.pending)
		g.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d calls never queued", n)
}

// A lone write commits without waiting for company, and writes that arrive during a
// commit share the next transaction, where a failing or panicking function costs the others
// nothing: each gets its own outcome.
func TestGroupCommit(t *testing.T) {
	g := openGroup(t)
	if err := g.do(put("lone")); err != nil || !stored(t, g, "lone") {
		t.Fatalf("lone write: %v, stored %v", err, stored(t, g, "lone"))
	}

	// Hold a transaction open until 20 more writes, one failing and one panicking, queue.
	hold, holding := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- g.do(func(tx *bolt.Tx) error {
			select {
			case <-holding:
			default:
				close(holding)
			}
			<-hold
			return put("first")(tx)
		})
	}()
	<-holding
	boom := errors.New("boom")
	var runs sync.Map // key → times its function ran
	counted := func(key string, fn func(*bolt.Tx) error) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			n, _ := runs.LoadOrStore(key, new(int))
			*n.(*int)++
			return fn(tx)
		}
	}
	type outcome struct {
		key      string
		err      error
		panicked any
	}
	outcomes := make(chan outcome, 20)
	for i := range 20 {
		key := fmt.Sprintf("k%02d", i)
		fn := counted(key, put(key))
		switch i {
		case 7:
			fn = counted(key, func(tx *bolt.Tx) error { _ = put(key)(tx); return boom })
		case 13:
			fn = counted(key, func(tx *bolt.Tx) error { _ = put(key)(tx); panic("kaboom") })
		}
		go func() {
			o := outcome{key: key}
			defer func() { o.panicked = recover(); outcomes <- o }()
			o.err = g.do(fn)
		}()
	}
	waitPending(t, g, 20)
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range 20 {
		o := <-outcomes
		switch o.key {
		case "k07":
			if !errors.Is(o.err, boom) || o.panicked != nil {
				t.Errorf("%s: %v, panic %v; want its own error", o.key, o.err, o.panicked)
			}
		case "k13":
			if o.panicked != "kaboom" {
				t.Errorf("%s: %v, panic %v; want its own panic", o.key, o.err, o.panicked)
			}
		default:
			if o.err != nil || o.panicked != nil {
				t.Errorf("%s: %v, panic %v", o.key, o.err, o.panicked)
			}
		}
		if got, want := stored(t, g, o.key), o.key != "k07" && o.key != "k13"; got != want {
			t.Errorf("%s stored = %v, want %v", o.key, got, want)
		}
	}
	// One group: every function ran once, or twice if it preceded a failure in the group
	// (that transaction was rolled back); the failing ones ran once more alone.
	runs.Range(func(k, v any) bool {
		if n := *v.(*int); n < 1 || n > 3 {
			t.Errorf("%s ran %d times", k, n)
		}
		return true
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running || len(g.pending) != 0 {
		t.Errorf("after the writes: running %v, %d pending; want the committer gone", g.running, len(g.pending))
	}
}

// A commit that fails as a whole (the database is closed) answers every call with the error.
func TestGroupCommitClosed(t *testing.T) {
	g := openGroup(t)
	if err := g.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.do(put("x")); !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Errorf("write to a closed file: %v, want ErrDatabaseNotOpen", err)
	}
}

// The store's batched writes (a webhook's delivery marks, a device's stats) commit at once
// when they are alone: with bbolt's batch delay set to an hour, they still return.
func TestBoltBatchedWriteAlone(t *testing.T) {
	b, err := OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.db.MaxBatchDelay = time.Hour
	done := make(chan error, 1)
	go func() { done <- b.MarkDelivery(t.Context(), "lone", time.Hour) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a lone delivery mark waited for company")
	}
	if seen, err := b.SeenDelivery(t.Context(), "lone", time.Hour); err != nil || !seen {
		t.Errorf("SeenDelivery after the mark = %v, %v; want seen", seen, err)
	}
}
