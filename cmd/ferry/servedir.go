package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// runServeDir implements `ferry serve-dir DIR [--addr HOST:PORT]`: it serves a directory that
// `ferry publish --destination file://DIR` wrote over plain HTTP, with Range requests (the
// plugin resumes interrupted downloads with them), so a relay on a laptop can offer bundles
// that a device or `ferry probe --download` fetches. It stands in for the bucket's public URL
// (`--public-base-url`) in local trials; it is not a production CDN. Files and directories
// whose names start with "." are never served or listed, so serving a directory that also
// holds keys (.capgo_key_v2) does not publish them. It serves until interrupted.
func runServeDir(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("serve-dir", `Usage: ferry serve-dir DIR [--addr HOST:PORT]

Serves DIR (a file:// destination of ferry publish) over HTTP for local trials: use
http://HOST:PORT as publish's --public-base-url. Hidden files are never served.
Stops on Ctrl-C.

`, stderr)
	addr := fset.String("addr", "127.0.0.1:8081", "address to listen on; keep it on loopback unless devices on your network must reach it")
	// DIR may come before or after the flags: `ferry serve-dir ./bundles --addr …`.
	if err := fset.Parse(args); err != nil {
		return err
	}
	var dirs []string
	for fset.NArg() > 0 {
		dirs = append(dirs, fset.Arg(0))
		if err := fset.Parse(fset.Args()[1:]); err != nil {
			return err
		}
	}
	if len(dirs) != 1 {
		fmt.Fprintf(stderr, "ferry serve-dir: want one directory, got %d: %q\n", len(dirs), dirs)
		fset.Usage()
		return errUsage
	}
	dir := dirs[0]
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("directory to serve: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{
		Handler:           http.FileServer(visibleDir{http.Dir(dir)}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	base := baseURL(*addr, ln.Addr())
	fmt.Fprintf(stdout, "Serving %s at %s/ (publish with --public-base-url %s); Ctrl-C stops.\n", dir, base, base)
	select {
	case <-ctx.Done():
	case err := <-done:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// baseURL is the URL to reach a server listening on got, which was asked for as addr: the
// host as the user wrote it (localhost stays localhost), with the port actually bound (for
// port 0); an unspecified host (":8081", "0.0.0.0") is reached through localhost.
func baseURL(addr string, got net.Addr) string {
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	port := "0"
	if tcp, ok := got.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	return "http://" + net.JoinHostPort(host, port)
}

// visibleDir is an http.FileSystem that hides every file and directory whose name starts
// with ".": opening one fails as if it did not exist, and directory listings leave them out.
type visibleDir struct{ fs http.FileSystem }

func (d visibleDir) Open(name string) (http.File, error) {
	for part := range strings.SplitSeq(path.Clean("/"+name), "/") {
		if strings.HasPrefix(part, ".") {
			return nil, fs.ErrNotExist
		}
	}
	f, err := d.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return visibleFile{f}, nil
}

// visibleFile leaves hidden entries out of a directory listing.
type visibleFile struct{ http.File }

func (f visibleFile) Readdir(n int) ([]fs.FileInfo, error) {
	all, err := f.File.Readdir(n)
	shown := all[:0]
	for _, fi := range all {
		if !strings.HasPrefix(fi.Name(), ".") {
			shown = append(shown, fi)
		}
	}
	return shown, err
}
