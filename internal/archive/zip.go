package archive

import (
	"context"
	"io"
	"time"
)

// ZipOptions controls how a build directory becomes a zip.
type ZipOptions struct {
	ModTime       time.Time // entry time; zero = 1980-01-01T00:00:00Z
	IncludeHidden bool      // include dot-files/dirs (default: skipped; .well-known always included)
}

// ModTimeFromEpoch parses a SOURCE_DATE_EPOCH value.
func ModTimeFromEpoch(sourceDateEpoch string) (time.Time, error) {
	return time.Time{}, errNotImplemented
}

// ZipStats describes a written zip.
type ZipStats struct {
	Files      int
	InputBytes int64
	ZipSize    int64
	SHA256     string
}

// WriteZip writes the deterministic zip of dir to w.
func WriteZip(ctx context.Context, w io.Writer, dir string, opts ZipOptions) (*ZipStats, error) {
	return nil, errNotImplemented
}
