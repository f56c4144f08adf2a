package archive

import (
	"crypto/rsa"
	"io"
)

// SessionKey is the AES-128 key and IV of one encrypted bundle.
type SessionKey struct{ Key, IV [16]byte }

// NewSessionKey returns a random session key.
func NewSessionKey() (*SessionKey, error) { return nil, errNotImplemented }

// Wrap returns the session_key "b64(iv):b64(wrapped)".
func (k *SessionKey) Wrap(priv *rsa.PrivateKey) (string, error) { return "", errNotImplemented }

// UnwrapSessionKey recovers the session key from a session_key string with the public key.
func UnwrapSessionKey(sessionKey string, pub *rsa.PublicKey) (*SessionKey, error) {
	return nil, errNotImplemented
}

// NewEncrypter returns a streaming AES-128-CBC PKCS#7 encrypter writing to w.
func (k *SessionKey) NewEncrypter(w io.Writer) io.WriteCloser { return nil }

// NewDecrypter returns a streaming AES-128-CBC PKCS#7 decrypter reading from r.
func (k *SessionKey) NewDecrypter(r io.Reader) io.Reader { return nil }

// ChecksumV3 returns the V3 checksum of a 32-byte SHA-256 digest.
func ChecksumV3(priv *rsa.PrivateKey, sum []byte) (string, error) { return "", errNotImplemented }

// OpenChecksumV3 recovers the digest from a V3 checksum.
func OpenChecksumV3(pub *rsa.PublicKey, checksum string) ([]byte, error) {
	return nil, errNotImplemented
}
