package access

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TokenPrefix starts every API token, so secret scanners (and people) recognise a leaked
// one: "ferry_" + a 12-character id + "_" + a 32-character secret.
const TokenPrefix = "ferry_"

const (
	idChars     = 12 // base32 characters of a token id (60 bits: unique, not secret)
	secretBytes = 20 // random bytes of a token's secret (160 bits)
)

// lower32 is base32 in lower case without padding: no "_", so a token splits unambiguously.
var lower32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformed is returned by [ParseToken] for text that is not a Ferry API token.
var ErrMalformed = errors.New("not a Ferry API token")

// Token is an API token as the relay stores it: never the token itself, only its hash.
type Token struct {
	// ID is the public part of the token ("tok_" is not added: the id is the 12 characters
	// after the prefix), shown in lists and the audit log.
	ID string `json:"id"`
	// Name is what its creator called it ("ci-nightly").
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the whole token.
	Hash   string  `json:"hash"`
	Grants []Grant `json:"grants"`
	// CreatedBy is the actor that created it, in [channel.Actor.String] form.
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when it stops working; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsed is updated at most once a minute per relay instance.
	LastUsed  time.Time `json:"last_used,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether the token may be used at now.
func (t *Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// NewToken returns a fresh token's secret text and its record (ID and Hash set; the caller
// fills the rest). The text is shown once and never stored.
func NewToken() (text string, t *Token, err error) {
	raw := make([]byte, 8+secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("access: random token: %w", err)
	}
	id := lower32.EncodeToString(raw[:8])[:idChars]
	text = TokenPrefix + id + "_" + lower32.EncodeToString(raw[8:])
	return text, &Token{ID: id, Hash: HashToken(text)}, nil
}

// ParseToken returns the id of token text, or [ErrMalformed]. It checks only the shape;
// the caller looks the id up and compares [HashToken] with [Token.Hash] via [HashEqual].
func ParseToken(text string) (id string, err error) {
	rest, ok := strings.CutPrefix(text, TokenPrefix)
	if !ok {
		return "", ErrMalformed
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != idChars || len(secret) != lower32.EncodedLen(secretBytes) || !isLower32(id) || !isLower32(secret) {
		return "", ErrMalformed
	}
	return id, nil
}

// LooksLikeToken reports whether text starts like a Ferry API token (so a caller can tell
// it apart from an OIDC token or the bootstrap token before parsing it).
func LooksLikeToken(text string) bool { return strings.HasPrefix(text, TokenPrefix) }

func isLower32(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// HashToken is the hex SHA-256 of text: what the store keeps of a token or a session id.
// Tokens and session ids carry at least 128 random bits, so a fast hash is enough.
func HashToken(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// HashEqual compares two hashes in constant time.
func HashEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// RandomID returns n random bytes as lower-case base32, for session ids, login states,
// nonces and CSRF tokens.
func RandomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("access: random id: %w", err)
	}
	return lower32.EncodeToString(b), nil
}
