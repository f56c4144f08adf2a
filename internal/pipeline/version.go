package pipeline

import (
	"errors"
	"regexp"
	"strings"
)

// Version derivation, documented in docs/action.md:
//
//   - a tag that is a semantic version, with or without a leading "v" (v1.2.3, 1.2.3,
//     v2.0.0-rc.1), gives that version without the "v";
//   - any other ref (branches, pull requests, other tags) gives
//     "0.0.0-<ref-slug>.<run-id>.g<sha7>", e.g. 0.0.0-main.12345678901.g89e6c98. GitHub's
//     run id only grows, so later builds of the same ref sort higher under semantic-version
//     precedence (numeric identifiers compare as numbers); re-running a run (a new attempt)
//     gives the same version, so a re-run is idempotent. Being a 0.0.0 pre-release, it sorts
//     below every release.
var tagVersion = regexp.MustCompile(`^[vV]?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

func DeriveVersion(rc *Context) (string, error) {
	name := rc.RefName
	isTag := rc.RefType == "tag" || strings.HasPrefix(rc.Ref, "refs/tags/")
	if isTag && name == "" {
		name = strings.TrimPrefix(rc.Ref, "refs/tags/")
	}
	if isTag && tagVersion.MatchString(name) {
		return strings.TrimPrefix(strings.TrimPrefix(name, "v"), "V"), nil
	}
	if rc.Ref == "" {
		return "", errors.New("no GITHUB_REF to derive it from: set the version input")
	}
	if rc.RunID == "" || !digits(rc.RunID) {
		return "", errors.New("no GITHUB_RUN_ID to derive a unique version for a non-tag ref: set the version input")
	}
	sha := strings.ToLower(rc.SHA)
	if len(sha) < 7 || !isHexPrefix(sha[:7]) {
		return "", errors.New("no GITHUB_SHA (a hex commit id) to derive a version for a non-tag ref: set the version input")
	}
	run := strings.TrimLeft(rc.RunID, "0")
	if run == "" {
		run = "0"
	}
	return "0.0.0-" + refSlug(rc.Ref) + "." + run + ".g" + sha[:7], nil
}

// refSlug turns a ref into one semver pre-release identifier: refs/heads/feature/Login
// gives feature-login, refs/pull/12/merge gives pr-12.
func refSlug(ref string) string {
	switch {
	case strings.HasPrefix(ref, "refs/pull/"):
		n, _, _ := strings.Cut(strings.TrimPrefix(ref, "refs/pull/"), "/")
		ref = "pr-" + n
	case strings.HasPrefix(ref, "refs/heads/"):
		ref = strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		ref = "tag-" + strings.TrimPrefix(ref, "refs/tags/")
	default:
		ref = strings.TrimPrefix(ref, "refs/")
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(ref) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		return "ref"
	}
	if digits(s) {
		return "r" + s // a numeric identifier with a leading zero is not semver
	}
	return s
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// checkVersion applies the relay's rules to an explicit version.
func CheckVersion(v string) error {
	switch {
	case len(v) > 128:
		return errors.New("longer than 128 characters")
	case strings.EqualFold(v, "builtin") || strings.EqualFold(v, "unknown"):
		return errors.New("reserved by the updater plugin")
	case v[0] == '.' || v[0] == '-':
		return errors.New("must start with a letter, digit, '+' or '_'")
	}
	for _, r := range v {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '+' || r == '_' || r == '-') {
			return errors.New("use letters, digits, '.', '+', '_' and '-'")
		}
	}
	return nil
}

func isHexPrefix(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
