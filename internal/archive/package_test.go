package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
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
