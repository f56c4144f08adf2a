package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const adminUsage = `Usage: ferry admin --relay URL [--app ID] --token-file FILE <action> [arguments]

Actions on one app (--app):
  channels                              list channels, their versions and rollouts
  bundles [limit]                       list registered bundles, newest first
  bundles prune --bucket URL [--older-than 24h] [--delta-files] [--delete] [--json]
                                        list (or delete) the bucket's objects of the app that no
                                        registered bundle or channel references (dry run by default)
  promote <channel> <version> [--native RANGE]
                                        serve <version> on <channel> ("builtin": the app's own assets);
                                        --native sets the native versions it is offered to there
                                        (e.g. ">=2.0.0 <3.0.0"; "" restores the bundle's own range)
  rollback <channel>                    serve the channel's previous version again
  rollout <channel> <version> <percent> offer <version> to <percent>% of the channel's devices
  rollout <channel> pause|resume|complete|cancel
                                        resume is also how a person resumes a plan a gate paused
  rollout start --plan NAME <channel> <version>
                                        start a configured rollout plan (docs/rollouts.md)
  rollout status <channel>              the channel's rollout plan: step, next decision, pause reason
  policy <channel> <json>|null          override the channel's policy, or remove the override
  stats                                 device statistics per version
  device <id>                           the versions a device reported failing (not offered to it again)
  device <id> clear-failed              forget them, so the relay offers them again (admin)
  audit [--actor A] [--action X] [--since T] [--until T] [limit]
                                        the audit log, newest first; --actor matches a token,
                                        person, repository or delivery; times are RFC 3339

API tokens (docs/access.md):
  tokens create --name N --app A --role R [--grant APP:ROLE]... [--expires 90d]
                                        create a token; it is printed once, on standard output
  tokens list                           the tokens you may manage
  tokens revoke <id>                    revoke a token at once, on every relay instance

The credential (an API token, or the bootstrap FERRY_ADMIN_TOKEN) is read from --token-file
("-" reads standard input), never from the command line; without --token-file, the session
` + "`ferry login`" + ` saved for the relay is used:
  ferry admin --relay https://relay.example.com --app com.example.app \
    --token-file <(printf %s "$FERRY_TOKEN") channels

Flags:
`

// runAdmin implements `ferry admin`: a thin client of the relay's admin API
// (docs/admin-api.md). It prints tables, or with --json the relay's JSON answer.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", adminUsage, stderr)
	relay := fs.String("relay", "", "relay base URL, e.g. https://relay.example.com (required)")
	app := fs.String("app", "", "app id, e.g. com.example.app (required)")
	tokenFile := fs.String("token-file", "", `file holding the API token or FERRY_ADMIN_TOKEN ("-": standard input) (required)`)
	asJSON := fs.Bool("json", false, "print the relay's JSON answer")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	if *relay == "" {
		problems = append(problems, "--relay is required")
	}
	args, flagErr := lateAdminFlags(fs, fs.Args())
	req, reqErr := adminRequest(args)
	if flagErr != nil {
		reqErr = flagErr
	}
	if *app == "" && (reqErr != nil || req.action != "tokens") {
		problems = append(problems, "--app is required")
	}
	if *tokenFile == "" {
		if _, ok := savedCredential(*relay); *relay == "" || !ok {
			problems = append(problems, "--token-file is required (or sign in first with `ferry login --relay URL`)")
		}
	}
	if reqErr != nil {
		problems = append(problems, reqErr.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "ferry admin: %s\n\n", strings.Join(problems, "; "))
		fs.Usage()
		return errUsage
	}
	token, err := adminCredential(*tokenFile, *relay)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := relayclient.New(*relay, relayclient.Options{AdminToken: token, UserAgent: "ferry-admin"})
	if err != nil {
		return err
	}
	ans, err := req.do(ctx, c, *app)
	if rep, ok := ans.(*pruneReport); ok && rep != nil && err != nil {
		// Some deletions failed: show what happened to each object, then the error.
		_ = printAdmin(stdout, rep)
	}
	if err != nil {
		return err
	}
	if req.prune != nil && req.prune.json {
		*asJSON = true
	}
	if created, ok := ans.(*relayclient.CreatedToken); ok && !*asJSON {
		// The token alone on standard output, so it can be piped into a secret store; the
		// record and the warning on standard error.
		fmt.Fprintln(stderr, "Store this token now: it is shown only this once, and the relay keeps only its hash.")
		if err := printAdmin(stderr, &relayclient.TokenList{Tokens: []relayclient.TokenInfo{created.Record}}); err != nil {
			return err
		}
		_, err := fmt.Fprintln(stdout, created.Token)
		return err
	}
	if *asJSON {
		out, err := json.MarshalIndent(ans, "", "  ")
		if err != nil {
			return fmt.Errorf("encode answer: %w", err)
		}
		_, err = stdout.Write(append(out, '\n'))
		return err
	}
	return printAdmin(stdout, ans)
}

