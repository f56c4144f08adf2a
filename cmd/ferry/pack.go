package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
)

// checkOutDir makes sure the folder --out writes into exists, before anything is packed.
func checkOutDir(out string) error {
	dir := filepath.Dir(out)
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--out %s: the folder %s does not exist; create it first (mkdir -p %s) or write elsewhere", out, dir, dir)
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case !st.IsDir():
		return fmt.Errorf("--out %s: %s is not a folder", out, dir)
	}
	return nil
}

// runPack implements `ferry pack --dir D --out F [--key K [--app A --version V]] [--json]`: the
// action's packaging step on its own, for trying a build locally and for benchmarks. With
// --app and --version the session key is derived as the action derives it, so the output is
// byte-identical to what the action publishes for the same build; without them it is random. It writes the bundle to F
// (atomically: nothing is left behind on error) and prints the values the relay needs
// (checksum, session_key, key_id, sha256, size).
func runPack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pack", "Usage: ferry pack --dir DIR --out FILE [--key .capgo_key_v2 [--app ID --version V]] [--json]\n\n", stderr)
	dir := fs.String("dir", "", "the web build directory with index.html at its root, e.g. dist (required)")
	out := fs.String("out", "", "the bundle file to write, e.g. bundle.zip (required)")
	keyPath := fs.String("key", "", "PKCS#1 private key (.capgo_key_v2); encrypts the bundle with a V3 checksum. Without it the bundle is a plain zip")
	app := fs.String("app", "", "app id; with --version and --key, derive the session key as the action does, giving the action's exact bytes")
	version := fs.String("version", "", "bundle version; with --app and --key, derive the session key as the action does")
	epoch := fs.String("source-date-epoch", "", "entry time in Unix seconds, e.g. \"$SOURCE_DATE_EPOCH\"; default 1980-01-01")
	hidden := fs.Bool("include-hidden", false, "include dot-files and dot-directories (skipped by default, except .well-known)")
	workers := fs.Int("workers", 0, "parallel compressors; default the number of CPUs")
	level := fs.Int("level", 0, fmt.Sprintf("deflate level 1-9 of every file: lower is faster and larger (the bytes, so the checksum, depend on it); default %d for files up to 1 MiB, %d for bigger ones", archive.CompressionLevel, archive.ChunkedCompressionLevel))
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []error
	if *dir == "" {
		problems = append(problems, errors.New("--dir is required"))
	}
	if *out == "" {
		problems = append(problems, errors.New("--out is required"))
	}
	if (*app == "") != (*version == "") {
		problems = append(problems, errors.New("--app and --version go together"))
	}
	if *app != "" && *keyPath == "" {
		problems = append(problems, errors.New("--app and --version derive the session key, so they need --key"))
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	mod, err := archive.ModTimeFromEpoch(*epoch)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "ferry pack: %v\n", errors.Join(problems...))
		fs.Usage()
		return errUsage
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	opts := archive.Options{Zip: archive.ZipOptions{ModTime: mod, IncludeHidden: *hidden, Workers: *workers, Level: *level}}
	if *keyPath != "" {
		pemData, err := os.ReadFile(*keyPath)
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		if opts.Key, err = archive.ParsePrivateKey(pemData); err != nil {
			return fmt.Errorf("read key %s: %w", *keyPath, err)
		}
		if *app != "" {
			opts.DeriveSession = &archive.SessionContext{AppID: *app, Version: *version}
			opts.TempDir = filepath.Dir(*out)
		}
	}
	start := time.Now()
	f, err := os.CreateTemp(filepath.Dir(*out), ".ferry-pack-*")
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	res, err := archive.Package(ctx, *dir, f, opts)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", *out, cerr)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), *out); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	elapsed := time.Since(start)
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "ferry pack: warning: %s\n", w)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"file": *out, "checksum": res.Checksum, "session_key": res.SessionKey, "key_id": res.KeyID,
			"sha256": res.SHA256, "artifact_sha256": res.ArtifactSHA256, "size": res.Size, "zip_size": res.ZipSize,
			"files": res.Files, "input_bytes": res.InputBytes, "seconds": elapsed.Seconds(),
		})
	}
	fmt.Fprintf(stdout, "Wrote %s: %d files, %d bytes in, %d bytes out, %.2fs\n", *out, res.Files, res.InputBytes, res.Size, elapsed.Seconds())
	fmt.Fprintf(stdout, "checksum:    %s\n", res.Checksum)
	fmt.Fprintf(stdout, "sha256:      %s (plain zip)\n", res.SHA256)
	if res.SessionKey != "" {
		fmt.Fprintf(stdout, "session_key: %s\n", res.SessionKey)
		fmt.Fprintf(stdout, "key_id:      %s\n", res.KeyID)
	}
	return nil
}
