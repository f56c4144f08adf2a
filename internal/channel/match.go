package channel

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// maxRefLen bounds refs and ref patterns (git refs are far shorter in practice).
const maxRefLen = 1024

// maxWildcards bounds the wildcards of one ref pattern.
const maxWildcards = 9

// glob is a compiled ref pattern.
type glob struct {
	re       *regexp.Regexp
	captures int
}

// compileGlob turns a ref pattern into an anchored regular expression: "**" matches any run
// of characters including "/", "*" any run without "/", and every other character itself.
// Each wildcard is a capture, numbered from 1 left to right. RE2 matching takes linear time,
// so hostile refs cannot make matching slow.
func compileGlob(pattern string) (*glob, error) {
	if pattern == "" {
		return nil, errors.New("ref pattern is empty")
	}
	if len(pattern) > maxRefLen {
		return nil, fmt.Errorf("ref pattern longer than %d characters", maxRefLen)
	}
	if strings.Contains(pattern, "***") {
		return nil, errors.New(`ref pattern has "***"; use "*" within a segment or "**" across segments`)
	}
	var b strings.Builder
	b.WriteString("^")
	n := 0
	for rest := pattern; rest != ""; {
		i := strings.IndexByte(rest, '*')
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		b.WriteString(regexp.QuoteMeta(rest[:i]))
		rest = rest[i:]
		if strings.HasPrefix(rest, "**") {
			b.WriteString("(.*)")
			rest = rest[2:]
		} else {
			b.WriteString("([^/]*)")
			rest = rest[1:]
		}
		n++
	}
	if n > maxWildcards {
		return nil, fmt.Errorf("ref pattern has %d wildcards, at most %d", n, maxWildcards)
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("ref pattern: %w", err)
	}
	return &glob{re: re, captures: n}, nil
}

// checkTemplate checks a rule's channel: non-empty, and every "$N" (N = 1..9) names a
// capture the pattern has. A "$" not followed by a digit 1-9 is an error.
func checkTemplate(tmpl string, captures int) error {
	if tmpl == "" {
		return errors.New("channel is required")
	}
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' {
			continue
		}
		if i+1 == len(tmpl) || tmpl[i+1] < '1' || tmpl[i+1] > '9' {
			return fmt.Errorf(`channel %q: "$" must be followed by a capture number 1-9`, tmpl)
		}
		if k := int(tmpl[i+1] - '0'); k > captures {
			return fmt.Errorf("channel %q: $%d names a capture the pattern does not have (it has %d)", tmpl, k, captures)
		}
		i++
	}
	return nil
}

// expand replaces each "$N" in tmpl by capture N of m (m[0] is the whole match).
func expand(tmpl string, m []string) string {
	if !strings.Contains(tmpl, "$") {
		return tmpl
	}
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] == '$' && i+1 < len(tmpl) && tmpl[i+1] >= '1' && tmpl[i+1] <= '9' {
			if k := int(tmpl[i+1] - '0'); k < len(m) {
				b.WriteString(m[k])
			}
			i++
			continue
		}
		b.WriteByte(tmpl[i])
	}
	return b.String()
}

// globCache memoizes compiled patterns; config patterns are few. It stops growing at
// maxCachedGlobs entries.
var (
	globCache      sync.Map // string -> *glob (nil for an invalid pattern)
	globCacheCount atomic.Int64
)

const maxCachedGlobs = 4096

func lookupGlob(pattern string) *glob {
	if v, ok := globCache.Load(pattern); ok {
		return v.(*glob)
	}
	g, err := compileGlob(pattern)
	if err != nil {
		g = nil
	}
	if globCacheCount.Load() < maxCachedGlobs {
		if _, loaded := globCache.LoadOrStore(pattern, g); !loaded {
			globCacheCount.Add(1)
		}
	}
	return g
}

// MatchRef returns the channel of the first rule of a whose pattern matches the whole ref
// (e.g. "refs/tags/v1.2.0"). In a pattern "*" matches within one path segment (no "/"), "**"
// matches across segments, and other characters match themselves; each wildcard is a capture,
// and "$1".."$9" in the rule's channel are replaced by the captures. A rule whose result is
// not a valid channel name (see [ValidChannelName]), or whose pattern is invalid, does not
// match, and the next rule is tried. ok is false when no rule matches. It is safe for
// concurrent use.
func (a *App) MatchRef(ref string) (channel string, ok bool) {
	if ref == "" || len(ref) > maxRefLen {
		return "", false
	}
	for _, r := range a.Rules {
		g := lookupGlob(r.Ref)
		if g == nil || checkTemplate(r.Channel, g.captures) != nil {
			continue
		}
		m := g.re.FindStringSubmatch(ref)
		if m == nil {
			continue
		}
		ch := expand(r.Channel, m)
		if validChannelName(ch) {
			return ch, true
		}
	}
	return "", false
}

// RefMayTarget reports whether a build of ref may name channel ch explicitly in a
// registration authenticated per app: the app's rules map ref to ch (first match wins, as
// in [App.MatchRef]), or one of the allow_refs patterns of ch's policy matches ref. An
// explicit channel is otherwise a way for any branch's workflow to move any channel.
func (a *App) RefMayTarget(ref, ch string) bool {
	if ref == "" || ch == "" || len(ref) > maxRefLen {
		return false
	}
	if m, ok := a.MatchRef(ref); ok && m == ch {
		return true
	}
	p, ok := a.Policy(ch)
	if !ok {
		return false
	}
	for _, pat := range p.AllowRefs {
		if g := lookupGlob(pat); g != nil && g.re.MatchString(ref) {
			return true
		}
	}
	return false
}
