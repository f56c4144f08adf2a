package channel

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrInvalidRange means a native-version range does not parse (see [ParseRange]).
var ErrInvalidRange = errors.New("invalid native version range")

// ErrInvalidVersionBuild means a device's version_build contains no version number.
var ErrInvalidVersionBuild = errors.New("version_build has no version number")

// maxRangeLen bounds a native-version range; registration refuses longer ones.
const maxRangeLen = 1024

// comparator is one primitive comparison: op is '<', '>', '=', 'l' (<=) or 'g' (>=).
type comparator struct {
	op byte
	v  semver
}

func (c comparator) admits(v semver) bool {
	d := v.compare(c.v)
	switch c.op {
	case '<':
		return d < 0
	case 'l':
		return d <= 0
	case '>':
		return d > 0
	case 'g':
		return d >= 0
	default:
		return d == 0
	}
}

// semverRange is an OR of ANDs of comparators; an empty AND admits every version.
type semverRange [][]comparator

func (r semverRange) admits(v semver) bool {
	for _, set := range r {
		ok := true
		for _, c := range set {
			if !c.admits(v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// rangeCache memoizes parsed ranges by their text: Decide checks the same few ranges on every
// update check. It stops growing at maxCachedRanges entries (fuzzing or hostile input cannot
// make it grow without bound); ranges beyond that are parsed on each call.
var (
	rangeCache      sync.Map // string -> *cachedRange
	rangeCacheCount atomic.Int64
)

const maxCachedRanges = 4096

type cachedRange struct {
	r   semverRange
	err error
}

func lookupRange(rng string) (semverRange, error) {
	if v, ok := rangeCache.Load(rng); ok {
		c := v.(*cachedRange)
		return c.r, c.err
	}
	r, err := parseRange(rng)
	if rangeCacheCount.Load() < maxCachedRanges {
		if _, loaded := rangeCache.LoadOrStore(rng, &cachedRange{r: r, err: err}); !loaded {
			rangeCacheCount.Add(1)
		}
	}
	return r, err
}

// admitsAll reports whether rng admits every version without parsing it.
func admitsAll(rng string) bool {
	rng = strings.TrimSpace(rng)
	return rng == "" || rng == "*" || rng == "x" || rng == "X"
}

// NativeAllows reports whether the native-version range rng admits the native app version
// versionBuild (the device's version_build). rng uses npm semver range syntax: comparators
// (">=2.0.0 <3.0.0", "=1.2.3", "1.2.3"), caret and tilde ranges ("^2.1", "~1.4"), x-ranges
// ("2.x", "2.1.*", "2"), hyphen ranges ("1.2 - 2.3"), alternatives joined by "||", and ""
// or "*" for every version. versionBuild is coerced as npm's semver.coerce does ("1.2"
// means 1.2.0, "2.0.1 (debug)" means 2.0.1). An empty or "*" range admits any versionBuild,
// even one without a number. It returns an error wrapping [ErrInvalidRange] or
// [ErrInvalidVersionBuild]. Parsed ranges are cached; it is safe for concurrent use.
func NativeAllows(rng, versionBuild string) (bool, error) {
	if admitsAll(rng) {
		return true, nil
	}
	r, err := lookupRange(rng)
	if err != nil {
		return false, err
	}
	v, ok := coerceVersion(versionBuild)
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrInvalidVersionBuild, versionBuild)
	}
	return r.admits(v), nil
}

// ParseRange checks that rng is a valid native-version range (syntax as in [NativeAllows]);
// registration refuses a bundle whose native range does not parse. The error wraps
// [ErrInvalidRange] and names the offending part.
func ParseRange(rng string) error {
	if admitsAll(rng) {
		return nil
	}
	_, err := lookupRange(rng)
	return err
}

func parseRange(rng string) (semverRange, error) {
	if len(rng) > maxRangeLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrInvalidRange, maxRangeLen)
	}
	var r semverRange
	for alt := range strings.SplitSeq(rng, "||") {
		set, err := parseSet(alt)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidRange, rng, err)
		}
		r = append(r, set)
	}
	return r, nil
}

// parseSet parses one AND-set of comparators, or a hyphen range.
func parseSet(s string) ([]comparator, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("empty alternative")
	}
	if len(fields) == 3 && fields[1] == "-" {
		lo, err := parsePartial(fields[0])
		if err != nil {
			return nil, err
		}
		hi, err := parsePartial(fields[2])
		if err != nil {
			return nil, err
		}
		var set []comparator
		if lo.n > 0 {
			set = append(set, comparator{'g', lo.floor()})
		}
		switch {
		case hi.n == 3:
			set = append(set, comparator{'l', hi.v})
		case hi.n > 0:
			set = append(set, comparator{'<', hi.bump(hi.n - 1)})
		}
		return set, nil
	}
	set := []comparator{}
	for i := 0; i < len(fields); i++ {
		tok := fields[i]
		if tok == "-" {
			return nil, errors.New(`"-" outside a hyphen range "a - b"`)
		}
		// An operator alone (">= 1.2.3") binds to the next field.
		if isOperator(tok) {
			if i+1 == len(fields) {
				return nil, fmt.Errorf("operator %q without a version", tok)
			}
			i++
			tok += fields[i]
		}
		cs, err := parseComparator(tok)
		if err != nil {
			return nil, err
		}
		set = append(set, cs...)
	}
	return set, nil
}

