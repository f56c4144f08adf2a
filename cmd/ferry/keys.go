package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/internal/archive"
)

// Key file names, the same as `capgo key create` writes.
const (
	privateKeyFile = ".capgo_key_v2"
	publicKeyFile  = ".capgo_key_v2.pub"
)

// publicKeyWarning follows the capacitor.config snippet. The snippet's publicKey is one JSON
// string on one line that starts exactly with the PEM header, because the plugin's Android
// code decrypts only when publicKey starts with "-----BEGIN RSA PUBLIC KEY-----": anything
// before it (an indented template literal in capacitor.config.ts, a pasted line break) makes
// it skip decryption, and the still-encrypted download then fails its checksum.
const publicKeyWarning = `Warning: paste publicKey exactly as printed: one line, starting with "-----BEGIN RSA PUBLIC KEY-----"
(the \n are part of it; in capacitor.config.ts use the same string, not an indented template literal).
A leading space or line break makes the Android plugin skip decryption: every update then fails with checksum_fail.`

// relayBase returns the relay's base URL the config snippet appends /updates, /stats and
// /channel_self to: a URL given with one of those endpoints already on it is cut back (with
// a note), so the snippet never says /updates/updates. An http:// URL gets a warning:
// devices refuse it.
func relayBase(u *url.URL, stderr io.Writer) string {
	v := *u
	v.RawQuery, v.Fragment = "", ""
	v.Path = strings.TrimRight(v.Path, "/")
	for _, ep := range []string{"/updates", "/stats", "/channel_self"} {
		if p, ok := strings.CutSuffix(v.Path, ep); ok {
			v.Path = p
			fmt.Fprintf(stderr, "ferry keys: --relay is the relay's base URL; using %s (the snippet adds %s itself)\n", v.String(), ep)
			break
		}
	}
	v.RawPath = ""
	if v.Scheme == "http" {
		fmt.Fprintf(stderr, "ferry keys: warning: %s is http://: Android refuses cleartext HTTP update URLs (and iOS App Transport Security blocks them); use an https:// URL; http:// works only in an app built to allow cleartext (android:usesCleartextTraffic, an ATS exception), e.g. for a local test\n", v.String())
	}
	return v.String()
}

// runKeys implements `ferry keys --dir DIR --relay URL [--force]`: it writes a Capgo-compatible
// RSA 2048 key pair (PKCS#1 PEM; the private key with mode 0600) and prints the
// capacitor.config snippet that enables decryption and points the plugin at the relay.
// Existing key files are never overwritten without --force: replacing the key breaks every
// installed app that still has the old public key.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("keys", `Usage: ferry keys --relay URL [--dir DIR] [--force]

Creates .capgo_key_v2 (private, keep secret) and .capgo_key_v2.pub in DIR and prints
the plugins.CapacitorUpdater settings for capacitor.config.json.

`, stderr)
	dir := fset.String("dir", ".", "directory to write the key files to (the app's project root)")
	relay := fset.String("relay", "", "base URL of the Ferry relay, e.g. https://updates.example.com (required)")
	force := fset.Bool("force", false, "overwrite existing key files (installed apps with the old public key can no longer update)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	var problems []error
	if fset.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments: %q", fset.Args()))
	}
	if *relay == "" {
		problems = append(problems, errors.New("--relay is required (the URL devices use to reach the relay)"))
	} else if u, err := url.Parse(*relay); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		problems = append(problems, fmt.Errorf("--relay %q is not an http(s) URL; write the relay's base URL, e.g. https://updates.example.com", *relay))
	} else {
		*relay = relayBase(u, stderr)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "ferry keys: %v\n", errors.Join(problems...))
		fset.Usage()
		return errUsage
	}
	privPath := filepath.Join(*dir, privateKeyFile)
	pubPath := filepath.Join(*dir, publicKeyFile)
	if !*force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s already exists; keep using it, or pass --force to replace it (apps installed with the old public key will stop accepting updates)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("check %s: %w", p, err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := archive.GenerateKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *dir, err)
	}
	if err := writeFileAtomic(privPath, archive.MarshalPrivateKey(key), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(pubPath, archive.MarshalPublicKey(&key.PublicKey), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s (private key, mode 0600; keep it secret) and %s.\n", privPath, pubPath)
	fmt.Fprintf(stdout, "key_id: %s\n\n", archive.KeyID(&key.PublicKey))
	fmt.Fprintln(stdout, "Merge this into capacitor.config.json (or the same keys in capacitor.config.ts):")
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, archive.ConfigSnippet(&key.PublicKey, *relay))
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, publicKeyWarning)
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "Next:")
	fmt.Fprintf(stdout, "  1. Store the content of %s as the repository secret FERRY_ENCRYPTION_KEY\n", privPath)
	fmt.Fprintf(stdout, "     (gh secret set FERRY_ENCRYPTION_KEY < %s) and pass it to the Ferry action.\n", privPath)
	fmt.Fprintf(stdout, "  2. Do not commit %s: add it to .gitignore. The .pub file and the config are public.\n", privateKeyFile)
	fmt.Fprintln(stdout, "  3. Run `npx cap sync` and ship a native build: only builds with this publicKey can decrypt.")
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same directory, so
// a crash never leaves a half-written key. The file gets mode perm.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ferry-tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
