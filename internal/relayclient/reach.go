package relayclient

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// ErrUnreachable marks a request that found nothing at the relay's address: its host name
// does not resolve, or nothing accepts connections on its port. errors.Is finds it in what
// [Client.RegisterBundle] and [Client.Preflight] return when the relay never answered.
var ErrUnreachable = errors.New("relay unreachable")

// unreachableError is a transport error that a retry will not fix while the relay has never
// answered: most likely a mistyped relay URL.
type unreachableError struct {
	url string
	err error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("relay %s is unreachable (%v): check the relay URL for typos and that the relay is running", e.url, e.err)
}

func (e *unreachableError) Unwrap() []error { return []error{ErrUnreachable, e.err} }

// unreachable reports whether err says there is nothing at the relay's address: a host name
// that does not exist (not a resolver that timed out or failed for a moment), or a refused
// connection.
func unreachable(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsNotFound
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// checkReach turns a transport error of a client that has not yet had an answer from the
// relay into a permanent *unreachableError when it says nothing is there. Once the relay
// has answered, a refused connection is a restart, and the caller keeps retrying.
func (c *Client) checkReach(err error) error {
	if c.reached.Load() || !unreachable(err) {
		return err
	}
	return &unreachableError{url: c.BaseURL(), err: err}
}
