package e2e

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// exampleFiles lists examples/web, the app every scenario ships.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	root := filepath.Join("..", "examples", "web")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestFirstInstall: CI builds a tag, the action encrypts it and uploads it to S3
// (versitygw), registers it with the relay; a fresh device on the default channel
// downloads, decrypts, verifies and unpacks it, and its stats reach the relay.
func TestFirstInstall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// versitygw as the S3 bucket (publishtest starts it with the sidecar directory it needs).
	s3 := publishtest.Versitygw(t)
	s3.CreateBucket(t, "web")
	// The bucket's public side (a CDN in production) reads what versitygw stored.
	cdn := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(s3.DataDir, "web"))))
	t.Cleanup(cdn.Close)

	key := newKey(t)
	out := e.publish(t, build{App: appEnc, Version: "1.0.0", Ref: "refs/tags/v1.0.0", Dir: webBuild(t, "1.0.0", nil), Key: key,
		Destination: s3.BucketURL("web"), PublicBaseURL: cdn.URL, ExtraEnv: s3.Env()})
	if out["channel"] != "production" || !strings.HasPrefix(out["bundle-url"], cdn.URL) {
		t.Errorf("action outputs channel %q, bundle-url %q; want production under %s", out["channel"], out["bundle-url"], cdn.URL)
	}

	dev := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	res := mustUpdate(t, dev, "1.0.0")
	if !res.Bundle.Encrypted || res.Response.SessionKey == "" || len(res.Response.Checksum) != 512 {
		t.Errorf("answer not encrypted with a V3 checksum: session_key %q, checksum %d chars", res.Response.SessionKey, len(res.Response.Checksum))
	}
	if !strings.HasPrefix(res.Response.URL, cdn.URL) {
		t.Errorf("url %q is not under the public base %q", res.Response.URL, cdn.URL)
	}
	if diff := cmp.Diff(exampleFiles(t), res.Bundle.Files); diff != "" {
		t.Errorf("installed files (-want +got):\n%s", diff)
	}
	want, _ := os.ReadFile(filepath.Join("..", "examples", "web", "assets", "img", "ferry.png"))
	got, _ := os.ReadFile(filepath.Join(res.Bundle.Path, "assets", "img", "ferry.png"))
	if string(got) != string(want) {
		t.Error("assets/img/ferry.png differs from examples/web after the round trip")
	}
	dev.NotifyAppReady()
	if ans := mustCheck(t, dev); device.Outcome(ans, dev.Running()) != channel.KindUpToDate {
		t.Errorf("check after install = %+v, want up_to_date", ans)
	}
	relaytest.WaitFor(t, 5*time.Second, "the stats of 1.0.0 to count set and download_complete", func() bool {
		var stats struct {
			Versions []channel.VersionStats `json:"versions"`
		}
		e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/stats", nil, &stats)
		for _, s := range stats.Versions {
			if s.Version == "1.0.0" && s.Actions["set"] >= 1 && s.Actions["download_complete"] >= 1 {
				return true
			}
		}
		return false
	})
}

// TestBranchBuildLandsOnBeta: a push to main registers a bundle that the rule
// refs/heads/main → beta puts on beta; production devices are not offered it.
func TestBranchBuildLandsOnBeta(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "1.1.0", Ref: "refs/heads/main", Dir: webBuild(t, "1.1.0", nil), Key: key})

	prod := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	if ans := mustCheck(t, prod); ans.Error != "no_new_version_available" {
		t.Errorf("production device got %+v, want no_new_version_available", ans)
	}
	beta := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-00000000000b", Channel: "beta", Key: &key.PublicKey})
	mustUpdate(t, beta, "1.1.0")

	// A tester lists the channels the app offers (listChannels), switches to beta from the
	// app (setChannel), then updates.
	tester := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-00000000000c", Key: &key.PublicKey})
	list, err := tester.ListChannels(t.Context())
	if err != nil {
		t.Fatalf("ListChannels: %v", err)
	}
	names := map[string]device.ChannelInfo{}
	for _, ch := range list {
		names[ch.Name] = ch
	}
	if !names["beta"].AllowSelfSet || !names["production"].Public || len(list) != 2 {
		t.Errorf("ListChannels = %+v, want beta (self-set) and production (public)", list)
	}
	if _, err := tester.SetChannel(t.Context(), "beta"); err != nil {
		t.Fatalf("SetChannel(beta): %v", err)
	}
	mustUpdate(t, tester, "1.1.0")
}

