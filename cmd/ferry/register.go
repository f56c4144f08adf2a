package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// runRegister implements `ferry register`: register a bundle that is already uploaded (the
// equivalent of Capgo's `upload --external` and Appflow's `register-artifact`). The record
// comes from --from (the JSON `ferry publish --bundle-json` writes, or `ferry pack --json`'s
// output, whose checksum, session_key, key_id, sha256 and size fields it reads) and flags,
// which override the file. It signs with FERRY_HMAC_SECRET or an OIDC token the relay
// trusts (--id-token-file or FERRY_ID_TOKEN).
func runRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return registerCmd(ctx, args, os.Getenv, stdout, stderr)
}

func registerCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ferry register --relay-url URL [--from bundle.json] [--app-id ID --version V --url U --checksum C ...]")
		fmt.Fprintln(stderr, "\nAuthenticates with FERRY_HMAC_SECRET, or an OIDC token the relay trusts (--id-token-file, FERRY_ID_TOKEN).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	relayURL := fs.String("relay-url", "", "the relay's base URL [FERRY_RELAY_URL]")
	from := fs.String("from", "", "a JSON bundle record: the file ferry publish --bundle-json writes, or ferry pack --json output; - for stdin")
	tokenFile := fs.String("id-token-file", "", "file holding an OIDC token the relay trusts [FERRY_ID_TOKEN holds the token itself]")
	asJSON := fs.Bool("json", false, "print the relay's answer as JSON")
	fields := []struct {
		name, help string
		dst        func(b *channel.Bundle) *string
	}{
		{"app-id", "the app's id [FERRY_APP_ID]", func(b *channel.Bundle) *string { return &b.AppID }},
		{"version", "the bundle version [FERRY_VERSION]", func(b *channel.Bundle) *string { return &b.Version }},
		{"url", "where devices download the bundle", func(b *channel.Bundle) *string { return &b.URL }},
		{"checksum", "the checksum devices verify (V3 for encrypted bundles)", func(b *channel.Bundle) *string { return &b.Checksum }},
		{"sha256", "SHA-256 of the plain zip", func(b *channel.Bundle) *string { return &b.SHA256 }},
		{"session-key", "the encrypted bundle's session key (iv:key)", func(b *channel.Bundle) *string { return &b.SessionKey }},
		{"key-id", "the encryption key's id", func(b *channel.Bundle) *string { return &b.KeyID }},
		{"commit", "the full commit id built [FERRY_COMMIT]", func(b *channel.Bundle) *string { return &b.Commit }},
		{"ref", "the git ref built, e.g. refs/heads/main [FERRY_REF]", func(b *channel.Bundle) *string { return &b.Ref }},
		{"channel", "channel to register into; default the relay's rule for the ref [FERRY_CHANNEL]", func(b *channel.Bundle) *string { return &b.Channel }},
		{"native", "semver range of native versions the bundle supports [FERRY_NATIVE]", func(b *channel.Bundle) *string { return &b.Native }},
		{"manifest-url", "URL of the delta manifest", func(b *channel.Bundle) *string { return &b.ManifestURL }},
		{"signature-url", "URL of the Sigstore signature", func(b *channel.Bundle) *string { return &b.SignatureURL }},
		{"provenance-url", "URL of the signed provenance", func(b *channel.Bundle) *string { return &b.ProvenanceURL }},
		{"repository", "owner/name of the repository [FERRY_REPOSITORY]", func(b *channel.Bundle) *string { return &b.Repository }},
	}
	// Variables that mean the same in `ferry publish` apply here too.
	envOf := map[string]string{"app-id": "FERRY_APP_ID", "version": "FERRY_VERSION", "commit": "FERRY_COMMIT", "ref": "FERRY_REF",
		"channel": "FERRY_CHANNEL", "native": "FERRY_NATIVE", "repository": "FERRY_REPOSITORY"}
	vals := make([]*string, len(fields))
	for i, f := range fields {
		vals[i] = fs.String(f.name, "", f.help)
	}
	size := fs.String("size", "", "the bundle file's size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferry register: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if *relayURL == "" {
		*relayURL = getenv("FERRY_RELAY_URL")
	}

	b := &channel.Bundle{}
	if *from != "" {
		if err := readBundle(*from, b); err != nil {
			return err
		}
	}
	for i, f := range fields {
		dst := f.dst(b)
		switch {
		case *vals[i] != "":
			*dst = *vals[i]
		case *dst == "" && envOf[f.name] != "":
			*dst = getenv(envOf[f.name])
		}
	}
	var problems []error
	if *size != "" {
		n, err := strconv.ParseInt(*size, 10, 64)
		if err != nil || n <= 0 {
			problems = append(problems, fmt.Errorf("--size %q: want the file's size in bytes", *size))
		}
		b.Size = n
	}
	if *relayURL == "" {
		problems = append(problems, errors.New("--relay-url (or FERRY_RELAY_URL) is required"))
	}
	for _, req := range []struct{ v, name string }{{b.AppID, "--app-id"}, {b.Version, "--version"}, {b.URL, "--url"}, {b.Checksum, "--checksum"}} {
		if req.v == "" {
			problems = append(problems, fmt.Errorf("%s is required (or in --from)", req.name))
		}
	}
	token, err := idTokenSource(*tokenFile, getenv)
	if err != nil {
		problems = append(problems, err)
	}
	secret := getenv("FERRY_HMAC_SECRET")
	if secret == "" {
		secret = getenv("FERRY_RELAY_SECRET")
	}
	if err == nil && secret == "" && token.static == "" && getenv("ACTIONS_ID_TOKEN_REQUEST_URL") == "" {
		problems = append(problems, errors.New("no way to authenticate: set FERRY_HMAC_SECRET (the relay's HMAC secret) or pass an OIDC token the relay trusts (--id-token-file, FERRY_ID_TOKEN)"))
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}

	opts := relayclient.Options{HTTPClient: &http.Client{Timeout: 30 * time.Second}, UserAgent: "ferry-register",
		RetryBackoff: time.Second, RetryMaxWait: 30 * time.Second}
	if secret != "" {
		opts.HMACSecret = []byte(secret)
	} else {
		aud := getenv("FERRY_RELAY_AUDIENCE")
		opts.IDToken = func(ctx context.Context) (string, error) {
			if aud == "" {
				aud = origin(*relayURL)
			}
			return token.get(ctx, aud)
		}
	}
	relay, err := relayclient.New(*relayURL, opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	reg, err := relay.RegisterBundle(ctx, b)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reg)
	}
	state := "registered"
	if !reg.Created {
		state = "already registered (same checksum)"
	}
	fmt.Fprintf(stdout, "%s %s %s", state, b.AppID, b.Version)
	switch {
	case reg.Promoted:
		fmt.Fprintf(stdout, ": channel %s now serves it", reg.Channel)
	case reg.Reason != "":
		fmt.Fprintf(stdout, ": %s", reg.Reason)
	}
	fmt.Fprintln(stdout)
	return nil
}

// readBundle decodes a bundle record from a file, or stdin for "-". Unknown fields are
// ignored, so `ferry pack --json` output reads too.
func readBundle(path string, b *channel.Bundle) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	if err := json.Unmarshal(data, b); err != nil {
		return fmt.Errorf("--from %s: not a bundle record: %w", path, err)
	}
	return nil
}

// origin is the scheme and host of a URL: the relay's default OIDC audience.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
