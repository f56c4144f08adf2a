package ferry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// releaseRepo copies the checkout's tracked files, as they are in the working tree, into a
// new git repository with one commit tagged tag, as the release workflow checks it out. It
// returns the repository and the commit.
func releaseRepo(t *testing.T, tag string) (dir, commit string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range trackedFiles(t) {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue // deleted in the working tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=Release", "-c", "user.email=release@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "release")
	git("tag", tag)
	return dir, git("rev-parse", "HEAD")
}

// runRelease runs scripts/release-binaries.sh in repo for platforms and returns its output.
func runRelease(t *testing.T, repo, platforms string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repo, "scripts", "release-binaries.sh")}, args...)...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "FERRY_RELEASE_PLATFORMS="+platforms, "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestReleaseBinaries runs the release workflow's build script on a tagged copy of this
// checkout: each binary is stamped with the tag and commit (what --version prints, through
// internal/buildinfo), SHA256SUMS lists every file with its digest, and the script refuses a
// checkout whose version would not be the tag's.
func TestReleaseBinaries(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Fatal("sha256sum is not installed (coreutils)")
	}
	const tag = "v1.8.7"
	repo, commit := releaseRepo(t, tag)
	host := runtime.GOOS + "/" + runtime.GOARCH
	out := t.TempDir()
	log, err := runRelease(t, repo, host+" windows/arm64", tag, out)
	if err != nil {
		t.Fatalf("release-binaries.sh: %v\n%s", err, log)
	}

	want := []string{
		"ferry_1.8.7_" + runtime.GOOS + "_" + runtime.GOARCH, "relay_1.8.7_" + runtime.GOOS + "_" + runtime.GOARCH,
		"ferry_1.8.7_windows_arm64.exe", "relay_1.8.7_windows_arm64.exe",
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != len(want) {
		t.Errorf("SHA256SUMS has %d lines, want %d:\n%s", len(lines), len(want), sums)
	}
	for i, name := range want {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("release file: %v", err)
			continue
		}
		sum := sha256.Sum256(b)
		if line := hex.EncodeToString(sum[:]) + "  " + name; i >= len(lines) || lines[i] != line {
			t.Errorf("SHA256SUMS lacks %q:\n%s", line, sums)
		}
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, b)
	}
	for _, cmd := range []string{"ferry", "relay"} {
		b, err := exec.Command(filepath.Join(out, cmd+"_1.8.7_"+runtime.GOOS+"_"+runtime.GOARCH), "--version").Output()
		if got, want := strings.TrimSpace(string(b)), cmd+" "+tag+" commit "+commit[:7]; err != nil || got != want {
			t.Errorf("%s --version = %q (%v), want %q", cmd, got, err, want)
		}
	}

	// Refusals, before anything is built.
	refusals := []struct {
		name, tag, out, platforms, want string
		prepare                         func()
	}{
		{name: "not a version tag", tag: "latest", out: t.TempDir(), want: "not a version tag"},
		{name: "no such tag", tag: "v0.0.1", out: t.TempDir(), want: "no tag v0.0.1"},
		{name: "out dir inside the checkout", tag: tag, out: filepath.Join(repo, "dist"), want: "inside the checkout"},
		{name: "unknown platform", tag: tag, out: t.TempDir(), platforms: "plan10/amd64", want: "unsupported GOOS/GOARCH"},
		{name: "untracked file", tag: tag, out: t.TempDir(), want: "+dirty", prepare: func() {
			if err := os.WriteFile(filepath.Join(repo, "stray.txt"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, r := range refusals {
		if r.prepare != nil {
			r.prepare()
		}
		platforms := r.platforms
		if platforms == "" {
			platforms = host
		}
		log, err := runRelease(t, repo, platforms, r.tag, r.out)
		if err == nil || !strings.Contains(log, r.want) {
			t.Errorf("%s: release-binaries.sh = %v, want a failure saying %q:\n%s", r.name, err, r.want, log)
		}
		if entries, _ := os.ReadDir(r.out); len(entries) > 0 {
			t.Errorf("%s: the refused run wrote %d files", r.name, len(entries))
		}
	}
}

// TestReleaseWorkflow checks what actionlint cannot: the release workflow builds the
// binaries with scripts/release-binaries.sh from the pinned release commit, signs SHA256SUMS
// keyless into a Sigstore bundle, uploads it all to the GitHub release, and moves the major
// tag that `uses: ferryhq/ferry@v1` resolves.
func TestReleaseWorkflow(t *testing.T) {
	t.Parallel()
	docs := yamlDocs(t, filepath.Join(".github", "workflows", "release.yml"))
	type step struct {
		Uses string            `yaml:"uses"`
		Run  string            `yaml:"run"`
		With map[string]string `yaml:"with"`
	}
	var wf struct {
		Jobs map[string]struct {
			Needs       any               `yaml:"needs"`
			Permissions map[string]string `yaml:"permissions"`
			Steps       []step            `yaml:"steps"`
		} `yaml:"jobs"`
	}
	decodeNode(t, "release.yml", docs[0], &wf)
	runs := func(job string) string {
		var b strings.Builder
		for _, s := range wf.Jobs[job].Steps {
			b.WriteString(s.Run + "\n")
		}
		return b.String()
	}

	bin, ok := wf.Jobs["binaries"]
	if !ok {
		t.Fatal("release.yml has no binaries job")
	}
	if bin.Needs != "pin" {
		t.Errorf("binaries needs %v, want pin (build from the release commit the tag was moved to)", bin.Needs)
	}
	if bin.Permissions["contents"] != "write" || bin.Permissions["id-token"] != "write" {
		t.Errorf("binaries permissions %v, want contents: write and id-token: write", bin.Permissions)
	}
	var checkoutRef bool
	for _, s := range bin.Steps {
		if strings.HasPrefix(s.Uses, "actions/checkout@") && s.With["ref"] == "${{ github.ref }}" {
			checkoutRef = true
		}
	}
	if !checkoutRef {
		t.Error("binaries checks out the pushed commit, not the tag the pin job moved (want with: ref: ${{ github.ref }})")
	}
	script := runs("binaries")
	for _, want := range []string{
		`bash scripts/release-binaries.sh "$TAG" "$RUNNER_TEMP/dist"`, // outside the checkout: no +dirty
		`cosign sign-blob --yes --bundle "$RUNNER_TEMP/dist/SHA256SUMS.sigstore.json" "$RUNNER_TEMP/dist/SHA256SUMS"`,
		`gh release upload "$TAG"`,
		`"$RUNNER_TEMP"/dist/*`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the binaries job lacks %q", want)
		}
	}
	pin := runs("pin")
	for _, want := range []string{`git tag -f "$major" HEAD`, `git push -f origin "refs/tags/${major}"`} {
		if !strings.Contains(pin, want) {
			t.Errorf("the pin job does not move the major tag: lacks %q", want)
		}
	}
	// The README's install instructions verify what the workflow signs.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"cosign verify-blob SHA256SUMS --bundle SHA256SUMS.sigstore.json",
		`--certificate-identity-regexp '^https://github.com/ferryhq/ferry/\.github/workflows/release\.yml@refs/tags/v'`,
		"--certificate-oidc-issuer https://token.actions.githubusercontent.com",
		"sha256sum --ignore-missing -c SHA256SUMS",
		"go install github.com/ferryhq/ferry/cmd/ferry@latest",
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md's Install section lacks %q", want)
		}
	}
}

// startTag is the build tag every shipped ferry and ferry-action binary is built with: it
// leaves out cloud.google.com/go/storage's gRPC DirectPath and RLS packages (grpc xds and
// the envoy protos it registers), whose package init was about a fifth of the start of
// every ferry command, `ferry pack` included. gs:// destinations keep working.
const startTag = "disable_grpc_modules"

// TestBuildsLeaveOutGCSDirectPath checks that each place that builds a binary linking the
// bucket drivers passes startTag, and that the tag still does what it is there for: a
// dependency upgrade that renamed it would otherwise bring the start cost back silently.
func TestBuildsLeaveOutGCSDirectPath(t *testing.T) {
	for _, f := range []string{"Makefile", "Dockerfile", "scripts/release-binaries.sh",
		"scripts/corpus-lib.sh", "scripts/demo.sh"} { // corpus-lib.sh builds for bench-package.sh and bench-delta.sh
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		builds := 0
		for i, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, "go build") && !strings.Contains(line, "$(GO) build") {
				continue
			}
			if !strings.Contains(line, "./cmd/ferry") && !strings.Contains(line, "./cmd/action") && !strings.Contains(line, "./cmd/$cmd") {
				continue
			}
			builds++
			if !strings.Contains(line, "-tags "+startTag) && !strings.Contains(line, "$(BUILD_TAGS)") {
				t.Errorf("%s:%d builds without -tags %s: %s", f, i+1, startTag, strings.TrimSpace(line))
			}
		}
		if builds == 0 {
			t.Errorf("%s: no build of ./cmd/ferry or ./cmd/action found; update this test", f)
		}
	}
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(makefile), "BUILD_TAGS ?= -tags "+startTag) {
		t.Errorf("Makefile: BUILD_TAGS does not default to -tags %s", startTag)
	}
	for _, cmd := range []string{"./cmd/ferry", "./cmd/action"} {
		out, err := exec.Command("go", "list", "-deps", "-tags", startTag, cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps -tags %s %s: %v\n%s", startTag, cmd, err, out)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, "gocloud.dev/blob/gcsblob") {
			t.Errorf("%s no longer links gcsblob: the gs:// destination is gone", cmd)
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "google.golang.org/grpc/xds") || strings.HasPrefix(d, "github.com/envoyproxy/") {
				t.Errorf("%s with -tags %s still links %s; did cloud.google.com/go/storage rename the tag?", cmd, startTag, d)
				break
			}
		}
	}
}
