package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestVersion: ferry --version names the build and exits 0.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--version", "version"} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{arg}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "ferry ") {
			t.Errorf("ferry %s = %d, %q", arg, code, stdout.String())
		}
	}
}
