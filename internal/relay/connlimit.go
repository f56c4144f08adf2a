package relay

import (
	"net"
	"net/http"
	"sync"
)

// limitListener caps the connections open at once (each costs about 19 KiB even idle: two
// bufio buffers and a goroutine). Accept waits for a free slot, leaving newer connections
// in the kernel's backlog, like golang.org/x/net/netutil.LimitListener; but when every slot
// is taken it first closes one idle keep-alive connection, so connections parked by one
// client cannot lock everyone else out until their idle timeout. Connections that are
// reading a request, or have not sent one yet (ReadHeaderTimeout bounds those), are never
// closed. connState must be the http.Server's ConnState.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	idle     map[*limitConn]struct{}
	wantIdle bool // Accept waits for a slot: close the next connection to become idle
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), idle: map[*limitConn]struct{}{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		// Full: close an idle connection, or the next one to become idle.
		l.mu.Lock()
		victim := l.anyIdle()
		l.wantIdle = victim == nil
		l.mu.Unlock()
		if victim != nil {
			_ = victim.Close()
		}
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		l.mu.Lock()
		l.wantIdle = false
		l.mu.Unlock()
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// anyIdle removes and returns one idle connection, or nil. l.mu must be held.
func (l *limitListener) anyIdle() *limitConn {
	for c := range l.idle {
		delete(l.idle, c)
		return c
	}
	return nil
}

// connState tracks which connections are idle between requests; while Accept waits for a
// slot, the next connection to become idle is closed instead.
func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	closeIt := false
	switch {
	case st == http.StateIdle && l.wantIdle:
		l.wantIdle, closeIt = false, true
	case st == http.StateIdle:
		l.idle[lc] = struct{}{}
	default:
		delete(l.idle, lc)
	}
	l.mu.Unlock()
	if closeIt {
		_ = lc.Close()
	}
}

// limitConn gives its slot back when it is closed (once, by whoever closes it first).
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
