package console

import (
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
)

// bundleData is the bundle page's.
type bundleData struct {
	B *channel.Bundle
	// Registration is the bundle's "register" audit entry (nil when trimmed from the log):
	// its actor names the CI run and workflow.
	Registration *channel.AuditEntry
	// RunURL links the workflow run that registered the bundle, when known.
	RunURL string
	// CommitURL links the commit in the repository, when the repository is on GitHub.
	CommitURL string
	// Serving are the channels whose stable version or rollout candidate it is.
	Serving []servingRow
	// Stats are the devices' reports about the version (nil when none).
	Stats *channel.VersionStats
	// ManifestFiles is the delta manifest's file count, ManifestSize their total size.
	ManifestFiles int
	ManifestSize  int64
	// Commands re-check the bundle's signature and provenance; empty when it has none.
	Commands []command
}

// servingRow is a channel serving the bundle.
type servingRow struct {
	Channel string
	// How is "stable" or "rollout N%".
	How string
}

// command is one copy-paste command of the bundle page.
type command struct {
	ID, Label, Text string
}

// bundlePage shows one bundle: where it came from, what it holds, who serves it, and how
// to re-check its signature and provenance.
func (c *Console) bundlePage(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	ctx := g.Request.Context()
	b, err := c.api.Bundle(ctx, app, g.Param("version"))
	if err != nil {
		c.fail(g, err)
		return
	}
	d := &bundleData{B: b, ManifestFiles: len(b.Manifest)}
	for _, m := range b.Manifest {
		d.ManifestSize += m.Size
	}
	views, err := c.api.Channels(ctx, app)
	if err != nil {
		c.fail(g, err)
		return
	}
	for _, v := range views {
		if v.State.Version == b.Version {
			d.Serving = append(d.Serving, servingRow{Channel: v.Name, How: "stable"})
		}
		if r := v.State.Rollout; r != nil && r.Version == b.Version {
			how := "rollout " + itoa(r.Percent) + "%"
			if r.Paused {
				how += " (paused)"
			}
			d.Serving = append(d.Serving, servingRow{Channel: v.Name, How: how})
		}
	}
	regs, err := c.api.Audit(ctx, app, control.AuditFilter{Action: "register"}, 1000)
	if err != nil {
		c.fail(g, err)
		return
	}
	for i := range regs {
		if regs[i].Version == b.Version {
			d.Registration = &regs[i]
			break
		}
	}
	repo := b.Repository
	if repo == "" {
		repo = app.Repository
	}
	if ghRepo.MatchString(repo) {
		if ghCommit.MatchString(b.Commit) {
			d.CommitURL = "https://github.com/" + repo + "/commit/" + b.Commit
		}
		if r := d.Registration; r != nil && r.Actor != nil && r.Actor.Kind == "ci" && ghRunID.MatchString(r.Actor.ID) {
			d.RunURL = "https://github.com/" + repo + "/actions/runs/" + r.Actor.ID
		}
	}
	stats, err := c.store.Stats(ctx, app.ID)
	if err != nil {
		c.fail(g, storeErr("stats", err))
		return
	}
	for i := range stats {
		if stats[i].Version == b.Version {
			d.Stats = &stats[i]
		}
	}
	d.Commands = verifyCommands(b, repo)
	c.render(g, http.StatusOK, "bundle", &page{Title: b.Version + " · " + app.ID, Session: sessionOf(g), App: app, Data: d})
}

var (
	ghRepo   = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	ghCommit = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	ghRunID  = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// verifyCommands returns the commands that download the bundle's file, signature and
// provenance and check them with `ferry verify`, cosign and gh (docs/security.md), each
// argument shell-quoted: the URLs, ref and repository come from the registration.
func verifyCommands(b *channel.Bundle, repo string) []command {
	if b.SignatureURL == "" {
		return nil
	}
	name := fileName(b.URL)
	sig, prov := name+".sigstore.json", name+".provenance.sigstore.json"
	q := shellQuote
	fetch := "curl -fsSL -o " + q(name) + " " + q(b.URL) + " && \\\n  curl -fsSL -o " + q(sig) + " " + q(b.SignatureURL)
	if b.ProvenanceURL != "" {
		fetch += " && \\\n  curl -fsSL -o " + q(prov) + " " + q(b.ProvenanceURL)
	}
	out := []command{{ID: "cmd-fetch", Label: "Download the file, its signature and provenance", Text: fetch}}
	fv := "ferry verify --artifact " + q(name) + " --bundle " + q(sig)
	if b.ProvenanceURL != "" {
		fv += " --provenance " + q(prov)
	}
	if repo != "" {
		fv += " \\\n  --repo " + q(repo)
	}
	if b.Ref != "" {
		fv += " --ref " + q(b.Ref)
	}
	out = append(out, command{ID: "cmd-ferry", Label: "ferry verify", Text: fv})
	if repo != "" {
		cv := "cosign verify-blob " + q(name) + " --bundle " + q(sig) + " \\\n" +
			"  --certificate-identity-regexp " + q("^https://github\\.com/"+regexp.QuoteMeta(repo)+"/") + " \\\n" +
			"  --certificate-oidc-issuer " + control.DefaultOIDCIssuer + " \\\n" +
			"  --certificate-github-workflow-repository " + q(repo)
		out = append(out, command{ID: "cmd-cosign", Label: "cosign verify-blob", Text: cv})
		if b.ProvenanceURL != "" {
			out = append(out, command{ID: "cmd-gh", Label: "gh attestation verify",
				Text: "gh attestation verify " + q(name) + " --bundle " + q(prov) + " --repo " + q(repo)})
		}
	}
	return out
}

// fileName is the last path segment of a URL, or "bundle.zip".
func fileName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "bundle.zip"
	}
	n := path.Base(u.Path)
	if n == "." || n == "/" || n == "" {
		return "bundle.zip"
	}
	return n
}

// shellQuote quotes s for a POSIX shell: as is when it holds only characters no shell
// interprets, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
