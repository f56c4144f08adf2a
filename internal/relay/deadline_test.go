package relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the deadlines that reach the real connection.
type countingConn struct {
	net.Conn
	sets *atomic.Int64
}

func (c countingConn) SetReadDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c countingConn) SetWriteDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// tcpPair returns both ends of a loopback TCP connection, the server end wrapped in a
// lazyConn over a countingConn.
func tcpPair(t *testing.T) (*lazyConn, net.Conn, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); srv.Close() })
	var sets atomic.Int64
	return &lazyConn{Conn: countingConn{Conn: srv, sets: &sets}}, client, &sets
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// TestLazyDeadlines: whatever was armed before, a Read or Write fails exactly when the
// last deadline set for it has passed, and not before.
func TestLazyDeadlines(t *testing.T) {
	t.Parallel()
	t.Run("extended read deadline", func(t *testing.T) {
		t.Parallel()
		c, _, sets := tcpPair(t)
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(50 * time.Millisecond))
		_ = c.SetReadDeadline(start.Add(400 * time.Millisecond)) // later: not applied yet
		if n := sets.Load(); n != 1 {
			t.Errorf("deadlines applied = %d, want 1 (the later one waits)", n)
		}
		_, err := c.Read(make([]byte, 1))
		if d := time.Since(start); !isTimeout(err) || d < 390*time.Millisecond || d > 3*time.Second {
			t.Errorf("Read = %v after %v, want a timeout after 400 ms", err, d)
		}
	})
	t.Run("data before the extended deadline", func(t *testing.T) {
		t.Parallel()
		c, peer, _ := tcpPair(t)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		go func() {
			time.Sleep(200 * time.Millisecond)
			_, _ = peer.Write([]byte("x"))
		}()
		b := make([]byte, 1)
		if n, err := c.Read(b); n != 1 || err != nil || b[0] != 'x' {
			t.Errorf("Read = %d, %v, want the byte written after the first deadline", n, err)
		}
	})
	t.Run("earlier deadline applies at once", func(t *testing.T) {
		t.Parallel()
		c, _, _ := tcpPair(t)
		_ = c.SetReadDeadline(time.Now().Add(time.Hour))
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if d := time.Since(start); !isTimeout(err) || d > 2*time.Second {
			t.Errorf("Read = %v after %v, want a timeout after 50 ms", err, d)
		}
	})
	t.Run("abort then clear", func(t *testing.T) {
		t.Parallel()
		c, peer, _ := tcpPair(t)
		_ = c.SetReadDeadline(time.Now().Add(time.Hour))
		read := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			read <- err
		}()
		time.Sleep(50 * time.Millisecond)
		_ = c.SetReadDeadline(time.Unix(1, 0)) // net/http's abort of a pending read
		select {
		case err := <-read:
			if !isTimeout(err) {
				t.Errorf("aborted Read = %v, want a timeout", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the abort did not end the pending Read")
		}
		_ = c.SetReadDeadline(time.Time{})
		_, _ = peer.Write([]byte("y"))
		b := make([]byte, 1)
		if n, err := c.Read(b); n != 1 || err != nil {
			t.Errorf("Read after clearing the deadline = %d, %v", n, err)
		}
	})
	t.Run("cleared deadline", func(t *testing.T) {
		t.Parallel()
		c, peer, _ := tcpPair(t)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		_ = c.SetReadDeadline(time.Time{}) // none: the armed one is only a wake-up now
		go func() {
			time.Sleep(200 * time.Millisecond)
			_, _ = peer.Write([]byte("z"))
		}()
		if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Errorf("Read without a deadline = %d, %v", n, err)
		}
	})
	t.Run("write across an extended deadline", func(t *testing.T) {
		t.Parallel()
		c, peer, _ := tcpPair(t)
		// More than the socket buffers hold: the Write blocks until the peer reads, past
		// the first deadline, and must carry on from where it stopped.
		msg := make([]byte, 32<<20)
		for i := range msg {
			msg[i] = byte(i % 251)
		}
		_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		got := make(chan []byte, 1)
		go func() {
			time.Sleep(300 * time.Millisecond)
			b, _ := io.ReadAll(io.LimitReader(peer, int64(len(msg))))
			got <- b
		}()
		n, err := c.Write(msg)
		if n != len(msg) || err != nil {
			t.Fatalf("Write = %d, %v, want %d, nil", n, err, len(msg))
		}
		b := <-got
		if len(b) != len(msg) || string(b[:1000]) != string(msg[:1000]) || string(b[len(b)-1000:]) != string(msg[len(msg)-1000:]) {
			t.Errorf("peer read %d bytes, not what was written", len(b))
		}
	})
	t.Run("write deadline passes", func(t *testing.T) {
		t.Parallel()
		c, _, _ := tcpPair(t)
		start := time.Now()
		_ = c.SetWriteDeadline(start.Add(50 * time.Millisecond))
		_ = c.SetWriteDeadline(start.Add(300 * time.Millisecond))
		n, err := c.Write(make([]byte, 32<<20)) // the peer never reads
		if d := time.Since(start); !isTimeout(err) || n == 32<<20 || d < 290*time.Millisecond || d > 5*time.Second {
			t.Errorf("Write = %d, %v after %v, want a timeout after 300 ms", n, err, d)
		}
	})
}

// TestLazyDeadlineTimerUpdates: behind net/http, keep-alive requests apply less than half
// the deadlines the bare connection gets.
func TestLazyDeadlineTimerUpdates(t *testing.T) {
	t.Parallel()
	const requests = 200
	count := func(lazy bool) int64 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var sets atomic.Int64
		var l net.Listener = countingListener{Listener: ln, sets: &sets}
		if lazy {
			l = lazyListener{l}
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = w.Write([]byte(`{"ok":true}`))
			}),
			ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout,
		}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		for range requests {
			resp, err := client.Post("http://"+ln.Addr().String()+"/updates", "application/json", strings.NewReader(`{"app_id":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return sets.Load()
	}
	bare, lazy := count(false), count(true)
	t.Logf("deadlines applied per request: bare %.2f, lazy %.2f", float64(bare)/requests, float64(lazy)/requests)
	if lazy*2 > bare {
		t.Errorf("lazy deadlines applied %d times for %d requests, bare %d: want less than half", lazy, requests, bare)
	}
}

type countingListener struct {
	net.Listener
	sets *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, sets: l.sets}, nil
}

// TestServeReadHeaderTimeout: behind lazy deadlines the relay still closes a keep-alive
// connection whose next request's header stalls, after readHeaderTimeout and not before.
func TestServeReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, openBolt(t), nil)
	addr := serveLoopback(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 { // a few requests, so that deadlines are armed lazily
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	start := time.Now()
	if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: rel"); err != nil { // and stall
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(start.Add(readHeaderTimeout + 5*time.Second))
	_, err = br.ReadByte()
	d := time.Since(start)
	if isTimeout(err) {
		t.Fatalf("the relay kept a stalled header open for %v (read-header timeout %v)", d, readHeaderTimeout)
	}
	if d < readHeaderTimeout-200*time.Millisecond {
		t.Errorf("connection closed after %v (%v), before the read-header timeout %v", d, err, readHeaderTimeout)
	}
}
