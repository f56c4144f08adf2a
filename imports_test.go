package ferry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ferryhq/ferry"

// An importRule is one package's row of the architecture: the packages of this module and the
// third-party modules its non-test files may import, and why. Tests may import more (kits,
// the real relay for an integration test); only what ships is held to the row.
type importRule struct {
	pkg      string   // relative to the module root; "" is the root package
	internal []string // packages of this module, relative to the root
	modules  []string // third-party module paths (as go.mod names them)
	why      string
}

// Shared rows: the leaves everyone builds on, and the kits that only tests import.
var (
	leafWhy = "a leaf: shared vocabulary every other package builds on, so it imports no package of this module"
	kitWhy  = "test support: imported only by tests and other kits; it may use testpeers to start real programs"
)

// imports is the architecture in code: cmd/* import capability packages, which
// import only the leaves; packages on one level never import each other; each third-party
// library lives in the package that owns its concern, so replacing it touches one place.
var imports = []importRule{
	{pkg: "", why: "the root package holds only repository-wide tests"},

	// Leaves.
	{pkg: "internal/access",
		why: leafWhy + "; the authorization model (roles, grants, hashed tokens, sessions), standard library only"},
	{pkg: "internal/channel", internal: []string{"internal/access"}, modules: []string{"gopkg.in/yaml.v3"},
		why: "nearly a leaf: pure domain without I/O, yaml only to parse the relay's config file, whose access " +
			"section is access's vocabulary"},
	{pkg: "internal/archive", modules: []string{"github.com/andybalholm/brotli", "github.com/klauspost/compress", "golang.org/x/text"},
		why: leafWhy + "; standard-library crypto only, brotli for the delta files the plugin downloads, " +
			"klauspost/compress's deflate (the standard format, a quarter less CPU than compress/flate), " +
			"x/text to find names a device's file system would fold together (NFC/NFD, case)"},
	{pkg: "internal/sign", modules: []string{"github.com/sigstore/sigstore-go", "github.com/sigstore/sigstore",
		"github.com/sigstore/protobuf-specs", "google.golang.org/protobuf"},
		why: leafWhy + "; the only home of sigstore, so the relay never links it"},
	{pkg: "internal/redact",
		why: leafWhy + "; one way to take credentials out of a URL before it reaches an error or a log"},
	{pkg: "internal/buildinfo",
		why: leafWhy + "; what every binary's --version prints, from the build info Go records (standard library only)"},
	{pkg: "internal/relayclient", internal: []string{"internal/access", "internal/channel"},
		why: "control API wire types and one typed client for the action, ferry and tests; a leaf like channel " +
			"(standard library, maybe channel's vocabulary), so clients never link the relay's server stack"},

	// Capability packages: one concern each, importing only the leaves.
	{pkg: "internal/store", internal: []string{"internal/redact", "internal/access", "internal/channel"},
		modules: []string{"github.com/redis/go-redis/v9", "go.etcd.io/bbolt"},
		why:     "persistence: the only home of go-redis and bbolt; speaks channel's records"},
	{pkg: "internal/assetlink", modules: []string{"github.com/google/go-github/v60", "github.com/bradleyfalzon/ghinstallation/v2"},
		why: "asks GitHub for short-lived download URLs of private release assets for the relay, with a token or a GitHub App " +
			"installation; apart from publish so the relay does not link gocloud; the only home of ghinstallation"},
	{pkg: "internal/publish", internal: []string{"internal/redact"}, modules: []string{"github.com/aws/aws-sdk-go-v2/credentials", "github.com/aws/aws-sdk-go-v2/service/s3",
		"github.com/google/go-github/v60", "gocloud.dev"},
		why: "uploads to GitHub Releases (go-github) or a bucket (gocloud, aws for S3 specifics); the only home of gocloud"},
	{pkg: "internal/device", internal: []string{"internal/redact", "internal/archive", "internal/channel", "internal/relayclient"},
		modules: []string{"github.com/andybalholm/brotli"},
		why:     "the reference device client: channel's protocol types, archive to decrypt and verify, relayclient for the control API"},
	{pkg: "internal/relay/reqlog",
		why: "the request-scoped logger both HTTP surfaces share (relay's middleware creates it, control's handlers " +
			"use it): standard library only, so neither surface has to import the other to log a request"},
	{pkg: "internal/relay", internal: []string{"internal/channel", "internal/relay/reqlog"},
		modules: []string{"github.com/gin-gonic/gin", "github.com/prometheus/client_golang", "golang.org/x/time"},
		why: "the device path's HTTP surface (gin) and metrics; it declares the Store it needs and knows nothing of " +
			"the control plane, which cmd/relay mounts on it"},
	{pkg: "internal/relay/control", internal: []string{"internal/access", "internal/channel", "internal/relay/reqlog", "internal/relayclient"},
		modules: []string{"github.com/gin-gonic/gin", "github.com/coreos/go-oidc/v3", "github.com/google/go-github/v60",
			"github.com/prometheus/client_golang", "golang.org/x/oauth2", "golang.org/x/time"},
		why: "the control plane (registration, webhooks, admin API, single sign-on: go-oidc verifies tokens, oauth2 runs " +
			"the authorization-code exchange with PKCE); it declares its own Store rather than importing " +
			"internal/relay, and relay does not import it either: cmd/relay wires the two; relayclient holds its wire types; " +
			"x/time/rate (as in relay) counts failed authentications per client"},

	{pkg: "internal/notify", internal: []string{"internal/channel", "internal/relayclient"},
		modules: []string{"github.com/prometheus/client_golang"},
		why: "outgoing notifications (signed webhooks, Slack): channel's events and receivers, relayclient's signature " +
			"and delivery-log wire types; the control plane hands it events through its own Notifier interface"},

	{pkg: "internal/rollout", internal: []string{"internal/channel"},
		modules: []string{"github.com/prometheus/client_golang"},
		why: "the rollout controller and its health gate: it reads counters and changes channels through its own Store " +
			"interface and tells receivers through its own Emitter (internal/notify implements it); cmd/relay wires it"},

	// The publishing pipeline, shared by the action and `ferry publish`.
	{pkg: "internal/console", internal: []string{"internal/access", "internal/channel", "internal/relay/control", "internal/relay/reqlog", "internal/relayclient"},
		modules: []string{"github.com/gin-gonic/gin"},
		why: "the web console: pages over the control plane's sessions, permissions and actions (no copy of them), " +
			"reading the store through its own interfaces; mounted by cmd/relay"},

	{pkg: "internal/pipeline", internal: []string{"internal/redact", "internal/archive", "internal/channel", "internal/publish",
		"internal/sign", "internal/relayclient"},
		why: "the action's pipeline (package, encrypt, sign, upload, register) and its input validation, with no CI's SDK, " +
			"so the action and `ferry publish` run one code path; it wires capability packages as a command would"},

	// Binaries: thin mains wiring capability packages.
	{pkg: "cmd/action", internal: []string{"internal/buildinfo", "internal/pipeline", "internal/publish"},
		modules: []string{"github.com/sethvargo/go-githubactions"},
		why: "the GitHub front end of the pipeline: reads INPUT_* and the runner's context, masks, annotations, outputs " +
			"and the job summary; the only home of go-githubactions"},
	{pkg: "cmd/ferry", internal: []string{"internal/buildinfo", "internal/access", "internal/archive", "internal/channel", "internal/device", "internal/sign",
		"internal/relayclient", "internal/pipeline", "internal/publish", "internal/redact"}, modules: []string{"golang.org/x/oauth2"},
		why: "the command line: probes like a device, verifies signatures, talks to the control API through relayclient " +
			"(`ferry login`'s PKCE pair from oauth2, as the relay checks it) " +
			"(access's grants for `ferry admin tokens`), and runs the action's pipeline from any CI (`ferry publish`), so it links sigstore and gocloud through pipeline; " +
			"`ferry admin bundles prune` lists and deletes bucket objects through publish's Bucket (redact keeps credentials of the bucket URL out of its report)"},
	{pkg: "cmd/relay", internal: []string{"internal/buildinfo", "internal/redact", "internal/channel", "internal/console", "internal/relay", "internal/relay/control",
		"internal/notify", "internal/rollout", "internal/store", "internal/assetlink"},
		why: "the relay binary: config, store choice, and the wiring of the device path, the control plane, its notifications, the rollout controller, the console and the download links of private releases"},

	// Test support and test-only trees.
	{pkg: "internal/testpeers", modules: []string{"github.com/chromedp/chromedp"},
		why: kitWhy + "; it finds and starts the peer programs themselves, so it imports none of ours; " +
			"chromedp drives the browser peer (headless Chromium) over the DevTools protocol"},
	{pkg: "internal/store/storetest", internal: []string{"internal/access", "internal/channel"}, modules: []string{"github.com/google/go-cmp"},
		why: kitWhy + "; the store conformance suite, written against channel's and access's records"},
	{pkg: "internal/archive/archivetest",
		why: kitWhy + "; the web builds tests package and serve, written with the standard library only"},
	{pkg: "internal/notify/notifytest", internal: []string{"internal/channel", "internal/notify"},
		why: kitWhy + "; a loopback notification receiver that verifies signatures with notify's own Verify, as receivers are told to"},
	{pkg: "internal/relay/relaytest", internal: []string{"internal/testpeers"},
		why: kitWhy + "; it runs the built binaries, so it imports none of their packages"},
	{pkg: "internal/publish/publishtest", internal: []string{"internal/testpeers"}, modules: []string{"github.com/golang-jwt/jwt/v4"},
		why: kitWhy + "; fake GitHub and a real S3 server, built from the wire formats rather than publish's code"},
	{pkg: "internal/sign/signtest", internal: []string{"internal/sign"},
		modules: []string{"github.com/sigstore/sigstore-go", "github.com/sigstore/sigstore", "github.com/sigstore/rekor",
			"github.com/digitorus/timestamp", "github.com/go-openapi/runtime", "github.com/go-openapi/strfmt",
			"github.com/google/certificate-transparency-go", "google.golang.org/protobuf"},
		why: kitWhy + "; a fake sigstore (CA, Rekor, TSA) for sign's tests, so it needs sigstore's own types"},
	{pkg: "e2e", why: "the end-to-end suite: test files only, which may use every package and kit"},
	{pkg: "e2e/reliability", why: "the reliability suite: test files only, which may use every package and kit"},

	// Demo helpers (scripts/demo.sh).
	{pkg: "scripts/demo/pushtag", why: "a demo helper that signs a webhook from the documented format, not the relay's code"},
	{pkg: "scripts/demo/signkey", why: "a demo helper: standard library only"},
}

