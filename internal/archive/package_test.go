package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"
)

func TestPackageUnencrypted(t *testing.T) {
	t.Parallel()
	dir := sampleTree(t)
	var out bytes.Buffer
	var calls int
	var last int64
	res, err := Package(t.Context(), dir, &out, Options{Progress: func(done, total int64) { calls++; last = done - total }})
	if err != nil {
		t.Fatal(err)
	}
	plain, st := zipBytes(t, dir, ZipOptions{})
	if !bytes.Equal(out.Bytes(), plain) {
		t.Fatal("unencrypted Package output differs from WriteZip")
	}
	sum := sha256.Sum256(plain)
	want := hex.EncodeToString(sum[:])
	if res.Checksum != want || res.SHA256 != want || res.ArtifactSHA256 != want {
		t.Errorf("checksums = %q %q %q, want %q", res.Checksum, res.SHA256, res.ArtifactSHA256, want)
	}
	if res.SessionKey != "" || res.KeyID != "" || res.Session != nil {
		t.Errorf("unencrypted result has key material: %+v", res)
	}
	if res.Size != int64(len(plain)) || res.ZipSize != st.ZipSize || res.Files != st.Files || res.InputBytes != st.InputBytes {
		t.Errorf("result %+v does not match zip stats %+v", res, st)
	}
	if calls == 0 || last != 0 {
		t.Errorf("progress: %d calls, last done-total %d; want calls ending at total", calls, last)
	}
}

func TestPackageEncrypted(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	dir := sampleTree(t)
	var out bytes.Buffer
	res, err := Package(t.Context(), dir, &out, Options{Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	art := sha256.Sum256(out.Bytes())
	if res.ArtifactSHA256 != hex.EncodeToString(art[:]) || res.Size != int64(out.Len()) {
		t.Errorf("artifact sha/size = %s/%d, want %x/%d", res.ArtifactSHA256, res.Size, art, out.Len())
	}
	if res.KeyID != KeyID(&priv.PublicKey) {
		t.Errorf("KeyID = %q", res.KeyID)
	}
	// Device side: unwrap, decrypt, hash, open the checksum.
	sk, err := UnwrapSessionKey(res.SessionKey, &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(sk.NewDecrypter(bytes.NewReader(out.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := zipBytes(t, dir, ZipOptions{})
	if !bytes.Equal(plain, want) {
		t.Fatal("decrypted artifact differs from the deterministic zip")
	}
	sum := sha256.Sum256(plain)
	if res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 = %s, want %x", res.SHA256, sum)
	}
	if err := VerifyChecksum(&priv.PublicKey, res.Checksum, sum[:]); err != nil {
		t.Errorf("VerifyChecksum: %v", err)
	}
	if int64(len(plain)) != res.ZipSize || res.Size != (res.ZipSize/16+1)*16 {
		t.Errorf("sizes: zip %d (plain %d), artifact %d", res.ZipSize, len(plain), res.Size)
	}
}

// With DeriveSession, Package is reproducible: the same build, key, app and version give
// the same bytes and session key; another version gives another key; the artifact still
// decrypts to the deterministic zip and the temporary plain zip is removed.
func TestPackageDerivedSession(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	dir := sampleTree(t)
	run := func(version string) (*Result, []byte) {
		tmp := t.TempDir()
		var out bytes.Buffer
		res, err := Package(t.Context(), dir, &out, Options{Key: priv, DeriveSession: &SessionContext{AppID: "com.example", Version: version}, TempDir: tmp})
		if err != nil {
			t.Fatal(err)
		}
		if des, _ := os.ReadDir(tmp); len(des) != 0 {
			t.Errorf("temporary files left: %v", des)
		}
		return res, out.Bytes()
	}
	r1, a1 := run("1.0.0")
	r2, a2 := run("1.0.0")
	if !bytes.Equal(a1, a2) || r1.SessionKey != r2.SessionKey || r1.Checksum != r2.Checksum {
		t.Fatal("derived packaging is not reproducible")
	}
	want, err := DeriveSessionKey(priv, "com.example", "1.0.0", r1.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if *r1.Session != *want {
		t.Error("Session is not DeriveSessionKey of the zip's hash")
	}
	r3, _ := run("1.0.1")
	if r3.SessionKey == r1.SessionKey {
		t.Error("another version derived the same session key")
	}
	sk, err := UnwrapSessionKey(r1.SessionKey, &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(sk.NewDecrypter(bytes.NewReader(a1)))
	if err != nil {
		t.Fatal(err)
	}
	if zb, _ := zipBytes(t, dir, ZipOptions{}); !bytes.Equal(plain, zb) {
		t.Error("derived artifact does not decrypt to the deterministic zip")
	}
	art := sha256.Sum256(a1)
	if r1.ArtifactSHA256 != hex.EncodeToString(art[:]) || r1.Size != int64(len(a1)) {
		t.Errorf("artifact sha/size = %s/%d", r1.ArtifactSHA256, r1.Size)
	}
}
