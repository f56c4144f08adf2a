package archive

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// KeyBits is the only RSA key size the plugin accepts: both platforms require the encrypted
// checksum to be exactly 256 bytes.
const KeyBits = 2048

// ErrKeyFormat reports a key that is not a PKCS#1 PEM RSA 2048-bit key. The error's text
// says what was found and how to convert it.
var ErrKeyFormat = errors.New("unsupported key")

const (
	pemPrivate = "RSA PRIVATE KEY"
	pemPublic  = "RSA PUBLIC KEY"
)

// GenerateKey returns a new RSA 2048-bit private key with e = 65537, the same kind of key
// `capgo key create` makes. It blocks while reading from crypto/rand.
func GenerateKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate rsa key: %w", err)
	}
	return k, nil
}

// MarshalPrivateKey encodes k as PKCS#1 PEM ("-----BEGIN RSA PRIVATE KEY-----"), the
// format of Capgo's .capgo_key_v2 file.
func MarshalPrivateKey(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// MarshalPublicKey encodes k as PKCS#1 PEM ("-----BEGIN RSA PUBLIC KEY-----") with "\n"
// line breaks and a trailing newline: the format of .capgo_key_v2.pub and of the plugin's
// publicKey setting (Android refuses anything else).
func MarshalPublicKey(k *rsa.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: x509.MarshalPKCS1PublicKey(k)})
}

// ParsePrivateKey parses a PKCS#1 PEM RSA 2048-bit private key (`capgo key create`'s
// .capgo_key_v2 or `ferry keys`). PKCS#8 ("BEGIN PRIVATE KEY"), other key types and other
// sizes give an error wrapping [ErrKeyFormat] that says how to fix the key.
func ParsePrivateKey(pemData []byte) (*rsa.PrivateKey, error) {
	block, err := decodePEM(pemData)
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case pemPrivate:
	case "PRIVATE KEY":
		return nil, fmt.Errorf("%w: PKCS#8 \"BEGIN PRIVATE KEY\" is not accepted by Capgo; convert it with `openssl rsa -in key.pem -traditional -out .capgo_key_v2` or create a new pair with `ferry keys`", ErrKeyFormat)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: the private key is password-protected; decrypt it to PKCS#1 with `openssl rsa -in key.pem -traditional -out .capgo_key_v2`", ErrKeyFormat)
	case pemPublic, "PUBLIC KEY":
		return nil, fmt.Errorf("%w: got a public key where the private key (.capgo_key_v2) is needed", ErrKeyFormat)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not an RSA private key; use a PKCS#1 \"BEGIN RSA PRIVATE KEY\" key from `ferry keys` or `capgo key create`", ErrKeyFormat, block.Type)
	}
	if _, ok := block.Headers["DEK-Info"]; ok {
		return nil, fmt.Errorf("%w: the private key is password-protected; decrypt it with `openssl rsa -in key.pem -traditional -out .capgo_key_v2`", ErrKeyFormat)
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parse PKCS#1 private key: %v", ErrKeyFormat, err)
	}
	if err := checkSize(&k.PublicKey); err != nil {
		return nil, err
	}
	return k, nil
}

// ParsePublicKey parses a PKCS#1 PEM RSA 2048-bit public key ("BEGIN RSA PUBLIC KEY", the
// .capgo_key_v2.pub file and the plugin's publicKey). Other formats and sizes give an error
// wrapping [ErrKeyFormat].
func ParsePublicKey(pemData []byte) (*rsa.PublicKey, error) {
	block, err := decodePEM(pemData)
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case pemPublic:
	case "PUBLIC KEY":
		return nil, fmt.Errorf("%w: SPKI \"BEGIN PUBLIC KEY\" is refused by the Android plugin; convert it with `openssl rsa -pubin -in key.pub -RSAPublicKey_out`", ErrKeyFormat)
	case pemPrivate, "PRIVATE KEY":
		return nil, fmt.Errorf("%w: got a private key where the public key (.capgo_key_v2.pub) is needed", ErrKeyFormat)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not an RSA public key", ErrKeyFormat, block.Type)
	}
	k, err := x509.ParsePKCS1PublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parse PKCS#1 public key: %v", ErrKeyFormat, err)
	}
	if err := checkSize(k); err != nil {
		return nil, err
	}
	return k, nil
}

func decodePEM(data []byte) (*pem.Block, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found; expected a PKCS#1 RSA key file such as .capgo_key_v2", ErrKeyFormat)
	}
	return block, nil
}

func checkSize(k *rsa.PublicKey) error {
	if n := k.N.BitLen(); n != KeyBits {
		return fmt.Errorf("%w: RSA key is %d bits; the Capgo plugin only works with 2048-bit keys (create one with `ferry keys`)", ErrKeyFormat, n)
	}
	if k.E != 65537 {
		return fmt.Errorf("%w: RSA public exponent %d; expected 65537", ErrKeyFormat, k.E)
	}
	return nil
}

// KeyID returns the key_id the plugin sends for pub: the first 20 characters of its PKCS#1
// PEM body with header, footer and whitespace removed (docs/protocol.md §5.4), e.g.
// "MIIBCgKCAQEAwsCct5LR".
func KeyID(pub *rsa.PublicKey) string {
	var b strings.Builder
	for _, line := range strings.Split(string(MarshalPublicKey(pub)), "\n") {
		if strings.HasPrefix(line, "-----") {
			continue
		}
		b.WriteString(strings.TrimSpace(line))
		if b.Len() >= 20 {
			break
		}
	}
	s := b.String()
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// ConfigSnippet returns the capacitor.config.json fragment that enables decryption with pub
// and points the plugin at the relay: publicKey, updateUrl (relayURL + "/updates"), statsUrl
// ("/stats") and channelUrl ("/channel_self"). A trailing slash on relayURL is ignored.
func ConfigSnippet(pub *rsa.PublicKey, relayURL string) string {
	base := strings.TrimRight(relayURL, "/")
	type updater struct {
		PublicKey  string `json:"publicKey"`
		UpdateURL  string `json:"updateUrl"`
		StatsURL   string `json:"statsUrl"`
		ChannelURL string `json:"channelUrl"`
	}
	v := map[string]map[string]updater{"plugins": {"CapacitorUpdater": {
		PublicKey:  string(MarshalPublicKey(pub)),
		UpdateURL:  base + "/updates",
		StatsURL:   base + "/stats",
		ChannelURL: base + "/channel_self",
	}}}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // cannot happen: only strings
		return ""
	}
	return string(out) + "\n"
}
