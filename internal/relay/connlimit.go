package relay

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// limitListener caps the connections open at once (each costs about 19 KiB even idle: two
// bufio buffers and a goroutine). Accept waits for a free slot, leaving newer connections
// in the kernel's backlog, like golang.org/x/net/netutil.LimitListener; but when every slot
// is taken it first closes one idle keep-alive connection, so connections parked by one
// client cannot lock everyone else out until their idle timeout. Connections that are
// reading a request, or have not sent one yet (ReadHeaderTimeout bounds those), are never
// closed. connState must be the http.Server's ConnState. A request costs it two atomic
// stores (the connection's state); the set of connections changes only when one opens or
// closes.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	// wantIdle: Accept waits for a slot, so close the next connection to become idle.
	wantIdle atomic.Bool

	mu    sync.Mutex
	conns map[*limitConn]struct{} // open connections
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}), conns: map[*limitConn]struct{}{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		// Full: close an idle connection, or the next one to become idle.
		if victim := l.claimIdle(); victim != nil {
			_ = victim.Close()
		}
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		l.mu.Lock()
		l.wantIdle.Store(false)
		l.mu.Unlock()
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// claimIdle returns an idle connection for Accept to close, or nil after asking
// connState to close the next one to become idle. wantIdle is set before the scan, so a
// connection becoming idle meanwhile is either seen by the scan or sees wantIdle.
func (l *limitListener) claimIdle() *limitConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wantIdle.Store(true)
	for c := range l.conns {
		if c.idle.CompareAndSwap(true, false) {
			l.wantIdle.Store(false)
			return c
		}
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
	if st != http.StateIdle {
		lc.idle.Store(false)
		return
	}
	lc.idle.Store(true)
	if !l.wantIdle.Load() {
		return
	}
	l.mu.Lock()
	closeIt := l.wantIdle.Load() && lc.idle.CompareAndSwap(true, false)
	if closeIt {
		l.wantIdle.Store(false)
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
	idle atomic.Bool // between requests (http.StateIdle)
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
