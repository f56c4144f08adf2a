// Package buildinfo says which build of a Ferry binary is running: the module version and
// the VCS commit Go records in the binary, for each command's --version.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// String returns "<name> <module version> commit <short commit>[ (modified)]", e.g.
// "ferry v1.2.0 commit abc1234" or "ferry (devel) commit abc1234 (modified)". Parts Go did
// not record (a test binary, a build outside a repository) are left out.
func String(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (unknown build)"
	}
	return format(name, bi)
}

func format(name string, bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var b strings.Builder
	b.WriteString(name + " " + v)
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		b.WriteString(" commit " + rev[:min(len(rev), 7)])
		if modified {
			b.WriteString(" (modified)")
		}
	}
	return b.String()
}
