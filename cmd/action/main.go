// Command action is the Ferry GitHub Action (the ferry-action binary): it zips a Capacitor app's web build
// deterministically, encrypts it the way Capgo's tooling does, signs it and its SLSA
// provenance with Sigstore, uploads it to a GitHub Release or a bucket, and registers it
// with the Ferry relay, which maps git refs to update channels.
//
// GitHub runs it as a Docker container action (action.yml); inputs arrive as INPUT_<NAME>
// environment variables with dashes kept (INPUT_APP-ID), outputs go to $GITHUB_OUTPUT and
// the job summary to $GITHUB_STEP_SUMMARY. Any other CI runs the same binary with the same
// variables; without $GITHUB_OUTPUT the outputs are printed as name=value lines, and no
// workflow command that would echo a secret is printed. docs/action.md has every input.
//
// Exit status: 0 published (and registered), 1 failed (one ::error annotation says what to
// fix), 2 bad usage.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ferryhq/ferry/internal/buildinfo"
	"github.com/ferryhq/ferry/internal/pipeline"
)

// binaryName is what the action's binary calls itself in --version, --help and errors: the
// name it has in the image (/usr/local/bin/ferry-action) and in docs/action.md, so it is not
// mistaken for the ferry CLI or for any other action.
const binaryName = "ferry-action"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole action; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			usage(stdout)
			return 0
		}
		if args[0] == "--version" || args[0] == "-version" {
			fmt.Fprintln(stdout, buildinfo.String(binaryName))
			return 0
		}
		fmt.Fprintf(stderr, "%s: unexpected arguments %q: inputs are INPUT_* environment variables\n", binaryName, args)
		usage(stderr)
		return 2
	}
	logger := newLogger(getenv, stderr)
	aio := newIO(getenv, stdout, stderr)

	vals := pipeline.ReadInputs(aio.a.GetInput)
	for _, w := range inputTypos(os.Environ()) {
		aio.Warn(w)
	}
	for _, s := range pipeline.Secrets(vals) {
		aio.Mask(s)
	}
	rc, ctxErr := newRunnerContext(aio.a, getenv)
	cfg, err := pipeline.Validate(vals, getenv, rc)
	if err != nil || ctxErr != nil {
		aio.fail("Ferry: invalid inputs", joinErrs(ctxErr, err))
		return 1
	}
	for _, w := range pipeline.Warnings(cfg) {
		aio.Warn(w)
	}
	p := &pipeline.Pipeline{Config: cfg, Context: rc, UI: aio, Log: logger, Getenv: getenv,
		IDToken: aio.idToken, Attest: aio.onGitHub, UserAgent: binaryName}
	res, err := p.Run(ctx)
	if err != nil {
		aio.fail("Ferry: "+res.FailedStage+" failed", err)
		return 1
	}
	if err := aio.outputs(res.Outputs()); err != nil {
		aio.fail("Ferry: writing outputs failed", err)
		return 1
	}
	if err := aio.summary(res.Summary(cfg)); err != nil {
		aio.Warn("could not write the job summary: " + err.Error())
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: "+binaryName+" (no arguments; configure it with INPUT_* environment variables)")
	fmt.Fprintln(w, "\nInputs (INPUT_<NAME>, upper case, dashes kept):")
	for _, in := range pipeline.Inputs {
		extra := ""
		if in.Required {
			extra = " (required)"
		} else if in.Default != "" {
			extra = " (default " + in.Default + ")"
		}
		fmt.Fprintf(w, "  INPUT_%s%s\n", strings.ToUpper(in.Name), extra)
	}
	fmt.Fprintln(w, "\nOutputs: "+strings.Join(pipeline.Outputs, ", "))
	fmt.Fprintln(w, "Reference: docs/action.md")
}

// newLogger builds the text logger on stderr from LOG_LEVEL (debug, info, warn, error).
func newLogger(getenv func(string) string, stderr io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(getenv("LOG_LEVEL"))); err != nil {
		lvl = slog.LevelInfo
	}
	if getenv("RUNNER_DEBUG") == "1" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
}

func joinErrs(errs ...error) error {
	var out []string
	for _, e := range errs {
		if e != nil {
			out = append(out, e.Error())
		}
	}
	if len(out) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(out, "\n"))
}
