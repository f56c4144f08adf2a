package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadEventFileIsOneProblem: an unreadable event payload is reported, without the
// context variables it did not affect being reported missing too.
func TestBadEventFileIsOneProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ev := filepath.Join(dir, "event.json")
	if err := os.WriteFile(ev, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GITHUB_EVENT_PATH": ev, "GITHUB_REF": "refs/tags/v1.0.0", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.0.0", "GITHUB_REPOSITORY": "acme/app"}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	rc, err := newRunnerContext(newIO(getenv, &out, &out).a, getenv)
	if err == nil || !strings.Contains(err.Error(), "event") {
		t.Fatalf("newRunnerContext error = %v, want the event payload named", err)
	}
	if rc.Ref != "refs/tags/v1.0.0" || rc.Repository != "acme/app" {
		t.Errorf("runner context = %+v, want the GITHUB_* variables kept", rc)
	}
}
