package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/archive"
)

// BenchmarkAction measures the wall time of the action's own work (package, encrypt, key
// signing with provenance, publish to a file:// bucket; no relay) by running the built
// binary as the runner would. Corpora: FERRY_BENCH_DIRS (colon-separated web builds, e.g.
// the ones scripts/bench-package.sh prepares), default examples/web.
//
//	FERRY_BENCH_DIRS=$(go env GOPATH)/ferry-peers/corpora/ionic-web go test -run '^$' -bench Action -benchtime 5x ./cmd/action
func BenchmarkAction(b *testing.B) {
	dirs := strings.Split(os.Getenv("FERRY_BENCH_DIRS"), ":")
	if dirs[0] == "" {
		dirs = []string{filepath.Join(repoRoot, "examples", "web")}
	}
	actionBin, _ := buildBinaries(b)
	key, err := archive.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	keyPEM := string(archive.MarshalPrivateKey(key))
	for _, dir := range dirs {
		abs, _ := filepath.Abs(dir)
		var size int64
		_ = filepath.WalkDir(abs, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					size += fi.Size()
				}
			}
			return nil
		})
		for _, delta := range []string{"false", "true"} {
			b.Run(filepath.Base(abs)+"/delta="+delta, func(b *testing.B) {
				b.SetBytes(size)
				n := 0
				for b.Loop() {
					b.StopTimer()
					n++
					r := newRunner(b, "refs/heads/main", commitA, "")
					r.env["GITHUB_RUN_ID"] = strings.Repeat("1", n%9+1)
					r.inputs = map[string]string{"app-id": testApp, "build-dir": abs, "encryption-key": keyPEM, "signing": "none",
						"destination": "file://" + filepath.ToSlash(filepath.Join(r.dir, "bucket")), "public-base-url": "https://cdn.test", "delta": delta}
					b.StartTimer()
					if res := r.exec(b, actionBin); res.code != 0 {
						b.Fatalf("exit %d\n%s", res.code, res.stderr)
					}
				}
			})
		}
	}
}
