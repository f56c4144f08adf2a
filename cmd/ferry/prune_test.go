package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/pipeline"
	"github.com/ferryhq/ferry/internal/publish"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const pruneApp = "com.example.app"

// registerHMAC registers b with the relay as a CI would.
func registerHMAC(t *testing.T, relay string, b *channel.Bundle) {
	t.Helper()
	body, _ := json.Marshal(b)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", relay+"/api/v1/bundles", bytes.NewReader(body))
	now := time.Now()
	req.Header.Set("X-Ferry-Timestamp", fmt.Sprint(now.Unix()))
	req.Header.Set("X-Ferry-Signature-256", relayclient.Sign([]byte("ci"), now, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("register %s: %d %s", b.Version, resp.StatusCode, msg)
	}
}

// pruneBucket is a bucket destination under test: its URL, the process environment its
// credentials need, where its objects are files, and whether their times can be set.
type pruneBucket struct {
	url      string
	env      []string
	dir      string
	settable bool
}

// putObject uploads body under key with the real bucket code and returns its URL.
func putObject(t *testing.T, b *publish.Bucket, key, body string) string {
	t.Helper()
	obj, err := b.Put(t.Context(), publish.File{Name: key, Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	return obj.URL
}

// TestAdminBundlesPrune fills a bucket as publishes do (a registered bundle with its
// signature, manifest and delta files; files of registered versions published elsewhere;
// an abandoned publish that never registered; a publish in progress) and prunes it: a dry
// run lists only the old orphans and deletes nothing, --delete deletes only them, and a
// relay that cannot be read stops it before anything is deleted.
func TestAdminBundlesPrune(t *testing.T) {
	backends := map[string]func(t *testing.T) pruneBucket{
		"file": func(t *testing.T) pruneBucket {
			dir := t.TempDir()
			return pruneBucket{url: "file://" + filepath.ToSlash(dir) + "?prefix=live/", dir: filepath.Join(dir, "live"), settable: true}
		},
		"s3-versitygw": func(t *testing.T) pruneBucket {
			s3 := publishtest.Versitygw(t)
			s3.CreateBucket(t, "web")
			return pruneBucket{url: s3.BucketURL("web") + "&prefix=live/", env: s3.Env(), dir: filepath.Join(s3.DataDir, "web", "live")}
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			pb := open(t)
			for _, kv := range pb.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			testPrune(t, pb)
		})
	}
}

func testPrune(t *testing.T, pb pruneBucket) {
	ctx := t.Context()
	relay, tokenFile := adminRelay(t) // registers 1.0.0, 1.0.1 and 1.1.0 (served from a CDN)
	// Devices download through a CDN in front of the bucket, as the relay requires https.
	b, err := publish.OpenBucket(ctx, pb.url, publish.Options{PublicBaseURL: "https://cdn.example.com/web", Getenv: func(k string) string {
		for _, kv := range pb.env {
			if key, v, _ := strings.Cut(kv, "="); key == k {
				return v
			}
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := func(v, name string) string { return pipeline.BucketKey(pruneApp, v, name) }

	// 2.0.0: published here and registered, with delta files.
	zip := key("2.0.0", pruneApp+"-2.0.0.zip")
	reg := &channel.Bundle{AppID: pruneApp, Version: "2.0.0", URL: putObject(t, b, zip, "zip 2.0.0"),
		SignatureURL: putObject(t, b, key("2.0.0", pruneApp+"-2.0.0.zip.sigstore.json"), "sig"),
		ManifestURL:  putObject(t, b, key("2.0.0", pruneApp+"-2.0.0.zip.manifest.json"), "[]"),
		Manifest: []channel.ManifestEntry{{FileName: "index.html", FileHash: strings.Repeat("a", 64),
			DownloadURL: putObject(t, b, pruneApp+"/files/"+strings.Repeat("a", 64), "index")}},
		Commit: strings.Repeat("9", 40), Ref: "refs/heads/feature", Size: 9}
	sum := sha256.Sum256([]byte("zip 2.0.0"))
	reg.Checksum, reg.SHA256 = hex.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
	registerHMAC(t, relay, reg)
	// 1.0.0 is registered with a CDN URL; its files in the bucket are its version's.
	putObject(t, b, key("1.0.0", pruneApp+"-1.0.0.zip"), "zip 1.0.0")
	// A publish of 2.1.0 that failed before registering, and its delta file.
	orphans := []string{key("2.1.0", pruneApp+"-2.1.0.zip"), pruneApp + "/files/" + strings.Repeat("b", 64)}
	putObject(t, b, orphans[0], "zip 2.1.0")
	putObject(t, b, orphans[1], "other")
	// Another app's object is not this app's to prune.
	putObject(t, b, "com.example.other/1.0.0/x.zip", "x")

	olderThan := "24h"
	// What writers to a file:// bucket that died mid-write left: never referenced, even
	// beside a registered bundle's objects.
	var deadTemps, youngTemps []string
	if pb.settable {
		deadTemps = []string{key("2.0.0", pruneApp+"-2.0.0.zip.18d2f3a4b5c6d7e8.tmp"), pruneApp + "/files/" + strings.Repeat("c", 64) + ".18d2f3a4b5c6d7e9.tmp"}
		for _, k := range deadTemps {
			writeBucketFile(t, pb.dir, k, "partial")
		}
		old := time.Now().Add(-48 * time.Hour)
		if err := filepath.WalkDir(pb.dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				err = os.Chtimes(p, old, old)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// A publish of 2.2.0 in progress: uploaded, not yet registered.
		putObject(t, b, key("2.2.0", pruneApp+"-2.2.0.zip"), "zip 2.2.0")
		youngTemps = []string{key("2.2.0", pruneApp+"-2.2.0.zip.sigstore.json.18d2f3a4b5c6d7f0.tmp")}
		writeBucketFile(t, pb.dir, youngTemps[0], "partial")
	} else {
		// The S3 server sets its own times: everything is old for --older-than 0s.
		olderThan = "0s"
		time.Sleep(10 * time.Millisecond)
	}
	exists := func(k string) bool {
		_, err := os.Stat(filepath.Join(pb.dir, filepath.FromSlash(k)))
		return err == nil
	}
	listed, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	for _, o := range listed {
		before = append(before, o.Key)
	}

	base := []string{"admin", "--relay", relay, "--app", pruneApp, "--token-file", tokenFile}
	prune := func(extra ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		args := append(append(append([]string{}, base...), "bundles", "prune", "--bucket", pb.url, "--older-than", olderThan), extra...)
		code := run(ctx, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	// Without --delta-files the shared delta file is kept: a publish may be reusing it. The
	// dead writers' temporary files go in any case.
	code, out, errOut := prune("--json")
	var kept pruneReport
	wantKept := append([]string{orphans[0]}, deadTemps...)
	slices.Sort(wantKept)
	if err := json.Unmarshal([]byte(out), &kept); code != 0 || err != nil || kept.DeltaKept != 1 || !slices.Equal(reportKeys(kept), wantKept) {
		t.Fatalf("dry run without --delta-files: exit %d, %v: %+v; want only %q, one delta file kept\n%s", code, err, kept, wantKept, errOut)
	}
	wantPruned := append(slices.Clone(orphans), deadTemps...)
	slices.Sort(wantPruned)
	code, out, errOut = prune("--json", "--delta-files")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	var rep pruneReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("dry run --json: %v\n%s", err, out)
	}
	for _, o := range rep.Objects {
		if o.Deleted || o.Size == 0 {
			t.Errorf("dry run object %+v: want a size and not deleted", o)
		}
	}
	if got := reportKeys(rep); !slices.Equal(got, wantPruned) || !rep.DryRun || rep.TotalBytes != int64(len("zip 2.1.0")+len("other")+len("partial")*len(deadTemps)) {
		t.Errorf("dry run = %v (dry run %v, %d bytes), want only the abandoned publish's %v", got, rep.DryRun, rep.TotalBytes, wantPruned)
	}
	if pb.settable && rep.Young != 2 {
		t.Errorf("dry run kept %d young objects, want 2 (the publish in progress: its zip and a temporary file)", rep.Young)
	}
	for _, k := range before {
		if !exists(k) {
			t.Errorf("dry run deleted %s", k)
		}
	}
	code, out, errOut = prune("--delta-files")
	if code != 0 || !strings.Contains(out, orphans[0]) || !strings.Contains(out, "would be deleted (dry run") || !strings.Contains(out, fmt.Sprintf("%d unreferenced objects", len(wantPruned))) {
		t.Errorf("dry run for people: exit %d\n%s%s", code, out, errOut)
	}

	// The relay cannot be read: refused, nothing deleted.
	for _, bad := range [][]string{
		{"admin", "--relay", "http://127.0.0.1:1", "--app", pruneApp, "--token-file", tokenFile},
		{"admin", "--relay", relay, "--app", pruneApp, "--token-file", writeToken(t, "wrong")},
	} {
		var stdout, stderr bytes.Buffer
		code := run(ctx, append(bad, "bundles", "prune", "--bucket", pb.url, "--older-than", olderThan, "--delete"), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "nothing was deleted") {
			t.Errorf("prune with an unreadable relay: exit %d\n%s%s", code, &stdout, &stderr)
		}
		for _, k := range before {
			if !exists(k) {
				t.Fatalf("prune with an unreadable relay deleted %s", k)
			}
		}
	}

	code, out, errOut = prune("--delete", "--delta-files")
	if code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("--delete: exit %d\n%s%s", code, out, errOut)
	}
	for _, k := range slices.Concat(before, deadTemps, youngTemps) {
		if want := !slices.Contains(wantPruned, k); exists(k) != want {
			t.Errorf("after --delete %s exists = %v, want %v", k, !want, want)
		}
	}
	// Nothing is left to prune.
	if code, out, _ = prune("--json", "--delta-files"); code != 0 || !strings.Contains(out, `"objects": []`) {
		t.Errorf("prune after --delete: exit %d\n%s", code, out)
	}
}

// writeBucketFile writes a file into a file:// bucket's directory by hand, as a writer
// that died would have left it.
func writeBucketFile(t *testing.T, dir, key, body string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reportKeys lists the keys of a prune report's objects, in its order.
func reportKeys(rep pruneReport) []string {
	var keys []string
	for _, o := range rep.Objects {
		keys = append(keys, o.Key)
	}
	return keys
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAdminBundlesPruneUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bundles", "prune"},
		{"bundles", "prune", "--bucket", "file:///x", "extra"},
		{"bundles", "prune", "--bucket", "file:///x", "--older-than", "-1h"},
		{"bundles", "prune", "--bucket", "file:///x", "--older-than", "soon"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append([]string{"admin", "--relay", "http://127.0.0.1:1", "--app", pruneApp, "--token-file", writeToken(t, "x")}, args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "bundles prune") {
			t.Errorf("%v: exit %d, want 2 with the usage\n%s", args, code, &stderr)
		}
	}
}
