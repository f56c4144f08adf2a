package archive

import (
	"crypto/rsa"
	"errors"
)

var errNotImplemented = errors.New("not implemented")

// GenerateKey returns a new RSA 2048-bit private key with e = 65537, the only size the
// plugin accepts.
func GenerateKey() (*rsa.PrivateKey, error) { return nil, errNotImplemented }

// MarshalPrivateKey encodes k as PKCS#1 PEM ("RSA PRIVATE KEY"), the format of Capgo's
// .capgo_key_v2 file.
func MarshalPrivateKey(k *rsa.PrivateKey) []byte { return nil }

// MarshalPublicKey encodes k as PKCS#1 PEM ("RSA PUBLIC KEY") with a trailing newline, the
// format of .capgo_key_v2.pub and of the plugin's publicKey setting.
func MarshalPublicKey(k *rsa.PublicKey) []byte { return nil }

// ParsePrivateKey parses a PKCS#1 PEM RSA 2048-bit private key. PKCS#8, other key types
// and other sizes give an error that says what to do.
func ParsePrivateKey(pemData []byte) (*rsa.PrivateKey, error) { return nil, errNotImplemented }

// ParsePublicKey parses a PKCS#1 PEM RSA 2048-bit public key.
func ParsePublicKey(pemData []byte) (*rsa.PublicKey, error) { return nil, errNotImplemented }

// KeyID returns the key_id of pub: the first 20 characters of its PKCS#1 PEM body.
func KeyID(pub *rsa.PublicKey) string { return "" }

// ConfigSnippet returns the capacitor.config JSON that points the plugin at relayURL and
// enables decryption with pub.
func ConfigSnippet(pub *rsa.PublicKey, relayURL string) string { return "" }
