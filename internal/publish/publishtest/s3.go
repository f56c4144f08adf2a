package publishtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/peers"
)

// S3 is a versitygw server with a posix backend, started for one test.
type S3 struct {
	*peers.S3
	// DataDir holds one directory per bucket; objects are plain files under it.
	DataDir string
}

// Versitygw starts versitygw (peers.VersityGW) on a free loopback port. It is like
// peers.Versitygw but creates the sidecar metadata directory versitygw v1.8.0 requires
// before it starts (peers.Versitygw does not yet, and versitygw exits at once).
func Versitygw(t testing.TB) *S3 {
	t.Helper()
	bin := peers.Path(t, peers.VersityGW)
	dir := t.TempDir()
	data, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, d := range []string{data, meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	const ak, sk = "ferrytest", "ferrytestsecret123"
	cmd := exec.Command(bin, "-a", ak, "-s", sk, "-p", addr, "-q", "posix", "--sidecar", meta, data)
	log, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = log.Close()
	})
	if err := peers.WaitPort(addr, 15*time.Second); err != nil {
		out, _ := os.ReadFile(log.Name())
		t.Fatalf("versitygw: %v\n%s", err, out)
	}
	return &S3{S3: &peers.S3{Endpoint: "http://" + addr, AccessKey: ak, SecretKey: sk}, DataDir: data}
}

// CreateBucket creates a bucket (a directory of the posix backend).
func (s *S3) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(s.DataDir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
}
