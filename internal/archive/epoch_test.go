package archive

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

func TestDeriveEpoch(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	a, err := DeriveEpoch(priv, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := DeriveEpoch(priv, "com.example.app", "1")
	if again.ID != a.ID || *again.Session != *a.Session || !bytes.Equal(again.naming, a.naming) {
		t.Error("the same key, app and label gave another epoch")
	}
	sum := sha256.Sum256([]byte("x"))
	for _, other := range []struct{ app, label string }{{"com.example.app", "2"}, {"com.example.other", "1"}} {
		o, err := DeriveEpoch(priv, other.app, other.label)
		if err != nil {
			t.Fatal(err)
		}
		if o.ID == a.ID || *o.Session == *a.Session || o.Object(sum[:], FormRaw) == a.Object(sum[:], FormRaw) {
			t.Errorf("%s/%s shares the epoch id, session key or object names of com.example.app/1", other.app, other.label)
		}
	}
	plain, err := DeriveEpoch(nil, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Session != nil || plain.ID == a.ID {
		t.Errorf("unencrypted epoch: session %v, id %q (encrypted %q)", plain.Session, plain.ID, a.ID)
	}
	if a.Object(sum[:], FormRaw) == a.Object(sum[:], FormBrotli) || !a.IsObject(a.Object(sum[:], FormWrapped)) || a.IsObject(plain.Object(sum[:], FormRaw)) {
		t.Error("object names do not tell forms or epochs apart")
	}
	for _, bad := range []string{"", "has space", "tab\t", strings.Repeat("x", MaxEpochLabel+1), "é"} {
		if _, err := DeriveEpoch(priv, "com.example.app", bad); err == nil || !strings.Contains(err.Error(), "delta key epoch") {
			t.Errorf("label %q: err %v, want a delta key epoch error", bad, err)
		}
	}
}

// epochStore is a bucket of epoch objects: each object's bytes and the file_hash a manifest
// gave it.
type epochStore struct {
	bytes  map[string][]byte
	hashes map[string]string
}

// publish runs Delta over dir against what s holds and stores what it puts; it returns the
// entries and the names put.
func (s *epochStore) publish(t *testing.T, dir string, opts DeltaOptions) ([]DeltaFile, []string) {
	t.Helper()
	opts.Existing = map[string]Stored{}
	for name, b := range s.bytes {
		opts.Existing[name] = Stored{Size: int64(len(b)), FileHash: s.hashes[name]}
	}
	var put []string
	files, err := Delta(t.Context(), dir, opts, func(f DeltaFile, body io.Reader) error {
		b, err := io.ReadAll(body)
		if f.Reused || f.Size != int64(len(b)) {
			t.Errorf("%s: put with Reused %v, size %d for %d bytes", f.FileName, f.Reused, f.Size, len(b))
		}
		put = append(put, f.FileName)
		s.bytes[f.Object] = b
		return err
	})
	if err != nil {
		t.Fatalf("Delta: %v", err)
	}
	for _, f := range files {
		s.hashes[f.Object] = f.FileHash
	}
	return files, put
}

// TestDeltaEpochReuse: the second release of an epoch, with one file changed, prepares and
// puts exactly that file; every other entry names the object the first release stored, with
// its size, and every entry's object decrypts (with the one session key of the answer) to the
// build's file and verifies against its file_hash, as a device would check it.
func TestDeltaEpochReuse(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			t.Parallel()
			opts := DeltaOptions{}
			if encrypted {
				opts.Key = priv
			}
			epoch, err := DeriveEpoch(opts.Key, "com.example.app", "1")
			if err != nil {
				t.Fatal(err)
			}
			opts.Epoch, opts.Session = epoch, epoch.Session
			s := &epochStore{bytes: map[string][]byte{}, hashes: map[string]string{}}
			dir := deltaTree(t)
			v1, put1 := s.publish(t, dir, opts)
			if len(put1) != len(v1) {
				t.Fatalf("first release put %d of %d files", len(put1), len(v1))
			}
			first := map[string][]byte{}
			maps.Copy(first, s.bytes)

			// A wrong hint (another file's hash) must not reach the manifest.
			for _, f := range v1 {
				if f.FileName == "assets/small.js" {
					s.hashes[f.Object] = v1[0].FileHash
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>v2</html>"), 0o644); err != nil {
				t.Fatal(err)
			}
			v2, put2 := s.publish(t, dir, opts)
			if len(put2) != 1 || put2[0] != "index.html" {
				t.Errorf("second release put %q, want only index.html", put2)
			}
			if len(s.bytes) != len(first)+1 {
				t.Errorf("store holds %d objects after the second release, want %d", len(s.bytes), len(first)+1)
			}
			for name, b := range first {
				if !bytes.Equal(s.bytes[name], b) {
					t.Errorf("object %s changed", name)
				}
			}
			for i, f := range v2 {
				if f.FileName != v1[i].FileName {
					t.Fatalf("entry %d: %s, first release %s", i, f.FileName, v1[i].FileName)
				}
				if changed := f.FileName == "index.html"; f.Reused == changed || (f.Object == v1[i].Object) == changed || (!changed && f.Size != v1[i].Size) {
					t.Errorf("%s: reused %v, object %s (was %s), size %d (was %d)", f.FileName, f.Reused, f.Object, v1[i].Object, f.Size, v1[i].Size)
				}
				checkStored(t, dir, f, s.bytes[f.Object], opts)
			}
		})
	}
}

