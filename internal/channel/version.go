package channel

import "strings"

// semver is a parsed semantic version. Numeric parts are decimal digit strings without
// leading zeros ("0" for zero), so arbitrarily large numbers compare correctly without
// overflow; Pre is the pre-release ("" for a release). Build metadata is dropped: it has no
// precedence. A semver built by parsing refers to the input string's bytes and does not
// allocate.
type semver struct {
	major, minor, patch string
	pre                 string
}

// parseVersion parses a bundle or plugin version leniently: an optional "v" or "V", one to
// three dot-separated numeric parts (missing parts are 0), then an optional "-pre-release"
// and "+build". Identifiers of the pre-release and build must be non-empty runs of
// [0-9A-Za-z-]. It reports false for anything else.
func parseVersion(s string) (semver, bool) {
	var v semver
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	if s == "" {
		return v, false
	}
	core := s
	build := ""
	if i := strings.IndexByte(core, '+'); i >= 0 {
		core, build = core[:i], core[i+1:]
		if !validIdents(build) {
			return v, false
		}
	}
	if i := strings.IndexByte(core, '-'); i >= 0 {
		core, v.pre = core[:i], core[i+1:]
		if !validIdents(v.pre) {
			return v, false
		}
	}
	parts := [3]string{"0", "0", "0"}
	for n := 0; ; n++ {
		if n == 3 {
			return v, false
		}
		part := core
		i := strings.IndexByte(core, '.')
		if i >= 0 {
			part, core = core[:i], core[i+1:]
		}
		if !isDigits(part) {
			return v, false
		}
		parts[n] = trimZeros(part)
		if i < 0 {
			break
		}
	}
	v.major, v.minor, v.patch = parts[0], parts[1], parts[2]
	return v, true
}

// coerceVersion finds the first version-looking run in s, as npm's semver.coerce does: the
// first digits, then up to two more ".digits"; the rest (pre-release, suffixes) is ignored.
// "1.2" gives 1.2.0, "v3" gives 3.0.0, "2.0.1 (debug)" gives 2.0.1.
func coerceVersion(s string) (semver, bool) {
	i := 0
	for i < len(s) && (s[i] < '0' || s[i] > '9') {
		i++
	}
	if i == len(s) {
		return semver{}, false
	}
	parts := [3]string{"0", "0", "0"}
	for n := 0; n < 3; n++ {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		parts[n] = trimZeros(s[i:j])
		if j+1 < len(s) && s[j] == '.' && s[j+1] >= '0' && s[j+1] <= '9' {
			i = j + 1
			continue
		}
		break
	}
	return semver{major: parts[0], minor: parts[1], patch: parts[2]}, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// validIdents reports whether s is a non-empty dot-separated list of non-empty
// [0-9A-Za-z-] identifiers.
func validIdents(s string) bool {
	if s == "" {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
			n++
		default:
			return false
		}
	}
	return n > 0
}

// cmpNum compares two digit strings without leading zeros.
func cmpNum(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// cmpCore compares major.minor.patch.
func (v semver) cmpCore(w semver) int {
	if c := cmpNum(v.major, w.major); c != 0 {
		return c
	}
	if c := cmpNum(v.minor, w.minor); c != 0 {
		return c
	}
	return cmpNum(v.patch, w.patch)
}

// compare orders by semver precedence.
func (v semver) compare(w semver) int {
	if c := v.cmpCore(w); c != 0 {
		return c
	}
	return comparePre(v.pre, w.pre)
}

// comparePre orders pre-releases: a release ("") is higher than any pre-release; identifiers
// compare one by one, numeric ones numerically and lower than alphanumeric ones; a shorter
// list that is a prefix of a longer one is lower.
func comparePre(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	for {
		var x, y string
		x, a, _ = strings.Cut(a, ".")
		y, b, _ = strings.Cut(b, ".")
		if x != y {
			xn, yn := isDigits(x), isDigits(y)
			switch {
			case xn && yn:
				if c := cmpNum(trimZeros(x), trimZeros(y)); c != 0 {
					return c
				}
			case xn:
				return -1
			case yn:
				return 1
			default:
				return strings.Compare(x, y)
			}
		}
		switch {
		case a == "" && b == "":
			return 0
		case a == "":
			return -1
		case b == "":
			return 1
		}
	}
}

// CompareVersions orders two bundle versions and returns -1, 0 or +1. Versions that parse as
// semantic versions (an optional "v", one to three numeric parts where missing parts are 0,
// optional "-pre-release" and "+build") compare by semver precedence, with numbers of any
// size; anything else sorts before every semantic version, and by byte order among itself.
// Ties under semver ("1.2" and "1.2.0", or build metadata) break by byte order, so the order
// is total and CompareVersions(a, b) == 0 only when a == b. It does not allocate.
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	va, oka := parseVersion(a)
	vb, okb := parseVersion(b)
	switch {
	case oka && okb:
		if c := va.compare(vb); c != 0 {
			return c
		}
	case oka:
		return 1
	case okb:
		return -1
	}
	return strings.Compare(a, b)
}
