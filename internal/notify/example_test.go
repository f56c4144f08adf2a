package notify_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/notify"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// A receiver checks each delivery with the shared secret before trusting it: the
// signature covers X-Ferry-Timestamp, a dot and the raw body, so neither can be changed or
// replayed later than notify.VerifyWindow.
func ExampleVerify() {
	secret := []byte("s3cret") // the value of the receiver's secret_env
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // verify the bytes as received, before decoding
		if err != nil {
			http.Error(w, "cannot read", http.StatusBadRequest)
			return
		}
		if err := notify.Verify(secret, r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Println("verified", r.Header.Get(notify.HeaderEvent), strings.Contains(string(body), `"version":"1.2.0"`))
	})

	// What the relay sends: here a delivery signed by hand, then the same one tampered with.
	body := []byte(`{"id":"4f1c","kind":"promoted","app":"com.example.app","channel":"production","version":"1.2.0"}`)
	for _, b := range [][]byte{body, []byte(strings.Replace(string(body), "1.2.0", "6.6.6", 1))} {
		req := httptest.NewRequest(http.MethodPost, "/ferry", strings.NewReader(string(b)))
		req.Header.Set(notify.HeaderEvent, "promoted")
		relayclient.SetSignature(req.Header, secret, time.Now(), body) // signed over the original body
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// verified promoted true
	// 200
	// 401
}
