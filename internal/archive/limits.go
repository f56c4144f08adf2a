package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Bounds of a bundle Ferry's device side unpacks (internal/device, so `ferry probe
// --download`, applies them to every archive and manifest). The packager refuses a build
// over them with [ErrTooLarge], so whatever Ferry packs, Ferry's device can unpack.
//
// The plugin itself streams: Android's ZipInputStream reads entries of 2 to 4 GiB, and
// Go's zip writer gives entries of 4 GiB or more 8-byte sizes in their data descriptor
// (zip64), the form ZipInputStream reads. A phone still needs room for the download, the
// decrypted zip and the unpacked files at once, and a web view has no use for a
// multi-gigabyte file, so Ferry does not pack such bundles rather than ship ones its own
// probe cannot check.
const (
	// MaxBundleEntries is the most zip entries (files and directories) of a bundle.
	MaxBundleEntries = 50_000
	// MaxBundleBytes is the most bytes a bundle's files may hold together, uncompressed.
	MaxBundleBytes = 2 << 30
)

// checkBundle applies the rules of a bundle every device can unpack to the entries of a
// build directory (sorted by name): at most maxEntries entries and maxBytes bytes
// ([ErrTooLarge]), and no two paths that name the same file on iOS and macOS, whose
// default file systems ignore letter case and Unicode normalization ([ErrUnsafeFile]).
// There the plugin unzips the second over the first, so the device would run a bundle
// that differs from the build. Twins with the same bytes are only a warning: whichever
// survives is right, and lookups there find it under either name. It returns the warnings.
func checkBundle(entries []entry, maxEntries int, maxBytes int64) ([]string, error) {
	if len(entries) > maxEntries {
		return nil, fmt.Errorf("%w: the build has %d files and directories; a device unpacks at most %d", ErrTooLarge, len(entries), maxEntries)
	}
	var total int64
	var largest *entry
	for i := range entries {
		e := &entries[i]
		total += e.size
		if !e.dir && (largest == nil || e.size > largest.size) {
			largest = e
		}
	}
	if total > maxBytes {
		return nil, fmt.Errorf("%w: the build's files hold %d bytes; a device unpacks at most %d (%s); the largest file is %q (%d bytes)",
			ErrTooLarge, total, maxBytes, humanSize(maxBytes), largest.name, largest.size)
	}
	var warnings []string
	first := map[string]*entry{}
	for i := range entries {
		e := &entries[i]
		key := foldName(strings.TrimSuffix(e.name, "/"))
		prev, ok := first[key]
		if !ok {
			first[key] = e
			continue
		}
		if prev.dir && e.dir {
			continue // the two directories merge into one; files inside are checked by name
		}
		how := "letter case and Unicode normalization (NFC/NFD)"
		switch fold := cases.Fold(); {
		case norm.NFC.String(prev.name) == norm.NFC.String(e.name):
			how = "Unicode normalization (NFC/NFD)"
		case fold.String(prev.name) == fold.String(e.name):
			how = "letter case"
		}
		if prev.dir || e.dir {
			return nil, fmt.Errorf("%w: %q and %q differ only in %s: on iOS and macOS they are one path, and a device cannot unpack both a file and a directory there",
				ErrUnsafeFile, prev.name, e.name, how)
		}
		same, err := sameContent(prev, e)
		if err != nil {
			return nil, err
		}
		if !same {
			return nil, fmt.Errorf("%w: %q and %q differ only in %s: on iOS and macOS they are one file, so a device would keep only the second; rename one",
				ErrUnsafeFile, prev.name, e.name, how)
		}
		warnings = append(warnings, fmt.Sprintf("%q and %q differ only in %s: iOS and macOS devices keep one copy; they hold the same bytes, so either serves both names there", prev.name, e.name, how))
	}
	return warnings, nil
}

// foldName maps a path to the same key as every path an iOS or macOS file system takes for
// the same one: Unicode's canonical caseless match, NFD(casefold(NFD(name))).
func foldName(name string) string {
	return norm.NFD.String(cases.Fold().String(norm.NFD.String(name)))
}

// sameContent reports whether two file entries hold the same bytes.
func sameContent(a, b *entry) (bool, error) {
	if a.path == b.path {
		return true, nil
	}
	if a.size != b.size {
		return false, nil
	}
	fa, err := os.Open(a.path)
	if err != nil {
		return false, fmt.Errorf("read %q: %w", a.name, err)
	}
	defer fa.Close()
	fb, err := os.Open(b.path)
	if err != nil {
		return false, fmt.Errorf("read %q: %w", b.name, err)
	}
	defer fb.Close()
	ra, rb := bufio.NewReaderSize(fa, 64<<10), bufio.NewReaderSize(fb, 64<<10)
	bufA, bufB := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if errA != nil || errB != nil {
			if (errA == io.EOF || errA == io.ErrUnexpectedEOF) && (errB == io.EOF || errB == io.ErrUnexpectedEOF) {
				return true, nil
			}
			if errA != nil && errA != io.EOF && errA != io.ErrUnexpectedEOF {
				return false, fmt.Errorf("read %q: %w", a.name, errA)
			}
			if errB != nil && errB != io.EOF && errB != io.ErrUnexpectedEOF {
				return false, fmt.Errorf("read %q: %w", b.name, errB)
			}
			return false, nil
		}
	}
}

// humanSize writes n bytes in GiB or MiB for messages.
func humanSize(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
