package sign

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"
)

// publicGoodRoot is a snapshot of the public-good trusted_root.json (as shipped by
// sigstore/sigstore v1.10.11), used when the TUF repository cannot be reached.
//
//go:embed roots/public-good-trusted_root.json
var publicGoodRoot []byte

// githubTUFRoot is the TUF trust anchor of GitHub's Sigstore instance (tuf-repo.github.com).
//
//go:embed roots/github-tuf-root.json
var githubTUFRoot []byte

const githubTUFURL = "https://tuf-repo.github.com"

// maxTrustedRoot bounds a trusted root file read from disk.
const maxTrustedRoot = 8 << 20

// loadTrustedRoot reads path (JSON or gh's JSONL, first root used) or, with no path, fetches the
// public-good root (or GitHub's with private) through TUF, falling back to the embedded snapshot
// for public good.
func loadTrustedRoot(ctx context.Context, path string, private bool, log *slog.Logger) (*root.TrustedRoot, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read trusted root: %w", err)
		}
		return ParseTrustedRoot(b)
	}
	if private {
		opts := tuf.DefaultOptions().WithContext(ctx)
		opts.Root = githubTUFRoot
		opts.RepositoryBaseURL = githubTUFURL
		tr, err := root.FetchTrustedRootWithOptions(opts)
		if err != nil {
			return nil, fmt.Errorf("fetch GitHub's trusted root from %s (or pass a trusted root file): %w", githubTUFURL, err)
		}
		return tr, nil
	}
	tr, err := root.FetchTrustedRootWithOptions(tuf.DefaultOptions().WithContext(ctx))
	if err == nil {
		return tr, nil
	}
	log.WarnContext(ctx, "public-good TUF unreachable; using the embedded trusted root snapshot", "error", err)
	return ParseTrustedRoot(publicGoodRoot)
}

// ParseTrustedRoot parses a trusted_root.json, or the first root of a JSONL file as gh writes them.
func ParseTrustedRoot(b []byte) (*root.TrustedRoot, error) {
	if len(b) > maxTrustedRoot {
		return nil, fmt.Errorf("trusted root is larger than %d bytes", maxTrustedRoot)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("trusted root is empty")
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err == nil {
		return tr, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxTrustedRoot)
	if sc.Scan() {
		if tr, err2 := root.NewTrustedRootFromJSON(sc.Bytes()); err2 == nil {
			return tr, nil
		}
	}
	return nil, fmt.Errorf("parse trusted root: %w", err)
}