// TestTagPushPromotesWithoutRebuilding: a tag pushed on the commit that built the beta
// bundle promotes that very bundle (same URL and checksum) to production, with no new
// action run.
func TestTagPushPromotesWithoutRebuilding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	commit := relaytest.Commit("main@1")
	e.publish(t, build{App: appEnc, Version: "1.2.0", Ref: "refs/heads/main", Commit: commit, Dir: webBuild(t, "1.2.0", nil), Key: key})
	beta := mustCheck(t, e.device(t, appEnc, deviceOpts{Channel: "beta", Key: &key.PublicKey}))

	res := e.pushTag(t, repository, "v1.2.0", "", commit)
	if !strings.Contains(fmt.Sprint(res["actions"]), "promoted") {
		t.Fatalf("webhook answer %v, want a promotion", res)
	}
	prodDev := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	prod := mustCheck(t, prodDev)
	if prod.Version != "1.2.0" || prod.URL != beta.URL || prod.Checksum != beta.Checksum || prod.SessionKey != beta.SessionKey {
		t.Errorf("production answer %+v differs from beta's %+v", prod, beta)
	}
	var list struct {
		Bundles []channel.Bundle `json:"bundles"`
	}
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/bundles", nil, &list)
	if len(list.Bundles) != 1 || list.Bundles[0].Commit != commit {
		t.Errorf("relay holds %d bundles (%+v), want the single one built from %s", len(list.Bundles), list.Bundles, commit)
	}
	mustUpdate(t, prodDev, "1.2.0")
}

// TestMovingTheTagBackRollsBack: channel/production moves A → B → A; devices follow.
func TestMovingTheTagBackRollsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	a, b := relaytest.Commit("A"), relaytest.Commit("B")
	e.publish(t, build{App: appEnc, Version: "2.0.0", Ref: "refs/heads/main", Commit: a, Dir: webBuild(t, "2.0.0", nil), Key: key})
	e.publish(t, build{App: appEnc, Version: "2.1.0", Ref: "refs/heads/main", Commit: b, Dir: webBuild(t, "2.1.0", nil), Key: key})

	dev := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	e.pushTag(t, repository, "channel/production", "", a)
	mustUpdate(t, dev, "2.0.0")
	dev.NotifyAppReady()

	e.pushTag(t, repository, "channel/production", a, b)
	mustUpdate(t, dev, "2.1.0")
	dev.NotifyAppReady()

	e.pushTag(t, repository, "channel/production", b, a)
	mustUpdate(t, dev, "2.0.0")
	if dev.Running() != "2.0.0" {
		t.Errorf("device runs %q after the rollback, want 2.0.0", dev.Running())
	}
}

