package access

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewTokenParseToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		text, tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(text, TokenPrefix) || !LooksLikeToken(text) {
			t.Fatalf("token %q does not start with %q", text, TokenPrefix)
		}
		if len(text) != len(TokenPrefix)+12+1+32 {
			t.Errorf("token %q has %d characters, want %d", text, len(text), len(TokenPrefix)+45)
		}
		id, err := ParseToken(text)
		if err != nil || id != tok.ID {
			t.Fatalf("ParseToken(%q) = %q, %v; want %q", text, id, err, tok.ID)
		}
		if tok.Hash != HashToken(text) || !HashEqual(tok.Hash, HashToken(text)) {
			t.Errorf("token record's Hash is not HashToken of its text")
		}
		if strings.Contains(tok.Hash, text) || strings.Contains(tok.Hash, text[len(TokenPrefix)+13:]) {
			t.Errorf("the record carries the secret")
		}
		if seen[tok.ID] || seen[text] {
			t.Fatalf("NewToken repeated itself: %q", text)
		}
		seen[tok.ID], seen[text] = true, true
	}
}

func TestParseTokenMalformed(t *testing.T) {
	t.Parallel()
	text, _, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(strings.TrimPrefix(text, TokenPrefix), "_")
	for name, in := range map[string]string{
		"empty":             "",
		"prefix only":       TokenPrefix,
		"no prefix":         strings.TrimPrefix(text, TokenPrefix),
		"other prefix":      "ferrys_" + id + "_" + secret,
		"upper-case prefix": "FERRY_" + id + "_" + secret,
		"no separator":      TokenPrefix + id + secret,
		"short id":          TokenPrefix + id[1:] + "_" + secret,
		"long id":           TokenPrefix + id + "a_" + secret,
		"short secret":      TokenPrefix + id + "_" + secret[1:],
		"long secret":       TokenPrefix + id + "_" + secret + "a",
		"upper-case id":     TokenPrefix + strings.ToUpper(id) + "_" + secret,
		"digit 0 in id":     TokenPrefix + "0" + id[1:] + "_" + secret,
		"digit 1 in secret": TokenPrefix + id + "_1" + secret[1:],
		"padding":           TokenPrefix + id + "_" + secret[:31] + "=",
		"extra separator":   TokenPrefix + id + "_" + secret[:16] + "_" + secret[17:],
		"trailing newline":  text + "\n",
		"leading space":     " " + text,
		"non-ASCII":         TokenPrefix + id + "_" + secret[:30] + "é",
		"bootstrap-like":    "6f1c0e8a9d2b4c7e",
	} {
		if got, err := ParseToken(in); !errors.Is(err, ErrMalformed) || got != "" {
			t.Errorf("ParseToken(%s: %q) = %q, %v; want ErrMalformed", name, in, got, err)
		}
	}
}

func TestHashEqual(t *testing.T) {
	t.Parallel()
	a := HashToken("ferry_a")
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("HashToken = %q, want 64 hex characters", a)
	}
	if a != HashToken("ferry_a") {
		t.Error("HashToken is not deterministic")
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{a, a, true},
		{a, HashToken("ferry_b"), false},
		{a, a[:63], false},
		{a, a + "0", false},
		{a, strings.ToUpper(a), false},
		{"", "", true},
		{a, "", false},
	} {
		if got := HashEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("HashEqual(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestTokenActive(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		tok  Token
		want bool
	}{
		{"no expiry", Token{}, true},
		{"expires later", Token{ExpiresAt: now.Add(time.Second)}, true},
		{"expires now", Token{ExpiresAt: now}, false},
		{"expired", Token{ExpiresAt: now.Add(-time.Second)}, false},
		{"revoked", Token{RevokedAt: now.Add(-time.Hour)}, false},
		{"revoked later (set in advance)", Token{RevokedAt: now.Add(time.Hour)}, false},
	} {
		if got := tc.tok.Active(now); got != tc.want {
			t.Errorf("%s: Active = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRandomID(t *testing.T) {
	t.Parallel()
	a, err := RandomID(20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RandomID(20)
	if err != nil {
		t.Fatal(err)
	}
	if a == b || len(a) != 32 || !isLower32(a) {
		t.Errorf("RandomID(20) = %q, %q; want two different 32-character lower-case base32 strings", a, b)
	}
}

// FuzzParseToken: ParseToken never panics, and accepts exactly the shape NewToken makes:
// the prefix, a 12-character id and a 32-character secret in lower-case base32.
func FuzzParseToken(f *testing.F) {
	text, _, err := NewToken()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{text, "", TokenPrefix, TokenPrefix + "_", text + "_", text[:len(text)-1], strings.ToUpper(text),
		"ferry_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ferry_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || id != "" {
				t.Fatalf("ParseToken(%q) = %q, %v; want \"\", ErrMalformed", s, id, err)
			}
			return
		}
		rest, ok := strings.CutPrefix(s, TokenPrefix)
		if !ok || !LooksLikeToken(s) {
			t.Fatalf("ParseToken accepted %q without the prefix", s)
		}
		gotID, secret, _ := strings.Cut(rest, "_")
		if id != gotID || len(id) != 12 || len(secret) != 32 || !isLower32(id) || !isLower32(secret) {
			t.Fatalf("ParseToken(%q) = %q: not a 12-character id and a 32-character secret", s, id)
		}
		if again, err := ParseToken(TokenPrefix + id + "_" + secret); err != nil || again != id {
			t.Fatalf("ParseToken of the rebuilt token = %q, %v", again, err)
		}
	})
}