// lateAdminFlags handles ferry admin's own flags written after the action
// (`ferry admin … channels --json`): --json works anywhere; the others, which take a value,
// are refused with where to put them. It returns the arguments without the flags it took.
// An action's own flags (tokens create --app) are left to the action.
func lateAdminFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	for _, a := range args[1:] {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || fs.Lookup(name) == nil || (name == "app" && args[0] == "tokens") {
			out = append(out, a)
			continue
		}
		if name != "json" {
			return nil, fmt.Errorf("--%s is a flag of ferry admin, not of %s: put it before the action, e.g. ferry admin --relay URL --app ID --json %s", name, args[0], args[0])
		}
		if !hasValue {
			value = "true"
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("--json=%s: %w", value, err)
		}
	}
	return out, nil
}

// adminCall is one admin API call, parsed from the positional arguments.
type adminCall struct {
	action  string
	channel string
	version string
	op      string // a rollout operation: pause, resume, complete, cancel
	plan    string // rollout start --plan
	percent int
	limit   int // 0: the relay's default
	policy  *relayclient.PolicyOverride
	audit   relayclient.AuditQuery
	token   *relayclient.TokenRequest // tokens create
	sub     string                    // tokens: create, list, revoke
	id      string                    // tokens revoke; device
	native  *string                   // promote --native
	prune   *pruneCall                // bundles prune
}

// adminRequest maps the positional arguments to an admin API call.
func adminRequest(args []string) (*adminCall, error) {
	if len(args) == 0 {
		return nil, errors.New("an action is required")
	}
	action, rest := args[0], args[1:]
	call := &adminCall{action: action}
	need := func(n int, form string) error {
		if len(rest) != n {
			return fmt.Errorf("usage: %s", form)
		}
		if n > 0 {
			call.channel = rest[0]
		}
		return nil
	}
	limit := func(form string) error {
		if len(rest) > 1 {
			return fmt.Errorf("usage: %s", form)
		}
		if len(rest) == 1 {
			n, err := strconv.Atoi(rest[0])
			if err != nil || n < 1 {
				return fmt.Errorf("limit %q is not a positive number", rest[0])
			}
			call.limit = n
		}
		return nil
	}
	var err error
	switch action {
	case "channels":
		err = need(0, "channels")
	case "bundles":
		if len(rest) > 0 && rest[0] == "prune" {
			call.prune, err = pruneRequest(rest[1:])
		} else {
			err = limit("bundles [limit]")
		}
	case "audit":
		if rest, err = auditFlags(call, rest); err == nil {
			err = limit("audit [--actor A] [--action X] [--since T] [--until T] [limit]")
		}
	case "tokens":
		err = tokensRequest(call, rest)
	case "stats":
		err = need(0, "stats")
	case "device":
		switch {
		case len(rest) == 1:
		case len(rest) == 2 && rest[1] == "clear-failed":
			call.op = rest[1]
		default:
			return nil, errors.New("usage: device <id> [clear-failed]")
		}
		if !channel.ValidDeviceID(rest[0]) {
			return nil, fmt.Errorf("device %q is not a device id (1 to 128 printable ASCII characters, no space)", rest[0])
		}
		call.id = rest[0]
	case "promote":
		if call.native, rest, err = nativeFlag(rest); err == nil {
			if err = need(2, "promote <channel> <version> [--native RANGE]"); err == nil {
				call.version = rest[1]
			}
		}
	case "rollback":
		err = need(1, "rollback <channel>")
	case "rollout":
		switch {
		case len(rest) >= 1 && rest[0] == "start" && (len(rest) != 3 || strings.HasPrefix(rest[1], "-")):
			fs := flag.NewFlagSet("rollout start", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			plan := fs.String("plan", "", "")
			if err := fs.Parse(rest[1:]); err != nil || *plan == "" || fs.NArg() != 2 {
				return nil, errors.New("usage: rollout start --plan NAME <channel> <version>")
			}
			call.action, call.plan, call.channel, call.version = "plan", *plan, fs.Arg(0), fs.Arg(1)
		case len(rest) == 2 && rest[0] == "status":
			call.action, call.channel = "plan", rest[1]
		case len(rest) == 2 && (rest[1] == relayclient.RolloutPause || rest[1] == relayclient.RolloutResume ||
			rest[1] == relayclient.RolloutComplete || rest[1] == relayclient.RolloutCancel):
			call.channel, call.op = rest[0], rest[1]
		case len(rest) == 3:
			p, perr := strconv.Atoi(strings.TrimSuffix(rest[2], "%"))
			if perr != nil || p < 0 || p > 100 {
				return nil, fmt.Errorf("percent %q is not a number from 0 to 100", rest[2])
			}
			call.channel, call.version, call.percent = rest[0], rest[1], p
		default:
			return nil, errors.New("usage: rollout <channel> <version> <percent> | rollout <channel> pause|resume|complete|cancel")
		}
	case "policy":
		if err := need(2, "policy <channel> <json>|null"); err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := json.Unmarshal([]byte(rest[1]), &raw); err != nil {
			return nil, fmt.Errorf("policy %q is not JSON: %w", rest[1], err)
		}
		// Decoded as strictly as the relay decodes it, so a misspelt field is caught here.
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&call.policy); err != nil {
			return nil, fmt.Errorf("policy %q is not a channel policy: %w", rest[1], err)
		}
	default:
		return nil, fmt.Errorf("unknown action %q", action)
	}
	if err != nil {
		return nil, err
	}
	return call, nil
}

