// Command ferry is Ferry's toolbox for people: it creates encryption keys for a new app,
// verifies a published bundle's signature and provenance, and probes a relay as a device would.
//
// Usage:
//
//	ferry <command> [flags]
//
// Run `ferry help` for the list of commands and `ferry <command> -h` for a command's flags.
// Each command lives in its own file and registers itself in [commands].
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of ferry.
type command struct {
	summary string
	// run executes the command with its arguments (after the command name). It writes its
	// report to stdout and returns an error for the caller to print; errUsage means the
	// arguments were wrong and the flag set has already said why.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by each command file's init function.
var commands = map[string]command{}

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
	cmd, ok := commands[args[0]]
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
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `ferry <command> -h` for a command's flags.")
}
