package signtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

func TestTrustedRootIsJSONL(t *testing.T) {
	t.Parallel()
	for _, org := range []string{signtest.OrgPublicGood, signtest.OrgGitHub} {
		h := signtest.New(t, signtest.Options{Org: org})
		b, err := os.ReadFile(h.TrustedRootPath)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
			t.Errorf("%s: trusted root is not one newline-terminated line (gh skips an unterminated last line)", org)
		}
		var tr struct {
			CAs []struct {
				Subject struct{ Organization string } `json:"subject"`
			} `json:"certificateAuthorities"`
			Tlogs  []json.RawMessage `json:"tlogs"`
			CTlogs []json.RawMessage `json:"ctlogs"`
			TSAs   []json.RawMessage `json:"timestampAuthorities"`
		}
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatal(err)
		}
		if len(tr.CAs) != 1 || tr.CAs[0].Subject.Organization != org || len(tr.Tlogs) != 1 || len(tr.CTlogs) != 1 || len(tr.TSAs) != 1 {
			t.Errorf("%s: trusted root = %s", org, b)
		}
		if _, err := sign.ParseTrustedRoot(b); err != nil {
			t.Errorf("%s: ParseTrustedRoot: %v", org, err)
		}
	}
}

func TestServicesRefuseBadRequests(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{})
	tests := []struct {
		name, url, auth, body string
		want                  int
	}{
		{"fulcio without token", h.FulcioURL + "/api/v2/signingCert", "", `{}`, http.StatusUnauthorized},
		{"fulcio bad proof of possession", h.FulcioURL + "/api/v2/signingCert", "Bearer " + h.Token(h.Claims()),
			`{"publicKeyRequest":{"publicKey":{"algorithm":"ECDSA","content":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwrkBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==\n-----END PUBLIC KEY-----\n"},"proofOfPossession":"AAAA"}}`,
			http.StatusBadRequest},
		{"rekor wrong path", h.RekorURL + "/api/v2/log/entries", "", `{}`, http.StatusNotFound},
		{"rekor garbage entry", h.RekorURL + "/api/v1/log/entries", "", `{"kind":"nope"}`, http.StatusBadRequest},
		{"tsa garbage", h.TSAURL, "", "not a timestamp request", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("POST %s = %d, want %d", tc.url, resp.StatusCode, tc.want)
			}
		})
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{})
	c := h.Claims()
	c.Ref = "refs/heads/main"
	h.SetClaims(c)
	tok, err := sign.ActionsIDToken(func(k string) string {
		return map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": h.TokenURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": h.TokenRequestToken}[k]
	}, nil)(t.Context(), "https://relay.example")
	if err != nil {
		t.Fatal(err)
	}
	got, err := sign.ParseClaims(tok)
	if err != nil || got.Ref != "refs/heads/main" {
		t.Errorf("claims = %+v, %v", got, err)
	}
	payload := strings.Split(tok, ".")[1]
	if !strings.Contains(decode(t, payload), `"aud":"https://relay.example"`) {
		t.Errorf("token audience not set: %s", decode(t, payload))
	}
}