// nativeFlag takes promote's --native RANGE (or --native=RANGE) from anywhere among its
// arguments, checks the range as the relay will, and returns the other arguments.
func nativeFlag(args []string) (native *string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if name != "--native" && name != "-native" {
			rest = append(rest, args[i])
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, nil, errors.New(`--native needs a range, e.g. --native ">=2.0.0 <3.0.0"`)
			}
			i++
			value = args[i]
		}
		if native != nil {
			return nil, nil, errors.New("--native is given twice")
		}
		if err := channel.ParseRange(strings.TrimSpace(value)); err != nil {
			return nil, nil, fmt.Errorf("--native: %w (npm semver range syntax, e.g. \">=2.0.0 <3.0.0\")", err)
		}
		native = &value
	}
	return native, rest, nil
}

// do makes the call; the answer is one of relayclient's answer types.
func (a *adminCall) do(ctx context.Context, c *relayclient.Client, app string) (any, error) {
	switch a.action {
	case "channels":
		return c.ListChannels(ctx, app)
	case "bundles":
		if a.prune != nil {
			return runPrune(ctx, c, app, a.prune)
		}
		return c.ListBundles(ctx, app, a.limit)
	case "audit":
		q := a.audit
		q.Limit = a.limit
		return c.QueryAudit(ctx, app, q)
	case "tokens":
		switch a.sub {
		case "create":
			return c.CreateToken(ctx, a.token)
		case "list":
			return c.ListTokens(ctx)
		case "revoke":
			info, err := c.RevokeToken(ctx, a.id)
			if err != nil {
				return nil, err
			}
			return &relayclient.TokenList{Tokens: []relayclient.TokenInfo{*info}}, nil
		}
	case "stats":
		return c.Stats(ctx, app)
	case "device":
		if a.op == "clear-failed" {
			return c.ClearFailed(ctx, app, a.id)
		}
		return c.Device(ctx, app, a.id)
	case "promote":
		return c.PromoteWith(ctx, app, a.channel, relayclient.PromoteRequest{Version: a.version, Native: a.native})
	case "rollback":
		return c.Rollback(ctx, app, a.channel)
	case "plan":
		if a.plan == "" {
			return c.GetPlan(ctx, app, a.channel)
		}
		return c.StartPlan(ctx, app, a.channel, a.plan, a.version)
	case "rollout":
		if a.op != "" {
			return c.ChangeRollout(ctx, app, a.channel, a.op)
		}
		return c.SetRollout(ctx, app, a.channel, a.version, a.percent)
	case "policy":
		return c.SetPolicy(ctx, app, a.channel, a.policy)
	}
	return nil, fmt.Errorf("unknown action %q", a.action)
}

