package archive

import (
	"context"
	"crypto/rsa"
	"errors"
	"io"
)

// DeltaFile is one manifest entry.
type DeltaFile struct {
	FileName string // manifest file_name, relative, "/"-separated, ".br" suffix when Brotli-compressed
	Object   string // content-addressed object name, e.g. "files/<hex sha256 of stored bytes>"
	FileHash string // hex sha256 of the original file; V3-encrypted when encrypting
	Size     int64  // size of the stored (compressed/encrypted) bytes
}

// DeltaOptions controls [Delta].
type DeltaOptions struct {
	Key     *rsa.PrivateKey
	Session *SessionKey
	Zip     ZipOptions
}

// Delta walks dir with the same file policy as WriteZip and calls put for each non-empty file with its stored bytes.
func Delta(ctx context.Context, dir string, opts DeltaOptions, put func(f DeltaFile, body io.Reader) error) ([]DeltaFile, error) {
	return nil, errors.New("not implemented")
}
