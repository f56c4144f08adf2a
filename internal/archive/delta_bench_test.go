package archive

import (
	"crypto/sha256"
	"io"
	"testing"
)

// BenchmarkDelta prepares the delta files of a build, encrypted in a key epoch, discarding
// the stored bytes: "first" is the first release of the epoch (every file compressed,
// encrypted and signed), "reuse" the next one with every object already stored and a hint
// for each file_hash. The directory is FERRY_BENCH_DIR when set (a corpus of
// scripts/bench-delta.sh), otherwise the synthetic build of BenchmarkPackage.
func BenchmarkDelta(b *testing.B) {
	dir := benchDir(b)
	key := sharedKey(b)
	epoch, err := DeriveEpoch(key, "com.example.bench", "bench")
	if err != nil {
		b.Fatal(err)
	}
	opts := DeltaOptions{Key: key, Session: epoch.Session, Epoch: epoch}
	discard := func(f DeltaFile, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	files, err := Delta(b.Context(), dir, opts, discard)
	if err != nil {
		b.Fatal(err)
	}
	var in, out int64
	existing := map[string]Stored{}
	for _, f := range files {
		out += f.Size
		existing[f.Object] = Stored{Size: f.Size, FileHash: f.FileHash}
	}
	entries, _, err := collect(dir, ZipOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		in += e.size
	}
	b.Run("first", func(b *testing.B) {
		b.SetBytes(in)
		for b.Loop() {
			if _, err := Delta(b.Context(), dir, opts, discard); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(out)/float64(in), "out/in")
		b.ReportMetric(float64(len(files)), "files")
	})
	b.Run("reuse", func(b *testing.B) {
		reuse := opts
		reuse.Existing = existing
		b.SetBytes(in)
		for b.Loop() {
			if _, err := Delta(b.Context(), dir, reuse, discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChecksumV3 is the RSA private-key operation each new encrypted delta file costs.
func BenchmarkChecksumV3(b *testing.B) {
	key := sharedKey(b)
	sum := sha256.Sum256([]byte("x"))
	for b.Loop() {
		if _, err := ChecksumV3(key, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyChecksum is the RSA public-key operation a reused file_hash hint costs.
func BenchmarkVerifyChecksum(b *testing.B) {
	key := sharedKey(b)
	sum := sha256.Sum256([]byte("x"))
	c, err := ChecksumV3(key, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := VerifyChecksum(&key.PublicKey, c, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}
