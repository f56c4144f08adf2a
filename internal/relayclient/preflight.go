package relayclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrPreflightUnsupported means the relay has no preflight endpoint: a relay older than it
// answers 404 (with another code than app_not_found) or 405. Publishing can go on without
// the early check; the registration still checks everything.
var ErrPreflightUnsupported = errors.New("the relay does not support preflight")

// Preflight asks the relay whether a registration carrying r would be accepted, before the
// bundle's files are uploaded (POST /api/v1/bundles/preflight). It changes nothing on the
// relay, and is authenticated as [Client.RegisterBundle] is: signed with Options.HMACSecret
// or carrying a token from Options.IDToken.
//
// It makes one attempt. A refusal is an error holding the relay's *[Error] (errors.As):
// 401 bad_signature, 403, 404 app_not_found, 400 channel_not_found, 409 version_conflict,
// 422 no_matching_rule; [Error.Temporary] tells an outage (429, 5xx) from a refusal. A relay
// without the endpoint gives an error wrapping [ErrPreflightUnsupported], and a relay URL
// where nothing answers one wrapping [ErrUnreachable].
func (c *Client) Preflight(ctx context.Context, r *PreflightRequest) (*Preflight, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode preflight: %w", err)
	}
	req, err := c.newRequest(ctx, http.MethodPost, PreflightPath, body)
	if err != nil {
		return nil, err
	}
	if err := c.authorizeRegistration(ctx, req, body); err != nil {
		return nil, err
	}
	var pf Preflight
	err = c.do(req, &pf)
	var re *Error
	switch {
	case err == nil:
		return &pf, nil
	case errors.As(err, &re) && (re.StatusCode == http.StatusMethodNotAllowed || re.StatusCode == http.StatusNotFound && re.Code != "app_not_found"):
		return nil, fmt.Errorf("%w (%w)", ErrPreflightUnsupported, err)
	case errors.As(err, &re) && !re.Temporary():
		return nil, fmt.Errorf("relay refused the preflight: %w", err)
	default:
		return nil, err
	}
}
