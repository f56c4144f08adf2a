package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/google/go-cmp/cmp"
)

func deltaTree(t testing.TB) string {
	return writeTree(t, map[string]string{
		"index.html":        "<html></html>",
		"assets/app.js":     bigText(50000, 4),                      // compressible, >= 8192: .br
		"assets/small.js":   bigText(8191, 5),                       // under the threshold: raw
		"assets/random.bin": string(randomBytes(t, 9000)),           // incompressible: raw
		"assets/empty.txt":  "",                                     // always .br: one byte, never empty
		"assets/pre.css.br": "precompressed",                        // always .br: .br.br
		"nested/dir/x.css":  strings.Repeat("body{margin:0}", 1000), // .br
	})
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7919 + i*i*31) ^ (i>>3)*131)
	}
	h := sha256.New()
	out := b[:0:0]
	for len(out) < n { // expand a hash chain: incompressible
		h.Write(b[:8])
		s := h.Sum(nil)
		out = append(out, s...)
		copy(b, s)
	}
	return out[:n]
}

func TestDelta(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	dir := deltaTree(t)
	sk, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, encrypted := range []bool{false, true} {
		opts := DeltaOptions{}
		if encrypted {
			opts = DeltaOptions{Key: priv, Session: sk}
		}
		stored := map[string][]byte{}
		files, err := Delta(t.Context(), dir, opts, func(f DeltaFile, body io.Reader) error {
			b, err := io.ReadAll(body)
			stored[f.FileName] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range files {
			names = append(names, f.FileName)
			b := stored[f.FileName]
			sum := sha256.Sum256(b)
			if f.Object != "files/"+hex.EncodeToString(sum[:]) || f.Size != int64(len(b)) {
				t.Errorf("%s: object %s size %d, want sha of stored bytes and %d", f.FileName, f.Object, f.Size, len(b))
			}
			checkStored(t, dir, f, b, opts) // what a device does with the entry
		}
		want := []string{"assets/app.js.br", "assets/empty.txt.br", "assets/pre.css.br.br", "assets/random.bin", "assets/small.js", "index.html", "nested/dir/x.css.br"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("encrypted=%v: file names (-want +got):\n%s", encrypted, diff)
		}
	}
}

// TestDeltaLargestFirst checks that files are prepared largest first, so that a build's big
// files do not start last and keep one worker busy alone, and are stored as they are ready,
// while the list returned stays in the build's sorted order. With one worker the order of
// the calls to put is the order of preparation.
func TestDeltaLargestFirst(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"a.js":       bigText(9000, 1),
		"b/big.js":   bigText(60000, 2),
		"c.css":      strings.Repeat("p{margin:0}", 2000),
		"d.txt":      "tiny",
		"index.html": "<html></html>",
	})
	var puts []string
	files, err := Delta(t.Context(), dir, DeltaOptions{Zip: ZipOptions{Workers: 1}}, func(f DeltaFile, body io.Reader) error {
		puts = append(puts, f.FileName)
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b/big.js.br", "c.css.br", "a.js.br", "index.html", "d.txt"}, puts); diff != "" {
		t.Errorf("calls to put (-want +got):\n%s", diff)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.FileName)
	}
	if diff := cmp.Diff([]string{"a.js.br", "b/big.js.br", "c.css.br", "d.txt", "index.html"}, names); diff != "" {
		t.Errorf("returned files (-want +got):\n%s", diff)
	}
}

