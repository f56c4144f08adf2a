package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// errorBody is the plugin's error shape (docs/protocol.md §1.3(c), §3): every field a string, so
// iOS's strict decoder accepts it. Kind is omitted on the channel endpoints, which have none.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Kind    string `json:"kind,omitempty"`
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest response buffer returned to bufPool.
const maxPooledBuffer = 64 << 10

// jsonContentType is the Content-Type of every JSON answer, shared by all of them (header
// values are only read once set).
var jsonContentType = []string{"application/json; charset=utf-8"}

// respond writes v as a compact JSON body (no HTML escaping, so URLs keep their '&') with
// status, and Content-Type application/json unless the handler set one. Nothing is written
// once ctx is done: the client has gone. Update-check answers take respondUpdate.
func respond(ctx context.Context, w http.ResponseWriter, status int, v any) {
	if ctx.Err() != nil {
		return
	}
	buf := getBuffer()
	defer putBuffer(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		loggerFrom(ctx, nil).ErrorContext(ctx, "encode response", "error", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	writeBody(w, status, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// respondUpdate is respond for an update-check answer, the hot path: no reflection, and r
// does not escape (respond's encoder would move the caller's decision to the heap).
func respondUpdate(ctx context.Context, w http.ResponseWriter, status int, r *channel.UpdateResponse) {
	if ctx.Err() != nil {
		return
	}
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Write(appendUpdateResponse(buf.AvailableBuffer(), r))
	writeBody(w, status, buf.Bytes())
}

func getBuffer() *bytes.Buffer {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer { // large answers (manifest sizes) are not kept
		bufPool.Put(buf)
	}
}

// writeBody writes a JSON answer: status, Content-Type application/json unless the handler
// set one, and body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	if len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON is respond for a Gin handler; it also stops the handler chain once the client
// has gone.
func writeJSON(c *gin.Context, status int, v any) {
	ctx := c.Request.Context()
	if ctx.Err() != nil {
		c.Abort()
		return
	}
	respond(ctx, c.Writer, status, v)
}

// readBody reads the (already size-limited) request body, into buf when it fits (buf may be
// nil). A body over the limit answers 413 and returns ok=false.
func readBody(ctx context.Context, w http.ResponseWriter, r *http.Request, buf []byte) (body []byte, ok bool) {
	body, err := readAllSized(r.Body, r.ContentLength, buf)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeTooLarge(ctx, w, mbe.Limit, channel.KindFailed)
			return nil, false
		}
		respond(ctx, w, http.StatusBadRequest, errorBody{Error: "invalid_body", Message: "Could not read the request body", Kind: channel.KindFailed})
		return nil, false
	}
	return body, true
}

// writeRequestError answers a refused device request with 400 and the plugin's error shape.
func writeRequestError(ctx context.Context, w http.ResponseWriter, err error, kind string) {
	var re *requestError
	if !errors.As(err, &re) {
		re = invalidJSON("%v", err)
	}
	respond(ctx, w, http.StatusBadRequest, errorBody{Error: re.Code, Message: re.Message, Kind: kind})
}
