package archive

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkPackage packages a build directory with encryption, writing to io.Discard.
// The directory is FERRY_BENCH_DIR when set (e.g. a corpus prepared by
// scripts/bench-package.sh under $(go env GOPATH)/ferry-peers/corpora/*-web), otherwise a
// synthetic 20 MB build of text files and incompressible blobs; FERRY_BENCH_LEVEL sets the
// deflate level. It reports input MB/s.
func BenchmarkPackage(b *testing.B) {
	dir := benchDir(b)
	key := sharedKey(b)
	opts := Options{Key: key}
	if l := os.Getenv("FERRY_BENCH_LEVEL"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			b.Fatalf("FERRY_BENCH_LEVEL=%q: want a deflate level 1-9", l)
		}
		opts.Zip.Level = n
	}
	res, err := Package(b.Context(), dir, io.Discard, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(res.InputBytes)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Package(b.Context(), dir, io.Discard, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(res.Size)/float64(res.InputBytes), "out/in")
}

func syntheticBuild(b *testing.B) string {
	b.Helper()
	files := map[string]string{"index.html": "<html></html>"}
	for i := range 200 {
		files[fmt.Sprintf("assets/chunk-%03d.js", i)] = bigText(60_000, uint64(i))
	}
	for i := range 4 {
		files[fmt.Sprintf("assets/font-%d.woff2", i)] = string(randomBytes(b, 1_500_000+i))
	}
	files["assets/vendor.js"] = bigText(3_000_000, 999)
	dir := writeTree(b, files)
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchDir is the build the benchmarks read: FERRY_BENCH_DIR when set (a corpus of the bench
// scripts), otherwise the synthetic build.
func benchDir(b *testing.B) string {
	if dir := os.Getenv("FERRY_BENCH_DIR"); dir != "" {
		return dir
	}
	return syntheticBuild(b)
}
