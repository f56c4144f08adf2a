package sign_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
)

// fakeAttestationsAPI imitates POST /repos/{owner}/{repo}/attestations.
func fakeAttestationsAPI(t *testing.T, status int) (*httptest.Server, *[]json.RawMessage) {
	t.Helper()
	var got []json.RawMessage
	mux := http.NewServeMux()
	mux.HandleFunc("POST /repos/{owner}/{repo}/attestations", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gh-token" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Bad credentials"}`)
			return
		}
		var body struct {
			Bundle json.RawMessage `json:"bundle"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Bundle) == 0 {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"message":"bundle is required"}`)
			return
		}
		if status != http.StatusCreated {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"message":"Resource not accessible by integration"}`)
			return
		}
		got = append(got, body.Bundle)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":1}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &got
}

func TestUploadAttestation(t *testing.T) {
	t.Parallel()
	f := keyFixture(t, "ecdsa", ecdsaPEM(t), nil, nil)
	_, prov := signBoth(t, f, []byte("archive"))

	srv, got := fakeAttestationsAPI(t, http.StatusCreated)
	if err := sign.UploadAttestation(t.Context(), srv.Client(), srv.URL, "acme/mobile-app", "gh-token", prov); err != nil {
		t.Fatalf("UploadAttestation: %v", err)
	}
	if len(*got) != 1 || !json.Valid((*got)[0]) || !strings.Contains(string((*got)[0]), "dsseEnvelope") {
		t.Fatalf("stored bundles = %s", *got)
	}

	forbidden, _ := fakeAttestationsAPI(t, http.StatusForbidden)
	tests := []struct {
		name, url, repo, token string
		bundle                 []byte
		want                   string
		wantErr                error
	}{
		{"no permission", forbidden.URL, "acme/mobile-app", "gh-token", prov, "attestations: write", nil},
		{"bad token", srv.URL, "acme/mobile-app", "wrong", prov, "Bad credentials", nil},
		{"no token", srv.URL, "acme/mobile-app", "", prov, "no GitHub token", nil},
		{"bad repo", srv.URL, "acme", "gh-token", prov, "not owner/name", nil},
		{"not JSON", srv.URL, "acme/mobile-app", "gh-token", []byte("{"), "not JSON", sign.ErrInvalidBundle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := sign.UploadAttestation(t.Context(), nil, tc.url, tc.repo, tc.token, tc.bundle)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("UploadAttestation = %v, want it to mention %q", err, tc.want)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("UploadAttestation = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if len(*got) != 1 {
		t.Errorf("failed uploads stored something: %d bundles", len(*got))
	}
}
