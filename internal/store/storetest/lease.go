package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// leaseName returns a lease name no other check uses.
func leaseName(t testing.TB) string { return "lease-" + randHex(t) }

// testLease checks one holder at a time, extension by the holder, expiry, release, and
// that bad arguments are refused.
func testLease(t *testing.T, s Store) {
	ctx := t.Context()
	name := leaseName(t)
	acquire := func(holder string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, name, holder, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s) = %v", holder, err)
		}
		return ok
	}
	if !acquire("a", time.Hour) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	if acquire("b", time.Hour) {
		t.Fatal("AcquireLease of a lease a holds = true for b")
	}
	if !acquire("a", time.Hour) {
		t.Fatal("AcquireLease by its holder (extension) = false")
	}
	if err := s.ReleaseLease(ctx, name, "b"); err != nil {
		t.Fatal(err)
	}
	if acquire("b", time.Hour) {
		t.Fatal("ReleaseLease by a non-holder released the lease")
	}
	if err := s.ReleaseLease(ctx, name, "a"); err != nil {
		t.Fatal(err)
	}
	if !acquire("b", 300*time.Millisecond) {
		t.Fatal("AcquireLease after the holder released it = false")
	}
	if acquire("a", time.Hour) {
		t.Fatal("AcquireLease of a lease b holds = true for a")
	}
	// b extends its lease: it must then outlive the first ttl.
	time.Sleep(150 * time.Millisecond)
	if !acquire("b", 600*time.Millisecond) {
		t.Fatal("extension by b = false")
	}
	time.Sleep(300 * time.Millisecond)
	if acquire("a", time.Hour) {
		t.Fatal("the extended lease expired at the first ttl")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !acquire("a", time.Hour) {
		if time.Now().After(deadline) {
			t.Fatal("the lease of a holder that stopped extending it never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.ReleaseLease(ctx, leaseName(t), "nobody"); err != nil {
		t.Errorf("ReleaseLease of a lease never taken = %v; want nil", err)
	}
	for _, tc := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", time.Second}, {name, "", time.Second}, {name, "a", 0}, {name, "a", -time.Second}, {"x\x00y", "a", time.Second}} {
		if ok, err := s.AcquireLease(ctx, tc.name, tc.holder, tc.ttl); err == nil || ok {
			t.Errorf("AcquireLease(%q, %q, %s) = %v, %v; want an error", tc.name, tc.holder, tc.ttl, ok, err)
		}
	}
	if err := s.ReleaseLease(ctx, "", "a"); err == nil {
		t.Error("ReleaseLease with no name = nil; want an error")
	}
}

// testLeaseConcurrent checks that of Writers holders racing for a free lease exactly one
// gets it.
func testLeaseConcurrent(t *testing.T, s Store) {
	LeaseRace(t, []Store{s})
}

// LeaseRace races Writers holders, spread over stores, for one free lease and checks that
// exactly one wins.
func LeaseRace(t *testing.T, stores []Store) {
	t.Helper()
	name := leaseName(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, Writers)
	holders := make([]string, Writers)
	for i := range holders {
		holders[i] = "holder-" + randHex(t)
	}
	for i := range Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := stores[i%len(stores)].AcquireLease(t.Context(), name, holders[i], time.Minute)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		t.Fatal(err)
	}
	if n := won.Load(); n != 1 {
		t.Errorf("%d of %d concurrent holders got the lease; want exactly 1", n, Writers)
	}
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// LeaseAcross checks that two instances of one backend see one lease: what a holds, b
// cannot take, and b takes it once a releases it.
func LeaseAcross(t *testing.T, a, b Store) {
	ctx := t.Context()
	name := leaseName(t)
	if ok, err := a.AcquireLease(ctx, name, "relay-a", time.Hour); err != nil || !ok {
		t.Fatalf("AcquireLease through a = %v, %v", ok, err)
	}
	if ok, err := b.AcquireLease(ctx, name, "relay-b", time.Hour); err != nil || ok {
		t.Fatalf("AcquireLease through b of the lease a holds = %v, %v; want false", ok, err)
	}
	if err := a.ReleaseLease(ctx, name, "relay-a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.AcquireLease(ctx, name, "relay-b", time.Hour); err != nil || !ok {
		t.Errorf("AcquireLease through b after a released = %v, %v; want true", ok, err)
	}
	LeaseRace(t, []Store{a, b})
}
