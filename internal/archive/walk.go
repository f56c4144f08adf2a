package archive

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// ErrNoIndex reports a build directory without index.html at its root: the plugin cannot
// set such a bundle (docs/protocol.md §6).
var ErrNoIndex = errors.New("index.html not found at the root of the build directory")

// ErrUnsafeFile reports a file the packager refuses: a symlink leaving the build directory,
// a device, socket or pipe, or a name the plugin would refuse.
var ErrUnsafeFile = errors.New("unsafe file in build directory")

// entry is one zip entry found in the build directory.
type entry struct {
	name string // zip name, "/"-separated; directories end in "/"
	path string // file to read (symlinks resolved); "" for directories
	size int64
	dir  bool
	// sum is the SHA-256 of the file's bytes as zipped, when hashed: recorded by a
	// [Package] given a [Listing], for the [Delta] of the same listing.
	sum    [sha256.Size]byte
	hashed bool
}

// Listing is a build directory walked once, with the file policy and bundle rules of
// [WriteZip], for [Package] and [Delta] to share ([Options.Listing], [DeltaOptions.Listing]):
// the build is then walked once instead of three times, and Package records the SHA-256 of
// each file it zips, so that Delta reads again only the files it must prepare. A Listing is
// used by one Package or Delta at a time.
type Listing struct {
	dir      string
	hidden   bool // ZipOptions.IncludeHidden
	entries  []entry
	warnings []string
}

// Scan walks dir with opts' file policy and checks the bundle rules, as [WriteZip] does.
func Scan(dir string, opts ZipOptions) (*Listing, error) {
	entries, warnings, err := collect(dir, opts)
	if err != nil {
		return nil, err
	}
	return &Listing{dir: dir, hidden: opts.IncludeHidden, entries: entries, warnings: warnings}, nil
}

// Files is the number of files in the listed build, directories left out.
func (l *Listing) Files() int {
	n := 0
	for _, e := range l.entries {
		if !e.dir {
			n++
		}
	}
	return n
}

// CheckDelta is [CheckDelta] for the listed build, without walking it again.
func (l *Listing) CheckDelta() error { return checkDeltaNames(l.entries) }

// use returns the listing's entries for a pass over dir with opts, which must be those of Scan.
func (l *Listing) use(dir string, opts ZipOptions) ([]entry, []string, error) {
	if dir != l.dir || opts.IncludeHidden != l.hidden {
		return nil, nil, fmt.Errorf("the listing of %q (hidden files %t) is not that of %q (hidden files %t)", l.dir, l.hidden, dir, opts.IncludeHidden)
	}
	return l.entries, l.warnings, nil
}

// collect walks root and returns its entries sorted by zip name, applying the file policy
// documented in the package comment and the bundle rules of checkBundle, whose warnings it
// returns.
func collect(root string, opts ZipOptions) ([]entry, []string, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, nil, fmt.Errorf("open build directory: %w", err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return nil, nil, fmt.Errorf("open build directory: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, nil, fmt.Errorf("open build directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("build directory %q is not a directory", root)
	}
	w := walker{root: real, opts: opts}
	if err := w.walk(real, "", map[string]bool{real: true}); err != nil {
		return nil, nil, err
	}
	sort.Slice(w.entries, func(i, j int) bool { return w.entries[i].name < w.entries[j].name })
	hasIndex := false
	for _, e := range w.entries {
		if e.name == "index.html" && !e.dir {
			hasIndex = true
		}
	}
	if !hasIndex {
		return nil, nil, fmt.Errorf("%w: %q (point --dir at the built web assets, e.g. dist/ or www/)", ErrNoIndex, root)
	}
	warnings, err := checkBundle(w.entries, MaxBundleEntries, MaxBundleBytes)
	if err != nil {
		return nil, nil, err
	}
	return w.entries, warnings, nil
}

type walker struct {
	root    string
	opts    ZipOptions
	entries []entry
}

// walk adds the contents of the real directory dir, whose zip prefix is prefix ("" or
// "a/b/"). active holds the real paths of the directories being walked, to refuse cycles.
func (w *walker) walk(dir, prefix string, active map[string]bool) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read directory: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if !w.opts.IncludeHidden && strings.HasPrefix(name, ".") && name != ".well-known" {
			continue
		}
		zname := prefix + name
		if err := checkName(zname); err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("stat %q: %w", zname, err)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%w: symlink %q: %v", ErrUnsafeFile, zname, err)
			}
			if !within(w.root, target) {
				return fmt.Errorf("%w: symlink %q points outside the build directory", ErrUnsafeFile, zname)
			}
			if !w.opts.IncludeHidden {
				if rel, _ := filepath.Rel(w.root, target); hiddenPath(rel) {
					return fmt.Errorf("%w: symlink %q points to hidden path %q (hidden files are not shipped; set IncludeHidden to ship them)", ErrUnsafeFile, zname, filepath.ToSlash(rel))
				}
			}
			if info, err = os.Stat(target); err != nil {
				return fmt.Errorf("stat %q: %w", zname, err)
			}
			p = target
		}
		switch {
		case info.IsDir():
			if active[p] {
				return fmt.Errorf("%w: symlink cycle at %q", ErrUnsafeFile, zname)
			}
			w.entries = append(w.entries, entry{name: zname + "/", dir: true})
			active[p] = true
			err := w.walk(p, zname+"/", active)
			delete(active, p)
			if err != nil {
				return err
			}
		case info.Mode().IsRegular():
			w.entries = append(w.entries, entry{name: zname, path: p, size: info.Size()})
		default:
			return fmt.Errorf("%w: %q is a %s, not a regular file", ErrUnsafeFile, zname, info.Mode().Type())
		}
	}
	return nil
}

// hiddenPath reports whether any element of rel, a path relative to the build directory,
// is hidden: starts with "." and is not ".well-known".
func hiddenPath(rel string) bool {
	for _, el := range strings.Split(filepath.ToSlash(rel), "/") {
		if strings.HasPrefix(el, ".") && el != "." && el != ".well-known" {
			return true
		}
	}
	return false
}

// within reports whether the real path p is root or inside it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// checkName refuses names the plugin would refuse or that are ambiguous in a zip.
func checkName(name string) error {
	if err := ValidateEntryName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsafeFile, err)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: file name %q is not valid UTF-8", ErrUnsafeFile, name)
	}
	return nil
}
