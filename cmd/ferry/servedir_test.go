package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeDir: ferry serve-dir serves a publish destination with Range support, hides
// dot-files (keys) from requests and listings, and stops cleanly when interrupted.
func TestServeDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustT(t, os.MkdirAll(filepath.Join(dir, "io.mycorp.tasks", "1.0.1"), 0o755))
	mustT(t, os.MkdirAll(filepath.Join(dir, "keys"), 0o755))
	mustT(t, os.WriteFile(filepath.Join(dir, "io.mycorp.tasks", "1.0.1", "b.zip"), []byte("0123456789"), 0o644))
	mustT(t, os.WriteFile(filepath.Join(dir, "keys", ".capgo_key_v2"), []byte("secret"), 0o600))
	mustT(t, os.WriteFile(filepath.Join(dir, ".env"), []byte("secret"), 0o600))
	mustT(t, os.MkdirAll(filepath.Join(dir, ".git"), 0o755))
	mustT(t, os.WriteFile(filepath.Join(dir, ".git", "config"), []byte("secret"), 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	// DIR after the flag and before it: both orders parse.
	go func() {
		done <- runServeDir(ctx, []string{"--addr", "127.0.0.1:0", dir}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve-dir printed nothing: %v (%v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	m := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+)/ \(publish with --public-base-url http://127\.0\.0\.1:\d+\)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serve-dir said %q, want its URL", line)
	}
	base := m[1]

	get := func(path, rng string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		mustT(t, err)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		res, err := http.DefaultClient.Do(req)
		mustT(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		mustT(t, err)
		return res.StatusCode, string(b)
	}
	if code, body := get("/io.mycorp.tasks/1.0.1/b.zip", ""); code != 200 || body != "0123456789" {
		t.Errorf("GET bundle = %d %q", code, body)
	}
	if code, body := get("/io.mycorp.tasks/1.0.1/b.zip", "bytes=4-"); code != http.StatusPartialContent || body != "456789" {
		t.Errorf("GET bundle with Range = %d %q, want 206 and the rest", code, body)
	}
	for _, p := range []string{"/keys/.capgo_key_v2", "/.env", "/.git/config", "/.git/", "/keys/../.env", "/%2e%65nv"} {
		if code, body := get(p, ""); code != http.StatusNotFound || strings.Contains(body, "secret") {
			t.Errorf("GET %s = %d %q, want 404", p, code, body)
		}
	}
	for _, p := range []string{"/", "/keys/"} {
		code, body := get(p, "")
		if code != 200 || strings.Contains(body, ".env") || strings.Contains(body, ".git") || strings.Contains(body, ".capgo") {
			t.Errorf("listing %s = %d %q, want hidden files left out", p, code, body)
		}
	}
	if _, body := get("/", ""); !strings.Contains(body, "io.mycorp.tasks/") {
		t.Errorf("listing / = %q, want the app's directory", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve-dir after interrupt = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve-dir did not stop when interrupted")
	}
}

func TestServeDirRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	mustT(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name string
		args []string
		want string // "" for errUsage
	}{
		{"no dir", []string{"--addr", "127.0.0.1:0"}, ""},
		{"two dirs", []string{dir, dir, "--addr", "127.0.0.1:0"}, ""},
		{"missing dir", []string{filepath.Join(dir, "nope"), "--addr", "127.0.0.1:0"}, "no such file"},
		{"a file", []string{file, "--addr", "127.0.0.1:0"}, "is not a directory"},
		{"bad addr", []string{dir, "--addr", "127.0.0.1:notaport"}, "listen on 127.0.0.1:notaport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			err := runServeDir(t.Context(), tc.args, &out, &errOut)
			switch {
			case tc.want == "" && !errors.Is(err, errUsage):
				t.Errorf("serve-dir %q = %v, want a usage error", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("serve-dir %q = %v, want an error containing %q", tc.args, err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("serve-dir %q printed %q, want nothing on stdout", tc.args, out.String())
			}
		})
	}
}

func TestServeDirBaseURL(t *testing.T) {
	t.Parallel()
	got := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 43210}
	for addr, want := range map[string]string{
		"localhost:0":    "http://localhost:43210",
		"127.0.0.1:8081": "http://127.0.0.1:43210",
		":8081":          "http://localhost:43210",
		"0.0.0.0:8081":   "http://localhost:43210",
		"[::1]:0":        "http://[::1]:43210",
	} {
		if b := baseURL(addr, got); b != want {
			t.Errorf("baseURL(%q) = %q, want %q", addr, b, want)
		}
	}
}
