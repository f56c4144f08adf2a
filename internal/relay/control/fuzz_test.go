package control

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// FuzzParseBundle feeds arbitrary registration bodies to the strict parser: it must never
// panic, and whatever it accepts must validate again after a JSON round trip.
func FuzzParseBundle(f *testing.F) {
	for _, b := range []*channel.Bundle{testBundle("1.0.0", commitA), encryptedBundle("2.0.0-beta.1", commitB)} {
		f.Add(mustJSONF(f, b))
	}
	f.Add([]byte(`{"app_id":"com.example.app","version":"1.0.0","url":"https://x/y","checksum":"","sha256":"","size":1}`))
	f.Add([]byte(`{"manifest":[{"file_name":"../a","file_hash":"00","download_url":"https://x"}]}`))
	f.Add([]byte(`{"app_id":"a"} {"app_id":"b"}`))
	f.Add([]byte(`{"native":">=1 <2 || ^3.1","version":"v1.0.0+build.7"}`))
	f.Add([]byte(`null`))
	signed := testBundle("1.0.1", commitA)
	idx := int64(7)
	signed.Signature = &channel.Signature{Mode: "keyless", Identity: "https://github.com/a/b/.github/workflows/r.yml@refs/heads/main",
		Issuer: "https://token.actions.githubusercontent.com", LogIndex: &idx, IntegratedTime: time.Unix(1764494102, 0).UTC(), Verified: true}
	f.Add(mustJSONF(f, signed))
	f.Add([]byte(`{"signature":{"mode":"key","key_hint":"x","log_index":-1,"integrated_time":"2026-01-01T00:00:00+02:00"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseBundle(body)
		if err != nil {
			return
		}
		if err := validateBundle(b); err != nil {
			t.Fatalf("accepted bundle does not validate: %v", err)
		}
		again, err := parseBundle(mustJSON(t, b))
		if err != nil {
			t.Fatalf("round trip of an accepted bundle refused: %v", err)
		}
		if diff := cmp.Diff(b, again); diff != "" {
			t.Fatalf("round trip changed the bundle (-first +second):\n%s", diff)
		}
	})
}

// FuzzVerifyHMAC checks that only the exact signature of the body and timestamp passes.
func FuzzVerifyHMAC(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"app_id":"com.example.app"}`)
	f.Add(relayclient.Sign([]byte(hmacSecret), now, body), "1800000000", body)
	f.Add("sha256=zz", "1800000000", body)
	f.Add("sha256=", "-1", []byte{})
	f.Add("sha1=abcd", "99999999999999999999", body)
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		_, err := verifyHMAC([]*sharedKey{{secret: []byte(hmacSecret), global: true, env: hmacEnv}}, sig, ts, body, now)
		if err != nil {
			return
		}
		m := hmac.New(sha256.New, []byte(hmacSecret))
		m.Write([]byte(ts + "."))
		m.Write(body)
		if !strings.EqualFold(sig, "sha256="+hex.EncodeToString(m.Sum(nil))) {
			t.Fatalf("verifyHMAC accepted %q for ts %q", sig, ts)
		}
	})
}

