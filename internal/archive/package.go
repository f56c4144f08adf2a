package archive

import (
	"context"
	"crypto/rsa"
	"io"
)

// Options controls [Package].
type Options struct {
	Key      *rsa.PrivateKey // nil: unencrypted bundle, Checksum = plain SHA-256 hex
	Zip      ZipOptions
	Progress func(doneBytes, totalBytes int64) // optional
}

// Result describes a packaged bundle.
type Result struct {
	Checksum       string // V3 (encrypted) or plain sha256 hex (unencrypted): what devices verify
	SHA256         string // hex sha256 of the plain zip
	ArtifactSHA256 string // hex sha256 of the bytes written to out (the published file; what gets signed)
	Size           int64  // bytes written to out
	ZipSize        int64
	SessionKey     string // "" when unencrypted
	KeyID          string // "" when unencrypted
	Files          int
	InputBytes     int64
	Session        *SessionKey // nil when unencrypted; reused for delta files
}

// Package zips dir, hashes and optionally encrypts it, writing the artifact to out.
func Package(ctx context.Context, dir string, out io.Writer, opts Options) (*Result, error) {
	return nil, errNotImplemented
}
