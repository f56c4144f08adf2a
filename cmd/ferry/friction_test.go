package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// The tests of this file each hold one friction point a newcomer met to its fix: the
// command says what went wrong and what to do, instead of failing obscurely or silently.

// ferryRun runs the CLI in-process and returns its exit code and output.
func ferryRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestAdminRelayWithoutScheme: --relay relay.example.com says the URL has no scheme and
// how to write it, before anything is sent.
func TestAdminRelayWithoutScheme(t *testing.T) {
	t.Parallel()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := ferryRun(t, "admin", "--relay", "relay.example.com", "--app", "a", "--token-file", token, "channels")
	if code != 1 || !strings.Contains(errOut, `relay URL "relay.example.com" has no scheme: write it as https://relay.example.com`) {
		t.Errorf("exit %d, stderr %q; want the missing scheme named with the fix", code, errOut)
	}
}

// TestAdminFlagAfterAction: `ferry admin … channels --json` works; another of ferry admin's
// flags after the action is refused with where flags go.
func TestAdminFlagAfterAction(t *testing.T) {
	t.Parallel()
	relay, token := adminRelay(t)
	base := []string{"admin", "--relay", relay, "--app", "com.example.app", "--token-file", token}
	code, out, errOut := ferryRun(t, append(base, "channels", "--json")...)
	var list relayclient.ChannelList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Channels) != 2 {
		t.Errorf("channels --json: exit %d, %q %q; want the JSON channel list", code, out, errOut)
	}
	if code, out, _ := ferryRun(t, append(base, "bundles", "--json=true", "2")...); code != 0 || !strings.HasPrefix(out, "{") {
		t.Errorf("bundles --json=true 2: exit %d, %q", code, out)
	}
	code, _, errOut = ferryRun(t, append(base, "channels", "--timeout", "5s")...)
	if code != 2 || !strings.Contains(errOut, "--timeout is a flag of ferry admin, not of channels: put it before the action") {
		t.Errorf("channels --timeout 5s: exit %d, stderr %q; want where flags go", code, errOut)
	}
}

// TestAdminAuditShowsPolicyChange: the audit table shows a policy change's before and after.
func TestAdminAuditShowsPolicyChange(t *testing.T) {
	t.Parallel()
	relay, token := adminRelay(t)
	base := []string{"admin", "--relay", relay, "--app", "com.example.app", "--token-file", token}
	if code, _, errOut := ferryRun(t, append(base, "policy", "beta", `{"public":true}`)...); code != 0 {
		t.Fatalf("policy: exit %d %s", code, errOut)
	}
	code, out, errOut := ferryRun(t, append(base, "audit", "--action", "policy")...)
	if code != 0 || !strings.Contains(out, "CHANGE") || !strings.Contains(out, `"public":false`) ||
		!strings.Contains(out, `→ {"public":true`) {
		t.Errorf("audit --action policy: exit %d\n%s%s\nwant the policy before → after", code, out, errOut)
	}
}

// TestPackIntoMissingFolder: `ferry pack --out` into a folder that does not exist names the
// folder and says to create it, and writes nothing.
func TestPackIntoMissingFolder(t *testing.T) {
	t.Parallel()
	build := t.TempDir()
	if err := os.WriteFile(filepath.Join(build, "index.html"), []byte("<p>x"), 0o644); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	missing := filepath.Join(parent, "dist")
	code, _, errOut := ferryRun(t, "pack", "--dir", build, "--out", filepath.Join(missing, "b.zip"))
	if code != 1 || !strings.Contains(errOut, "the folder "+missing+" does not exist; create it first (mkdir -p "+missing+")") ||
		strings.Contains(errOut, ".ferry-pack-") {
		t.Errorf("exit %d, stderr %q; want the missing folder named with the fix", code, errOut)
	}
	if des, _ := os.ReadDir(parent); len(des) != 0 {
		t.Errorf("a refused pack left %v", des)
	}
}

