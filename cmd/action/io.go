package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sethvargo/go-githubactions"
)

// actionIO wraps go-githubactions so that nothing panics outside GitHub (the SDK panics
// when GITHUB_OUTPUT or GITHUB_STEP_SUMMARY is unset) and no secret is echoed by an
// ::add-mask:: command in a CI that does not understand it.
type actionIO struct {
	a        *githubactions.Action
	getenv   func(string) string
	onGitHub bool
	stdout   io.Writer
	stderr   io.Writer
}

func newIO(getenv func(string) string, stdout, stderr io.Writer) *actionIO {
	return &actionIO{
		a:        githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(stdout)),
		getenv:   getenv,
		onGitHub: getenv("GITHUB_ACTIONS") == "true",
		stdout:   stdout,
		stderr:   stderr,
	}
}

// idToken requests the job's OIDC token for audience from the runner.
func (o *actionIO) idToken(ctx context.Context, audience string) (string, error) {
	return o.a.GetIDToken(ctx, audience)
}

func (o *actionIO) Mask(s string) {
	if o.onGitHub && strings.TrimSpace(s) != "" {
		o.a.AddMask(s)
	}
}

func (o *actionIO) Group(title string) {
	if o.onGitHub {
		o.a.Group(title)
		return
	}
	fmt.Fprintf(o.stderr, "== %s\n", title)
}

func (o *actionIO) EndGroup() {
	if o.onGitHub {
		o.a.EndGroup()
	}
}

func (o *actionIO) Warn(msg string) {
	if o.onGitHub {
		o.a.Warningf("%s", msg)
		return
	}
	fmt.Fprintf(o.stderr, "warning: %s\n", msg)
}

func (o *actionIO) Notice(msg string) {
	if o.onGitHub {
		o.a.Noticef("%s", msg)
		return
	}
	fmt.Fprintf(o.stderr, "notice: %s\n", msg)
}

// fail raises the run's one error annotation: a title and every line of err.
func (o *actionIO) fail(title string, err error) {
	if o.onGitHub {
		o.a.WithFieldsMap(map[string]string{"title": title}).Errorf("%s", err.Error())
		return
	}
	fmt.Fprintf(o.stderr, "error: %s:\n%s\n", title, indent(err.Error()))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// outputs writes the step outputs, or prints name=value lines when GITHUB_OUTPUT is unset.
func (o *actionIO) outputs(kv [][2]string) (err error) {
	if o.getenv("GITHUB_OUTPUT") == "" {
		for _, p := range kv {
			fmt.Fprintf(o.stdout, "%s=%s\n", p[0], p[1])
		}
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write GITHUB_OUTPUT: %v", r)
		}
	}()
	for _, p := range kv {
		if strings.ContainsAny(p[1], "\r\n") {
			return errors.New("output " + p[0] + " holds a line break")
		}
		o.a.SetOutput(p[0], p[1])
	}
	return nil
}

// summary appends Markdown to the job summary; without GITHUB_STEP_SUMMARY it does nothing.
func (o *actionIO) summary(md string) (err error) {
	if o.getenv("GITHUB_STEP_SUMMARY") == "" {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write GITHUB_STEP_SUMMARY: %v", r)
		}
	}()
	o.a.AddStepSummary(md)
	return nil
}
