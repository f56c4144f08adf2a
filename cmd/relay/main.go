// Command relay is Ferry's update server. It answers devices running the unmodified
// @capgo/capacitor-updater plugin (POST /updates, POST /stats, /channel_self), registers
// bundles from CI (POST /api/v1/bundles), promotes them on GitHub tag pushes (POST
// /webhooks/github) and serves the admin API, keeping its state in an embedded bbolt file or
// in Redis shared by any number of relays.
//
// Usage:
//
//	relay --config ferry.yaml [--addr :8080] [--redis-url redis://…] [--data-dir ./data]
//
// Every flag has an environment fallback (see --help); secrets come only from the
// environment: FERRY_ADMIN_TOKEN, FERRY_WEBHOOK_SECRET, FERRY_HMAC_SECRET and
// FERRY_METRICS_TOKEN. The relay validates the config at start-up and lists every problem;
// it shuts down gracefully on SIGINT or SIGTERM. Reference: docs/relay.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/ferryhq/ferry/internal/buildinfo"
)

// defaultGCPercent is the relay's GOGC unless the environment sets one. Its live heap is a
// few MB (channel state, caches) while each update check allocates a few KB, so at Go's
// default of 100 it collects dozens of times a second under load; at 400 it spends
// markedly less CPU on collection (docs/benchmarks.md) for about 10 MB more memory.
// Containers should also set GOMEMLIMIT, under which the collector works harder as memory
// nears the limit (deploy/kubernetes/relay.yaml does).
const defaultGCPercent = 400

// defaultMemoryLimit is the relay's soft memory limit unless GOMEMLIMIT is set. GOGC=400
// lets the heap grow to five times what is live: with a million devices checking in within
// minutes (about 20 MB live, most of it the per-device rate-limit buckets) that alone took
// the process past 130 MB. Under this limit the collector runs more often only once the
// heap nears it, which an ordinary load (a live heap of a few MB) never does.
const defaultMemoryLimit = 64 << 20

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // --help: the usage is printed, and asking for it is no error
	}
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "relay:", err)
		}
		os.Exit(1)
	}
}

// run is the whole command with the OS passed in: it parses args and environment, opens
// the store, serves until ctx ends, then drains requests and closes the store. Logs go to
// stdout (JSON unless LOG_FORMAT=text); usage goes to stderr, and --help returns
// flag.ErrHelp (exit 0). --version prints the build to stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, buildinfo.String("relay"))
		return nil
	}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, nil)
}
