package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// tagPromotions returns the audit log's promotions of app's channel ch, oldest first.
func (e *env) tagPromotions(t *testing.T, app, ch string) []channel.AuditEntry {
	t.Helper()
	var audit relayclient.AuditList
	if code := e.admin(t, http.MethodGet, "/api/v1/apps/"+app+"/audit?limit=500", nil, &audit); code != http.StatusOK {
		t.Fatalf("audit: HTTP %d", code)
	}
	var out []channel.AuditEntry
	for _, a := range audit.Entries {
		if a.Channel == ch && a.Action == "promote" {
			out = append([]channel.AuditEntry{a}, out...)
		}
	}
	return out
}

// channelState returns the state of app's channel ch through the admin API.
func (e *env) channelState(t *testing.T, app, ch string) *channel.State {
	t.Helper()
	var list relayclient.ChannelList
	if code := e.admin(t, http.MethodGet, "/api/v1/apps/"+app+"/channels", nil, &list); code != http.StatusOK {
		t.Fatalf("channels: HTTP %d", code)
	}
	for _, c := range list.Channels {
		if c.Name == ch {
			return c.State
		}
	}
	t.Fatalf("no channel %q in %+v", ch, list)
	return nil
}

// adminCLI runs `ferry admin … <args>` against the scenario's relay and returns its output.
func (e *env) adminCLI(t *testing.T, app string, args ...string) string {
	t.Helper()
	tok := t.TempDir() + "/token"
	if err := os.WriteFile(tok, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ferryBinary(t), append([]string{"admin", "--relay", e.relayURL, "--app", app, "--token-file", tok}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ferry admin %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestTagPromotesOnceWorkflowOnMain: the workflow runs on main only (versions derived,
// 0.0.0-main.<run>.g<sha7>). Tagging v1.0.0 promotes that build to production once, and
// the channel shows the tag as its release name, through the admin API and the CLI.
func TestTagPromotesOnceWorkflowOnMain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	commit := relaytest.Commit("tags-main-only")
	out := e.publish(t, build{App: appEnc, Ref: "refs/heads/main", Commit: commit, Dir: webBuild(t, "", nil), Key: key})
	mainVersion := out["version"]
	if want := "0.0.0-main.4242.g" + commit[:7]; mainVersion != want {
		t.Fatalf("main build's version %q, want %q", mainVersion, want)
	}

	res := e.pushTag(t, repository, "v1.0.0", "", commit)
	if !strings.Contains(fmt.Sprint(res["actions"]), "promoted") {
		t.Fatalf("webhook answer %v, want a promotion", res)
	}
	// GitHub redelivers (a new delivery id, the same push): still one promotion.
	e.pushTag(t, repository, "v1.0.0", "", commit)

	proms := e.tagPromotions(t, appEnc, "production")
	if len(proms) != 1 || proms[0].Version != mainVersion || proms[0].Release != "v1.0.0" {
		t.Fatalf("production promotions %+v, want one of %s released as v1.0.0", proms, mainVersion)
	}
	if st := e.channelState(t, appEnc, "production"); st.Version != mainVersion || st.Release != "v1.0.0" {
		t.Errorf("production state %+v, want %s released as v1.0.0", st, mainVersion)
	}
	if cli := e.adminCLI(t, appEnc, "channels"); !strings.Contains(cli, mainVersion+" (v1.0.0)") {
		t.Errorf("ferry admin channels does not show the release name:\n%s", cli)
	}
	mustUpdate(t, e.device(t, appEnc, deviceOpts{Key: &key.PublicKey}), mainVersion)
}

// TestTagPromotesOnceWorkflowOnMainAndTags: the workflow runs on main and on v* tags. The
// tag push promotes the main build of the commit; the tag's own build (2.0.0, the same
// content) registers but does not promote production again. And when the tag is pushed
// before anything of its commit is built, the first bundle to register (here the tag's
// build, with other bytes than the main build's) is promoted, once.
func TestTagPromotesOnceWorkflowOnMainAndTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)

	// Webhook first: main's build exists when the tag is pushed.
	commit := relaytest.Commit("tags-main-and-tags")
	dir := webBuild(t, "", nil)
	mainVersion := e.publish(t, build{App: appEnc, Ref: "refs/heads/main", Commit: commit, Dir: dir, Key: key})["version"]
	e.pushTag(t, repository, "v2.0.0", "", commit)
	tagOut := e.publish(t, build{App: appEnc, Ref: "refs/tags/v2.0.0", Commit: commit, Dir: dir, Key: key})
	if tagOut["version"] != "2.0.0" || tagOut["channel"] != "production" {
		t.Errorf("tag build outputs %v, want version 2.0.0 on production", tagOut)
	}
	proms := e.tagPromotions(t, appEnc, "production")
	if len(proms) != 1 || proms[0].Version != mainVersion || proms[0].Release != "v2.0.0" {
		t.Fatalf("production promotions %+v, want one: %s released as v2.0.0", proms, mainVersion)
	}
	var reg relayclient.BundleList
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/bundles", nil, &reg)
	if len(reg.Bundles) != 2 || reg.Bundles[0].Version != "2.0.0" {
		t.Errorf("bundles %+v, want the tag's build 2.0.0 registered beside the main build", reg.Bundles)
	}

	// Tag first: v3.0.0 is pushed before either build of its commit registers.
	commit3 := relaytest.Commit("tags-tag-first")
	res := e.pushTag(t, repository, "v3.0.0", "", commit3)
	if !strings.Contains(fmt.Sprint(res["actions"]), "pending") {
		t.Fatalf("webhook answer %v, want pending", res)
	}
	e.publish(t, build{App: appEnc, Ref: "refs/tags/v3.0.0", Commit: commit3, Dir: webBuild(t, "3.0.0", nil), Key: key})
	main3 := e.publish(t, build{App: appEnc, Ref: "refs/heads/main", Commit: commit3, Dir: webBuild(t, "main", nil), Key: key})["version"]
	proms = e.tagPromotions(t, appEnc, "production")
	if len(proms) != 2 || proms[1].Version != "3.0.0" || proms[1].Release != "v3.0.0" {
		t.Fatalf("production promotions %+v, want a second and last one: 3.0.0 released as v3.0.0", proms)
	}
	if st := e.channelState(t, appEnc, "beta"); st.Version != main3 {
		t.Errorf("beta serves %q, want the main build %s", st.Version, main3)
	}
	mustUpdate(t, e.device(t, appEnc, deviceOpts{Key: &key.PublicKey}), "3.0.0")
}
