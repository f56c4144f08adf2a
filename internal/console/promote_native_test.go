package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/access"
)

// TestPromoteNativeViaConsole: the promote confirmation page has a labelled native-range
// field holding the range that applies to the version on this channel now, and says where
// it comes from; submitting a range stores it as the channel's override (audited before and
// after), an empty field restores the bundle's own range, and a range that does not parse
// is refused with its reason and changes nothing.
func TestPromoteNativeViaConsole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const app = "com.example.app"
	path := "/console/apps/" + app + "/channels/production/promote"
	dep := e.client(access.Deployer)

	page := e.get(dep, path+"?version=1.1.0", http.StatusOK)
	for _, want := range []string{`<label for="promote-native">`, `id="promote-native" name="native" value=""`,
		"Applies now: <strong>any native version</strong>, the bundle's own range", `aria-describedby="promote-native-help"`} {
		if !strings.Contains(page, want) {
			t.Errorf("confirmation page lacks %q", want)
		}
	}
	csrf := hidden(t, page, "csrf")
	if res := e.post(dep, path, url.Values{"csrf": {csrf}, "version": {"1.1.0"}, "native": {">=2.0.0 <3.0.0"}}); res != http.StatusSeeOther {
		t.Fatalf("promote with a native range: %d", res)
	}
	st, err := e.st.GetState(ctx, app, "production")
	if err != nil || st.Version != "1.1.0" || st.Native["1.1.0"] != ">=2.0.0 <3.0.0" {
		t.Fatalf("after promote: %+v, %v", st, err)
	}
	es, err := e.st.ListAudit(ctx, app, 1)
	if err != nil || len(es) != 1 || es[0].Action != "promote" || !strings.Contains(string(es[0].After), `"source":"promote"`) ||
		!strings.Contains(string(es[0].Before), `"source":"bundle"`) {
		t.Fatalf("audit = %+v (before %s, after %s), %v", es, es[0].Before, es[0].After, err)
	}

	// The page now shows the override as the range that applies, and starts the field with it.
	page = e.get(dep, path+"?version=1.1.0", http.StatusOK)
	for _, want := range []string{`name="native" value="` + html.EscapeString(">=2.0.0 <3.0.0") + `"`,
		"Applies now: <strong>" + html.EscapeString(">=2.0.0 <3.0.0") + "</strong>, set at an earlier promotion", "(set at promotion)"} {
		if !strings.Contains(page, want) {
			t.Errorf("confirmation page after the override lacks %q", want)
		}
	}

	chPage := e.get(dep, "/console/apps/"+app+"/channels/production", http.StatusOK)
	if want := html.EscapeString(">=2.0.0 <3.0.0") + " <small>(set at promotion; the bundle's own: any)</small>"; !strings.Contains(chPage, want) {
		t.Errorf("channel page lacks %q", want)
	}
	if appPage := e.get(dep, "/console/apps/"+app, http.StatusOK); !strings.Contains(appPage, html.EscapeString(">=2.0.0 <3.0.0")+" <small>(set at promotion)</small>") {
		t.Error("app page's channel table does not show the range set at promotion")
	}

	// A range that does not parse: 400 with the reason, nothing changes.
	res, err := dep.PostForm(e.srv.URL+path, url.Values{"csrf": {csrf}, "version": {"1.1.0"}, "native": {">=banana"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid native version range") {
		t.Errorf("bad range: %d %s", res.StatusCode, body)
	}
	if after, _ := e.st.GetState(ctx, app, "production"); after.Rev != st.Rev || after.Native["1.1.0"] != ">=2.0.0 <3.0.0" {
		t.Errorf("a refused range changed the channel: %+v", after)
	}

	// An empty field restores the bundle's own range.
	if res := e.post(dep, path, url.Values{"csrf": {csrf}, "version": {"1.1.0"}, "native": {""}}); res != http.StatusSeeOther {
		t.Fatalf("promote with an empty native field: %d", res)
	}
	if st, _ = e.st.GetState(ctx, app, "production"); st.Native != nil {
		t.Errorf("empty native field left overrides %v", st.Native)
	}
}

// TestAuditPageShowsChanges: the audit page shows what a policy change and a promotion's
// native range changed, before and after.
func TestAuditPageShowsChanges(t *testing.T) {
	e := newEnv(t)
	const app = "com.example.app"
	adm := e.client(access.Admin)
	page := e.get(adm, "/console/apps/"+app+"/channels/production", http.StatusOK)
	csrf := hidden(t, page, "csrf")
	if res := e.post(adm, "/console/apps/"+app+"/channels/production/policy", url.Values{"csrf": {csrf}, "public": {"on"}, "allow_emulator": {"on"}, "allow_dev": {"on"}}); res != http.StatusSeeOther {
		t.Fatalf("save policy: %d", res)
	}
	if res := e.post(adm, "/console/apps/"+app+"/channels/production/promote", url.Values{"csrf": {csrf}, "version": {"1.0.0"}, "native": {"^2"}}); res != http.StatusSeeOther {
		t.Fatalf("promote: %d", res)
	}
	audit := e.get(adm, "/console/apps/"+app+"/audit", http.StatusOK)
	for _, want := range []string{
		"before: <code>" + html.EscapeString(`{"public":false`), "after: <code>" + html.EscapeString(`{"public":true`),
		"before: <code>" + html.EscapeString(`{"native":"","source":"bundle"}`), "after: <code>" + html.EscapeString(`{"native":"^2","source":"promote"}`),
	} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
}