// TestRolloutOfTenPercent: a 10 % rollout set through the admin API offers the candidate
// to about 10 % of 2 000 devices, and each device gets the same answer every time.
func TestRolloutOfTenPercent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "3.0.0", Ref: "refs/tags/v3.0.0", Dir: webBuild(t, "3.0.0", nil), Key: key})
	e.publish(t, build{App: appEnc, Version: "3.1.0", Ref: "refs/heads/main", Dir: webBuild(t, "3.1.0", nil), Key: key})
	if code := e.admin(t, http.MethodPut, "/api/v1/apps/"+appEnc+"/channels/production/rollout", map[string]any{"version": "3.1.0", "percent": 10}, nil); code != http.StatusOK {
		t.Fatalf("set rollout: HTTP %d", code)
	}

	const n = 2000
	answers := func() []string {
		out := make([]string, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				d := e.device(t, appEnc, deviceOpts{ID: fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i*7919), Key: &key.PublicKey, NoDir: true})
				resp, err := d.Check(t.Context())
				if err != nil {
					out[i] = "error: " + err.Error()
					return
				}
				out[i] = resp.Version + resp.Error
			}()
		}
		wg.Wait()
		return out
	}
	first := answers()
	count := map[string]int{}
	for _, a := range first {
		count[a]++
	}
	if count["3.1.0"] < 140 || count["3.1.0"] > 260 || count["3.0.0"]+count["3.1.0"] != n {
		t.Fatalf("answers over %d devices: %v; want about 10 %% (140–260) on 3.1.0 and the rest on 3.0.0", n, count)
	}
	t.Logf("rollout 10%%: %d of %d devices offered 3.1.0 (%.1f %%)", count["3.1.0"], n, 100*float64(count["3.1.0"])/n)
	if diff := cmp.Diff(first, answers()); diff != "" {
		t.Errorf("second round differs (-first +second):\n%s", diff)
	}
}

// TestUpdateFailIsNotOfferedAgain: a device whose new bundle never calls notifyAppReady
// rolls back and reports update_fail; the relay stops offering it that version (breaking
// the plugin's download → rollback loop) while other devices still get it.
func TestUpdateFailIsNotOfferedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "4.0.0", Ref: "refs/tags/v4.0.0", Dir: webBuild(t, "4.0.0", nil), Key: key})
	dev := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	mustUpdate(t, dev, "4.0.0")
	dev.NotifyAppReady()

	e.publish(t, build{App: appEnc, Version: "4.1.0", Ref: "refs/tags/v4.1.0", Dir: webBuild(t, "4.1.0", map[string]string{"app.js": "throw new Error('broken')"}), Key: key})
	mustUpdate(t, dev, "4.1.0")
	back, err := dev.AppReadyTimeout(t.Context(), 10000)
	if err != nil || back != "4.0.0" {
		t.Fatalf("AppReadyTimeout = %q, %v; want a rollback to 4.0.0", back, err)
	}
	relaytest.WaitFor(t, 5*time.Second, "the relay to stop offering 4.1.0 after update_fail", func() bool {
		ans := mustCheck(t, dev)
		return ans.Version != "4.1.0" || ans.Error != ""
	})
	res, err := dev.Update(t.Context())
	if err != nil || res.Outcome != channel.KindUpToDate || dev.Running() != "4.0.0" {
		t.Errorf("after update_fail: outcome %q err %v running %q; want up_to_date on 4.0.0", res.Outcome, err, dev.Running())
	}
	other := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-0000000000ff", Key: &key.PublicKey})
	mustUpdate(t, other, "4.1.0")
}

// TestNativeTargeting: bundles declare the native versions they support; an old binary
// gets the newest bundle compatible with it, a new binary the newest bundle.
func TestNativeTargeting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "5.0.0", Ref: "refs/tags/v5.0.0", Native: ">=1.0.0", Dir: webBuild(t, "5.0.0", nil), Key: key})
	e.publish(t, build{App: appEnc, Version: "6.0.0", Ref: "refs/tags/v6.0.0", Native: ">=2.0.0", Dir: webBuild(t, "6.0.0", nil), Key: key})

	old := e.device(t, appEnc, deviceOpts{Native: "1.4.0", Key: &key.PublicKey})
	mustUpdate(t, old, "5.0.0")
	current := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-000000000002", Native: "2.1.0", Key: &key.PublicKey})
	mustUpdate(t, current, "6.0.0")
	ancient := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-000000000003", Native: "0.9.0", Key: &key.PublicKey})
	if ans := mustCheck(t, ancient); ans.Error != "disable_auto_update_under_native" || ans.Kind != channel.KindBlocked {
		t.Errorf("native 0.9.0 got %+v, want disable_auto_update_under_native (blocked)", ans)
	}
}

