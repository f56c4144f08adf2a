package pipeline

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/archive/archivetest"
)

type discardUI struct{}

func (discardUI) Group(string)  {}
func (discardUI) EndGroup()     {}
func (discardUI) Warn(string)   {}
func (discardUI) Notice(string) {}
func (discardUI) Mask(string)   {}

// TestDeltaRefusedBeforePublishing: with delta on, a build whose file names a delta
// manifest cannot hold fails the Package stage, and nothing reaches the destination.
func TestDeltaRefusedBeforePublishing(t *testing.T) {
	t.Parallel()
	build := archivetest.WriteTree(t, t.TempDir(), map[string]string{"index.html": "<html></html>", "line\nbreak.js": "x"})
	dest := t.TempDir()
	p := &Pipeline{
		Config: &Config{AppID: "com.example.app", Version: "1.0.0", BuildDir: build, Destination: "file://" + filepath.ToSlash(dest),
			Signing: signingNone, Delta: true, TempDir: t.TempDir()},
		UI: discardUI{}, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" },
	}
	res, err := p.Run(t.Context())
	if !errors.Is(err, archive.ErrUnsafeFile) || !strings.Contains(err.Error(), "delta") || res.FailedStage != "package" {
		t.Fatalf("Run = %v (failed stage %q), want ErrUnsafeFile from the package stage", err, res.FailedStage)
	}
	if left, _ := os.ReadDir(dest); len(left) != 0 {
		t.Errorf("destination holds %d entries after a refused build", len(left))
	}
}
