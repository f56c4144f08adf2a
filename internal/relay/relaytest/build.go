package relaytest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// built holds what this test binary has built: one directory for every executable, and the
// outcome of each command's build, so a command is built (or fails) once.
var built struct {
	mu   sync.Mutex
	dir  string
	errs map[string]error // by command; nil when it was built
}

// Build returns the paths of the executables of cmds, the module's command packages named
// by their path from the module root (such as "cmd/relay"), in the same order. Commands this
// test binary has not built yet are built together by one `go build` run from the module
// root, with GOTOOLCHAIN=local and CGO_ENABLED=0; the others are reused, and a command whose
// build failed fails every later call at once. Each executable is named after the last
// element of its command's path. Build blocks while a build runs and is safe for concurrent
// use; it fails the test when a command cannot be built. [Run] removes the executables.
func Build(t testing.TB, cmds ...string) []string {
	t.Helper()
	paths, err := build(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func build(cmds []string) ([]string, error) {
	built.mu.Lock()
	defer built.mu.Unlock()
	var missing []string
	for _, c := range cmds {
		if _, ok := built.errs[c]; !ok && !slices.Contains(missing, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		err := goBuild(missing)
		if built.errs == nil {
			built.errs = map[string]error{}
		}
		for _, c := range missing {
			built.errs[c] = err
		}
	}
	paths := make([]string, len(cmds))
	var errs []error
	for i, c := range cmds {
		if err := built.errs[c]; err != nil && !slices.Contains(errs, err) {
			errs = append(errs, err)
		}
		paths[i] = filepath.Join(built.dir, path.Base(c))
	}
	return paths, errors.Join(errs...)
}

// goBuild builds cmds into built.dir, creating it on first use.
func goBuild(cmds []string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if built.dir == "" {
		if built.dir, err = os.MkdirTemp("", "ferry-relaytest-bin-"); err != nil {
			return fmt.Errorf("build %s: %w", strings.Join(cmds, ", "), err)
		}
	}
	args := []string{"build", "-o", built.dir + string(os.PathSeparator)}
	for _, c := range cmds {
		args = append(args, "./"+c)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", strings.Join(cmds, ", "), err, out)
	}
	return nil
}

// moduleRoot returns the nearest directory at or above the working directory (a test's
// package directory) that holds a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the module root: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Run runs the tests of m, then removes every executable [Build] made, and returns m.Run's
// exit code. TestMain passes it to os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }
func Run(m *testing.M) int {
	code := m.Run()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	built.dir, built.errs = "", nil
	return code
}