// TestDeltaUpdateDownloadsOnlyChangedFiles: with a delta manifest, a device that has
// version 7.0.0 downloads only the one file 7.1.0 changed and reuses the rest.
func TestDeltaUpdateDownloadsOnlyChangedFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "7.0.0", Ref: "refs/tags/v7.0.0", Delta: true, Dir: webBuild(t, "", nil), Key: key})
	dev := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	first := mustUpdate(t, dev, "7.0.0")
	if len(first.Response.Manifest) == 0 {
		t.Fatalf("7.0.0 answer has no manifest: %+v", first.Response)
	}
	dev.NotifyAppReady()

	css := "body { background: #0b3d91; color: white; }\n"
	e.publish(t, build{App: appEnc, Version: "7.1.0", Ref: "refs/tags/v7.1.0", Delta: true, Dir: webBuild(t, "", map[string]string{"style.css": css}), Key: key})
	res := mustUpdate(t, dev, "7.1.0")
	var cssSize int64 = -1
	for _, m := range res.Response.Manifest {
		if strings.TrimSuffix(m.FileName, ".br") == "style.css" {
			resp, err := http.Head(m.DownloadURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cssSize = resp.ContentLength
		}
	}
	b := res.Bundle
	t.Logf("delta 7.0.0 → 7.1.0: %d bytes transferred (first install %d), %d files downloaded, %d reused",
		b.BytesTransferred, first.Bundle.BytesTransferred, b.FilesDownloaded, b.FilesReused)
	if b.FilesDownloaded != 1 || b.FilesReused != len(res.Response.Manifest)-1 || b.BytesTransferred != cssSize {
		t.Errorf("delta: downloaded %d files, reused %d, %d bytes; want 1 file, %d reused, %d bytes (the stored style.css)",
			b.FilesDownloaded, b.FilesReused, b.BytesTransferred, len(res.Response.Manifest)-1, cssSize)
	}
	got, _ := os.ReadFile(filepath.Join(b.Path, "style.css"))
	if string(got) != css {
		t.Errorf("style.css = %q, want %q", got, css)
	}
}

// TestEncryptedAndUnencryptedApps: an app published without a key serves plain bundles
// verified by SHA-256; devices are matched to bundles by key_id both ways.
func TestEncryptedAndUnencryptedApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appPlain, Version: "1.0.0", Ref: "refs/tags/v1.0.0", Dir: webBuild(t, "1.0.0", nil)})
	e.publish(t, build{App: appEnc, Version: "1.0.0", Ref: "refs/tags/v1.0.0", Dir: webBuild(t, "1.0.0", nil), Key: key})

	plain := e.device(t, appPlain, deviceOpts{})
	res := mustUpdate(t, plain, "1.0.0")
	if res.Bundle.Encrypted || res.Response.SessionKey != "" || len(res.Response.Checksum) != 64 || res.Bundle.Checksum != res.Response.Checksum {
		t.Errorf("unencrypted app: encrypted=%v session_key=%q checksum=%q verified=%q", res.Bundle.Encrypted, res.Response.SessionKey, res.Response.Checksum, res.Bundle.Checksum)
	}
	enc := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	if r := mustUpdate(t, enc, "1.0.0"); !r.Bundle.Encrypted {
		t.Error("encrypted app installed without decryption")
	}
	// A device of the encrypted app that has no public key is refused, never served a
	// bundle it would fail to verify.
	nokey := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-000000000004"})
	if ans := mustCheck(t, nokey); ans.Kind != channel.KindBlocked || ans.Version != "" && ans.URL != "" {
		t.Errorf("device without key on the encrypted app got %+v, want a blocked refusal", ans)
	}
	// A device with a key asking the unencrypted app is refused with key_id_mismatch.
	keyed := e.device(t, appPlain, deviceOpts{ID: "00000000-0000-4000-8000-000000000005", Key: &key.PublicKey})
	if ans := mustCheck(t, keyed); ans.Error != "key_id_mismatch" {
		t.Errorf("device with key on the unencrypted app got %+v, want key_id_mismatch", ans)
	}
}

