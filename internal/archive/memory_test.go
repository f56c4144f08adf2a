package archive

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestPackageMemoryBounded packages 128 MiB of input (sparse files, so the test stays quick)
// and checks that the heap never holds more than a small fraction of it: the archive is
// streamed, never built in memory. Not parallel, so other tests' allocations do not count.
func TestPackageMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("packages 128 MiB")
	}
	dir := writeTree(t, map[string]string{"index.html": "<html></html>"})
	for _, name := range []string{"a.bin", "b.bin"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(64 << 20); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	res, err := Package(t.Context(), dir, io.Discard, Options{Key: sharedKey(t)})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.InputBytes < 128<<20 {
		t.Fatalf("InputBytes = %d", res.InputBytes)
	}
	const limit = 40 << 20
	grew := int64(peak) - int64(base.HeapAlloc)
	t.Logf("input %d MiB, heap grew by at most %.1f MiB", res.InputBytes>>20, float64(grew)/(1<<20))
	if grew > limit {
		t.Errorf("heap grew by %d bytes while packaging %d bytes, want < %d", grew, res.InputBytes, limit)
	}
}
