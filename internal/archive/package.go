package archive

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Options controls [Package]. The zero value makes an unencrypted bundle.
type Options struct {
	// Key is the publisher's private key (.capgo_key_v2). Nil makes an unencrypted bundle
	// whose Checksum is the plain SHA-256; devices without a publicKey need that.
	Key *rsa.PrivateKey
	// Zip controls the archive (entry time, hidden files, workers).
	Zip ZipOptions
	// DeriveSession, with Key, derives the session key from the private key, the app, the
	// version and the plain zip's SHA-256 ([DeriveSessionKey]) instead of drawing a random
	// one, so the same build packaged again gives byte-identical output (what the action
	// publishes). The plain zip is then written to a temporary file in TempDir, hashed, and
	// encrypted in a second pass; memory stays bounded. Nil keeps a random session key.
	DeriveSession *SessionContext
	// Session, with Key, is the session key to encrypt with: a delta key epoch's
	// ([Epoch.Session]), which the bundle's delta files share. It takes precedence over
	// DeriveSession; the output is deterministic and written in one pass.
	Session *SessionKey
	// TempDir holds the temporary plain zip when DeriveSession is set; "" means os.TempDir.
	TempDir string
	// Progress, if set, is called from Package's goroutine after each chunk of input is
	// written, with the input bytes done and the total.
	Progress func(doneBytes, totalBytes int64)
	// Listing, when set, is the build ([Scan] of dir with Zip's file policy): Package zips
	// the files it lists instead of walking dir again, and records in it the SHA-256 of each
	// file as zipped, which a [Delta] given the same listing uses instead of reading the file
	// again. The zip's bytes are the same.
	Listing *Listing
}

// Result describes a packaged bundle: what the action registers with the relay.
type Result struct {
	Checksum       string      // V3 (encrypted) or plain sha256 hex (unencrypted): what devices verify
	SHA256         string      // hex sha256 of the plain zip
	ArtifactSHA256 string      // hex sha256 of the bytes written to out (the published file; what gets signed)
	Size           int64       // bytes written to out
	ZipSize        int64       // size of the plain zip
	SessionKey     string      // "b64(iv):b64(wrapped)"; "" when unencrypted
	KeyID          string      // key_id of the public key; "" when unencrypted
	Files          int         // regular files in the zip
	InputBytes     int64       // total size of those files
	Session        *SessionKey // nil when unencrypted; reuse it for the bundle's delta files
	Warnings       []string    // problems devices cope with, to show ([ZipStats.Warnings])
}

// Package zips dir deterministically ([WriteZip]), hashes the plain zip and, when opts.Key
// is set, encrypts it with a fresh session key, all in one streaming pass, writing the
// artifact to out (with opts.DeriveSession, a derived key in two passes). out is not closed. On error, out may hold a partial artifact that the
// caller must discard. Package blocks until done and honours ctx.
func Package(ctx context.Context, dir string, out io.Writer, opts Options) (*Result, error) {
	aw := &countHashWriter{w: out, sum: sha256.New()}
	if opts.Key == nil {
		st, err := writeZip(ctx, aw, dir, opts.Zip, opts.Progress, opts.Listing)
		if err != nil {
			return nil, err
		}
		return &Result{
			Checksum: st.SHA256, SHA256: st.SHA256, ArtifactSHA256: st.SHA256,
			Size: aw.n, ZipSize: st.ZipSize, Files: st.Files, InputBytes: st.InputBytes, Warnings: st.Warnings,
		}, nil
	}
	if err := checkSize(&opts.Key.PublicKey); err != nil {
		return nil, err
	}
	sk := opts.Session
	if sk == nil && opts.DeriveSession != nil {
		return packageDerived(ctx, dir, aw, opts)
	}
	if sk == nil {
		var err error
		if sk, err = NewSessionKey(); err != nil {
			return nil, err
		}
	}
	wrapped, err := sk.Wrap(opts.Key)
	if err != nil {
		return nil, err
	}
	enc := sk.NewEncrypter(aw)
	st, err := writeZip(ctx, enc, dir, opts.Zip, opts.Progress, opts.Listing)
	if err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write encrypted archive: %w", err)
	}
	return encryptedResult(opts, sk, wrapped, st, aw)
}

// encryptedResult describes an encrypted artifact: st is the plain zip's, aw counted and
// hashed what was written out, wrapped is sk wrapped with opts.Key.
func encryptedResult(opts Options, sk *SessionKey, wrapped string, st *ZipStats, aw *countHashWriter) (*Result, error) {
	sum, err := hex.DecodeString(st.SHA256)
	if err != nil {
		return nil, err
	}
	checksum, err := ChecksumV3(opts.Key, sum)
	if err != nil {
		return nil, err
	}
	return &Result{
		Checksum:       checksum,
		SHA256:         st.SHA256,
		ArtifactSHA256: hex.EncodeToString(aw.sum.Sum(nil)),
		Size:           aw.n,
		ZipSize:        st.ZipSize,
		SessionKey:     wrapped,
		KeyID:          KeyID(&opts.Key.PublicKey),
		Files:          st.Files,
		InputBytes:     st.InputBytes,
		Session:        sk,
		Warnings:       st.Warnings,
	}, nil
}
