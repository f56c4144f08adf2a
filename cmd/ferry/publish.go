package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/pipeline"
)

// publishHelp is the one-line help of each pipeline input as a flag; docs/action.md has the
// full text of each.
var publishHelp = map[string]string{
	"app-id":               "the app's id as configured on the relay, e.g. com.example.app (required)",
	"build-dir":            "the web build directory, relative to the working directory",
	"version":              "bundle version; default derived from the ref (a v1.2.3 tag gives 1.2.3)",
	"channel":              "channel to register into; default the relay's rule for the ref",
	"encryption-key":       "the app's private key PEM (.capgo_key_v2) content, not its path",
	"signing":              "keyless, key or none; default key with --signing-key, keyless on GitHub with OIDC, else none",
	"signing-key":          "Sigstore signing key PEM (e.g. cosign.key) content, for signing key",
	"signing-key-password": "password of the signing key",
	"provenance":           "sign SLSA provenance too (true or false)",
	"destination":          "github-release, or a bucket URL: s3://, gs://, azblob://, file://",
	"public-base-url":      "URL devices download bucket objects from, e.g. https://cdn.example.com/bundles",
	"github-token":         "token for github-release (default $GITHUB_TOKEN)",
	"release-tag":          "GitHub Release tag; default the version tag or ferry-<version>",
	"relay-url":            "the relay's base URL; without it the bundle is published but not registered",
	"relay-audience":       "OIDC audience the relay expects; default the relay URL's origin",
	"relay-secret":         "HMAC secret shared with the relay (its FERRY_HMAC_SECRET)",
	"native":               "semver range of native app versions the bundle supports, e.g. \">=2.0.0 <3.0.0\"",
	"delta":                "also publish per-file delta objects (bucket destinations only)",
	"delta-key-epoch":      "label of the delta key epoch whose objects releases reuse; change it to rotate (default 1)",
}

// inputEnv is the variable `ferry publish` reads an input from when its flag is not given:
// FERRY_ and the name in upper case with underscores (relay-url: FERRY_RELAY_URL).
func inputEnv(name string) string {
	return "FERRY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// inputAliases are further variables read when the input's own one is empty: the relay's
// name for the same secret, so one CI variable serves both.
var inputAliases = map[string][]string{
	"relay-secret": {"FERRY_HMAC_SECRET"},
}

// runPublish implements `ferry publish`: the action's pipeline (package, encrypt, sign,
// upload, register) from any CI or a laptop, with the action's inputs as flags or FERRY_*
// variables (docs/cli.md).
func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return publishCmd(ctx, args, os.Getenv, stdout, stderr)
}

func publishCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: ferry publish --app-id ID [flags]")
		fmt.Fprintln(stderr, "\nEach flag falls back to its FERRY_* variable (--relay-url: FERRY_RELAY_URL); docs/cli.md lists them.")
		fmt.Fprintln(stderr, "The ref, commit and run come from the CI's own variables (GitHub, GitLab, Azure DevOps, Bitbucket, Jenkins) unless given.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	vals := map[string]*string{}
	for _, in := range pipeline.Inputs {
		help := publishHelp[in.Name] + " [" + inputEnv(in.Name)
		for _, a := range inputAliases[in.Name] {
			help += ", " + a
		}
		help += "]"
		vals[in.Name] = fs.String(in.Name, "", help)
	}
	ref := fs.String("ref", "", "the git ref built, e.g. refs/heads/main or refs/tags/v1.2.0 [FERRY_REF]")
	commit := fs.String("commit", "", "the full commit id built [FERRY_COMMIT]")
	runID := fs.String("run-id", "", "a number that grows with each CI run, for derived versions [FERRY_RUN_ID]")
	repo := fs.String("repository", "", "owner/name of the repository [FERRY_REPOSITORY]")
	tokenFile := fs.String("id-token-file", "", "file holding an OIDC token the relay trusts, to register without relay-secret [FERRY_ID_TOKEN holds the token itself]")
	bundleOut := fs.String("bundle-json", "", "also write the bundle's registration record to this file (for ferry register --from)")
	asJSON := fs.Bool("json", false, "print the outputs as one JSON object instead of name=value lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferry publish: unexpected arguments %q\n", fs.Args())
		return errUsage
	}

	raw := map[string]string{}
	for _, in := range pipeline.Inputs {
		v := *vals[in.Name]
		if v == "" {
			v = getenv(inputEnv(in.Name))
		}
		for _, a := range inputAliases[in.Name] {
			if v == "" {
				v = getenv(a)
			}
		}
		raw[in.Name] = v
	}
	inputs := pipeline.ReadInputs(func(name string) string { return raw[name] })

	pc := ciContext(getenv)
	override(&pc.Ref, *ref, getenv("FERRY_REF"))
	override(&pc.SHA, *commit, getenv("FERRY_COMMIT"))
	override(&pc.RunID, *runID, getenv("FERRY_RUN_ID"))
	override(&pc.Repository, *repo, getenv("FERRY_REPOSITORY"))
	refNames(pc)
	token, err := idTokenSource(*tokenFile, getenv)
	if err != nil {
		return err
	}
	pc.IDToken = token.static != ""

	cfg, err := pipeline.Validate(inputs, getenv, pc)
	if err != nil {
		return fmt.Errorf("invalid options:\n%s", indent(err.Error()))
	}
	ui := &cliUI{w: stderr}
	for _, w := range pipeline.Warnings(cfg) {
		ui.Warn(w)
	}
	p := &pipeline.Pipeline{Config: cfg, Context: pc, UI: ui, Getenv: getenv, IDToken: token.get, UserAgent: "ferry-publish",
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	res, err := p.Run(ctx)
	if err != nil {
		return fmt.Errorf("%s failed: %w", res.FailedStage, err)
	}
	if *bundleOut != "" {
		b, err := json.MarshalIndent(res.Bundle(cfg), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*bundleOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write the bundle record: %w", err)
		}
	}
	outs := res.Outputs()
	if *asJSON {
		m := make(map[string]string, len(outs))
		for _, kv := range outs {
			m[kv[0]] = kv[1]
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	for _, kv := range outs {
		fmt.Fprintf(stdout, "%s=%s\n", kv[0], kv[1])
	}
	return nil
}

// cliUI prints the pipeline's stages and warnings as plain lines; no CI parses them, so
// Mask has nothing to do (no secret is ever printed).
type cliUI struct{ w io.Writer }

func (u *cliUI) Group(title string) { fmt.Fprintf(u.w, "== %s\n", title) }
func (u *cliUI) EndGroup()          {}
func (u *cliUI) Warn(msg string)    { fmt.Fprintf(u.w, "warning: %s\n", msg) }
func (u *cliUI) Notice(msg string)  { fmt.Fprintf(u.w, "notice: %s\n", msg) }
func (u *cliUI) Mask(string)        {}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// override sets *dst to the flag's value, else the variable's, when either is set.
func override(dst *string, flagValue, envValue string) {
	switch {
	case flagValue != "":
		*dst = flagValue
	case envValue != "":
		*dst = envValue
	}
}

// ciContext reads the build's ref, commit, run number and repository from the variables
// each CI sets, so `ferry publish` needs no flags for them.
func ciContext(getenv func(string) string) *pipeline.Context {
	pc := &pipeline.Context{}
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		pc.Ref, pc.SHA, pc.RunID, pc.Repository = getenv("GITHUB_REF"), getenv("GITHUB_SHA"), getenv("GITHUB_RUN_ID"), getenv("GITHUB_REPOSITORY")
		pc.RunAttempt, pc.WorkflowRef, pc.EventName = getenv("GITHUB_RUN_ATTEMPT"), getenv("GITHUB_WORKFLOW_REF"), getenv("GITHUB_EVENT_NAME")
		pc.ServerURL, pc.APIURL = getenv("GITHUB_SERVER_URL"), getenv("GITHUB_API_URL")
		pc.RepositoryID, pc.OwnerID = getenv("GITHUB_REPOSITORY_ID"), getenv("GITHUB_REPOSITORY_OWNER_ID")
		pc.RunnerEnvironment = getenv("RUNNER_ENVIRONMENT")
	case getenv("GITLAB_CI") == "true":
		pc.Ref = fullRef(getenv("CI_COMMIT_TAG"), getenv("CI_COMMIT_BRANCH"))
		pc.SHA, pc.RunID, pc.Repository = getenv("CI_COMMIT_SHA"), getenv("CI_PIPELINE_ID"), getenv("CI_PROJECT_PATH")
	case strings.EqualFold(getenv("TF_BUILD"), "true"): // Azure Pipelines
		pc.Ref, pc.SHA, pc.RunID, pc.Repository = getenv("BUILD_SOURCEBRANCH"), getenv("BUILD_SOURCEVERSION"), getenv("BUILD_BUILDID"), getenv("BUILD_REPOSITORY_NAME")
	case getenv("BITBUCKET_BUILD_NUMBER") != "":
		pc.Ref = fullRef(getenv("BITBUCKET_TAG"), getenv("BITBUCKET_BRANCH"))
		pc.SHA, pc.RunID, pc.Repository = getenv("BITBUCKET_COMMIT"), getenv("BITBUCKET_BUILD_NUMBER"), getenv("BITBUCKET_REPO_FULL_NAME")
	case getenv("JENKINS_URL") != "":
		pc.Ref = fullRef(getenv("TAG_NAME"), getenv("BRANCH_NAME"))
		pc.SHA, pc.RunID = getenv("GIT_COMMIT"), getenv("BUILD_NUMBER")
	}
	return pc
}

// fullRef names a tag or branch as a full git ref.
func fullRef(tag, branch string) string {
	switch {
	case tag != "":
		return "refs/tags/" + tag
	case branch != "":
		return "refs/heads/" + branch
	}
	return ""
}

// refNames fills the ref's short name and type from the full ref.
func refNames(pc *pipeline.Context) {
	switch {
	case strings.HasPrefix(pc.Ref, "refs/tags/"):
		pc.RefName, pc.RefType = strings.TrimPrefix(pc.Ref, "refs/tags/"), "tag"
	case strings.HasPrefix(pc.Ref, "refs/heads/"):
		pc.RefName, pc.RefType = strings.TrimPrefix(pc.Ref, "refs/heads/"), "branch"
	default:
		pc.RefName, pc.RefType = pc.Ref, ""
	}
}

// tokenSource is where OIDC tokens come from: a token the CI issued for the relay
// (--id-token-file, FERRY_ID_TOKEN; GitLab's id_tokens, Azure's workload identity...), or
// GitHub Actions' token endpoint when ferry runs in a GitHub job with `id-token: write`.
type tokenSource struct {
	static string
	getenv func(string) string
}

func idTokenSource(file string, getenv func(string) string) (*tokenSource, error) {
	ts := &tokenSource{static: strings.TrimSpace(getenv("FERRY_ID_TOKEN")), getenv: getenv}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--id-token-file: %w", err)
		}
		ts.static = strings.TrimSpace(string(b))
		if ts.static == "" {
			return nil, fmt.Errorf("--id-token-file %s is empty", file)
		}
	}
	return ts, nil
}

func (ts *tokenSource) get(ctx context.Context, audience string) (string, error) {
	if ts.static != "" {
		return ts.static, nil
	}
	reqURL, reqToken := ts.getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), ts.getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if reqURL == "" || reqToken == "" {
		return "", errors.New("no OIDC token: pass --id-token-file or FERRY_ID_TOKEN, or on GitHub grant `permissions: id-token: write`")
	}
	u, err := url.Parse(reqURL)
	if err != nil {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL: %w", err)
	}
	q := u.Query()
	q.Set("audience", audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+reqToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("request the Actions OIDC token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("request the Actions OIDC token: %s", resp.Status)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || out.Value == "" {
		return "", errors.New("request the Actions OIDC token: no token in the answer")
	}
	return out.Value, nil
}
