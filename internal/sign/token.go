package sign

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxTokenResponse bounds the token endpoint's answer.
const maxTokenResponse = 64 << 10

// ActionsIDToken returns an [Options.IDToken] source that asks the GitHub Actions runner for an
// OIDC token, the way actions/core getIDToken does: GET $ACTIONS_ID_TOKEN_REQUEST_URL with
// `audience=` added and `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`. getenv is
// usually os.Getenv; client nil means a 10 s timeout client. When the runner did not provide
// the variables (the job lacks `permissions: id-token: write`) the source returns an error
// wrapping [ErrNoIDToken] that says so.
func ActionsIDToken(getenv func(string) string, client *http.Client) func(ctx context.Context, audience string) (string, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return func(ctx context.Context, audience string) (string, error) {
		reqURL, reqTok := getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
		if reqURL == "" || reqTok == "" {
			return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL is not set: %w (keyless signing needs it; or use a signing key)", ErrNoIDToken)
		}
		u, err := url.Parse(reqURL)
		if err != nil {
			return "", fmt.Errorf("parse ACTIONS_ID_TOKEN_REQUEST_URL: %w", err)
		}
		q := u.Query()
		q.Set("audience", audience)
		u.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "", fmt.Errorf("request OIDC token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+reqTok)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("request OIDC token from %s: %w", u.Host, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
		if err != nil {
			return "", fmt.Errorf("read OIDC token: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("OIDC token endpoint answered %d (%s): %w", resp.StatusCode, apiMessage(body), ErrNoIDToken)
		}
		var v struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
			return "", fmt.Errorf("OIDC token endpoint answered without a token: %w", ErrNoIDToken)
		}
		return v.Value, nil
	}
}
