package pipeline

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/sign"
)

// summary renders the job summary: what was published where, and the exact commands that
// verify it.
func (r *Result) Summary(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Ferry: %s %s\n\n", c.AppID, c.Version)
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, v)
		}
	}
	row("Version", code(c.Version))
	ch := code(r.channel)
	if r.reg != nil {
		switch {
		case r.reg.Promoted:
			ch += " — now served"
		case r.reg.Reason != "":
			ch += " — " + mdEscape(r.reg.Reason)
		}
	}
	if r.channel == "" {
		ch = "decided by the relay's rules"
		if r.reg != nil && r.reg.Reason != "" {
			ch += " — " + mdEscape(r.reg.Reason)
		}
	}
	row("Channel", ch)
	row("Bundle", fmt.Sprintf("[%s](%s) — %s (zip %s, %d files, %s of input)", r.name, r.bundle.URL, archive.FormatSize(r.pk.Size), archive.FormatSize(r.pk.ZipSize), r.pk.Files, archive.FormatSize(r.pk.InputBytes)))
	if r.pk.SessionKey != "" {
		row("Checksum (V3)", code(r.pk.Checksum[:32]+"…"))
		row("Key ID", code(r.pk.KeyID))
	} else {
		row("Checksum", code(r.pk.Checksum))
	}
	row("SHA-256 (zip)", code(r.pk.SHA256))
	row("SHA-256 (file)", code(r.pk.ArtifactSHA256))
	if r.sigURL != "" {
		row("Signature", fmt.Sprintf("[%s.sigstore.json](%s) (%s)", r.name, r.sigURL, r.mode))
	}
	if r.provURL != "" {
		p := fmt.Sprintf("[%s.provenance.sigstore.json](%s)", r.name, r.provURL)
		if r.attested {
			p += ", stored in GitHub attestations"
		}
		row("Provenance", p)
	}
	if r.manifestURL != "" {
		row("Delta manifest", fmt.Sprintf("[%d files](%s), %s", r.deltaFiles, r.manifestURL, archive.FormatSize(r.deltaBytes)))
	}
	switch {
	case r.reg == nil:
		row("Relay", "not registered (no relay-url)")
	case r.reg.Created:
		row("Relay", "registered with "+c.RelayURL)
	default:
		row("Relay", "already registered with "+c.RelayURL+" (re-run)")
	}
	if r.bundle.Reused {
		row("Upload", "reused: identical bytes were already published (re-run)")
	}
	if len(r.timings) > 0 {
		var t []string
		for _, s := range r.timings {
			t = append(t, s[0]+" "+s[1])
		}
		row("Timings", strings.Join(t, ", "))
	}

	if r.sigURL == "" {
		b.WriteString("\nThis bundle is **not signed** (signing: none).\n")
		return b.String()
	}
	b.WriteString("\n#### Verify this bundle\n\n```sh\n")
	fmt.Fprintf(&b, "curl -fsSLo %s %s\n", r.name, shellQuote(r.bundle.URL))
	fmt.Fprintf(&b, "curl -fsSLo %s.sigstore.json %s\n", r.name, shellQuote(r.sigURL))
	if r.provURL != "" {
		fmt.Fprintf(&b, "curl -fsSLo %s.provenance.sigstore.json %s\n", r.name, shellQuote(r.provURL))
	}
	if r.mode == sign.ModeKey {
		fmt.Fprintf(&b, "ferry verify --artifact %s --bundle %s.sigstore.json --key signing-key.pub\n", r.name, r.name)
		fmt.Fprintf(&b, "cosign verify-blob %s --bundle %s.sigstore.json --key signing-key.pub --insecure-ignore-tlog=true\n", r.name, r.name)
		b.WriteString("```\n")
		return b.String()
	}
	server := c.ServerURL
	if server == "" {
		server = "https://github.com"
	}
	fv := fmt.Sprintf("ferry verify --artifact %s --bundle %s.sigstore.json", r.name, r.name)
	if r.provURL != "" {
		fv += fmt.Sprintf(" --provenance %s.provenance.sigstore.json", r.name)
	}
	fv += " --repo " + c.Repository
	if server != "https://github.com" {
		fv += " --server-url " + server
	}
	if c.Private {
		fv += " --github-instance"
	}
	b.WriteString(fv + "\n")
	if !c.Private {
		fmt.Fprintf(&b, "cosign verify-blob %s --bundle %s.sigstore.json \\\n  --certificate-identity-regexp %s \\\n  --certificate-oidc-issuer %s\n",
			r.name, r.name, shellQuote("^"+regexp.QuoteMeta(server+"/"+c.Repository+"/.github/workflows/")), sign.GitHubActionsIssuer)
	}
	if r.provURL != "" {
		fmt.Fprintf(&b, "gh attestation verify %s --bundle %s.provenance.sigstore.json --repo %s\n", r.name, r.name, c.Repository)
	}
	b.WriteString("```\n")
	return b.String()
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
