// Command ferry is Ferry's toolbox for people: it creates encryption keys for a new app,
// verifies a published bundle's signature and provenance, and probes a relay as a device would.
//
// Usage:
//
//	ferry <command> [flags]
//
// Run `ferry help` for the list of commands and `ferry <command> -h` for a command's flags.
// Each command lives in its own file; [commands] lists them all in one table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferryhq/ferry/internal/buildinfo"
)

// command is one subcommand of ferry.
type command struct {
	name    string
	summary string
	// run executes the command with its arguments (after the command name). It writes its
	// report to stdout and returns an error for the caller to print; errUsage means the
	// arguments were wrong and the flag set has already said why.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is every subcommand of ferry, in the order `ferry help` lists them.
var commands = []command{
	{"admin", "read and change a relay's channels: promote, roll back, roll out, audit", runAdmin},
	{"login", "sign in to a relay through its single sign-on (opens a browser); saves the session", runLogin},
	{"logout", "end the session `ferry login` saved for a relay", runLogout},
	{"keys", "create the app's encryption key pair (.capgo_key_v2) and print the capacitor.config snippet", runKeys},
	{"pack", "package a web build locally: deterministic zip, optionally encrypted (what the action does)", runPack},
	{"publish", "package, encrypt, sign, upload and register a bundle from any CI: the action's pipeline", runPublish},
	{"register", "register a bundle already uploaded (from `ferry pack` or `publish --bundle-json`) with a relay", runRegister},
	{"probe", "ask a relay what a device would get right now, and check that it verifies", runProbe},
	{"serve-dir", "serve a file:// publish destination over HTTP for local trials (hidden files never)", runServeDir},
	{"verify", "prove who built a published bundle: check its signature and provenance", runVerify},
}

// lookup returns the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlagSet returns the flag set of `ferry name`: it reports to stderr, and its -h prints
// usage (the synopsis and anything else to say first) and then the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// errUsage reports bad arguments that the flag package already explained.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a command and returns the process exit code: 0 success, 1 failure
// (including a failed verification), 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(stdout, buildinfo.String("ferry"))
		return 0
	}
	cmd, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "ferry %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ferry <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `ferry <command> -h` for a command's flags, `ferry --version` for the build.")
}