// TestDeltaPutFailureCleansUp checks that when storing a file fails, Delta reports it and
// leaves no spooled file behind, whichever files were prepared or being prepared then (files
// over spoolMemory are spooled to temporary files).
func TestDeltaPutFailureCleansUp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	tree := map[string]string{"index.html": "<html></html>"}
	for i := range 6 {
		tree[fmt.Sprintf("assets/blob%d.bin", i)] = string(randomBytes(t, spoolMemory+1000*(i+1)))
	}
	dir := writeTree(t, tree)
	refused := errors.New("bucket refused")
	calls := 0
	_, err := Delta(t.Context(), dir, DeltaOptions{Zip: ZipOptions{Workers: 2}}, func(f DeltaFile, body io.Reader) error {
		calls++
		if calls == 2 {
			return refused
		}
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "store delta file") {
		t.Fatalf("Delta = %v, want the refusal of the second file", err)
	}
	if calls != 2 {
		t.Errorf("put called %d times, want none after the failure", calls)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d spooled files left behind: %v", len(left), left)
	}
}

// TestDeltaContentAddressed checks that an unchanged file keeps its object name in the
// next version while a changed one gets a new name.
func TestDeltaContentAddressed(t *testing.T) {
	t.Parallel()
	objects := func(dir string) map[string]string {
		m := map[string]string{}
		_, err := Delta(t.Context(), dir, DeltaOptions{}, func(f DeltaFile, body io.Reader) error {
			m[f.FileName] = f.Object
			_, err := io.Copy(io.Discard, body)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	v1 := objects(writeTree(t, map[string]string{"index.html": "v1", "lib.js": bigText(20000, 7)}))
	v2 := objects(writeTree(t, map[string]string{"index.html": "v2", "lib.js": bigText(20000, 7)}))
	if v1["lib.js.br"] == "" || v1["lib.js.br"] != v2["lib.js.br"] {
		t.Errorf("unchanged lib.js: objects %q and %q, want equal", v1["lib.js.br"], v2["lib.js.br"])
	}
	if v1["index.html"] == v2["index.html"] {
		t.Error("changed index.html kept its object name")
	}
}

func TestDeltaNeedsSession(t *testing.T) {
	t.Parallel()
	_, err := Delta(t.Context(), deltaTree(t), DeltaOptions{Key: sharedKey(t)}, func(DeltaFile, io.Reader) error { return nil })
	if err == nil {
		t.Error("Delta with Key and no Session succeeded")
	}
}

// Wrapped files (names ending in ".br", empty files) use a Brotli window whose first byte
// can never start one of the plugin's decompressBrotli shortcuts (0x1b, 0x0b: WBITS 22),
// whatever the content, even content the default window would encode as 1b 00 06 … 03.
func TestDeltaWrappedStreamsAvoidPluginShortcuts(t *testing.T) {
	t.Parallel()
	files := map[string]string{"index.html": "<html></html>", "empty.br": "", "five.br": "12345"}
	for n := 1530; n < 1545; n++ { // compressible, around the 1537 bytes of a 1b 00 06 header
		files[fmt.Sprintf("c%d.br", n)] = strings.Repeat("ab", n)[:n]
	}
	stored := map[string][]byte{}
	_, err := Delta(t.Context(), writeTree(t, files), DeltaOptions{}, func(f DeltaFile, body io.Reader) error {
		b, err := io.ReadAll(body)
		stored[f.FileName] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if !strings.HasSuffix(name, ".br") {
			continue
		}
		b, ok := stored[name+".br"]
		if !ok {
			t.Errorf("%s: not stored as %s.br", name, name)
			continue
		}
		if len(b) == 0 || b[0]&1 != 0 {
			t.Errorf("%s: stored stream starts % x, want a first byte with bit 0 clear", name, b[:min(3, len(b))])
		}
		plain, err := io.ReadAll(brotli.NewReader(bytes.NewReader(b)))
		if err != nil || string(plain) != content {
			t.Errorf("%s: decodes to %.20q, %v", name, plain, err)
		}
	}
}

// Names the relay would refuse in a manifest are refused before any file is prepared or
// stored, by CheckDelta and by Delta.
func TestDeltaRefusesNamesBeforeStoring(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("d/", 400) + strings.Repeat("x", 219) + ".js" // 1022 bytes: 1025 with .br
	for name, tc := range map[string]struct{ file, msg string }{
		"control character": {"tab\there.js", "control character"},
		"too long with .br": {long, "at most 1024 bytes"},
	} {
		dir := writeTree(t, map[string]string{"index.html": "<html></html>", tc.file: "x"})
		if err := CheckDelta(dir, ZipOptions{}); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: CheckDelta = %v, want ErrUnsafeFile saying %q", name, err, tc.msg)
		}
		called := false
		_, err := Delta(t.Context(), dir, DeltaOptions{}, func(DeltaFile, io.Reader) error { called = true; return nil })
		if !errors.Is(err, ErrUnsafeFile) || called {
			t.Errorf("%s: Delta = %v (put called %v), want ErrUnsafeFile before any put", name, err, called)
		}
	}
	ok := writeTree(t, map[string]string{"index.html": "<html></html>", "a.js.br": "x", "e": ""})
	if err := CheckDelta(ok, ZipOptions{}); err != nil {
		t.Errorf("CheckDelta(good build) = %v", err)
	}
}

// A file_hash hint is kept only when it is exactly the V3 checksum signing the file's SHA-256
// would write; anything else (another file's checksum, another encoding, garbage) is signed
// again. Equal contents are looked up once.
func TestDeltaFileHashHints(t *testing.T) {
	t.Parallel()
	key := sharedKey(t)
	sum, other := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	want, err := ChecksumV3(key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	otherHash, err := ChecksumV3(key, other[:])
	if err != nil {
		t.Fatal(err)
	}
	for name, hint := range map[string]string{
		"valid":                want,
		"upper case":           strings.ToUpper(want),
		"another file's":       otherHash,
		"garbage":              "zz",
		"none":                 "",
		"plain sha256":         hex.EncodeToString(sum[:]),
		"truncated":            want[:len(want)-2],
		"valid with a newline": want + "\n",
	} {
		h := &fileHashes{key: key, known: map[[sha256.Size]byte]string{}}
		got, err := h.get(sum[:], hint, false)
		if err != nil || got != want {
			t.Errorf("%s hint: file_hash %.16q…, %v; want the checksum of the content", name, got, err)
		}
		if got, err := h.get(sum[:], otherHash, false); err != nil || got != want {
			t.Errorf("%s hint, then another for equal content: %.16q…, %v; want the first answer", name, got, err)
		}
	}
	h := &fileHashes{known: map[[sha256.Size]byte]string{}}
	if got, err := h.get(sum[:], want, false); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Errorf("unencrypted: %q, %v; want the hex SHA-256", got, err)
	}
}

// A worker's Brotli writer, reset from file to file, writes the bytes a new writer would:
// an object's bytes do not depend on which files the worker prepared before.
func TestDeltaWorkerBrotliReuse(t *testing.T) {
	t.Parallel()
	inputs := [][]byte{[]byte(bigText(300_000, 1)), []byte(bigText(9000, 2)), {}, []byte(strings.Repeat("ab", 5000)), []byte(bigText(70_000, 3))}
	var w deltaWorker
	for round := range 2 {
		for i, in := range inputs {
			for _, wrap := range []bool{false, true} {
				opts := brotli.WriterOptions{Quality: BrotliQuality}
				if wrap {
					opts.LGWin = wrapLGWin
				}
				var fresh, reused bytes.Buffer
				fw := brotli.NewWriterOptions(&fresh, opts)
				rw := w.brotliWriter(&reused, wrap)
				for _, bw := range []*brotli.Writer{fw, rw} {
					if _, err := bw.Write(in); err != nil {
						t.Fatal(err)
					}
					if err := bw.Close(); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(fresh.Bytes(), reused.Bytes()) {
					t.Errorf("round %d, input %d, wrap %v: a reused writer wrote %d bytes, a new one %d other bytes", round, i, wrap, reused.Len(), fresh.Len())
				}
			}
		}
	}
}
