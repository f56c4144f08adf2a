package relay

import (
	"bytes"
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

// writeJSON writes v as a compact JSON body (no HTML escaping, so URLs keep their '&') with
// status. Nothing is written once the request's context is done: the client has gone.
func writeJSON(c *gin.Context, status int, v any) {
	if c.Request.Context().Err() != nil {
		c.Abort()
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer { // large answers (manifest sizes) are not kept
			bufPool.Put(buf)
		}
	}()
	if r, ok := v.(*channel.UpdateResponse); ok {
		// The hot path: no reflection.
		buf.Write(appendUpdateResponse(buf.AvailableBuffer(), r))
		c.Data(status, "application/json; charset=utf-8", buf.Bytes())
		return
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		loggerFrom(c.Request.Context(), nil).ErrorContext(c.Request.Context(), "encode response", "error", err)
		c.Status(http.StatusInternalServerError)
		return
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	c.Data(status, "application/json; charset=utf-8", body)
}

// readBody reads the (already size-limited) request body. A body over the limit answers
// 413 and returns ok=false.
func readBody(c *gin.Context) (body []byte, ok bool) {
	body, err := readAllSized(c.Request.Body, c.Request.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeTooLarge(c, mbe.Limit, channel.KindFailed)
			return nil, false
		}
		writeJSON(c, http.StatusBadRequest, errorBody{Error: "invalid_body", Message: "Could not read the request body", Kind: channel.KindFailed})
		return nil, false
	}
	return body, true
}

// writeRequestError answers a refused device request with 400 and the plugin's error shape.
func writeRequestError(c *gin.Context, err error, kind string) {
	var re *requestError
	if !errors.As(err, &re) {
		re = invalidJSON("%v", err)
	}
	writeJSON(c, http.StatusBadRequest, errorBody{Error: re.Code, Message: re.Message, Kind: kind})
}
