// Package testpeers finds and starts the real programs Ferry's tests talk to: redis-server,
// versitygw (S3), an OpenID Provider (zitadel/oidc's example server), cosign, gh, actionlint,
// @capgo/cli, java, wrk, and headless Chromium with axe-core for browser tests. It is test
// support only (it imports testing); no binary links it, which imports_test.go checks.
//
// scripts/peers.sh installs or builds them once and writes .peers.env; `make test` exports
// those FERRY_* variables and sets FERRY_REQUIRE_PEERS=1, so in CI a missing peer fails the
// test instead of skipping it. A plain `go test ./...` on a machine without the peers skips
// the tests that need them.
//
//	rdb := testpeers.Redis(t)    // own redis-server on a free loopback port
//	s3 := testpeers.Versitygw(t) // own S3 server; s3.CreateBucket(t, "web")
//	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{cb}, Users: users})
//	cosign := testpeers.Path(t, testpeers.Cosign)
//	ctx := testpeers.Browser(t)  // fresh headless Chromium; drive it with chromedp
//	console := testpeers.ConsoleErrors(t, ctx) // then navigate; console.None(t)
//	testpeers.Axe(t, ctx)        // fail on serious or critical accessibility violations
//	testpeers.Screenshot(t, ctx, "shot.png", testpeers.MobileWidth, testpeers.MobileHeight)
//
// Servers are stopped by t.Cleanup. Nothing here touches services the machine already runs.
package testpeers

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables naming each peer's executable (or directory, for capgo).
const (
	RedisServer = "FERRY_REDIS_SERVER"
	VersityGW   = "FERRY_VERSITYGW"
	Cosign      = "FERRY_COSIGN"
	GH          = "FERRY_GH"
	Actionlint  = "FERRY_ACTIONLINT"
	CapgoDir    = "FERRY_CAPGO_DIR"
	Java        = "FERRY_JAVA"
	Javac       = "FERRY_JAVAC"
	Wrk         = "FERRY_WRK"
	TestOP      = "FERRY_TEST_OP"
)

// fallback names looked up on PATH when the variable is unset.
var fallback = map[string]string{
	RedisServer: "redis-server",
	VersityGW:   "versitygw",
	Cosign:      "cosign",
	GH:          "gh",
	Actionlint:  "actionlint",
	Java:        "java",
	Javac:       "javac",
	Wrk:         "wrk",
	TestOP:      "ferry-test-op",
	Chromium:    "chromium",
}

// Required reports whether missing peers must fail tests (FERRY_REQUIRE_PEERS=1, set by make test).
func Required() bool { return os.Getenv("FERRY_REQUIRE_PEERS") == "1" }

// Path returns the path named by the peer's environment variable (or found on PATH). When the
// peer is missing it skips the test, or fails it when peers are required.
func Path(t testing.TB, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		if name, ok := fallback[env]; ok {
			p, _ = exec.LookPath(name)
		}
	}
	if p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	missing(t, "peer %s is not installed (run `make peers`, or `make test`)", env)
	return ""
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitPort waits until addr accepts TCP connections or the timeout passes.
func WaitPort(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Process is a peer server started by a test. Stop and Start may be called to simulate an
// outage; the server comes back on the same address with the same data directory.
type Process struct {
	Addr string        // host:port
	Dir  string        // data directory
	Log  *bytes.Buffer // use Output to read it while the process runs

	t     testing.TB
	args  []string
	env   []string // added to this process's environment
	mu    sync.Mutex
	cmd   *exec.Cmd
	logMu sync.Mutex
}

// Output returns what the process has printed so far.
func (p *Process) Output() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.Log.String()
}

func startProcess(t testing.TB, addr, dir string, args []string) *Process {
	t.Helper()
	return startProcessEnv(t, addr, dir, args, nil)
}

// startProcessEnv is startProcess with env ("KEY=value") added to this process's environment.
func startProcessEnv(t testing.TB, addr, dir string, args, env []string) *Process {
	t.Helper()
	p := &Process{Addr: addr, Dir: dir, Log: new(bytes.Buffer), t: t, args: args, env: env}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// Start starts the process (again) and waits for its port.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Dir = p.Dir
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout = syncWriter{&p.logMu, p.Log}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(p.args[0]), err)
	}
	p.cmd = cmd
	p.mu.Unlock()
	err := WaitPort(p.Addr, 15*time.Second)
	p.mu.Lock()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(p.args[0]), err, p.Output())
	}
	return nil
}

// Stop kills the process (SIGKILL, like a crash) and waits for it to exit.
func (p *Process) Stop() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Redis starts a private redis-server on a free loopback port with no persistence, unless
// extra arguments (e.g. "--appendonly", "yes") say otherwise. It never touches the machine's
// own Redis on 6379.
func Redis(t testing.TB, extra ...string) *Process {
	t.Helper()
	bin := Path(t, RedisServer)
	port := FreePort(t)
	dir := t.TempDir()
	args := []string{bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir}
	if !containsArg(extra, "--appendonly") {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, extra...)
	return startProcess(t, fmt.Sprintf("127.0.0.1:%d", port), dir, args)
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

// S3 is a versitygw server started for a test.
type S3 struct {
	*Process
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
}

// Versitygw starts a versitygw S3 server with a posix backend in a temp directory.
func Versitygw(t testing.TB) *S3 {
	t.Helper()
	bin := Path(t, VersityGW)
	port := FreePort(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	meta := filepath.Join(dir, "meta") // versitygw v1.8.0 exits at start when the sidecar directory is missing
	for _, d := range []string{data, meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const ak, sk = "ferrytest", "ferrytestsecret123"
	p := startProcess(t, addr, dir, []string{bin, "-a", ak, "-s", sk, "-p", addr, "-q", "posix", "--sidecar", meta, data})
	return &S3{Process: p, Endpoint: "http://" + addr, AccessKey: ak, SecretKey: sk}
}

// BucketURL returns the gocloud.dev s3:// URL for bucket on this server.
func (s *S3) BucketURL(bucket string) string {
	return "s3://" + bucket + "?region=us-east-1&endpoint=" + s.Endpoint + "&use_path_style=true"
}

// Env returns the AWS credential environment for clients of this server.
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=us-east-1"}
}

// CreateBucket creates a bucket by making a directory in the posix backend, which is how
// versitygw's posix backend stores buckets.
func (s *S3) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(s.Dir, "data", bucket), 0o755); err != nil {
		t.Fatal(err)
	}
}

// Capgo returns the @capgo/cli executable and the scratch project directory it was installed
// in (which has @capgo/capacitor-updater 8.51.23 in node_modules, so the CLI picks V3 checksums).
func Capgo(t testing.TB) (cli, dir string) {
	t.Helper()
	dir = os.Getenv(CapgoDir)
	cli = filepath.Join(dir, "node_modules", ".bin", "capgo")
	if dir == "" {
		missing(t, "peer %s is not installed (run `make peers`)", CapgoDir)
		return "", ""
	}
	if _, err := os.Stat(cli); err != nil {
		missing(t, "peer %s: %v", CapgoDir, err)
		return "", ""
	}
	return cli, dir
}

// CapgoEnv is the environment that keeps @capgo/cli offline and quiet.
func CapgoEnv() []string {
	return append(os.Environ(), "CAPGO_DISABLE_TELEMETRY=true", "CAPGO_DISABLE_POSTHOG=true", "CI=true")
}

// Run runs a peer command and returns its combined output, failing the test on error unless
// wantErr is true.
func Run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