// A linkRule bans packages from a binary's whole dependency graph, whatever imports them.
type linkRule struct {
	bin    string   // a main package, relative to the module root
	banned []string // import path prefixes (a path and everything under it)
	why    string
}

var links = []linkRule{
	{bin: "cmd/relay", banned: []string{"github.com/sigstore", "gocloud.dev"},
		why: "the relay only serves and stores bundles; signing and uploading happen in CI, and their libraries " +
			"would add megabytes and CVE surface to the long-running server"},
	{bin: "cmd/action", banned: []string{"github.com/gin-gonic", "github.com/redis", "go.etcd.io/bbolt"},
		why: "the action is a client of the relay: it registers over HTTP and never serves or opens the store"},
	{bin: "cmd/ferry", banned: []string{"github.com/gin-gonic", "github.com/redis", "go.etcd.io/bbolt"},
		why: "the CLI reaches channel state through the relay's API, never the store, and serves nothing"},
}

// A listedPackage is the part of `go list -json` output the rules need.
type listedPackage struct {
	ImportPath string
	Name       string
	Standard   bool
	DepOnly    bool
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
}

// TestImportGraph checks every package of the module against its row in imports, every
// binary's full dependency graph against links, and that test support (packages whose
// non-test files import "testing") is named as such and linked into no binary.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	pkgs := goList(t)
	moduleOf := map[string]string{}
	for _, p := range pkgs {
		if p.Module != nil {
			moduleOf[p.ImportPath] = p.Module.Path
		}
	}
	rows := map[string]importRule{}
	for _, r := range imports {
		if _, dup := rows[r.pkg]; dup {
			t.Errorf("two rows for %q", r.pkg)
		}
		rows[r.pkg] = r
	}

	seen := map[string]bool{}
	testSupport := map[string]bool{}
	for _, p := range pkgs {
		rel, ours := relative(p.ImportPath)
		if !ours || p.DepOnly {
			continue
		}
		seen[rel] = true
		if slices.Contains(p.Imports, "testing") {
			testSupport[p.ImportPath] = true
			if !strings.HasSuffix(p.Name, "test") && !strings.HasPrefix(p.Name, "test") {
				t.Errorf("%s imports testing outside its tests, so it is test support; name it so (…test or test…)", rel)
			}
		}
		r, ok := rows[rel]
		if !ok {
			t.Errorf("%s has no row in imports; add one saying what it may import and why", displayName(rel))
			continue
		}
		for _, imp := range p.Imports {
			if dep, ours := relative(imp); ours {
				if !slices.Contains(r.internal, dep) {
					t.Errorf("%s imports %s, which its row does not allow\n\tallowed: %v\n\twhy: %s",
						displayName(rel), dep, r.internal, r.why)
				}
				continue
			}
			mod, thirdParty := moduleOf[imp]
			if !thirdParty || mod == module {
				continue // standard library
			}
			if !slices.Contains(r.modules, mod) {
				t.Errorf("%s imports %s (module %s), which its row does not allow\n\tallowed modules: %v\n\twhy: %s",
					displayName(rel), imp, mod, r.modules, r.why)
			}
		}
	}
	for _, r := range imports {
		if !seen[r.pkg] {
			t.Logf("row %s names no package yet", displayName(r.pkg))
		}
	}

	byPath := map[string]listedPackage{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	for _, l := range links {
		p, ok := byPath[module+"/"+l.bin]
		if !ok {
			t.Errorf("links names %s, which go list does not know", l.bin)
			continue
		}
		for _, b := range l.banned {
			var found []string
			for _, dep := range p.Deps {
				if dep == b || strings.HasPrefix(dep, b+"/") {
					found = append(found, dep)
				}
			}
			if len(found) > 0 {
				t.Errorf("%s links %d packages of %s, which it must not\n\twhy: %s\n\tpath: %s",
					l.bin, len(found), b, l.why, strings.Join(importChain(byPath, p.ImportPath, found[0]), " -> "))
			}
		}
	}
	if len(testSupport) == 0 {
		t.Error("found no test support package; the go list parsing is broken")
	}
	for _, p := range pkgs {
		rel, ours := relative(p.ImportPath)
		if !ours || p.Name != "main" {
			continue
		}
		for _, dep := range p.Deps {
			if testSupport[dep] {
				t.Errorf("binary %s links test support %s\n\tpath: %s",
					rel, dep, strings.Join(importChain(byPath, p.ImportPath, dep), " -> "))
			}
		}
	}
}

// goList runs `go list -deps -json ./...`: the module's packages and everything they link.
func goList(t *testing.T) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Name,Standard,DepOnly,Imports,Deps,Module", "./...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// relative maps an import path of this module to its path from the module root.
func relative(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(importPath, module+"/")
	return rel, ok
}

func displayName(rel string) string {
	if rel == "" {
		return "the root package"
	}
	return rel
}

// importChain finds one import path from one package to another, breadth first, so a
// failure says which package pulled the banned one in.
func importChain(byPath map[string]listedPackage, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var chain []string
			for p := to; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		imps := slices.Clone(byPath[cur].Imports)
		slices.Sort(imps)
		for _, imp := range imps {
			if _, ok := prev[imp]; !ok {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return []string{from, "…", to}
}
