package relayclient_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestCheckResponse: a refusal becomes an *Error with the body's code and message, or the
// start of a body that is not an error body, and the Retry-After; bodies are read only up to
// a bound.
func TestCheckResponse(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 4<<20)
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		want       relayclient.Error
		wantString string
	}{
		{"error body", 404, nil, `{"error":"bundle_not_found","message":"app \"a\" has no bundle \"9\""}`,
			relayclient.Error{StatusCode: 404, Code: "bundle_not_found", Message: `app "a" has no bundle "9"`},
			`404 bundle_not_found: app "a" has no bundle "9"`},
		{"retry after seconds", 503, map[string]string{"Retry-After": "5"}, `{"error":"store_unavailable","message":"retry later"}`,
			relayclient.Error{StatusCode: 503, Code: "store_unavailable", Message: "retry later", RetryAfter: 5 * time.Second},
			"503 store_unavailable: retry later"},
		{"retry after in the past", 429, map[string]string{"Retry-After": "Mon, 02 Jan 2006 15:04:05 GMT"}, ``,
			relayclient.Error{StatusCode: 429}, "429 Too Many Requests"},
		{"not an error body", 502, nil, "<html>bad gateway</html>\n",
			relayclient.Error{StatusCode: 502, Message: "<html>bad gateway</html>"}, "502 Bad Gateway: <html>bad gateway</html>"},
		{"huge body", 500, nil, huge,
			relayclient.Error{StatusCode: 500, Message: strings.Repeat("x", 200) + "…"}, "500 Internal Server Error: xxx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			resp, err := srv.Client().Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			err = relayclient.CheckResponse(resp)
			var got *relayclient.Error
			if !errors.As(err, &got) {
				t.Fatalf("CheckResponse = %v, want *Error", err)
			}
			want := tc.want
			want.Method, want.URL = "GET", srv.URL+"/x"
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if s := err.Error(); !strings.HasPrefix(s, "GET "+srv.URL+"/x: "+tc.wantString) {
				t.Errorf("Error() = %q, want it to start with GET <url>: %q", s, tc.wantString)
			}
		})
	}
}

func TestCheckResponseSuccess(t *testing.T) {
	t.Parallel()
	for _, status := range []int{200, 201, 204} {
		if err := relayclient.CheckResponse(&http.Response{StatusCode: status}); err != nil {
			t.Errorf("CheckResponse(%d) = %v", status, err)
		}
	}
}

// TestErrorIs: errors.Is matches an *Error against a template of status and/or code, through
// any wrapping; an empty template matches nothing.
func TestErrorIs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("relay refused the registration: %w", &relayclient.Error{StatusCode: 409, Code: "version_conflict"})
	tests := []struct {
		target *relayclient.Error
		want   bool
	}{
		{&relayclient.Error{StatusCode: 409}, true},
		{&relayclient.Error{Code: "version_conflict"}, true},
		{&relayclient.Error{StatusCode: 409, Code: "version_conflict"}, true},
		{&relayclient.Error{StatusCode: 409, Code: "conflict"}, false},
		{&relayclient.Error{StatusCode: 404}, false},
		{&relayclient.Error{}, false},
	}
	for _, tc := range tests {
		if got := errors.Is(err, tc.target); got != tc.want {
			t.Errorf("errors.Is(%v, %+v) = %v, want %v", err, tc.target, got, tc.want)
		}
	}
}

func TestParseError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw    string
		want   relayclient.ErrorBody
		wantOK bool
	}{
		{`{"error":"unauthorized","message":"send a token"}`, relayclient.ErrorBody{Code: "unauthorized", Message: "send a token"}, true},
		{`{"error":"no_new_version_available","message":"latest","kind":"up_to_date"}`, relayclient.ErrorBody{Code: "no_new_version_available", Message: "latest", Kind: "up_to_date"}, true},
		{`{"message":"no code"}`, relayclient.ErrorBody{}, false},
		{`{"error":7}`, relayclient.ErrorBody{}, false},
		{`not json`, relayclient.ErrorBody{}, false},
	}
	for _, tc := range tests {
		got, ok := relayclient.ParseError([]byte(tc.raw))
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("ParseError(%s) = %+v, %v; want %+v, %v", tc.raw, got, ok, tc.want, tc.wantOK)
		}
	}
}
