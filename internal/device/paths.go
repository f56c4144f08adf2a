package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Every file the client creates, appends to or removes is named with safeJoin, and any part
// of a name that comes from the relay (a version, a manifest file name or hash) is validated
// or made safe first: a hostile relay cannot make a device, or `ferry probe --download`,
// touch a file outside Client.Dir.

// errUnsafePath reports a relay-supplied name that would leave its directory.
var errUnsafePath = errors.New("unsafe path")

// safeJoin returns root joined with name, a relative slash-separated path, or an error
// wrapping errUnsafePath when name is empty, absolute, holds a backslash, a NUL byte, an
// empty, "." or ".." element or a volume name, or when an existing element below root is
// a symlink (which could point anywhere). root itself is trusted: it is Client.Dir or a
// directory the client made under it.
func safeJoin(root, name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q %s", errUnsafePath, name, why)
	}
	switch {
	case name == "":
		return bad("is empty")
	case strings.ContainsAny(name, "\\\x00"):
		return bad("holds a backslash or a NUL byte")
	case strings.HasPrefix(name, "/"):
		return bad("is absolute")
	}
	els := strings.Split(name, "/")
	for _, el := range els {
		if el == "" || el == "." || el == ".." {
			return bad("has an empty, \".\" or \"..\" element")
		}
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return bad("is not a local path")
	}
	p := root
	for _, el := range els {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if err != nil {
			break // the rest does not exist yet: the client creates it
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return bad("goes through a symlink")
		}
	}
	return filepath.Join(root, filepath.FromSlash(name)), nil
}

// validFileHash reports whether h is the form a manifest file_hash has once opened: a hex
// SHA-256, 64 characters, either case (docs/protocol.md §4). The client names cache files
// after it, as the plugin does, so anything else must never reach a file name. The plugin
// checks the same form (its isSafeCacheHash) before using a hash in a file name.
func validFileHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// downloadPath is where a download named name (a version or a manifest file's hash and
// base name, made safe) is kept under Dir/downloads.
func (c *Client) downloadPath(name string) (string, error) {
	return safeJoin(filepath.Join(c.Dir, "downloads"), name)
}
