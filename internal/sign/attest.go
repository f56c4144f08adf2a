package sign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAPIError bounds how much of a GitHub API error body is read.
const maxAPIError = 64 << 10

// UploadAttestation stores a provenance bundle through GitHub's attestations API
// (POST {apiURL}/repos/{repo}/attestations), so `gh attestation verify ART --repo owner/name`
// works online without --bundle. The job needs `permissions: attestations: write` and
// `id-token: write`. apiURL is e.g. https://api.github.com; repo is owner/name. It blocks until
// GitHub answers; it does not retry.
func UploadAttestation(ctx context.Context, httpClient *http.Client, apiURL, repo, token string, bundleJSON []byte) error {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	if strings.Count(repo, "/") != 1 {
		return fmt.Errorf("upload attestation: repository %q is not owner/name", repo)
	}
	if token == "" {
		return errors.New("upload attestation: no GitHub token (pass the workflow's GITHUB_TOKEN)")
	}
	if !json.Valid(bundleJSON) {
		return fmt.Errorf("upload attestation: %w: not JSON", ErrInvalidBundle)
	}
	body, err := json.Marshal(map[string]json.RawMessage{"bundle": bundleJSON})
	if err != nil {
		return fmt.Errorf("upload attestation: %w", err)
	}
	u := strings.TrimRight(apiURL, "/") + "/repos/" + repo + "/attestations"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("upload attestation: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload attestation to %s: %w", repo, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxAPIError))
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("upload attestation to %s: GitHub answered %d (%s): add `permissions: attestations: write` and `id-token: write` to the job", repo, resp.StatusCode, apiMessage(msg))
	default:
		return fmt.Errorf("upload attestation to %s: GitHub answered %d (%s)", repo, resp.StatusCode, apiMessage(msg))
	}
}

func apiMessage(b []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