// adminCredential returns the credential `ferry admin` sends as its bearer token: the
// file --token-file names, or else the session `ferry login` saved for relay.
func adminCredential(tokenFile, relay string) (string, error) {
	if tokenFile == "" {
		if tok, ok := savedCredential(relay); ok {
			return tok, nil
		}
		return "", errors.New("no credential: pass --token-file or run `ferry login --relay " + relay + "`")
	}
	return readToken(tokenFile)
}

// auditFlags parses the filters of `audit` and returns the remaining arguments.
func auditFlags(call *adminCall, args []string) ([]string, error) {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	actor := fs.String("actor", "", "")
	action := fs.String("action", "", "")
	since := fs.String("since", "", "")
	until := fs.String("until", "", "")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	call.audit = relayclient.AuditQuery{Actor: *actor, Action: *action}
	for _, t := range []struct {
		name, v string
		to      *time.Time
	}{{"since", *since, &call.audit.Since}, {"until", *until, &call.audit.Until}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return nil, fmt.Errorf("audit: --%s %q is not an RFC 3339 time such as 2025-01-31T12:00:00Z", t.name, t.v)
		}
		*t.to = v
	}
	return fs.Args(), nil
}

// grantFlags collects repeated --grant APP:ROLE flags.
type grantFlags []access.Grant

func (g *grantFlags) String() string { return fmt.Sprint(*g) }

func (g *grantFlags) Set(s string) error {
	gr, err := access.ParseGrant(s)
	if err != nil {
		return err
	}
	*g = append(*g, gr)
	return nil
}

