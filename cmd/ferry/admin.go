package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// maxAdminAnswer bounds what is read of the relay's answer.
const maxAdminAnswer = 16 << 20

const adminUsage = `Usage: ferry admin --relay URL --app ID --token-file FILE <action> [arguments]

Actions:
  channels                              list channels, their versions and rollouts
  bundles [limit]                       list registered bundles, newest first
  promote <channel> <version>           serve <version> on <channel> ("builtin": the app's own assets)
  rollback <channel>                    serve the channel's previous version again
  rollout <channel> <version> <percent> offer <version> to <percent>% of the channel's devices
  rollout <channel> pause|resume|complete|cancel
  policy <channel> <json>|null          override the channel's policy, or remove the override
  stats                                 device statistics per version
  audit [limit]                         the audit log, newest first

The token is read from --token-file ("-" reads standard input), never from the command line:
  ferry admin --relay https://relay.example.com --app com.example.app \
    --token-file <(printf %s "$FERRY_ADMIN_TOKEN") channels

Flags:
`

// runAdmin implements `ferry admin`: a thin client of the relay's admin API
// (docs/admin-api.md). It prints tables, or with --json the relay's JSON answer.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, adminUsage)
		fs.PrintDefaults()
	}
	relay := fs.String("relay", "", "relay base URL, e.g. https://relay.example.com (required)")
	app := fs.String("app", "", "app id, e.g. com.example.app (required)")
	tokenFile := fs.String("token-file", "", `file holding FERRY_ADMIN_TOKEN ("-": standard input) (required)`)
	asJSON := fs.Bool("json", false, "print the relay's JSON answer")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	if *relay == "" {
		problems = append(problems, "--relay is required")
	}
	if *app == "" {
		problems = append(problems, "--app is required")
	}
	if *tokenFile == "" {
		problems = append(problems, "--token-file is required")
	}
	req, err := adminRequest(fs.Args())
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "ferry admin: %s\n\n", strings.Join(problems, "; "))
		fs.Usage()
		return errUsage
	}
	token, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &adminClient{base: strings.TrimRight(*relay, "/") + "/api/v1/apps/" + url.PathEscape(*app), token: token, client: http.DefaultClient}
	raw, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	if *asJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		out.WriteByte('\n')
		_, err := stdout.Write(out.Bytes())
		return err
	}
	return printAdmin(stdout, req.action, raw)
}

// adminCall is one admin API request.
type adminCall struct {
	action string
	method string
	path   string // below /api/v1/apps/{app}
	body   any
}

