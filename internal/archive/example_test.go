package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/archive"
)

// ExamplePackage packages a build encrypted, then opens it the way a device does.
func ExamplePackage() {
	dir, err := os.MkdirTemp("", "build")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html></html>"), 0o644); err != nil {
		log.Fatal(err)
	}
	key, err := archive.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	var bundle bytes.Buffer
	res, err := archive.Package(context.Background(), dir, &bundle, archive.Options{Key: key})
	if err != nil {
		log.Fatal(err)
	}

	// Device side: only the public key, the session_key and the checksum.
	sk, err := archive.UnwrapSessionKey(res.SessionKey, &key.PublicKey)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := io.ReadAll(sk.NewDecrypter(&bundle))
	if err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(plain)
	fmt.Println("files:", res.Files)
	fmt.Println("checksum characters:", len(res.Checksum))
	fmt.Println("verified:", archive.VerifyChecksum(&key.PublicKey, res.Checksum, sum[:]) == nil)
	// Output:
	// files: 1
	// checksum characters: 512
	// verified: true
}
