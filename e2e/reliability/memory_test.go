package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// memLimit is the GOMEMLIMIT of deploy/kubernetes/relay.yaml, whose container limit is
// 256Mi; maxRSS is the peak resident memory the relay must stay under while attacked.
const (
	memLimit = "200MiB"
	maxRSS   = 200 << 20
	// attackRounds is how many times each attacker sends its request, back to back.
	attackRounds = 4
)

// TestLargeBodiesStayInsideMemoryLimit fires, all at once, 16 manifest_size requests of
// almost 8 MiB each and 16 webhooks of almost 25 MiB with a wrong signature, from one
// address, each sent attackRounds times back to back, at a relay run with the Kubernetes manifest's GOMEMLIMIT, while a device keeps
// checking for updates. The relay must refuse what its body budget cannot hold with 503 and
// Retry-After (or 413), never fail otherwise, keep answering the device, and keep its peak
// resident memory (VmHWM) under maxRSS. Before the body budget the same attack took it to
// about 280 MiB with GOMEMLIMIT and past 1 GiB without.
func TestLargeBodiesStayInsideMemoryLimit(t *testing.T) {
	relay := startRelay(t, relayOpts{Env: []string{"GOMEMLIMIT=" + memLimit}})
	ctx := t.Context()
	b := bundleFor(appID, "1.0.0", "refs/tags/v1.0.0")
	for i := range 3 {
		name := fmt.Sprintf("assets/f%d.js", i)
		b.Manifest = append(b.Manifest, channel.ManifestEntry{FileName: name, FileHash: strings.Repeat("a", 63) + strconv.Itoa(i),
			DownloadURL: "https://cdn.example.com/" + name, Size: 100})
	}
	if rep, err := relay.register(ctx, mustJSON(t, b)); err != nil || rep.Status != http.StatusCreated {
		t.Fatalf("register: %v %s", err, rep)
	}
	hwm0 := vmHWM(t, relay.PID())

	manifest := manifestSizeBody(8<<20 - 4<<10)
	webhook := append(append([]byte(`{"ref":"refs/tags/v9.9.9","pad":"`), bytes.Repeat([]byte("x"), 25<<20-4<<10)...), `"}`...)
	jsonCT := map[string]string{"Content-Type": "application/json"}

	// A device checks for updates throughout the attack; every check must be answered.
	devCtx, stopDev := context.WithCancel(ctx)
	var devOK, devBad atomic.Int64
	var devLast atomic.Value
	devDone := make(chan struct{})
	go func() {
		defer close(devDone)
		for n := 0; devCtx.Err() == nil; n++ {
			u, rep, err := relay.check(devCtx, appID, "production", n)
			switch {
			case devCtx.Err() != nil:
			case err != nil || u.Version != "1.0.0":
				devBad.Add(1)
				devLast.Store(fmt.Sprintf("%v %s", err, rep))
			default:
				devOK.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	fire := func(kind, path string, body []byte, hdr map[string]string) {
		wg.Go(func() {
			for range attackRounds { // an attacker does not honour Retry-After
				rep, err := do(ctx, http.MethodPost, relay.URL+path, body, hdr)
				key := kind + " error " + fmt.Sprint(err)
				if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
					// The relay answered without reading the body and closed the connection
					// while the attacker was still sending it: refused, as wanted.
					key = kind + " reset"
				}
				if err == nil {
					key = fmt.Sprintf("%s %d %s", kind, rep.Status, rep.errCode())
					if rep.Status == http.StatusServiceUnavailable && rep.Header.Get("Retry-After") == "" {
						t.Errorf("%s: 503 without Retry-After", kind)
					}
				}
				mu.Lock()
				statuses[key]++
				mu.Unlock()
			}
		})
	}
	for i := range 16 {
		fire("manifest_size", "/updates/manifest_size", manifest, jsonCT)
		fire("webhook", "/webhooks/github", webhook, map[string]string{
			"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": fmt.Sprint("attack-", i),
			"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64),
		})
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // a few more checks after the attack
	stopDev()
	<-devDone
	hwm := vmHWM(t, relay.PID())
	t.Logf("peak RSS %.1f MiB before the attack, %.1f MiB after; answers %v; device checks %d ok, %d bad",
		float64(hwm0)/(1<<20), float64(hwm)/(1<<20), statuses, devOK.Load(), devBad.Load())

	for key, n := range statuses {
		kind, rest, _ := strings.Cut(key, " ")
		allowed := map[string][]string{
			"manifest_size": {"400 too_many_files", "503 body_budget_exhausted", "413 body_too_large", "reset"},
			"webhook":       {"401 bad_signature", "503 body_budget_exhausted", "413 body_too_large", "reset"},
		}[kind]
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(rest, strings.TrimSpace(a))
		}
		if !ok {
			t.Errorf("%d × %s %s; want one of %q", n, kind, rest, allowed)
		}
	}
	if devBad.Load() > 0 || devOK.Load() == 0 {
		t.Errorf("device checks during the attack: %d ok, %d refused or failed (last: %v)", devOK.Load(), devBad.Load(), devLast.Load())
	}
	if hwm > maxRSS {
		t.Errorf("relay peak RSS %.1f MiB, want under %d MiB (GOMEMLIMIT=%s)", float64(hwm)/(1<<20), maxRSS>>20, memLimit)
	}

	// Legitimate large requests still get through once the attack is over.
	if rep, err := do(ctx, http.MethodPost, relay.URL+"/updates/manifest_size", manifestSizeBody(0), jsonCT); err != nil ||
		rep.Status != http.StatusOK || !bytes.Contains(rep.Body, []byte(`"knownFiles":3`)) {
		t.Errorf("manifest_size after the attack: %v %s", err, rep)
	}
	body := webhookPayload(repository, "refs/tags/v1.0.0", "", b.Commit)
	if rep, err := relay.webhook(ctx, "after-attack", body); err != nil || rep.Status != http.StatusOK {
		t.Errorf("signed webhook after the attack: %v %s", err, rep)
	}
}

// manifestSizeBody is a manifest_size request for version 1.0.0 of appID listing made-up
// files, of about size bytes; with size 0 it lists none (asking about every file of the
// version).
func manifestSizeBody(size int) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"platform":"android","device_id":%q,"app_id":%q,"version_build":"1.0.0","version_name":"builtin","plugin_version":"8.51.23","version":"1.0.0","manifest":[`,
		deviceID(1), appID)
	for i := 0; buf.Len() < size-250; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"file_name":"assets/chunk-%07d.js","file_hash":"%064x","download_url":"https://cdn.example.com/com.example.rel/1.0.0/assets/chunk-%07d.js"}`, i, i, i)
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

// vmHWM returns the peak resident set size of process pid, from /proc/pid/status.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
