package relayclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds on what is read of the relay's answers.
const (
	// MaxAnswer bounds a successful answer (a registration echoes the bundle with its delta
	// manifest, which may hold tens of thousands of files).
	MaxAnswer = 16 << 20
	// MaxErrorBody bounds what is read of a refusal's body.
	MaxErrorBody = 64 << 10
)

// maxSnippet bounds the part of a body that is not an [ErrorBody] kept as a message.
const maxSnippet = 200

// Error is a non-2xx answer of the relay.
type Error struct {
	// Method and URL name the request; URL carries no credentials.
	Method string
	URL    string
	// StatusCode is the answer's HTTP status.
	StatusCode int
	// Code is the body's "error" (empty when the body is not an [ErrorBody]).
	Code string
	// Message is the body's "message", or the start of a body that is not an [ErrorBody].
	Message string
	// RetryAfter is the answer's Retry-After (0 when absent or in the past).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Method != "" || e.URL != "" {
		fmt.Fprintf(&b, "%s %s: ", e.Method, e.URL)
	}
	fmt.Fprintf(&b, "%d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else {
		b.WriteString(" " + http.StatusText(e.StatusCode))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is reports whether target is an *Error whose set fields (StatusCode, Code) equal e's, so
// errors.Is(err, &Error{StatusCode: http.StatusConflict}) or
// errors.Is(err, &Error{Code: "version_conflict"}) tell a refusal apart.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || (t.StatusCode == 0 && t.Code == "") {
		return false
	}
	return (t.StatusCode == 0 || t.StatusCode == e.StatusCode) && (t.Code == "" || t.Code == e.Code)
}

// Temporary reports whether a later retry may succeed: 429 and 5xx.
func (e *Error) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// CheckResponse returns nil for a 2xx answer and an *Error for any other, reading at most
// [MaxErrorBody] bytes of its body (the caller still closes it).
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	if req := resp.Request; req != nil {
		e.Method = req.Method
		if req.URL != nil {
			e.URL = redact(req.URL)
		}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	if body, ok := ParseError(raw); ok {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Message = snippet(raw)
	}
	return e
}

// ParseError decodes raw as an [ErrorBody]; ok is false unless it is a JSON object with a
// non-empty "error".
func ParseError(raw []byte) (body ErrorBody, ok bool) {
	if err := json.Unmarshal(raw, &body); err != nil || body.Code == "" {
		return ErrorBody{}, false
	}
	return body, true
}

// snippet returns the start of a body that is not an ErrorBody, trimmed, for a message.
func snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > maxSnippet {
		s = strings.ToValidUTF8(s[:maxSnippet], "") + "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact returns u without its user information, for errors.
func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// redactError removes the credentials of the request's URL from a transport error.
func redactError(err error, u *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact(u)
	}
	return err
}
