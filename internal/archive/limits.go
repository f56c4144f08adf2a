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
// build directory (sorted by name) and returns the warnings:
//
//   - at most maxEntries entries and maxBytes bytes ([ErrTooLarge]);
//   - no two paths that differ only in Unicode normalization (NFC and NFD spellings of
//     "café"): iOS's APFS (case-sensitive, normalization-insensitive since iOS 11) and
//     macOS take them for one file, and the plugin there unzips the second over the first,
//     so the device would run something other than the build ([ErrUnsafeFile]). With the
//     same bytes either survivor is right, so that is only a warning;
//   - paths that differ only in letter case (App.js and app.js) are a warning, not an
//     error: phones keep both (Android's and iOS's file systems are case-sensitive), but
//     case-insensitive desktop file systems (macOS, Windows: Electron apps, iOS apps on a
//     Mac, the simulator) keep one. With the same bytes they are fine everywhere.
//
// A file and a directory that clash can never both be unpacked where they are one path.
// Two directories that clash merge into one, which is harmless: the files inside are
// checked by their own paths.
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
	// Normalization twins look identical when printed: their names are quoted with %+q,
	// which escapes everything outside ASCII ("caf\u00e9" and "cafe\u0301").
	var warnings []string
	byNorm := map[string]*entry{} // iOS: normalization-insensitive, case-sensitive
	byFold := map[string]*entry{} // macOS, Windows: also case-insensitive
	for i := range entries {
		e := &entries[i]
		name := strings.TrimSuffix(e.name, "/")
		nk, fk := norm.NFD.String(name), foldName(name)
		prevN, clashN := byNorm[nk]
		prevF, clashF := byFold[fk]
		if !clashN {
			byNorm[nk] = e
		}
		if !clashF {
			byFold[fk] = e
		}
		switch {
		case clashN && !(prevN.dir && e.dir):
			same, err := twinsAgree(prevN, e)
			if err != nil {
				return nil, err
			}
			if !same {
				return nil, fmt.Errorf("%w: %+q and %+q differ only in Unicode normalization (NFC/NFD): iOS and macOS take them for one path, so a device there would not unpack the bundle as built; rename one",
					ErrUnsafeFile, prevN.name, e.name)
			}
			warnings = append(warnings, fmt.Sprintf("%+q and %+q differ only in Unicode normalization (NFC/NFD): iOS and macOS keep one of them; they hold the same bytes, so either serves both names there", prevN.name, e.name))
		case clashN:
			// two directories: they merge
		case clashF && !(prevF.dir && e.dir):
			same, err := twinsAgree(prevF, e)
			if err != nil {
				return nil, err
			}
			if !same {
				warnings = append(warnings, fmt.Sprintf("%q and %q differ only in letter case: phones keep both, but case-insensitive desktop file systems (Electron on macOS or Windows, iOS apps on a Mac) take them for one path, so a device there would not unpack the bundle as built", prevF.name, e.name))
			}
		}
	}
	if len(warnings) > maxWarnings {
		warnings = append(warnings[:maxWarnings], fmt.Sprintf("and %d more such pairs", len(warnings)-maxWarnings))
	}
	return warnings, nil
}

// maxWarnings bounds the warnings of one build (a symlinked folder can twin every file in it).
const maxWarnings = 20

// foldName maps a path to the same key as every path a case- and normalization-insensitive
// file system takes for the same one: Unicode's canonical caseless match,
// NFD(casefold(NFD(name))).
func foldName(name string) string {
	return norm.NFD.String(cases.Fold().String(norm.NFD.String(name)))
}

// twinsAgree reports whether two clashing entries unpack to the same thing: two files with
// the same bytes. A file and a directory never agree.
func twinsAgree(a, b *entry) (bool, error) {
	if a.dir || b.dir {
		return false, nil
	}
	return sameContent(a, b)
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