func isOperator(s string) bool {
	switch s {
	case "<", "<=", ">", ">=", "=", "~", "~>", "^":
		return true
	}
	return false
}

// partial is a version with possibly missing or wildcard parts: n is how many leading parts
// are numbers (0..3); v holds them, the rest 0.
type partial struct {
	v semver
	n int
}

func (p partial) floor() semver {
	return semver{major: p.v.major, minor: p.v.minor, patch: p.v.patch, pre: p.v.pre}
}

// bump returns the lowest pre-release of the version after p with part i incremented and the
// later parts zeroed, i.e. the exclusive upper bound "<X-0".
func (p partial) bump(i int) semver {
	v := semver{major: p.v.major, minor: "0", patch: "0", pre: "0"}
	switch i {
	case 0:
		v.major = incDigits(p.v.major)
	case 1:
		v.minor = incDigits(p.v.minor)
	default:
		v.minor = p.v.minor
		v.patch = incDigits(p.v.patch)
	}
	return v
}

// incDigits adds one to a digit string.
func incDigits(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

func isWildcard(s string) bool { return s == "*" || s == "x" || s == "X" }

// parsePartial parses "1", "1.2", "1.2.3", "1.2.3-pre+build", "1.x", "1.2.*", "*" with an
// optional leading "v" or "=".
func parsePartial(s string) (partial, error) {
	orig := s
	s = strings.TrimPrefix(s, "=")
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	if s == "" {
		return partial{}, fmt.Errorf("empty version in %q", orig)
	}
	core, pre := s, ""
	if i := strings.IndexByte(core, '+'); i >= 0 {
		if !validIdents(core[i+1:]) {
			return partial{}, fmt.Errorf("bad build metadata in %q", orig)
		}
		core = core[:i]
	}
	if i := strings.IndexByte(core, '-'); i >= 0 {
		core, pre = core[:i], core[i+1:]
		if !validIdents(pre) {
			return partial{}, fmt.Errorf("bad pre-release in %q", orig)
		}
	}
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return partial{}, fmt.Errorf("too many parts in %q", orig)
	}
	p := partial{v: semver{major: "0", minor: "0", patch: "0"}}
	wild := false
	for i, part := range parts {
		switch {
		case isWildcard(part):
			wild = true
		case isDigits(part):
			if wild {
				return partial{}, fmt.Errorf("number after a wildcard in %q", orig)
			}
			if len(part) > 64 {
				return partial{}, fmt.Errorf("number too long in %q", orig)
			}
			switch i {
			case 0:
				p.v.major = trimZeros(part)
			case 1:
				p.v.minor = trimZeros(part)
			case 2:
				p.v.patch = trimZeros(part)
			}
			p.n++
		default:
			return partial{}, fmt.Errorf("bad version %q", orig)
		}
	}
	if pre != "" {
		if p.n < 3 {
			return partial{}, fmt.Errorf("pre-release on an incomplete version %q", orig)
		}
		p.v.pre = pre
	}
	return p, nil
}

// zero is the lowest version, 0.0.0-0: "<0.0.0-0" admits nothing.
var zero = semver{major: "0", minor: "0", patch: "0", pre: "0"}

// parseComparator turns one comparator token into primitive comparators, with npm's meaning.
func parseComparator(tok string) ([]comparator, error) {
	op := ""
	for _, o := range []string{"<=", ">=", "~>", "<", ">", "=", "~", "^"} {
		if strings.HasPrefix(tok, o) {
			op, tok = o, tok[len(o):]
			break
		}
	}
	p, err := parsePartial(tok)
	if err != nil {
		return nil, err
	}
	lo := p.floor()
	switch op {
	case "", "=":
		switch p.n {
		case 0:
			return nil, nil
		case 3:
			return []comparator{{'=', lo}}, nil
		default:
			return []comparator{{'g', lo}, {'<', p.bump(p.n - 1)}}, nil
		}
	case ">":
		switch p.n {
		case 0:
			return []comparator{{'<', zero}}, nil
		case 3:
			return []comparator{{'>', lo}}, nil
		default:
			return []comparator{{'g', p.bump(p.n - 1)}}, nil
		}
	case ">=":
		if p.n == 0 {
			return nil, nil
		}
		return []comparator{{'g', lo}}, nil
	case "<":
		if p.n == 0 {
			return []comparator{{'<', zero}}, nil
		}
		if p.n < 3 {
			lo.pre = "0"
		}
		return []comparator{{'<', lo}}, nil
	case "<=":
		switch p.n {
		case 0:
			return nil, nil
		case 3:
			return []comparator{{'l', lo}}, nil
		default:
			return []comparator{{'<', p.bump(p.n - 1)}}, nil
		}
	case "~", "~>":
		switch p.n {
		case 0:
			return nil, nil
		case 1:
			return []comparator{{'g', lo}, {'<', p.bump(0)}}, nil
		default:
			return []comparator{{'g', lo}, {'<', p.bump(1)}}, nil
		}
	default: // "^"
		switch {
		case p.n == 0:
			return nil, nil
		case p.v.major != "0" || p.n == 1:
			return []comparator{{'g', lo}, {'<', p.bump(0)}}, nil
		case p.v.minor != "0" || p.n == 2:
			return []comparator{{'g', lo}, {'<', p.bump(1)}}, nil
		default:
			return []comparator{{'g', lo}, {'<', p.bump(2)}}, nil
		}
	}
}
