package pipeline

import (
	"context"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/archive"
)

// packed is the archive written to disk and what the relay and the summary need about it.
type packed struct {
	Path string
	archive.Result
}

// pack packages dir into path with [archive.Package]. With a key, the session key is derived
// from the private key, the app, the version and the zip's SHA-256
// ([archive.Options.DeriveSession]), so the same build gives byte-identical output on a
// re-run: the upload is then reused instead of conflicting, and provenance digests
// reproduce. A random key per run would make every re-run a different file under the same
// immutable name. `ferry pack --app --version --key` produces the same bytes.
//
// With session set (a delta key epoch's), the zip is encrypted with it instead, in one pass:
// the update answer carries one session key, which must open the delta files too. With
// listing set (delta on), the build is not walked again and the listing records each file's
// SHA-256 for the delta files ([archive.Options.Listing]).
func pack(ctx context.Context, dir, path, appID, version string, key *rsa.PrivateKey, session *archive.SessionKey, zo archive.ZipOptions, listing *archive.Listing) (*packed, error) {
	opts := archive.Options{Key: key, Zip: zo, Listing: listing}
	if key != nil {
		opts.DeriveSession = &archive.SessionContext{AppID: appID, Version: version}
		opts.TempDir = filepath.Dir(path)
		opts.Session = session
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := archive.Package(ctx, dir, f, opts)
	if err != nil {
		return nil, fmt.Errorf("zip %s: %w", dir, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &packed{Path: path, Result: *res}, nil
}
