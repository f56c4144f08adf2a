package archive

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Plugin stats sent when an entry name is refused (docs/protocol.md §6).
const (
	StatWindowsPath   = "windows_path_fail"
	StatCanonicalPath = "canonical_path_fail"
	StatUnzip         = "unzip_fail"
)

// ErrUnsafePath is matched (errors.Is) by every [PathError].
var ErrUnsafePath = errors.New("unsafe path in archive")

// PathError reports a zip entry name the plugin refuses, with the stat it sends.
type PathError struct {
	Name   string // the entry name as found
	Stat   string // StatWindowsPath, StatCanonicalPath or StatUnzip
	Reason string
}

// Error returns "<stat>: entry <name> <reason>".
func (e *PathError) Error() string {
	return fmt.Sprintf("%s: entry %q %s", e.Stat, e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafePath) true.
func (e *PathError) Is(target error) bool { return target == ErrUnsafePath }

// ValidateEntryName applies the plugin's rules to a zip entry name: a backslash gives
// windows_path_fail; a NUL byte, an absolute path, an empty or "."/".." element, or a path
// escaping the target gives canonical_path_fail. It returns a *[PathError] or nil.
func ValidateEntryName(name string) error {
	bad := func(stat, reason string) error { return &PathError{Name: name, Stat: stat, Reason: reason} }
	switch {
	case name == "":
		return bad(StatCanonicalPath, "is empty")
	case strings.Contains(name, "\\"):
		return bad(StatWindowsPath, "contains a backslash")
	case strings.ContainsRune(name, 0):
		return bad(StatCanonicalPath, "contains a NUL byte")
	case strings.HasPrefix(name, "/") || (len(name) >= 2 && name[1] == ':'):
		return bad(StatCanonicalPath, "is an absolute path")
	}
	for _, el := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		switch el {
		case "..":
			return bad(StatCanonicalPath, "escapes the bundle directory")
		case "", ".":
			return bad(StatCanonicalPath, "has an empty or \".\" path element")
		}
	}
	return nil
}

// Default extraction limits (zip-bomb protection), used when [ExtractOptions] fields are zero.
const (
	DefaultMaxFiles = 100_000
	DefaultMaxBytes = 2 << 30 // 2 GiB uncompressed
)

// ExtractOptions bounds an extraction. Zero fields mean [DefaultMaxFiles] and [DefaultMaxBytes].
type ExtractOptions struct {
	MaxFiles int   // most entries accepted
	MaxBytes int64 // most uncompressed bytes written in total
}

// ErrTooLarge reports an archive over the [ExtractOptions] limits.
var ErrTooLarge = errors.New("archive exceeds extraction limits")

// Extract unzips the plain zip at zipPath into dest the way the plugin does (docs/protocol.md
// §6): names are checked with [ValidateEntryName] (a *[PathError] carries the plugin's stat);
// symlink entries are refused; if the zip has no index.html at its root but a single top folder
// (ignoring "__MACOSX" and dot entries, as Android does), that folder is unwrapped; the
// result must have index.html at its root. dest must not exist or be empty. On error, dest
// may hold a partial extraction that the caller removes. Nothing is ever written outside dest.
func Extract(ctx context.Context, zipPath, dest string, opts ExtractOptions) error {
	maxFiles, maxBytes := opts.MaxFiles, opts.MaxBytes
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("%s: open zip: %w", StatUnzip, err)
	}
	defer zr.Close()
	if len(zr.File) > maxFiles {
		return fmt.Errorf("%w: %d entries, limit %d", ErrTooLarge, len(zr.File), maxFiles)
	}
	for _, f := range zr.File {
		if err := ValidateEntryName(f.Name); err != nil {
			return err
		}
		if f.Mode()&os.ModeSymlink != 0 {
			return &PathError{Name: f.Name, Stat: StatCanonicalPath, Reason: "is a symlink"}
		}
	}
	strip := topFolder(zr.File)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("create %q: %w", dest, err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("open %q: %w", dest, err)
	}
	defer root.Close()
	seen := map[string]bool{}
	var written int64
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := f.Name
		if strip != "" {
			if !strings.HasPrefix(name, strip) {
				continue // __MACOSX and dot entries beside the unwrapped folder
			}
			name = name[len(strip):]
		}
		if name == "" {
			continue
		}
		clean := path.Clean(name)
		if seen[clean] {
			return &PathError{Name: f.Name, Stat: StatUnzip, Reason: "is duplicated"}
		}
		seen[clean] = true
		if strings.HasSuffix(name, "/") {
			if err := root.MkdirAll(clean, 0o755); err != nil {
				return fmt.Errorf("%s: create directory %q: %w", StatUnzip, name, err)
			}
			continue
		}
		if dir := path.Dir(clean); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%s: create directory %q: %w", StatUnzip, dir, err)
			}
		}
		n, err := extractFile(root, clean, f, maxBytes-written)
		written += n
		if err != nil {
			return err
		}
	}
	if fi, err := root.Stat("index.html"); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: the bundle cannot be set (set_fail)", ErrNoIndex)
	}
	return nil
}

func extractFile(root *os.Root, name string, f *zip.File, budget int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("%s: open entry %q: %w", StatUnzip, f.Name, err)
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("%s: create %q: %w", StatUnzip, name, err)
	}
	n, err := io.Copy(out, io.LimitReader(rc, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("%s: extract %q: %w", StatUnzip, f.Name, err)
	}
	if n > budget {
		return n, fmt.Errorf("%w: more than the byte limit uncompressed", ErrTooLarge)
	}
	return n, nil
}

// topFolder returns "dir/" when the zip has no root index.html and all its entries, apart
// from "__MACOSX" and dot entries, sit under one top-level folder; otherwise "".
func topFolder(files []*zip.File) string {
	tops := map[string]bool{}
	for _, f := range files {
		if f.Name == "index.html" {
			return ""
		}
		top, rest, isDir := strings.Cut(f.Name, "/")
		if strings.HasPrefix(top, "__MACOSX") || strings.HasPrefix(top, ".") {
			continue
		}
		if !isDir || (rest == "" && !strings.HasSuffix(f.Name, "/")) {
			return "" // a file at the root
		}
		tops[top] = true
	}
	if len(tops) != 1 {
		return ""
	}
	for t := range tops {
		return t + "/"
	}
	return ""
}
