package archive

import (
	"bufio"
	"context"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"os"
)

// SessionContext names the bundle a derived session key is bound to ([Options.DeriveSession]).
type SessionContext struct {
	AppID   string
	Version string
}

// DeriveSessionKey derives the AES-128 key and IV of one bundle with HKDF-SHA256 from the
// publisher's private key (the secret), bound to the app, the version and the plain zip's
// SHA-256 (hex). The same inputs always give the same key, so a re-run reproduces the
// published bytes; the salt and info strings are fixed for bundles already published.
func DeriveSessionKey(key *rsa.PrivateKey, appID, version, zipSHA256 string) (*SessionKey, error) {
	info := "ferry bundle session key v1\x00" + appID + "\x00" + version + "\x00" + zipSHA256
	okm, err := hkdf.Key(sha256.New, x509.MarshalPKCS1PrivateKey(key), []byte("ferry/session"), info, 32)
	if err != nil {
		return nil, fmt.Errorf("derive session key: %w", err)
	}
	var sk SessionKey
	copy(sk.Key[:], okm[:16])
	copy(sk.IV[:], okm[16:])
	return &sk, nil
}

// tempBufferSize is the buffer between packageDerived and its temporary file, each way.
const tempBufferSize = 1 << 20

// packageDerived writes the plain zip to a temporary file, derives the session key from its
// hash and encrypts the file into aw.
func packageDerived(ctx context.Context, dir string, aw *countHashWriter, opts Options) (*Result, error) {
	plain, err := os.CreateTemp(opts.TempDir, "ferry-plain-*.zip")
	if err != nil {
		return nil, fmt.Errorf("create temporary zip: %w", err)
	}
	defer os.Remove(plain.Name())
	defer plain.Close()
	// archive/zip writes through a 4 KiB buffer: unbuffered, the temporary file would take
	// one write system call per 4 KiB (and a goroutine handoff when it blocks), several
	// hundred for a typical build (the one-pass path writes through the encrypter's 64 KiB buffer).
	bw := bufio.NewWriterSize(plain, tempBufferSize)
	st, err := writeZip(ctx, bw, dir, opts.Zip, opts.Progress, opts.Listing)
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write temporary zip: %w", err)
	}
	sk, err := DeriveSessionKey(opts.Key, opts.DeriveSession.AppID, opts.DeriveSession.Version, st.SHA256)
	if err != nil {
		return nil, err
	}
	wrapped, err := sk.Wrap(opts.Key)
	if err != nil {
		return nil, err
	}
	if _, err := plain.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read temporary zip: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	enc := sk.NewEncrypter(aw)
	// The struct hides *os.File's WriteTo, which would copy through 32 KiB reads.
	if _, err := io.CopyBuffer(enc, struct{ io.Reader }{plain}, make([]byte, tempBufferSize)); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return encryptedResult(opts, sk, wrapped, st, aw)
}
