package sign_test

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

// Example signs an archive keylessly against the offline harness and verifies it the way a
// security team would: pinned to the repository, workflow and ref that must have built it.
func Example() {
	tb := &exampleTB{}
	defer tb.cleanup()
	h := signtest.New(tb, signtest.Options{})
	ctx := context.Background()

	s, err := sign.NewSigner(ctx, sign.Options{
		Mode:        sign.ModeKeyless,
		IDToken:     h.IDToken(h.Claims()), // in Actions: sign.ActionsIDToken(os.Getenv, nil)
		FulcioURL:   h.FulcioURL,
		RekorURL:    h.RekorURL,
		TrustedRoot: h.TrustedRootPath,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	archive := []byte("encrypted web build")
	bundle, err := s.SignArtifact(ctx, "web.zip.enc", bytes.NewReader(archive))
	if err != nil {
		fmt.Println(err)
		return
	}

	v, err := sign.NewVerifier(ctx, sign.VerifierOptions{TrustedRoot: h.TrustedRootPath})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := v.VerifyArtifact(ctx, bytes.NewReader(archive), bundle, sign.Policy{
		Repository: "acme/mobile-app", Workflow: ".github/workflows/release.yml", Ref: "refs/tags/v1.2.3"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rep.Repository, rep.Workflow, rep.Ref, rep.Commit[:7])
	// Output: acme/mobile-app .github/workflows/release.yml refs/tags/v1.2.3 0123456
}

// exampleTB is the little of testing.TB that signtest needs ([signtest.TB]), for an Example.
type exampleTB struct {
	cleanups []func()
	dirs     []string
}

func (e *exampleTB) Helper()                   {}
func (e *exampleTB) Cleanup(f func())          { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "signtest")
	if err != nil {
		panic(err)
	}
	e.dirs = append(e.dirs, d)
	return d
}
func (e *exampleTB) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		_ = os.RemoveAll(d)
	}
}
