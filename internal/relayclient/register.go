package relayclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// RegisterBundle posts b to POST /api/v1/bundles until the relay acknowledges it (201
// created, or 200 for an idempotent re-registration), refuses it for good, or ctx ends.
//
// Each attempt is signed anew with Options.HMACSecret, or carries a token Options.IDToken
// returns for it. 429, 5xx, transport errors and a failed IDToken call are retried with
// exponential backoff from Options.RetryBackoff (except, before the relay ever answered this
// client, a host name that does not resolve or a refused connection: a wrong relay URL
// fails at once with an error wrapping [ErrUnreachable]), each delay capped at Options.RetryMaxWait
// and replaced by the answer's Retry-After when it has one; when ctx's deadline comes before
// the next attempt would, RegisterBundle gives up at once. Any other refusal is returned
// at once: errors.As finds its *[Error] (a 409 version_conflict means the relay has this
// version with another checksum).
func (c *Client) RegisterBundle(ctx context.Context, b *channel.Bundle) (*Registration, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	delay := c.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		reg, err := c.postBundle(ctx, body)
		if err == nil {
			return reg, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return nil, perm.err
		}
		wait := delay
		var re *Error
		if errors.As(err, &re) && re.RetryAfter > 0 {
			wait = re.RetryAfter
		}
		wait = min(wait, c.opts.RetryMaxWait)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("relay did not acknowledge the registration before the deadline (%d attempts): %w", attempt, err)
		}
		c.log.WarnContext(ctx, "registration not acknowledged, retrying", "attempt", attempt, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("relay did not acknowledge the registration (%d attempts): %w", attempt, err)
		case <-t.C:
		}
		delay = min(delay*2, c.opts.RetryMaxWait)
	}
}

// permanentError marks an attempt's error that a retry cannot change.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// postBundle makes one registration attempt.
func (c *Client) postBundle(ctx context.Context, body []byte) (*Registration, error) {
	req, err := c.newRequest(ctx, http.MethodPost, BundlesPath, body)
	if err != nil {
		return nil, &permanentError{err}
	}
	if err := c.authorizeRegistration(ctx, req, body); err != nil {
		if errors.Is(err, errNoCredentials) {
			return nil, &permanentError{err}
		}
		// The runner's token endpoint can fail for a moment: retry within the deadline.
		return nil, err
	}
	var reg Registration
	err = c.do(req, &reg)
	var re *Error
	var de *decodeError
	var ue *unreachableError
	switch {
	case err == nil:
		return &reg, nil
	case errors.As(err, &de), errors.As(err, &ue):
		return nil, &permanentError{err}
	case errors.As(err, &re) && !re.Temporary():
		return nil, &permanentError{fmt.Errorf("relay refused the registration: %w", err)}
	default:
		return nil, err
	}
}

// authorizeRegistration signs req (whose body is body) with the HMAC secret, or sets the
// bearer token Options.IDToken returns; errNoCredentials when there is neither.
func (c *Client) authorizeRegistration(ctx context.Context, req *http.Request, body []byte) error {
	switch {
	case len(c.opts.HMACSecret) > 0:
		SetSignature(req.Header, c.opts.HMACSecret, time.Now(), body)
	case c.opts.IDToken != nil:
		tok, err := c.opts.IDToken(ctx)
		if err != nil {
			return fmt.Errorf("get OIDC token for the relay: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	default:
		return errNoCredentials
	}
	return nil
}