// FuzzPlanPush feeds arbitrary authenticated push payloads to the parser and planner: no
// panic, and every planned action names a configured channel of an app of the pushed
// repository, for a tag, with a full commit id unless the tag was deleted.
func FuzzPlanPush(f *testing.F) {
	for _, name := range []string{"push_tag_created.json", "push_tag_moved.json", "push_tag_deleted.json", "push_annotated_tag.json", "push_branch.json", "ping.json"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"ref":"refs/tags/channel/../../x","repository":{"full_name":"ACME/Mobile-App"},"after":"` + commitA + `"}`))
	f.Add([]byte(`{"ref":"refs/tags/v1","repository":{"full_name":"acme/mobile-app"},"deleted":true}`))
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		f.Fatal(err)
	}
	a, err := New(f.Context(), Options{Config: cfg, Store: noStore{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := parsePush(payload)
		if err != nil {
			return
		}
		actions, reason, err := a.planPush(ev, &sharedKey{global: true, env: webhookEnv})
		if err != nil {
			t.Fatalf("a push signed with the relay-wide secret refused: %v", err)
		}
		if len(actions) == 0 && reason == "" {
			t.Fatal("nothing planned and no reason given")
		}
		for _, act := range actions {
			if !strings.EqualFold(act.App.Repository, ev.GetRepo().GetFullName()) {
				t.Fatalf("action for app %s of %s from a push to %s", act.App.ID, act.App.Repository, ev.GetRepo().GetFullName())
			}
			if _, ok := act.App.Channels[act.Channel]; !ok {
				t.Fatalf("action names unconfigured channel %q", act.Channel)
			}
			if !strings.HasPrefix(act.Ref, "refs/tags/") {
				t.Fatalf("action for non-tag ref %q", act.Ref)
			}
			if !act.Deleted && !isHex(act.Commit, 40) && !isHex(act.Commit, 64) {
				t.Fatalf("action with commit %q", act.Commit)
			}
		}
	})
}

// FuzzWebhook drives the whole webhook endpoint, signature included, on a real bbolt store
// with arbitrary event names and payloads: any answer but a 5xx is fine, and a refused
// delivery must not have changed the store.
func FuzzWebhook(f *testing.F) {
	for _, s := range []struct{ event, file string }{{"push", "push_tag_created.json"}, {"push", "push_tag_deleted.json"}, {"push", "push_tag_moved.json"}, {"ping", "ping.json"}, {"push", "push_branch.json"}} {
		raw, err := os.ReadFile(filepath.Join("testdata", s.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.event, "d-"+s.file, raw)
	}
	f.Add("push", "d", []byte(`{"ref":"refs/tags/v1","repository":{"full_name":"acme/mobile-app"},"head_commit":{"id":"`+strings.Repeat("A", 40)+`"}}`))
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		f.Fatal(err)
	}
	st := newBoltTB(f)
	a, err := New(f.Context(), Options{Config: cfg, Store: st, WebhookSecret: hookSecret})
	if err != nil {
		f.Fatal(err)
	}
	engine := gin.New()
	a.Mount(engine)
	f.Fuzz(func(t *testing.T, event, delivery string, payload []byte) {
		req := httptest.NewRequestWithContext(t.Context(), "POST", "/webhooks/github", bytes.NewReader(payload))
		for k, v := range githubHeaders(event, delivery, hookSecret, payload) {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		engine.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for event %q: %s", w.Code, event, w.Body)
		}
		if w.Code != http.StatusOK {
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" {
				t.Fatalf("refusal without {error, message}: %s", w.Body)
			}
		}
	})
}

func mustJSONF(f *testing.F, v any) []byte {
	f.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// noStore is a Store for tests that must not reach one.
type noStore struct{ Store }

// FuzzOIDCPrecheck feeds arbitrary bearer tokens to the checks that read a token's header
// and claims before its signature is verified: they must never panic, never accept a token
// whose claims they cannot read, and never ask the issuer anything (the verifier has no
// client to ask with).
func FuzzOIDCPrecheck(f *testing.F) {
	now := time.Unix(1763980000, 0)
	enc := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	hdr := enc(`{"alg":"RS256","kid":"k"}`)
	f.Add(hdr + "." + enc(`{"iss":"https://issuer","aud":"aud","exp":1763980300,"iat":1763980000}`) + ".sig")
	f.Add(hdr + "." + enc(`{"iss":"https://issuer","aud":["x","aud"],"exp":1.7639803e9,"iat":"1763980000"}`) + ".sig")
	f.Add(hdr + "." + enc(`{"iss":"https://issuer","aud":"aud","exp":99999999999999,"iat":-1}`) + ".")
	f.Add("not.a.jwt")
	f.Add("..")
	v := newOIDCVerifier("https://issuer", "aud", nil, func() time.Time { return now })
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := v.precheck(tok)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
				t.Fatalf("precheck(%q) = %v, want a 401 httpError", tok, err)
			}
			return
		}
		parts := strings.Split(tok, ".")
		var cl unverifiedClaims
		if len(parts) != 3 || decodeSegment(parts[1], &cl) != nil {
			t.Fatalf("precheck accepted %q, whose claims cannot be read", tok)
		}
		exp, _ := unixClaim(cl.Expiry)
		iat, _ := unixClaim(cl.IssuedAt)
		if cl.Issuer != "https://issuer" || !audienceHas(cl.Audience, "aud") || !exp.After(now) || iat.After(now.Add(OIDCClockSkew)) || now.Sub(iat) > OIDCMaxTokenAge {
			t.Fatalf("precheck accepted %q with claims %+v", tok, cl)
		}
	})
}

// FuzzParsePreflight feeds arbitrary preflight bodies to the strict parser: it must never
// panic, what it accepts must hold a valid version and checksum, and it must be accepted
// unchanged after a JSON round trip.
func FuzzParsePreflight(f *testing.F) {
	f.Add([]byte(`{"app_id":"com.example.app","version":"1.0.0","checksum":"` + strings.Repeat("a", 64) + `","commit":"` + commitA + `","ref":"refs/heads/main"}`))
	f.Add([]byte(`{"app_id":"com.example.app","version":"1.0.0","checksum":"` + strings.Repeat("b", 512) + `","channel":"beta","native":">=2","register_only":true}`))
	f.Add([]byte(`{"app_id":"a","version":"1","checksum":"x","unknown":1}`))
	f.Add([]byte(`{"app_id":"a"} {"app_id":"b"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parsePreflight(body)
		if err != nil {
			return
		}
		if err := validVersion(r.Version); err != nil {
			t.Fatalf("accepted a preflight with an invalid version %q: %v", r.Version, err)
		}
		if !isHex(r.Checksum, 64) && !isHex(r.Checksum, 512) {
			t.Fatalf("accepted a preflight with checksum %q", r.Checksum)
		}
		again, err := parsePreflight(mustJSON(t, r))
		if err != nil {
			t.Fatalf("round trip of an accepted preflight refused: %v", err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip changed the preflight (-first +second):\n%s", diff)
		}
	})
}
