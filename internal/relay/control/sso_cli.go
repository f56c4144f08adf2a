package control

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// `ferry login` signs in through the browser like anyone, with two differences: the
// sign-in starts with cli_port and cli_challenge (the S256 of a PKCE verifier only the CLI
// knows), and the callback sends the browser to http://127.0.0.1:cli_port/callback with a
// one-time code instead of setting a cookie. The CLI then posts the code and its verifier
// to /auth/cli/token and gets the session id, which it sends as a bearer token.
//
// The code's record is stored under a hash of the code, holding the person sealed under a
// key derived from the code: the session is created only when the code is redeemed, once,
// within [CLICodeTTL], by the holder of the verifier.

// cliCodeKey is the store key (a Login's State) of a one-time code's record. The "." keeps
// it apart from sign-in states, which are base32 only.
func cliCodeKey(code string) string { return "cli." + access.HashToken(code) }

// handToCLI stores the signed-in person for `ferry login` and sends the browser to the
// CLI's loopback listener with the one-time code.
func (a *API) handToCLI(c *gin.Context, l *access.Login, sess *access.Session) error {
	code, err := access.RandomID(randomBytes)
	if err != nil {
		return err
	}
	sealed, err := sealSession(code, sess)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	rec := &access.Login{State: cliCodeKey(code), CLIChallenge: l.CLIChallenge, Sealed: sealed, ExpiresAt: a.now().Add(CLICodeTTL)}
	if err := a.store.PutLogin(ctx, rec); err != nil {
		return storeError("put login code", err)
	}
	a.logger(ctx).InfoContext(ctx, "signed in for ferry login", "subject", sess.Subject, "email", sess.Email)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, fmt.Sprintf("http://127.0.0.1:%d/callback?code=%s", l.CLIPort, code))
	return nil
}

// ssoCLIToken redeems a one-time code: the code is consumed whatever happens next, the
// verifier must match the sign-in's challenge, and the answer is a new session's id.
func (a *API) ssoCLIToken(c *gin.Context) error {
	body, err := readBody(c, MaxAdminBody)
	if err != nil {
		return err
	}
	var req relayclient.CLITokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return &httpError{Status: http.StatusBadRequest, Code: "bad_body", Msg: "the body must be {\"code\": ..., \"verifier\": ...}", Err: err}
	}
	if !validRandom(req.Code) || !validVerifier(req.Verifier) {
		return errorf(http.StatusBadRequest, "invalid_code", "the code or verifier is malformed; run ferry login again")
	}
	ctx := c.Request.Context()
	rec, err := a.store.TakeLogin(ctx, cliCodeKey(req.Code))
	if errors.Is(err, channel.ErrNotFound) {
		return errorf(http.StatusBadRequest, "invalid_code", "the code was already used or has expired; run ferry login again")
	}
	if err != nil {
		return storeError("take login code", err)
	}
	now := a.now()
	if rec.Sealed == "" || !now.Before(rec.ExpiresAt) {
		return errorf(http.StatusBadRequest, "invalid_code", "the code has expired; run ferry login again")
	}
	if !access.HashEqual(oauth2.S256ChallengeFromVerifier(req.Verifier), rec.CLIChallenge) {
		return errorf(http.StatusBadRequest, "invalid_code", "the verifier does not match the sign-in's challenge; run ferry login again")
	}
	sess, err := openSession(req.Code, rec.Sealed)
	if err != nil {
		return err
	}
	id, err := a.createSession(ctx, sess, now)
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, relayclient.CLIToken{Token: id, ExpiresAt: sess.ExpiresAt, Email: sess.Email, Name: sess.Name})
	return nil
}

// codeAEAD is AES-256-GCM under a key derived from a one-time code.
func codeAEAD(code string) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("ferry cli code\x00" + code))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealSession(code string, s *access.Session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	aead, err := codeAEAD(code)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, nil)), nil
}

func openSession(code, sealed string) (*access.Session, error) {
	aead, err := codeAEAD(code)
	if err != nil {
		return nil, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return nil, errors.Join(errors.New("control: unreadable sealed session"), err)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("control: open sealed session: %w", err)
	}
	var s access.Session
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("control: decode sealed session: %w", err)
	}
	return &s, nil
}