// checkStored does what a device does with one manifest entry: decrypt with the answer's
// session key, un-Brotli a ".br" name, hash, and compare with the opened file_hash.
func checkStored(t *testing.T, dir string, f DeltaFile, b []byte, opts DeltaOptions) {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if opts.Key != nil {
		r = opts.Session.NewDecrypter(r)
	}
	if strings.HasSuffix(f.FileName, ".br") {
		r = brotli.NewReader(r)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", f.FileName, err)
	}
	orig, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(f.FileName, ".br")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, orig) {
		t.Errorf("%s: stored object decodes to other content", f.FileName)
	}
	sum := sha256.Sum256(plain)
	var pub *rsa.PublicKey
	if opts.Key != nil {
		pub = &opts.Key.PublicKey
	}
	if err := VerifyChecksum(pub, f.FileHash, sum[:]); err != nil {
		t.Errorf("%s: file_hash: %v", f.FileName, err)
	}
}

func TestDeltaEpochNeedsItsSessionKey(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	epoch, err := DeriveEpoch(priv, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := DeriveEpoch(nil, "com.example.app", "1")
	dir := deltaTree(t)
	for name, opts := range map[string]DeltaOptions{
		"another session key": {Key: priv, Session: other, Epoch: epoch},
		"unencrypted epoch":   {Key: priv, Session: other, Epoch: plain},
		"no key":              {Epoch: epoch},
	} {
		called := false
		_, err := Delta(t.Context(), dir, opts, func(DeltaFile, io.Reader) error { called = true; return nil })
		if err == nil || !strings.Contains(err.Error(), "epoch") || called {
			t.Errorf("%s: err %v, put called %v; want an epoch error before anything is stored", name, err, called)
		}
	}
}

// TestPackageWithEpochSession: a bundle packaged with an epoch's session key carries that key
// in its session_key, and packaging again gives the same bytes.
func TestPackageWithEpochSession(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	epoch, err := DeriveEpoch(priv, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	dir := deltaTree(t)
	var a, b bytes.Buffer
	ra, err := Package(t.Context(), dir, &a, Options{Key: priv, Session: epoch.Session, DeriveSession: &SessionContext{AppID: "com.example.app", Version: "1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Package(t.Context(), dir, &b, Options{Key: priv, Session: epoch.Session}); err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapSessionKey(ra.SessionKey, &priv.PublicKey)
	if err != nil || *got != *epoch.Session {
		t.Errorf("session_key opens to %v (%v), want the epoch's", got, err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("packaging with the epoch's key twice gave different bytes")
	}
}

// TestDeltaHintTag: a reused object's file_hash is taken as the earlier manifest gave it when
// its tag is the epoch's tag of the object and that file_hash (no RSA check: even a value
// that is no checksum goes through, which only the publisher can tag), and checked with the
// public key (and signed again when wrong) when the tag is missing or tags another value.
func TestDeltaHintTag(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	epoch, err := DeriveEpoch(priv, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := DeriveEpoch(nil, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	if plain.HintTag("x", "y") != "" || epoch.HintTag("x", "y") == epoch.HintTag("x", "z") || epoch.HintTag("x", "y") == epoch.HintTag("w", "y") {
		t.Fatal("HintTag: want no tag unencrypted, and one that depends on the object and the file_hash")
	}
	opts := DeltaOptions{Key: priv, Session: epoch.Session, Epoch: epoch}
	s := &epochStore{bytes: map[string][]byte{}, hashes: map[string]string{}}
	dir := deltaTree(t)
	v1, _ := s.publish(t, dir, opts)
	want := map[string]string{}
	for _, f := range v1 {
		want[f.Object] = f.FileHash
	}
	for name, tc := range map[string]struct {
		hint, tagged string
		trusted      bool
	}{
		"tagged":                {hint: "feed", tagged: "feed", trusted: true},
		"tag of another value":  {hint: "feed", tagged: "beef"},
		"no tag":                {hint: "feed"},
		"valid hint, wrong tag": {hint: "valid", tagged: "beef"},
	} {
		opts.Existing = map[string]Stored{}
		for obj, b := range s.bytes {
			st := Stored{Size: int64(len(b)), FileHash: tc.hint}
			if tc.hint == "valid" {
				st.FileHash = want[obj]
			}
			if tc.tagged != "" {
				st.Tag = epoch.HintTag(obj, tc.tagged)
			}
			opts.Existing[obj] = st
		}
		files, err := Delta(t.Context(), dir, opts, func(f DeltaFile, _ io.Reader) error {
			return fmt.Errorf("%s put", f.FileName)
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range files {
			if w := want[f.Object]; tc.trusted && f.FileHash != "feed" || !tc.trusted && f.FileHash != w {
				t.Errorf("%s: %s file_hash %.16q…, want the %s", name, f.FileName, f.FileHash, map[bool]string{true: "tagged hint", false: "checksum"}[tc.trusted])
			}
		}
	}
}
