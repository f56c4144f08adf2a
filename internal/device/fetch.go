package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/internal/redact"
)

// fetch downloads u into dst the way the plugin's DownloadService does: when dst already
// holds a partial download it asks for the rest with "Range: bytes=N-"; a 206 answer is
// appended, a 200 answer replaces the partial file, and a 416 with a partial file present
// means the file was already complete. It returns the bytes received. Errors wrap code.
func (c *Client) fetch(ctx context.Context, u, dst string, code error) (int64, error) {
	var have int64
	if st, err := os.Stat(dst); err == nil {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, withCode(code, fmt.Errorf("new request: %w", err))
	}
	req.Header.Set("User-Agent", c.UserAgent())
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, withCode(code, fmt.Errorf("get %s: %w", redact.URL(req.URL.String()), err))
	}
	defer resp.Body.Close()
	var f *os.File
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		return 0, nil
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, ok := rangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return 0, withCode(code, fmt.Errorf("get %s: Content-Range %q does not continue at byte %d", redact.URL(req.URL.String()), resp.Header.Get("Content-Range"), have))
		}
		f, err = os.OpenFile(dst, os.O_WRONLY|os.O_APPEND, 0o644)
	case resp.StatusCode == http.StatusOK:
		have = 0
		f, err = os.Create(dst)
	default:
		return 0, withCode(code, fmt.Errorf("get %s: HTTP %d", redact.URL(req.URL.String()), resp.StatusCode))
	}
	if err != nil {
		return 0, withCode(code, fmt.Errorf("open %s: %w", dst, err))
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, MaxDownloadBytes-have+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, withCode(code, fmt.Errorf("download %s: %w", redact.URL(req.URL.String()), err))
	}
	if have+n > MaxDownloadBytes {
		return n, withCode(code, fmt.Errorf("download %s: larger than %d bytes", redact.URL(req.URL.String()), MaxDownloadBytes))
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, withCode(code, fmt.Errorf("download %s: got %d of %d bytes: %w", redact.URL(req.URL.String()), n, resp.ContentLength, io.ErrUnexpectedEOF))
	}
	return n, nil
}

// rangeStart parses the first byte of "bytes start-end/total".
func rangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
