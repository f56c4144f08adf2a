package ferry_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ferryhq/ferry"

// TestImportGraph enforces the dependency rules of DESIGN.md §2: the leaves (channel, archive,
// sign) import no internal package; capability packages import only the leaves; packages on
// the same level never import each other; each third-party library lives in one package; and
// test support (internal/peers, packages named *test) never reaches production code, though
// test kits may build on each other and the end-to-end suite may use them all.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	leaves := map[string]bool{"internal/channel": true, "internal/archive": true, "internal/sign": true, "internal/redact": true}
	capability := map[string]bool{"internal/relay": true, "internal/store": true, "internal/publish": true, "internal/device": true}
	// Third-party import prefixes and the only packages allowed to import them.
	owners := map[string][]string{
		"github.com/gin-gonic/":                 {"internal/relay"},
		"github.com/redis/go-redis/":            {"internal/store"},
		"go.etcd.io/bbolt":                      {"internal/store"},
		"github.com/sigstore/":                  {"internal/sign"},
		"github.com/google/go-github/":          {"internal/publish", "internal/relay"},
		"gocloud.dev":                           {"internal/publish"},
		"github.com/sethvargo/go-githubactions": {"cmd/action"},
		"github.com/coreos/go-oidc/":            {"internal/relay"},
		"github.com/prometheus/":                {"internal/relay"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, "|")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		top := topLevel(rel)
		for _, imp := range strings.Split(imps, ",") {
			if imp == "" {
				continue
			}
			if strings.HasPrefix(imp, module+"/") {
				dep := strings.TrimPrefix(imp, module+"/")
				depTop := topLevel(dep)
				switch {
				case isTestSupport(dep) && (isTestSupport(rel) || top == "e2e"):
					// test kits build on each other; the end-to-end suite uses them all
				case isTestSupport(dep):
					t.Errorf("%s imports test support %s", rel, dep)
				case top == "e2e":
					// the end-to-end suite drives every part
				case depTop == top:
					// a package's own subpackages
				case leaves[top]:
					t.Errorf("leaf %s imports internal package %s", rel, dep)
				case capability[top] && depTop != "internal/channel" && depTop != "internal/archive" && depTop != "internal/redact":
					t.Errorf("%s imports %s; capability packages import only channel and archive", rel, dep)
				}
				continue
			}
			for prefix, allowed := range owners {
				if strings.HasPrefix(imp, prefix) && !contains(allowed, top) {
					t.Errorf("%s imports %s, which belongs to %v", rel, imp, allowed)
				}
			}
		}
	}
}

// isTestSupport reports whether a package exists only for tests (internal/peers, *test kits),
// which may build on each other.
func isTestSupport(rel string) bool {
	return rel == "internal/peers" || strings.HasSuffix(rel, "test")
}

// topLevel maps internal/store/redis to internal/store and cmd/relay to cmd/relay.
func topLevel(rel string) string {
	parts := strings.Split(rel, "/")
	if len(parts) >= 2 {
		return parts[0] + "/" + parts[1]
	}
	return rel
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