// TestKeyRotation: after the app's key is rotated, devices still holding the old public
// key are refused with key_id_mismatch (naming both keys) instead of failing to decrypt;
// devices with the new key update.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	oldKey, newK := newKey(t), newKey(t)
	e.publish(t, build{App: appEnc, Version: "8.0.0", Ref: "refs/tags/v8.0.0", Dir: webBuild(t, "8.0.0", nil), Key: oldKey})
	oldDev := e.device(t, appEnc, deviceOpts{Key: &oldKey.PublicKey})
	mustUpdate(t, oldDev, "8.0.0")
	oldDev.NotifyAppReady()

	e.publish(t, build{App: appEnc, Version: "8.1.0", Ref: "refs/tags/v8.1.0", Dir: webBuild(t, "8.1.0", nil), Key: newK})
	ans := mustCheck(t, oldDev)
	want := channel.UpdateResponse{Error: "key_id_mismatch", Kind: channel.KindBlocked,
		DeviceKeyID: archive.KeyID(&oldKey.PublicKey), BundleKeyID: archive.KeyID(&newK.PublicKey)}
	got := channel.UpdateResponse{Error: ans.Error, Kind: ans.Kind, DeviceKeyID: ans.DeviceKeyID, BundleKeyID: ans.BundleKeyID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("old-key device (-want +got):\n%s", diff)
	}
	res, err := oldDev.Update(t.Context())
	if err != nil || res.Outcome != channel.KindBlocked || oldDev.Running() != "8.0.0" {
		t.Errorf("old-key device Update: %q %v, running %q; want blocked on 8.0.0", res.Outcome, err, oldDev.Running())
	}
	newDev := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-000000000006", Key: &newK.PublicKey})
	mustUpdate(t, newDev, "8.1.0")
}

// TestOIDCRegistrationWithoutSharedSecret: the action registers with the workflow's GitHub
// Actions OIDC token (no secret shared between CI and relay); the relay takes repository,
// ref and commit from the verified token, and refuses a token from another repository.
func TestOIDCRegistrationWithoutSharedSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "9.0.0", Ref: "refs/heads/main", OIDC: true, Dir: webBuild(t, "9.0.0", nil), Key: key})
	beta := e.device(t, appEnc, deviceOpts{Channel: "beta", Key: &key.PublicKey})
	mustUpdate(t, beta, "9.0.0")

	var b channel.Bundle
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/bundles/9.0.0", nil, &b)
	if b.Repository != repository || b.Ref != "refs/heads/main" || b.Commit != relaytest.Commit("9.0.0") {
		t.Errorf("registered bundle: repository %q ref %q commit %q; want the token's claims", b.Repository, b.Ref, b.Commit)
	}

	out := e.publish(t, build{App: appEnc, Version: "9.1.0", Ref: "refs/heads/main", OIDC: true, TokenRepository: "evil/fork",
		Dir: webBuild(t, "9.1.0", nil), Key: key, wantFail: true})
	if !strings.Contains(out["error"], "evil/fork") && !strings.Contains(out["error"], "403") && !strings.Contains(strings.ToLower(out["error"]), "forbidden") {
		t.Errorf("action output for the foreign token does not say why:\n%s", out["error"])
	}
	var list struct {
		Bundles []channel.Bundle `json:"bundles"`
	}
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/bundles", nil, &list)
	for _, b := range list.Bundles {
		if b.Version == "9.1.0" {
			t.Errorf("a bundle registered with a token of evil/fork was stored: %+v", b)
		}
	}
	if ans := mustCheck(t, beta); ans.Version == "9.1.0" {
		t.Errorf("beta device offered the foreign bundle: %+v", ans)
	}
}
