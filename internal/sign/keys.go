package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// keyPair adapts a sigstore SignerVerifier to sigstore-go's Keypair interface. SignData always
// reports SHA-256(data) as the digest, which cosign requires even for pure Ed25519. When
// prehashed is set and SignData is handed exactly those bytes, they are treated as an already
// computed SHA-256 digest (ECDSA only), so large artifacts need not be held in memory.
type keyPair struct {
	sv        signature.SignerVerifier
	pub       crypto.PublicKey
	alg       protocommon.PublicKeyDetails
	hint      []byte
	prehashed []byte
}

func newKeyPair(priv crypto.PrivateKey) (*keyPair, error) {
	var (
		sv  signature.SignerVerifier
		pub crypto.PublicKey
		alg protocommon.PublicKeyDetails
		err error
	)
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("unsupported ECDSA curve %s: use P-256", k.Curve.Params().Name)
		}
		sv, err = signature.LoadECDSASignerVerifier(k, crypto.SHA256)
		pub, alg = &k.PublicKey, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
	case ed25519.PrivateKey:
		sv, err = signature.LoadED25519SignerVerifier(k)
		pub, alg = k.Public(), protocommon.PublicKeyDetails_PKIX_ED25519
	case *ed25519.PrivateKey:
		return newKeyPair(*k)
	default:
		return nil, fmt.Errorf("unsupported key type %T: use ECDSA P-256 or Ed25519", priv)
	}
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	hint, err := keyHint(pub)
	if err != nil {
		return nil, err
	}
	return &keyPair{sv: sv, pub: pub, alg: alg, hint: []byte(hint)}, nil
}

func newEphemeralKeyPair() (*keyPair, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ephemeral key: %w", err)
	}
	return newKeyPair(k)
}

// keyHint is base64(SHA-256(PKIX DER)), the hint cosign and sigstore-go use for public keys.
func keyHint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

func (k *keyPair) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}
func (k *keyPair) GetSigningAlgorithm() protocommon.PublicKeyDetails { return k.alg }
func (k *keyPair) GetHint() []byte                                   { return k.hint }
func (k *keyPair) GetKeyAlgorithm() string {
	if k.alg == protocommon.PublicKeyDetails_PKIX_ED25519 {
		return "ED25519"
	}
	return "ECDSA"
}
func (k *keyPair) GetPublicKey() crypto.PublicKey { return k.pub }
func (k *keyPair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.pub)
	return string(b), err
}

func (k *keyPair) SignData(ctx context.Context, data []byte) ([]byte, []byte, error) {
	if k.prehashed != nil && bytes.Equal(data, k.prehashed) {
		if k.alg == protocommon.PublicKeyDetails_PKIX_ED25519 {
			return nil, nil, errors.New("ed25519 cannot sign a precomputed digest")
		}
		sig, err := k.sv.SignMessage(nil, options.WithDigest(data), options.WithContext(ctx))
		return sig, bytes.Clone(data), err
	}
	sig, err := k.sv.SignMessage(bytes.NewReader(data), options.WithContext(ctx))
	d := sha256.Sum256(data)
	return sig, d[:], err
}

// parsePrivateKey reads a private key PEM: cosign's encrypted format, encrypted PKCS#8,
// PKCS#8, SEC 1 EC or PKCS#1.
func parsePrivateKey(pemBytes, password []byte) (crypto.PrivateKey, error) {
	if len(bytes.TrimSpace(pemBytes)) == 0 {
		return nil, errors.New("signing key is empty")
	}
	pw := password
	if pw == nil {
		pw = []byte{}
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.StaticPasswordFunc(pw))
	if err != nil {
		if bytes.Contains(pemBytes, []byte("ENCRYPTED")) && len(password) == 0 {
			return nil, fmt.Errorf("signing key is encrypted and no password was given (set the key password input): %w", err)
		}
		return nil, fmt.Errorf("parse signing key (wrong password or not a PEM private key?): %w", err)
	}
	return priv, nil
}

// ParsePublicKey reads a PEM public key (PKIX "PUBLIC KEY", as written by cosign).
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	switch pub.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T: use ECDSA P-256 or Ed25519", pub)
}

// PublicKeyPEM returns the PKIX PEM public key that matches a private key PEM, for `cosign
// verify-blob --key` and [Policy.Key].
func PublicKeyPEM(privatePEM, password []byte) ([]byte, error) {
	priv, err := parsePrivateKey(privatePEM, password)
	if err != nil {
		return nil, err
	}
	kp, err := newKeyPair(priv)
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(kp.pub)
}

func cryptoHash(pub crypto.PublicKey) crypto.Hash {
	if _, ok := pub.(ed25519.PublicKey); ok {
		return crypto.Hash(0)
	}
	return crypto.SHA256
}
