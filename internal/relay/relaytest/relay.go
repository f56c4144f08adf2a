package relaytest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testpeers"
)

const (
	// readyTimeout is how long Start waits for /readyz to answer 200.
	readyTimeout = 20 * time.Second
	// stopGrace is how long Stop waits for the relay to exit before it kills it; it is
	// longer than the relay's default --shutdown-timeout (10s), so a drain can finish.
	stopGrace = 15 * time.Second
)

// readyClient asks /readyz; it keeps no connections, so none outlive a stopped relay.
var readyClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Options are how [Start] runs the relay. The zero value runs it with no flag but --addr and
// with this process's environment.
type Options struct {
	// Args are the relay's flags. Start puts --addr with a free loopback port before them, so
	// they must not set --addr (the last one would win).
	Args []string
	// Env is the relay's whole environment ("KEY=value"); nil means this process's. Pass
	// append(os.Environ(), …) to add to it.
	Env []string
	// LogLimit, when positive, bounds the relay's captured output (see [Buffer]); zero keeps
	// all of it.
	LogLimit int
	// LogTail, when positive, is how many bytes from the end of the output failure messages
	// show; zero shows all of it.
	LogTail int
}

// Relay is a relay binary run by [Start]. Stop and Start may be called in turn to kill or
// drain it and bring it back on the same address with the same flags, environment and
// store. Its methods are safe for concurrent use.
type Relay struct {
	// URL is the relay's base URL, http://127.0.0.1:port.
	URL string
	// Addr is its listening address, 127.0.0.1:port.
	Addr string
	// Log is what the relay has written to stdout and stderr, across restarts.
	Log *Buffer

	t    testing.TB
	bin  string
	args []string
	env  []string
	tail int

	mu  sync.Mutex
	run *run // nil while stopped
}

// run is one process of the relay.
type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's error; read it only after done is closed
}

// Start runs the relay executable bin (see [Build]) with o, on a free loopback port, and
// blocks until its /readyz answers 200. It fails the test when the relay cannot start,
// exits during start-up or is not ready within 20s. t.Cleanup stops it with SIGTERM and,
// when the test failed, logs its output.
func Start(t testing.TB, bin string, o Options) *Relay {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testpeers.FreePort(t))
	r := &Relay{
		URL: "http://" + addr, Addr: addr, Log: &Buffer{Limit: o.LogLimit},
		t: t, bin: bin, args: append([]string{"--addr", addr}, o.Args...), env: o.Env, tail: o.LogTail,
	}
	t.Cleanup(func() {
		_ = r.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("relay %s output:\n%s", r.URL, r.output())
		}
	})
	r.Start()
	return r
}

// Start starts the relay again after [Relay.Stop], on the same address with the same flags
// and environment, and blocks until its /readyz answers 200. It does nothing while the relay
// runs. Like [Start] it fails the test when the relay does not come up, so call it from the
// test's goroutine.
func (r *Relay) Start() {
	r.t.Helper()
	r.mu.Lock()
	if r.run != nil {
		r.mu.Unlock()
		return
	}
	cmd := exec.Command(r.bin, r.args...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = r.Log, r.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		r.t.Fatalf("start relay: %v", err)
	}
	p := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.run = p
	r.mu.Unlock()
	if err := r.waitReady(p); err != nil {
		r.t.Fatalf("%v\n%s", err, r.output())
	}
}

// waitReady polls /readyz until it answers 200, the process exits or readyTimeout passes.
func (r *Relay) waitReady(p *run) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := readyClient.Get(r.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /readyz: %s", resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("relay exited during start-up: %v", p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay not ready at %s after %s: %w", r.URL, readyTimeout, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Stop sends sig to the relay (SIGKILL for a crash, SIGTERM or SIGINT for a drain) and
// blocks until it has exited. It returns what waiting for the process gave: nil when it
// exited with status 0, an *exec.ExitError otherwise (a killed relay's too). A relay still
// running 15s after sig is killed with its process group, and Stop then says so. Stop
// returns nil at once when the relay is not running.
func (r *Relay) Stop(sig os.Signal) error {
	r.mu.Lock()
	p := r.run
	r.run = nil
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopGrace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("relay did not exit within %s of %v; killed it", stopGrace, sig)
	}
}

// PID returns the process id of the running relay, or 0 while it is stopped; tests read
// /proc/PID/status with it (peak resident memory, VmHWM).
func (r *Relay) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run == nil {
		return 0
	}
	return r.run.cmd.Process.Pid
}

// output is the relay's output as failure messages show it.
func (r *Relay) output() string {
	if r.tail > 0 {
		return Tail(r.Log.String(), r.tail)
	}
	return r.Log.String()
}

// Call sends one request with the test's context and the headers hdr, and returns the
// answer's status code and body. It fails the test when the request cannot be made or sent.
func Call(t testing.TB, method, url string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// WriteConfig writes yaml, a relay configuration (apps, channels, rules), to ferry.yaml in
// a new temporary directory of the test and returns its path for --config.
func WriteConfig(t testing.TB, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
