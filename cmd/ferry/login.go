package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/ferryhq/ferry/internal/relayclient"
)

const loginUsage = `Usage: ferry login --relay URL

Signs you in to the relay through its single sign-on (docs/sso.md): ferry prints a URL (and
tries to open it in your browser), you sign in at your identity provider, and the browser
comes back to a listener of ferry's on 127.0.0.1. The session is saved in your user config
directory (ferry/credentials.json, readable only by you), keyed by relay URL, for ferry's
other commands; ` + "`ferry logout`" + ` ends it.

Flags:
`

const logoutUsage = `Usage: ferry logout --relay URL

Ends the session ` + "`ferry login`" + ` saved for the relay, at the relay and on this machine.

Flags:
`

// openBrowser opens url in the user's browser; tests replace it with a scripted browser.
var openBrowser = func(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// runLogin implements `ferry login`.
func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("login", loginUsage, stderr)
	relay := fs.String("relay", "", "relay base URL, e.g. https://relay.example.com (required)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up if the browser has not come back after this long")
	noBrowser := fs.Bool("no-browser", false, "only print the URL; do not try to open a browser")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := relayOnly(fs, "login", *relay, stderr)
	if err != nil {
		return err
	}
	// PKCE between this process and the relay: only the holder of verifier can redeem the code.
	verifier := oauth2.GenerateVerifier()
	challenge := oauth2.S256ChallengeFromVerifier(verifier)
	// Loopback only: the code comes back to this machine and nowhere else.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	codes := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("code")
		if r.URL.Path != "/callback" || code == "" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		select {
		case codes <- code:
			_, _ = io.WriteString(w, "Signed in to Ferry. You can close this tab and return to the terminal.\n")
		default:
			http.Error(w, "this sign-in is already complete", http.StatusConflict)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	port := ln.Addr().(*net.TCPAddr).Port
	loginURL := fmt.Sprintf("%s%s?cli_port=%d&cli_challenge=%s", base, relayclient.LoginPath, port, challenge)
	fmt.Fprintf(stdout, "Open this URL in your browser to sign in:\n\n  %s\n\n", loginURL)
	if !*noBrowser {
		if err := openBrowser(loginURL); err != nil {
			fmt.Fprintf(stderr, "ferry login: cannot open a browser (%v); open the URL yourself\n", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return fmt.Errorf("the browser did not come back within %s", *timeout)
	}
	c, err := relayclient.New(base, relayclient.Options{UserAgent: "ferry-login"})
	if err != nil {
		return err
	}
	tok, err := c.ExchangeCLICode(ctx, code, verifier)
	if err != nil {
		return fmt.Errorf("finish signing in: %w", err)
	}
	if err := saveCredential(base, credential{Token: tok.Token, ExpiresAt: tok.ExpiresAt, Email: tok.Email}); err != nil {
		return err
	}
	who := tok.Email
	if who == "" {
		who = tok.Name
	}
	fmt.Fprintf(stdout, "Signed in to %s as %s until %s.\n", base, who, tok.ExpiresAt.Local().Format(time.RFC1123))
	return nil
}

// relayOnly checks the arguments of a command that takes only --relay and returns the
// relay's base URL; on a problem it prints it with the usage and returns errUsage.
func relayOnly(fs *flag.FlagSet, cmd, relay string, stderr io.Writer) (string, error) {
	base, err := relayURL(relay)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferry %s: %v\n\n", cmd, err)
		fs.Usage()
		return "", errUsage
	}
	return base, nil
}

// runLogout implements `ferry logout`.
func runLogout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("logout", logoutUsage, stderr)
	relay := fs.String("relay", "", "relay base URL (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := relayOnly(fs, "logout", *relay, stderr)
	if err != nil {
		return err
	}
	creds, err := loadCredentials()
	if err != nil {
		return err
	}
	cr, ok := creds[base]
	if !ok {
		fmt.Fprintf(stdout, "Not signed in to %s.\n", base)
		return nil
	}
	c, err := relayclient.New(base, relayclient.Options{AdminToken: cr.Token, UserAgent: "ferry-logout"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Logout(ctx); err != nil {
		var re *relayclient.Error
		if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("sign out at the relay (the saved session is kept; retry): %w", err)
		}
		// 401: the session had ended already.
	}
	delete(creds, base)
	if err := writeCredentials(creds); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Signed out of %s.\n", base)
	return nil
}

// relayURL checks and normalizes a relay base URL (the credentials' key).
func relayURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("--relay is required")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--relay %q is not an http(s) base URL", s)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// credential is one relay's session saved by `ferry login`.
type credential struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Email     string    `json:"email,omitempty"`
}

// credentialsFile is where `ferry login` keeps sessions: ferry/credentials.json in the
// user's config directory.
func credentialsFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user config directory: %w", err)
	}
	return filepath.Join(dir, "ferry", "credentials.json"), nil
}

func loadCredentials() (map[string]credential, error) {
	path, err := credentialsFile()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]credential{}, nil
	}
	if err != nil {
		return nil, err
	}
	creds := map[string]credential{}
	if err := json.Unmarshal(raw, &creds); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON (delete it and run ferry login again): %w", path, err)
	}
	return creds, nil
}

// writeCredentials replaces the credentials file atomically, readable only by the user.
func writeCredentials(creds map[string]credential) error {
	path, err := credentialsFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func saveCredential(base string, c credential) error {
	creds, err := loadCredentials()
	if err != nil {
		return err
	}
	creds[base] = c
	return writeCredentials(creds)
}

// savedCredential returns the session `ferry login` saved for relay (a base URL, normalized
// as --relay is), to send as "Authorization: Bearer <token>", if there is one that has not
// expired.
func savedCredential(relay string) (string, bool) {
	base, err := relayURL(relay)
	if err != nil {
		return "", false
	}
	creds, err := loadCredentials()
	if err != nil {
		return "", false
	}
	c, ok := creds[base]
	if !ok || c.Token == "" || !time.Now().Before(c.ExpiresAt) {
		return "", false
	}
	return c.Token, true
}
