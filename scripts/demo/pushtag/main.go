// Command pushtag plays GitHub for `make demo` (scripts/demo.sh): it sends the relay the
// "push" webhook GitHub sends when a tag is pushed or moved, signed with the webhook secret
// in X-Hub-Signature-256 exactly as GitHub signs it, and prints the relay's answer. It is a
// demo helper, not part of Ferry.
//
// Usage:
//
//	FERRY_WEBHOOK_SECRET=… pushtag --relay http://127.0.0.1:8080 --repo acme/app --tag v1.1.0 --commit <sha> [--before <sha>]
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pushtag:", err)
		os.Exit(1)
	}
}

func run() error {
	relay := flag.String("relay", "", "relay base URL")
	repo := flag.String("repo", "", "repository owner/name")
	tag := flag.String("tag", "", "tag name, e.g. v1.1.0")
	commit := flag.String("commit", "", "commit the tag now points to (40 hex)")
	before := flag.String("before", strings.Repeat("0", 40), "commit the tag pointed to before (zeros: a new tag)")
	flag.Parse()
	secret := os.Getenv("FERRY_WEBHOOK_SECRET")
	if *relay == "" || *repo == "" || *tag == "" || *commit == "" || secret == "" {
		return fmt.Errorf("--relay, --repo, --tag, --commit and FERRY_WEBHOOK_SECRET are required")
	}
	owner, name, _ := strings.Cut(*repo, "/")
	created := *before == strings.Repeat("0", 40)
	payload, err := json.Marshal(map[string]any{
		"ref": "refs/tags/" + *tag, "before": *before, "after": *commit,
		"created": created, "deleted": false, "forced": !created,
		"head_commit": map[string]any{"id": *commit},
		"repository":  map[string]any{"name": name, "full_name": *repo, "owner": map[string]any{"login": owner}},
		"pusher":      map[string]any{"name": "demo"},
	})
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(payload)
	var id [16]byte
	_, _ = rand.Read(id[:])
	req, err := http.NewRequest(http.MethodPost, strings.TrimRight(*relay, "/")+"/webhooks/github", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", hex.EncodeToString(id[:]))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("send webhook: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Printf("relay answered HTTP %d: %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook refused")
	}
	return nil
}