// TestVerifyMissingArtifact: `ferry verify` on an artifact that does not exist names the
// artifact (not its .sigstore.json); an artifact given without --artifact is told the flag.
func TestVerifyMissingArtifact(t *testing.T) {
	t.Parallel()
	artifact := filepath.Join(t.TempDir(), "web.zip.enc")
	code, _, errOut := ferryRun(t, "verify", "--artifact", artifact, "--repo", "acme/app")
	if code != 1 || !strings.Contains(errOut, "artifact "+artifact+" does not exist") || strings.Contains(errOut, "sigstore.json") {
		t.Errorf("missing artifact: exit %d, stderr %q; want the artifact named", code, errOut)
	}
	if err := os.WriteFile(artifact, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = ferryRun(t, "verify", "--artifact", artifact, "--repo", "acme/app")
	if code != 1 || !strings.Contains(errOut, "Sigstore bundle "+artifact+".sigstore.json of artifact "+artifact+" does not exist") {
		t.Errorf("missing bundle: exit %d, stderr %q; want the bundle and its artifact named", code, errOut)
	}
	code, _, errOut = ferryRun(t, "verify", "--repo", "acme/app", artifact)
	if code != 2 || !strings.Contains(errOut, "the artifact is given with --artifact: ferry verify --artifact "+artifact) {
		t.Errorf("positional artifact: exit %d, stderr %q", code, errOut)
	}
}

// TestProbeUnknownChannel: `ferry probe --channel nightly` for a channel the relay does not
// have fails, saying so, instead of showing the default channel's answer as nightly's; a
// channel that exists is probed as before.
func TestProbeUnknownChannel(t *testing.T) {
	t.Parallel()
	url, pub, bodies := probeRelay(t, nil)
	code, out, errOut := ferryRun(t, "probe", "--relay", url, "--app", "com.example.app", "--public-key", pub, "--channel", "nightly")
	if code != 1 || !strings.Contains(out, `Channel "nightly" does not exist on the relay`) || !strings.Contains(errOut, "--list-channels") {
		t.Errorf("--channel nightly: exit %d\n%s%s\nwant a failure naming the channel", code, out, errOut)
	}
	if n := len(bodies()); n != 0 {
		t.Errorf("the probe made %d update checks for a missing channel, want none", n)
	}
	if code, out, errOut := ferryRun(t, "probe", "--relay", url, "--app", "com.example.app", "--public-key", pub, "--channel", "beta"); code != 0 {
		t.Errorf("--channel beta: exit %d\n%s%s", code, out, errOut)
	}
	if b := bodies(); len(b) != 1 || b[0]["defaultChannel"] != "beta" {
		t.Errorf("update checks = %v, want one for beta", b)
	}
}

// TestProbeBlockedDownloadFails: a blocked answer is not a failure of a plain probe, but
// with --download (the device path) it exits 1: there is nothing to download.
func TestProbeBlockedDownloadFails(t *testing.T) {
	t.Parallel()
	url, pub, _ := probeRelay(t, func(r *channel.UpdateResponse) {
		*r = channel.UpdateResponse{Error: channel.CodeUnderNative, Message: "no bundle supports native version 1.0.0", Kind: channel.KindBlocked, Version: "2.0.0", Old: "builtin"}
	})
	args := []string{"probe", "--relay", url, "--app", "com.example.app", "--public-key", pub}
	if code, out, errOut := ferryRun(t, args...); code != 0 || !strings.Contains(out, "Decision: blocked") {
		t.Errorf("blocked without --download: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := ferryRun(t, append(args, "--download")...)
	if code != 1 || !strings.Contains(errOut, "blocked ("+channel.CodeUnderNative+"): the relay offers this device nothing to download") {
		t.Errorf("blocked with --download: exit %d, stderr %q; want 1", code, errOut)
	}
}

// TestKeysRelayURL: a --relay given with /updates on it does not give /updates/updates,
// and an http:// relay gets the cleartext warning (an https:// one does not).
func TestKeysRelayURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ relay, base string }{
		{"https://x.example/updates", "https://x.example"},
		{"https://x.example/ferry/updates/", "https://x.example/ferry"},
		{"http://10.0.2.2:8080/", "http://10.0.2.2:8080"},
	} {
		code, out, errOut := ferryRun(t, "keys", "--dir", t.TempDir(), "--relay", tc.relay)
		if code != 0 {
			t.Fatalf("keys --relay %s: exit %d %s", tc.relay, code, errOut)
		}
		if !strings.Contains(out, `"updateUrl": "`+tc.base+`/updates"`) || !strings.Contains(out, `"statsUrl": "`+tc.base+`/stats"`) ||
			strings.Contains(out, "/updates/") {
			t.Errorf("keys --relay %s: snippet\n%s\nwant the endpoints on %s", tc.relay, out, tc.base)
		}
		if cleartext := strings.Contains(errOut, "Android refuses cleartext"); cleartext != strings.HasPrefix(tc.relay, "http://") {
			t.Errorf("keys --relay %s: cleartext warning %v: %q", tc.relay, cleartext, errOut)
		}
	}
}

// TestPublishUnreachableRelayFailsFast: a mistyped relay-url (nothing listens there) fails
// the preflight at once, naming the URL, before anything is uploaded.
func TestPublishUnreachableRelayFailsFast(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayURL := "http://" + ln.Addr().String()
	ln.Close()
	env, dest := gitlabTagPublish(t, relayURL)
	start := time.Now()
	var stdout, stderr bytes.Buffer
	err = publishCmd(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "relay "+relayURL+" is unreachable") || !strings.Contains(err.Error(), "Nothing was uploaded") {
		t.Fatalf("publish = %v, want the unreachable relay named and nothing uploaded\n%s", err, stderr.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v: the unreachable relay was retried", d)
	}
	if files := filesIn(t, dest); len(files) != 0 {
		t.Errorf("the destination holds %v", files)
	}
}