// adminRequest maps the positional arguments to an admin API call.
func adminRequest(args []string) (*adminCall, error) {
	if len(args) == 0 {
		return nil, errors.New("an action is required")
	}
	action, rest := args[0], args[1:]
	need := func(n int, form string) error {
		if len(rest) != n {
			return fmt.Errorf("usage: %s", form)
		}
		return nil
	}
	limit := func(form string) (string, error) {
		if len(rest) > 1 {
			return "", fmt.Errorf("usage: %s", form)
		}
		if len(rest) == 1 {
			if n, err := strconv.Atoi(rest[0]); err != nil || n < 1 {
				return "", fmt.Errorf("limit %q is not a positive number", rest[0])
			}
			return "?limit=" + rest[0], nil
		}
		return "", nil
	}
	ch := func() string { return "/channels/" + url.PathEscape(rest[0]) }
	switch action {
	case "channels":
		if err := need(0, "channels"); err != nil {
			return nil, err
		}
		return &adminCall{action, "GET", "/channels", nil}, nil
	case "bundles":
		q, err := limit("bundles [limit]")
		if err != nil {
			return nil, err
		}
		return &adminCall{action, "GET", "/bundles" + q, nil}, nil
	case "audit":
		q, err := limit("audit [limit]")
		if err != nil {
			return nil, err
		}
		return &adminCall{action, "GET", "/audit" + q, nil}, nil
	case "stats":
		if err := need(0, "stats"); err != nil {
			return nil, err
		}
		return &adminCall{action, "GET", "/stats", nil}, nil
	case "promote":
		if err := need(2, "promote <channel> <version>"); err != nil {
			return nil, err
		}
		return &adminCall{action, "POST", ch() + "/promote", map[string]string{"version": rest[1]}}, nil
	case "rollback":
		if err := need(1, "rollback <channel>"); err != nil {
			return nil, err
		}
		return &adminCall{action, "POST", ch() + "/rollback", nil}, nil
	case "rollout":
		switch {
		case len(rest) == 2 && (rest[1] == "pause" || rest[1] == "resume" || rest[1] == "complete" || rest[1] == "cancel"):
			return &adminCall{action, "POST", ch() + "/rollout/" + rest[1], nil}, nil
		case len(rest) == 3:
			p, err := strconv.Atoi(strings.TrimSuffix(rest[2], "%"))
			if err != nil || p < 0 || p > 100 {
				return nil, fmt.Errorf("percent %q is not a number from 0 to 100", rest[2])
			}
			return &adminCall{action, "PUT", ch() + "/rollout", map[string]any{"version": rest[1], "percent": p}}, nil
		default:
			return nil, errors.New("usage: rollout <channel> <version> <percent> | rollout <channel> pause|resume|complete|cancel")
		}
	case "policy":
		if err := need(2, "policy <channel> <json>|null"); err != nil {
			return nil, err
		}
		var p json.RawMessage
		if err := json.Unmarshal([]byte(rest[1]), &p); err != nil {
			return nil, fmt.Errorf("policy %q is not JSON: %w", rest[1], err)
		}
		return &adminCall{action, "PUT", ch() + "/policy", map[string]json.RawMessage{"policy": p}}, nil
	default:
		return nil, fmt.Errorf("unknown action %q", action)
	}
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

type adminClient struct {
	base   string
	token  string
	client *http.Client
}

// adminError is a refusal of the relay, with its code and message.
type adminError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *adminError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("relay answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("relay answered %d %s: %s", e.Status, e.Code, e.Message)
}

// do sends the call and returns the answer's body, or an *adminError for a refusal.
func (c *adminClient) do(ctx context.Context, call *adminCall) ([]byte, error) {
	var body io.Reader
	if call.body != nil {
		b, err := json.Marshal(call.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, call.method, c.base+call.path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", "ferry-admin")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", call.method, call.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &adminError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return nil, e
	}
	return raw, nil
}

// adminChannel mirrors the relay's channel view.
type adminChannel struct {
	Name       string         `json:"name"`
	Default    bool           `json:"default"`
	Overridden bool           `json:"policy_overridden"`
	State      *channel.State `json:"state"`
}

// printAdmin prints an answer for people.
func printAdmin(w io.Writer, action string, raw []byte) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch action {
	case "channels":
		var a struct {
			Channels []adminChannel `json:"channels"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintln(tw, "CHANNEL\tVERSION\tROLLOUT\tPREVIOUS\tUPDATED")
		for _, c := range a.Channels {
			name := c.Name
			if c.Default {
				name += " (default)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, orDash(c.State.Version), rolloutText(c.State.Rollout), orDash(strings.Join(c.State.History, " ")), timeText(c.State.UpdatedAt))
		}
	case "bundles":
		var a struct {
			Bundles []channel.Bundle `json:"bundles"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintln(tw, "VERSION\tCOMMIT\tREF\tENCRYPTED\tNATIVE\tREGISTERED")
		for _, b := range a.Bundles {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", b.Version, short(b.Commit), orDash(b.Ref), b.Encrypted(), orDash(b.Native), timeText(b.CreatedAt))
		}
	case "audit":
		var a struct {
			Entries []channel.AuditEntry `json:"entries"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintln(tw, "TIME\tCHANNEL\tACTION\tFROM\tTO\tCAUSE")
		for _, e := range a.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", timeText(e.Time), orDash(e.Channel), e.Action, orDash(e.From), orDash(e.Version), e.Cause)
		}
	case "stats":
		var a struct {
			Versions []channel.VersionStats `json:"versions"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintln(tw, "VERSION\tDEVICES\tINSTALLED\tDOWNLOADS\tFAILURES")
		for _, v := range a.Versions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", v.Version, v.Devices, v.Actions["set"], v.Actions["download_complete"], v.Actions["update_fail"])
		}
	default: // a change
		var a struct {
			Changed bool         `json:"changed"`
			Channel adminChannel `json:"channel"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		verb := "unchanged"
		if a.Changed {
			verb = "changed"
		}
		st := a.Channel.State
		fmt.Fprintf(tw, "%s %s: serves %s", a.Channel.Name, verb, orDash(st.Version))
		if st.Rollout != nil {
			fmt.Fprintf(tw, ", rollout %s", rolloutText(st.Rollout))
		}
		if len(st.History) > 0 {
			fmt.Fprintf(tw, ", previous %s", st.History[0])
		}
		if a.Channel.Overridden {
			fmt.Fprint(tw, ", policy overridden")
		}
		fmt.Fprintln(tw)
	}
	return nil
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