// tokensRequest parses `tokens create|list|revoke`.
func tokensRequest(call *adminCall, args []string) error {
	const usage = "usage: tokens create --name N --app A --role R [--grant APP:ROLE]... [--expires 90d] | tokens list | tokens revoke <id>"
	if len(args) == 0 {
		return errors.New(usage)
	}
	call.sub = args[0]
	switch call.sub {
	case "list":
		if len(args) != 1 {
			return errors.New(usage)
		}
	case "revoke":
		if len(args) != 2 || args[1] == "" {
			return errors.New(usage)
		}
		call.id = args[1]
	case "create":
		fs := flag.NewFlagSet("tokens create", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		name := fs.String("name", "", "")
		app := fs.String("app", "", "")
		role := fs.String("role", "", "")
		expires := fs.String("expires", "", "")
		var grants grantFlags
		fs.Var(&grants, "grant", "")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("tokens create: %w", err)
		}
		if fs.NArg() > 0 {
			return errors.New(usage)
		}
		if *app != "" || *role != "" {
			g := access.Grant{App: *app, Role: access.Role(*role)}
			if err := g.Check(); err != nil {
				return fmt.Errorf("tokens create: --app and --role: %w", err)
			}
			grants = append(grantFlags{g}, grants...)
		}
		call.token = &relayclient.TokenRequest{Name: *name, Grants: grants, ExpiresIn: *expires}
		if err := call.token.Check(); err != nil {
			return fmt.Errorf("tokens create: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	default:
		return errors.New(usage)
	}
	return nil
}

// readToken reads the admin token from a file or standard input ("-").
func readToken(path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("read token: the token file is empty")
	}
	return tok, nil
}

// printAdmin prints an answer of the relay for people.
func printAdmin(w io.Writer, ans any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch a := ans.(type) {
	case *relayclient.ChannelList:
		fmt.Fprintln(tw, "CHANNEL\tVERSION\tROLLOUT\tPREVIOUS\tUPDATED")
		for _, c := range a.Channels {
			name := c.Name
			if c.Default {
				name += " (default)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, releaseText(c.State.Version, c.State.Release), rolloutText(c.State.Rollout), orDash(strings.Join(c.State.History, " ")), timeText(c.State.UpdatedAt))
		}
	case *relayclient.BundleList:
		fmt.Fprintln(tw, "VERSION\tCOMMIT\tREF\tENCRYPTED\tNATIVE\tREGISTERED")
		for _, b := range a.Bundles {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", b.Version, short(b.Commit), orDash(b.Ref), b.Encrypted(), orDash(b.Native), timeText(b.CreatedAt))
		}
	case *pruneReport:
		return a.print(w)
	case *relayclient.DeviceView:
		fmt.Fprintf(tw, "DEVICE\tFAILED VERSIONS\n%s\t%s\n", a.Device, orDash(strings.Join(a.Failed, " ")))
	case *relayclient.ClearFailedResult:
		fmt.Fprintf(tw, "DEVICE\tCLEARED\n%s\t%s\n", a.Device, orDash(strings.Join(a.Cleared, " ")))
	case *relayclient.AuditList:
		fmt.Fprintln(tw, "TIME\tCHANNEL\tACTION\tFROM\tTO\tACTOR\tCAUSE\tCHANGE")
		for _, e := range a.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeText(e.Time), orDash(e.Channel), e.Action, orDash(e.From), releaseText(e.Version, e.Release), e.Actor, e.Cause, auditChange(&e))
		}
	case *relayclient.TokenList:
		fmt.Fprintln(tw, "ID\tNAME\tGRANTS\tCREATED BY\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
		for _, t := range a.Tokens {
			grants := make([]string, len(t.Grants))
			for i, g := range t.Grants {
				grants[i] = g.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(grants, ","), t.CreatedBy,
				timeText(t.CreatedAt), timeText(t.ExpiresAt), timeText(t.LastUsed), timeText(t.RevokedAt))
		}
	case *relayclient.Stats:
		fmt.Fprintln(tw, "VERSION\tDEVICES\tINSTALLED\tDOWNLOADS\tFAILURES")
		for _, v := range a.Versions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", v.Version, v.Devices, v.Actions["set"], v.Actions["download_complete"], v.Actions["update_fail"])
		}
	case *relayclient.PlanView:
		fmt.Fprintf(tw, "CHANNEL\t%s\nSTABLE\t%s\nROLLOUT\t%s\n", a.Channel, orDash(a.Version), rolloutText(a.Rollout))
		if p := a.Plan; p != nil {
			fmt.Fprintf(tw, "PLAN\t%s (revision %d) for %s\nSTEP\t%d of %d\nSTEP STARTED\t%s\nNEXT DECISION\t%s\n",
				p.Name, p.Revision, p.Version, p.Step+1, len(p.Plan.Steps), timeText(p.StepStartedAt), timeText(p.NextDecisionAt))
			if p.PausedReason != "" {
				fmt.Fprintf(tw, "PAUSED BY GATE\t%s\n", p.PausedReason)
			}
		} else {
			fmt.Fprintln(tw, "PLAN\t-")
		}
	case *relayclient.ChangeResult:
		verb := "unchanged"
		if a.Changed {
			verb = "changed"
		}
		st := a.Channel.State
		fmt.Fprintf(tw, "%s %s: serves %s", a.Channel.Name, verb, releaseText(st.Version, st.Release))
		if st.Rollout != nil {
			fmt.Fprintf(tw, ", rollout %s", rolloutText(st.Rollout))
		}
		if r, ok := st.NativeFor(st.Version); ok {
			fmt.Fprintf(tw, ", native %q (set at promotion)", r)
		}
		if len(st.History) > 0 {
			fmt.Fprintf(tw, ", previous %s", st.History[0])
		}
		if a.Channel.Overridden {
			fmt.Fprint(tw, ", policy overridden")
		}
		fmt.Fprintln(tw)
	default:
		return fmt.Errorf("no table for %T", ans)
	}
	return nil
}

// auditChange shows what a policy change, a promotion's native range or a clear_failed
// changed: its before and after, as the audit entry records them; "-" for other entries.
func auditChange(e *channel.AuditEntry) string {
	switch e.Action {
	case "policy", "promote", "clear_failed":
		if len(e.Before) > 0 || len(e.After) > 0 {
			return orDash(string(e.Before)) + " → " + orDash(string(e.After))
		}
	}
	return "-"
}

// releaseText shows a version with the release name (the tag) it was promoted under:
// "0.0.0-main.201.gabcabc (v2.0.0)".
func releaseText(version, release string) string {
	if release == "" || version == "" {
		return orDash(version)
	}
	return version + " (" + release + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return orDash(commit)
}

func rolloutText(r *channel.Rollout) string {
	if r == nil {
		return "-"
	}
	s := fmt.Sprintf("%s@%d%%", r.Version, r.Percent)
	if r.Paused {
		s += " (paused)"
	}
	return s
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}
