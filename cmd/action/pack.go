package main

import (
	"context"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/archive"
)

// packed is the archive written to disk and what the relay and the summary need about it.
type packed struct {
	Path           string
	Checksum       string // what devices verify: V3 checksum (encrypted) or SHA256
	SHA256         string // plain zip
	ArtifactSHA256 string // the published file (what is signed)
	Size           int64  // published file
	ZipSize        int64
	SessionKey     string
	KeyID          string
	Files          int
	InputBytes     int64
	Session        *archive.SessionKey
}

// pack zips dir deterministically into dir/<name>.plain.zip and, with a key, encrypts it into
// path. The session key is derived from the private key, the app, the version and the zip's
// SHA-256 (HKDF-SHA256), so the same build gives byte-identical output on a re-run: the
// upload is then reused instead of conflicting, and provenance digests reproduce. A random
// key per run would make every re-run a different file under the same immutable name.
func pack(ctx context.Context, dir, path, appID, version string, key *rsa.PrivateKey, zo archive.ZipOptions) (*packed, error) {
	if key == nil {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		st, err := archive.WriteZip(ctx, f, dir, zo)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", dir, err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return &packed{Path: path, Checksum: st.SHA256, SHA256: st.SHA256, ArtifactSHA256: st.SHA256, Size: st.ZipSize,
			ZipSize: st.ZipSize, Files: st.Files, InputBytes: st.InputBytes}, nil
	}

	plain, err := os.CreateTemp(filepath.Dir(path), "ferry-plain-*.zip")
	if err != nil {
		return nil, err
	}
	defer os.Remove(plain.Name())
	defer plain.Close()
	st, err := archive.WriteZip(ctx, plain, dir, zo)
	if err != nil {
		return nil, fmt.Errorf("zip %s: %w", dir, err)
	}
	sk, err := deriveSession(key, appID, version, st.SHA256)
	if err != nil {
		return nil, err
	}
	wrapped, err := sk.Wrap(key)
	if err != nil {
		return nil, err
	}
	sum, _ := hex.DecodeString(st.SHA256)
	checksum, err := archive.ChecksumV3(key, sum)
	if err != nil {
		return nil, err
	}
	if _, err := plain.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	enc := sk.NewEncrypter(cw)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := io.Copy(enc, plain); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	return &packed{
		Path: path, Checksum: checksum, SHA256: st.SHA256, ArtifactSHA256: hexSum(h), Size: cw.n,
		ZipSize: st.ZipSize, SessionKey: wrapped, KeyID: archive.KeyID(&key.PublicKey),
		Files: st.Files, InputBytes: st.InputBytes, Session: sk,
	}, nil
}

// deriveSession derives the AES-128 key and IV of one bundle from the publisher's private
// key (the secret), bound to the app, version and content.
func deriveSession(key *rsa.PrivateKey, appID, version, zipSHA256 string) (*archive.SessionKey, error) {
	info := "ferry bundle session key v1\x00" + appID + "\x00" + version + "\x00" + zipSHA256
	okm, err := hkdf.Key(sha256.New, x509.MarshalPKCS1PrivateKey(key), []byte("ferry/session"), info, 32)
	if err != nil {
		return nil, fmt.Errorf("derive session key: %w", err)
	}
	var sk archive.SessionKey
	copy(sk.Key[:], okm[:16])
	copy(sk.IV[:], okm[16:])
	return &sk, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
