package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/ferryhq/ferry/internal/pipeline"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// repoRoot is where action.yml lives, relative to this package.
const repoRoot = "../.."

type actionMeta struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Branding    map[string]string `yaml:"branding"`
	Inputs      map[string]struct {
		Description string  `yaml:"description"`
		Required    bool    `yaml:"required"`
		Default     *string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Image string `yaml:"image"`
	} `yaml:"runs"`
}

func readActionYAML(t *testing.T) *actionMeta {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m actionMeta
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("parse action.yml: %v", err)
	}
	return &m
}

// TestActionYAMLMatchesCode: action.yml declares exactly the inputs (names, required,
// defaults) and outputs the binary reads and writes, and references a digest-pinned image.
func TestActionYAMLMatchesCode(t *testing.T) {
	t.Parallel()
	m := readActionYAML(t)
	type in struct {
		Required bool
		Default  string
	}
	want, got := map[string]in{}, map[string]in{}
	for _, i := range pipeline.Inputs {
		d := i.Default
		if i.Name == "github-token" {
			d = "${{ github.token }}" // the runner's token; the binary falls back to GITHUB_TOKEN
		}
		want[i.Name] = in{i.Required, d}
	}
	for name, i := range m.Inputs {
		d := ""
		if i.Default != nil {
			d = *i.Default
		}
		got[name] = in{i.Required, d}
		if strings.TrimSpace(i.Description) == "" {
			t.Errorf("input %q has no description", name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("action.yml inputs (-code +action.yml):\n%s", diff)
	}
	var outs []string
	for name, o := range m.Outputs {
		outs = append(outs, name)
		if strings.TrimSpace(o.Description) == "" {
			t.Errorf("output %q has no description", name)
		}
	}
	sort.Strings(outs)
	wantOuts := append([]string(nil), pipeline.Outputs...)
	sort.Strings(wantOuts)
	if diff := cmp.Diff(wantOuts, outs); diff != "" {
		t.Errorf("action.yml outputs (-code +action.yml):\n%s", diff)
	}
	if m.Runs.Using != "docker" || !regexp.MustCompile(`^docker://ghcr\.io/ferryhq/ferry-action:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$`).MatchString(m.Runs.Image) {
		t.Errorf("runs = %+v, want a docker action on a digest-pinned ghcr.io image", m.Runs)
	}
	if m.Name == "" || m.Description == "" || m.Branding["icon"] == "" || m.Branding["color"] == "" {
		t.Errorf("name, description and branding are required for the Marketplace: %+v", m)
	}
}

// TestDocsDocumentEveryInputAndOutput: docs/action.md has a row for each input and output.
func TestDocsDocumentEveryInputAndOutput(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "action.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, i := range pipeline.Inputs {
		if !strings.Contains(doc, "| `"+i.Name+"` |") {
			t.Errorf("docs/action.md has no row for input %q", i.Name)
		}
	}
	for _, o := range pipeline.Outputs {
		if !strings.Contains(doc, "| `"+o+"` |") {
			t.Errorf("docs/action.md has no row for output %q", o)
		}
	}
}

// TestWorkflowsLint runs actionlint on .github/workflows, and on a workflow that passes every
// input to the local action, which makes actionlint check them against action.yml.
func TestWorkflowsLint(t *testing.T) {
	t.Parallel()
	lint := testpeers.Path(t, testpeers.Actionlint)
	files, err := filepath.Glob(filepath.Join(repoRoot, ".github", "workflows", "*.yml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("workflows = %v (%v), want ci.yml, release.yml and example-consumer.yml", files, err)
	}
	cmd := exec.Command(lint, append([]string{"-color=false"}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("actionlint .github/workflows: %v\n%s", err, out)
	}

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".github", "workflows"), 0o755); err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var with strings.Builder
	for _, i := range pipeline.Inputs {
		with.WriteString("          " + i.Name + ": x\n")
	}
	wf := "on: push\npermissions: {}\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: ./\n        with:\n" + with.String()
	for name, content := range map[string]string{"action.yml": string(meta), ".github/workflows/all-inputs.yml": wf} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil { // actionlint finds the project by its .git
		t.Fatal(err)
	}
	cmd = exec.Command(lint, "-color=false")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("actionlint with every input: %v\n%s", err, out)
	}
}

// TestDockerfile checks the rules actionlint cannot: static stripped builds, a non-root relay
// and a root action with an absolute exec-form entrypoint.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]string{}
	cur := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.EqualFold(f[0], "FROM") && strings.EqualFold(f[len(f)-2], "AS") {
			cur = f[len(f)-1]
		}
		stages[cur] += line + "\n"
	}
	checks := []struct{ stage, re string }{
		{"build", `CGO_ENABLED=0`},
		{"build", `go build -trimpath -tags disable_grpc_modules -ldflags="-s -w"`},
		{"relay", `(?m)^USER 65532`},
		{"relay", `(?m)^ENTRYPOINT \["/usr/local/bin/relay"\]`},
		{"action", `(?m)^ENTRYPOINT \["/usr/local/bin/ferry-action"\]`},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.re).MatchString(stages[c.stage]) {
			t.Errorf("Dockerfile stage %q lacks %s", c.stage, c.re)
		}
	}
	if regexp.MustCompile(`(?m)^USER`).MatchString(stages["action"]) {
		t.Error("the action stage sets USER: GitHub runs container actions as root")
	}
	if !strings.Contains(stages["action"], "FROM gcr.io/distroless/static") {
		t.Error("the action image should be the minimal static base with CA certificates")
	}
}

// TestVersionFlag: the action's binary names its build with --version and exits 0, and
// --help and a bad argument name it too, as ferry-action (its name in the image and the docs).
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"--version"}, func(string) string { return "" }, &stdout, io.Discard); code != 0 || !strings.HasPrefix(stdout.String(), "ferry-action ") {
		t.Errorf("ferry-action --version = %d, %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &stdout, io.Discard); code != 0 || !strings.HasPrefix(stdout.String(), "Usage: ferry-action ") {
		t.Errorf("ferry-action --help = %d, %q", code, stdout.String())
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"publish"}, func(string) string { return "" }, io.Discard, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "ferry-action: unexpected arguments") {
		t.Errorf("ferry-action publish = %d, %q", code, stderr.String())
	}
}
