// Package redact hides the secrets a URL may carry before the URL goes into an error or a
// log line. Every package that shows a URL it did not write itself goes through here:
//
//   - [URL] drops the user info and everything from the query on. It is for URLs whose query
//     may hold anything: bucket URLs (credentials, endpoints with user info), relay URLs,
//     and the device's update-check URLs (its info object).
//   - [Passwords] keeps the URL's shape and replaces only the password of the user info
//     and the values of password-like query options with "xxxxx". It is for connection
//     URLs such as Redis's, whose other options are worth seeing when a connection fails.
//
// Both split the URL with the same code, which never needs the URL to parse: a malformed
// URL is where a secret is most likely to end up in the wrong part, so anything that cannot
// be placed is shown as "<redacted>".
//
// The package is its own leaf rather than part of internal/channel (the update protocol's
// vocabulary, which has nothing to do with credentials): it imports no internal package,
// so the binaries and every capability package (store, publish, device) can import it
// without importing each other.
package redact

import (
	"net/url"
	"strings"
)

// hidden replaces what cannot be shown at all.
const hidden = "<redacted>"

// mask replaces a password.
const mask = "xxxxx"

// URL returns raw without its user info, query and fragment: "https://ci:pw@relay/x?k=v"
// becomes "https://relay/x". A string without "://" loses its query; it is hidden entirely
// when it holds an '@' (user info without a scheme) or the word "password".
func URL(raw string) string {
	p, ok := split(raw)
	if !ok {
		return hidden
	}
	switch {
	case p.scheme == "":
		before, _, _ := strings.Cut(raw, "?")
		return before
	case p.mangled:
		return p.scheme + "://" + hidden
	}
	return p.scheme + "://" + p.host + p.path
}

// Passwords returns raw with the password of its user info, and the value of each query
// option whose name contains "password", replaced by "xxxxx": "redis://u:pw@h/0?password=x"
// becomes "redis://u:xxxxx@h/0?password=xxxxx". The user name and other options stay. A
// string without "://" is kept unless it holds an '@' or the word "password".
func Passwords(raw string) string {
	p, ok := split(raw)
	if !ok {
		return hidden
	}
	switch {
	case p.scheme == "":
		return raw
	case p.mangled:
		return p.scheme + "://" + hidden
	}
	authority := p.host
	if p.hasUser {
		user := p.user
		if p.hasPass {
			user += ":" + mask
		}
		authority = user + "@" + p.host
	}
	if strings.Contains(p.tail, "@") {
		// Only a malformed URL has user info in its query or fragment; show none of them.
		return p.scheme + "://" + authority + "/" + hidden
	}
	path, query, hasQuery := strings.Cut(p.tail, "?")
	if !hasQuery {
		return p.scheme + "://" + authority + path
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return p.scheme + "://" + authority + path + "?" + hidden
	}
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, mask)
		}
	}
	return p.scheme + "://" + authority + path + "?" + q.Encode()
}

// parts are the pieces of a URL as [split] finds them.
type parts struct {
	scheme  string // "" when the string has no "://"
	user    string // the user name of the user info
	hasUser bool   // the authority has user info
	hasPass bool   // the user info has a password
	host    string // the authority without its user info
	tail    string // everything after the authority: path, query, fragment
	path    string // the tail up to its query or fragment

	// mangled: the URL may have user info whose password holds a '/', '?' or '#'
	// (https://u:pa?ss@host), so that what looks like the authority is part of it: the
	// host has a port that is not a number, the path holds an '@', or the path holds a ':'
	// and an '@' follows in the query or fragment. Legitimate paths with an '@'
	// (/@scope/pkg) are hidden too.
	mangled bool
}

// split cuts raw into its parts without parsing it; ok is false when nothing of raw may be
// shown. A string without "://" has no parts; it may be shown unless it holds an '@' or
// the word "password".
func split(raw string) (p parts, ok bool) {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		return parts{}, !strings.Contains(raw, "@") && !strings.Contains(strings.ToLower(raw), "password")
	}
	if !ValidScheme(scheme) {
		// Not a scheme at all (e.g. ":pw@://"): anything in it may be a secret.
		return parts{}, false
	}
	p.scheme, p.host = scheme, rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		p.host, p.tail = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(p.host, "@"); i >= 0 {
		p.hasUser = true
		p.user, _, p.hasPass = strings.Cut(p.host[:i], ":")
		p.host = p.host[i+1:]
	}
	p.path = p.tail
	if i := strings.IndexAny(p.path, "?#"); i >= 0 {
		p.path = p.path[:i]
	}
	// A ':' in the path with an '@' after it in the query or fragment is the same mistake
	// one step later: a user name that starts with '/' (x:///:pa#ss@h) puts the password's
	// first part in the path.
	afterPath := p.tail[len(p.path):]
	p.mangled = strings.Contains(p.path, "@") || !numericPorts(p.host) ||
		strings.Contains(p.path, ":") && strings.Contains(afterPath, "@")
	return p, true
}

// numericPorts reports whether every host of a comma-separated list (Redis clusters name
// several) has a numeric port or none.
func numericPorts(hosts string) bool {
	for _, h := range strings.Split(hosts, ",") {
		if strings.HasPrefix(h, "[") {
			end := strings.IndexByte(h, ']')
			if end < 0 {
				return false
			}
			h = h[end+1:]
			if h != "" && h[0] != ':' {
				return false
			}
		}
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			for _, c := range h[i+1:] {
				if c < '0' || c > '9' {
					return false
				}
			}
		}
	}
	return true
}

// ValidScheme reports whether s has the syntax of a URL scheme (RFC 3986 §3.1), so that a
// caller may show it in an error without revealing anything else of a malformed URL.
func ValidScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
