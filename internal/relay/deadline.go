package relay

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// lazyListener hands out connections whose deadlines are extended lazily (see lazyConn).
type lazyListener struct{ net.Listener }

func (l lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lazyConn{Conn: c}, nil
}

// lazyConn keeps the timeouts net/http sets on a connection while touching the runtime's
// timers far less often. With the relay's four timeouts, net/http sets a keep-alive
// connection's deadlines eight times per request (read-header, whole-request, write, the
// "long time ago" that stops its background read and the clearing after it, idle, …),
// each a timer update in the runtime; a server answering tens of thousands of small
// requests a second spends a few percent of its CPU there.
//
// A deadline that moves later is not applied at once: the earlier one stays armed, and when
// it fires, the Read or Write that saw it arms the deadline wanted now (at most
// lazyStep ahead) and carries on if that one is still ahead. A read that timed out
// consumed nothing; a write that timed out reports what it wrote, and the rest is written.
// A deadline that moves earlier is applied at once, and so is the abort of a pending read;
// the abort then stays armed until the next Read, which fails at once without a system
// call and arms what is wanted by then. Every Read and Write therefore fails exactly when
// the last deadline set for it has passed, as on the bare connection, with about two timer
// updates per request instead of eight (TestLazyDeadlineTimerUpdates counts them).
type lazyConn struct {
	net.Conn
	rd, wd lazyDeadline
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return c.rd.set(t, c.Conn.SetReadDeadline)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return c.wd.set(t, c.Conn.SetWriteDeadline)
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *lazyConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.rd.rearm(c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *lazyConn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.wd.rearm(c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}

// lazyDeadline is one direction's deadline: the one last set (want) and the one the
// connection has (armed; zero is none).
type lazyDeadline struct {
	mu    sync.Mutex
	want  time.Time
	armed time.Time
}

// lazyStep is how far ahead rearm arms a deadline at most, so that the next request's
// read-header deadline is later than the armed one (and left alone).
const lazyStep = readHeaderTimeout

// pastDeadline: an armed deadline before this (net/http's aLongTimeAgo) is an abort rather
// than a timeout.
var pastDeadline = time.Unix(1<<30, 0)

func isAbort(t time.Time) bool { return !t.IsZero() && t.Before(pastDeadline) }

// set records t as the wanted deadline and applies it when it is earlier than the armed one
// (or none is armed, or t is an abort). A later deadline, or none, waits for rearm.
func (d *lazyDeadline) set(t time.Time, apply func(time.Time) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = t
	switch {
	case t.Equal(d.armed):
		return nil
	case isAbort(d.armed) && !isAbort(t):
		return nil // the next Read or Write fails at once and rearms
	case !t.IsZero() && (d.armed.IsZero() || t.Before(d.armed)):
		// earlier: at once
	default:
		return nil // later or none: when the armed one fires
	}
	if err := apply(t); err != nil {
		return err
	}
	d.armed = t
	return nil
}

// rearm is called when the armed deadline fired. It reports whether the operation should
// be retried: the wanted deadline is none or still ahead, and is now armed (at most
// lazyStep ahead).
func (d *lazyDeadline) rearm(apply func(time.Time) error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.want
	if !next.IsZero() {
		now := time.Now()
		if !now.Before(next) {
			return false // the deadline wanted has passed
		}
		if limit := now.Add(lazyStep); next.After(limit) {
			next = limit
		}
	} else if d.armed.IsZero() {
		return false // nothing was armed: not a deadline of ours
	}
	if apply(next) != nil {
		return false
	}
	d.armed = next
	return true
}
