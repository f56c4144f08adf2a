// Command signkey writes an ECDSA P-256 signing key pair for `make demo` (scripts/demo.sh):
// DIR/signing.key (PKCS#8 PEM, the action's signing-key input) and DIR/signing.pub (PKIX
// PEM, what `ferry verify --key` and `cosign verify-blob --key` check against). Real
// projects use keyless signing in GitHub Actions, or `cosign generate-key-pair`. It is a demo
// helper, not part of Ferry.
//
// Usage:
//
//	signkey --dir .demo/keys
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "signkey:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".", "directory to write signing.key and signing.pub to")
	flag.Parse()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("marshal private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return fmt.Errorf("marshal public key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(*dir, "signing.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "signing.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}
