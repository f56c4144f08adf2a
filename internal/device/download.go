package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/andybalholm/brotli"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
)

// Extraction bounds for one bundle: the ones the packager refuses to exceed.
const (
	maxBundleFiles = archive.MaxBundleEntries
	maxBundleBytes = archive.MaxBundleBytes
)

// Download fetches the bundle resp offers and installs it under Dir as a pending bundle,
// doing what the plugin does between an update answer and set() (docs/protocol.md §5.3, §4, §6):
//
//   - with a public key, it requires a valid "iv:key" session key ([ErrSessionKeyRequired])
//     and unwraps it ([ErrDecryptFail]);
//   - zip update: it requires a checksum ([ErrChecksumRequired]), downloads the archive with
//     Range resume, decrypts it, checks its SHA-256 against the checksum (RSA-opened V3 when
//     the device has a key, plain hex otherwise; [ErrChecksumFail]) and unzips it with the
//     plugin's path rules ([ErrUnzipFail], [ErrWindowsPathFail], [ErrCanonicalPathFail]);
//   - manifest update: for each file it validates the name ([ErrManifestPathFail]) and the
//     form of the (opened) file_hash, a hex SHA-256 ([ErrManifestChecksumFail], before any
//     download), reuses a file with the same hash from an earlier bundle, or downloads,
//     decrypts (refusing empty data, [ErrDecryptFail]) and un-Brotlis it (with the plugin's
//     shortcuts, see brotliBody) and checks its hash ([ErrManifestChecksumFail]);
//   - the result must have index.html at its root ([ErrSetFail]).
//
// It does not send stats or switch bundles; [Client.Update] does both. Nothing is left
// under Dir/bundles when it fails, and nothing outside Dir is ever written or removed,
// whatever the relay sends (see safeJoin).
func (c *Client) Download(ctx context.Context, resp *channel.UpdateResponse) (*Bundle, error) {
	if c.Dir == "" {
		return nil, fmt.Errorf("download: Client.Dir is empty")
	}
	if resp.Version == "" || resp.Version == "builtin" || resp.Version == "unknown" {
		return nil, withCode(ErrDownloadFail, fmt.Errorf("download: answer offers no installable version (%q)", resp.Version))
	}
	if u, err := url.Parse(resp.URL); resp.URL == "" || err != nil || u.Scheme == "" || u.Host == "" {
		return nil, withCode(ErrDownloadFail, fmt.Errorf("download %s: no url or wrong format", resp.Version))
	}
	var sk *archive.SessionKey
	if c.PublicKey != nil {
		if !validSessionKey(resp.SessionKey) {
			return nil, withCode(ErrSessionKeyRequired, fmt.Errorf("download %s: the app has a public key but the answer has no session key", resp.Version))
		}
		var err error
		sk, err = archive.UnwrapSessionKey(resp.SessionKey, c.PublicKey)
		if err != nil {
			return nil, withCode(ErrDecryptFail, fmt.Errorf("download %s: unwrap session key: %w", resp.Version, err))
		}
	}
	for _, d := range []string{filepath.Join(c.Dir, "bundles"), filepath.Join(c.Dir, "downloads")} {
		if err := ensureDir(d); err != nil {
			return nil, fmt.Errorf("download: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.Dir, "bundles"), ".unpack-")
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer os.RemoveAll(tmp)

	b := &Bundle{Version: resp.Version, Encrypted: sk != nil, Status: StatusPending}
	if len(resp.Manifest) > 0 {
		err = c.downloadManifest(ctx, resp, sk, tmp, b)
	} else {
		err = c.downloadZip(ctx, resp, sk, tmp, b)
	}
	if err != nil {
		return nil, err
	}
	if err := flatten(tmp); err != nil {
		return nil, withCode(ErrUnzipFail, fmt.Errorf("download %s: %w", resp.Version, err))
	}
	if st, err := os.Stat(filepath.Join(tmp, "index.html")); err != nil || !st.Mode().IsRegular() {
		return nil, withCode(ErrSetFail, fmt.Errorf("bundle %s has no index.html at its root", resp.Version))
	}
	final, err := c.bundleDir(resp.Version)
	if err != nil {
		return nil, withCode(ErrDownloadFail, fmt.Errorf("download %s: %w", resp.Version, err))
	}
	if err := os.RemoveAll(final); err != nil {
		return nil, fmt.Errorf("download %s: %w", resp.Version, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("download %s: install: %w", resp.Version, err)
	}
	b.Path = final
	if b.Files, err = listFiles(final); err != nil {
		return nil, fmt.Errorf("download %s: %w", resp.Version, err)
	}
	c.mu.Lock()
	if c.bundles == nil {
		c.bundles = map[string]*Bundle{}
	}
	c.bundles[b.Version] = b
	c.mu.Unlock()
	c.logger().InfoContext(ctx, "bundle downloaded", "version", b.Version, "files", len(b.Files), "bytes", b.BytesTransferred, "reused", b.FilesReused)
	return b, nil
}

// validSessionKey is the plugin's isValidSessionKey: two non-empty parts around one ":".
func validSessionKey(s string) bool {
	iv, key, ok := strings.Cut(s, ":")
	return ok && iv != "" && key != "" && !strings.Contains(key, ":")
}

func (c *Client) downloadZip(ctx context.Context, resp *channel.UpdateResponse, sk *archive.SessionKey, dest string, b *Bundle) error {
	if resp.Checksum == "" {
		return withCode(ErrChecksumRequired, fmt.Errorf("download %s: the answer has no checksum", resp.Version))
	}
	part, err := c.downloadPath(safeName(resp.Version) + ".part")
	if err != nil {
		return withCode(ErrDownloadFail, fmt.Errorf("download %s: %w", resp.Version, err))
	}
	n, err := c.fetch(ctx, resp.URL, part, ErrDownloadFail)
	b.BytesTransferred += n
	if err != nil {
		return fmt.Errorf("download %s: %w", resp.Version, err)
	}
	zipPath := part
	if sk != nil {
		if zipPath, err = c.downloadPath(safeName(resp.Version) + ".zip"); err != nil {
			return withCode(ErrDownloadFail, fmt.Errorf("download %s: %w", resp.Version, err))
		}
		defer os.Remove(zipPath)
		if err := decryptFile(sk, part, zipPath); err != nil {
			os.Remove(part)
			return withCode(ErrDecryptFail, fmt.Errorf("decrypt %s: %w", resp.Version, err))
		}
	}
	got, err := hashFile(zipPath)
	if err != nil {
		return fmt.Errorf("download %s: %w", resp.Version, err)
	}
	want, err := c.expectedHash(resp.Checksum)
	if err != nil {
		os.Remove(part)
		return withCode(ErrChecksumFail, fmt.Errorf("verify %s: %w", resp.Version, err))
	}
	if got != want {
		os.Remove(part)
		return withCode(ErrChecksumFail, fmt.Errorf("verify %s: archive SHA-256 is %s, checksum says %s", resp.Version, got, want))
	}
	b.Checksum = got
	err = archive.Extract(ctx, zipPath, dest, archive.ExtractOptions{MaxFiles: maxBundleFiles, MaxBytes: maxBundleBytes})
	os.Remove(part)
	if err != nil {
		return withCode(extractCode(err), fmt.Errorf("unzip %s: %w", resp.Version, err))
	}
	return nil
}

// expectedHash returns the plain hex SHA-256 a checksum stands for: the RSA-opened V3
// value when the device has a public key (as 8.x always does then), else the value itself.
func (c *Client) expectedHash(checksum string) (string, error) {
	if c.PublicKey == nil {
		return checksum, nil
	}
	sum, err := archive.OpenChecksumV3(c.PublicKey, checksum)
	if err != nil {
		return "", fmt.Errorf("open V3 checksum: %w", err)
	}
	return hex.EncodeToString(sum), nil
}

// decryptFile decrypts src into dst as the plugin's decryptAesFile does, refusing an empty
// src ("Empty encrypted data") and an empty result ("Empty decrypted data"): PKCS#7 padding
// makes every encryption at least one block, so the plugin cannot take an empty file from an
// encrypted bundle, zip or manifest file alike.
func decryptFile(sk *archive.SessionKey, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil {
		return err
	} else if st.Size() == 0 {
		return errors.New("encrypted data is empty")
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, sk.NewDecrypter(in))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n == 0 {
		err = errors.New("decrypted output is empty")
	}
	return err
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// manifestTarget validates a manifest file_name as the plugin does and returns the
// relative target path (without ".br").
func manifestTarget(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("file name %q is not a relative slash path", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("file name %q escapes the bundle", name)
		}
	}
	target := strings.TrimSuffix(path.Clean(name), ".br")
	if target == "" || target == "." || !filepath.IsLocal(filepath.FromSlash(target)) {
		return "", fmt.Errorf("file name %q is not inside the bundle", name)
	}
	return target, nil
}

func (c *Client) downloadManifest(ctx context.Context, resp *channel.UpdateResponse, sk *archive.SessionKey, dest string, b *Bundle) error {
	type job struct {
		entry  channel.ManifestEntry
		target string
		hash   string
	}
	jobs := make([]job, 0, len(resp.Manifest))
	seen := map[string]bool{}
	for _, e := range resp.Manifest {
		target, err := manifestTarget(e.FileName)
		if err == nil && seen[target] {
			err = fmt.Errorf("two files unpack to %q", target)
		}
		if err != nil {
			return withCode(ErrManifestPathFail, fmt.Errorf("manifest of %s: %w", resp.Version, err))
		}
		seen[target] = true
		want, err := c.expectedHash(e.FileHash)
		if err == nil && !validFileHash(want) {
			// The plugin would download the file and fail its hash comparison with this
			// stat; the client refuses before anything is fetched, and never lets the value
			// name a file (it names the download's cache file below).
			err = fmt.Errorf("file_hash %q is not a hex SHA-256", want)
		}
		if err != nil {
			return withCode(ErrManifestChecksumFail, fmt.Errorf("manifest of %s: file %q: %w", resp.Version, e.FileName, err))
		}
		// Manifest file hashes compare case-insensitively, as Android does (docs/protocol.md §4,
		// step 4); only the zip checksum is compared exactly (docs/protocol.md §5.2, see download).
		jobs = append(jobs, job{entry: e, target: target, hash: strings.ToLower(want)})
	}
	known, err := c.knownFiles()
	if err != nil {
		return fmt.Errorf("manifest of %s: %w", resp.Version, err)
	}
	filesDir := filepath.Join(c.Dir, "downloads", "files")
	if err := ensureDir(filesDir); err != nil {
		return err
	}
	budget := int64(maxBundleBytes) // bytes the whole manifest may unpack to, as for an archive
	for _, j := range jobs {
		dst, err := safeJoin(dest, j.target)
		if err != nil {
			return withCode(ErrManifestPathFail, fmt.Errorf("manifest of %s: %w", resp.Version, err))
		}
		if err := ensureDir(filepath.Dir(dst)); err != nil {
			return err
		}
		if src, ok := known[j.hash]; ok {
			if err := copyFile(src, dst); err == nil {
				if got, err := hashFile(dst); err == nil && got == j.hash {
					b.FilesReused++
					continue
				}
			}
		}
		if u, err := url.Parse(j.entry.DownloadURL); err != nil || u.Scheme == "" || u.Host == "" {
			return withCode(ErrManifestFileFail, fmt.Errorf("manifest of %s: file %q has no valid download_url", resp.Version, j.entry.FileName))
		}
		part, err := c.downloadPath("files/" + j.hash + "_" + safeName(path.Base(j.entry.FileName)) + ".part")
		if err != nil {
			return withCode(ErrManifestFileFail, fmt.Errorf("manifest of %s: %w", resp.Version, err))
		}
		n, err := c.fetch(ctx, j.entry.DownloadURL, part, ErrManifestFileFail)
		b.BytesTransferred += n
		if err != nil {
			return fmt.Errorf("manifest of %s: %w", resp.Version, err)
		}
		work, err := c.downloadPath("files/" + j.hash + "_" + safeName(path.Base(j.entry.FileName)) + ".work")
		if err != nil {
			os.Remove(part)
			return withCode(ErrManifestFileFail, fmt.Errorf("manifest of %s: %w", resp.Version, err))
		}
		err = unpackFile(part, work, dst, sk, strings.HasSuffix(j.entry.FileName, ".br"), j.hash, &budget)
		os.Remove(part)
		if err != nil {
			return fmt.Errorf("manifest of %s: file %q: %w", resp.Version, j.entry.FileName, err)
		}
		b.FilesDownloaded++
	}
	return nil
}

// unpackFile turns one downloaded manifest file into dst as the plugin's downloadAndVerify
// does: decrypt it whole into work with the bundle's session key (CBC restarts per file;
// [decryptFile] refuses empty data), un-Brotli it for .br names ([brotliBody], with the
// plugin's shortcuts), and check the SHA-256 of the result. budget is what the rest of the
// manifest may still write; it is reduced by this file's size, and a file growing past it
// (a Brotli bomb from a hostile relay or CDN) is refused before the hash check, with dst
// removed, so it cannot fill the disk.
func unpackFile(src, work, dst string, sk *archive.SessionKey, br bool, wantHash string, budget *int64) error {
	source := src
	if sk != nil {
		err := decryptFile(sk, src, work)
		defer os.Remove(work)
		if err != nil {
			return withCode(ErrDecryptFail, err)
		}
		source = work
	}
	in, err := os.Open(source)
	if err != nil {
		return withCode(ErrManifestFileFail, err)
	}
	defer in.Close()
	var r io.Reader = in
	var brr *errReader
	if br {
		if r, err = brotliBody(in); err != nil {
			return withCode(ErrManifestBrotliFail, err)
		}
		brr = &errReader{r: r}
		r = brr
	}
	out, err := os.Create(dst)
	if err != nil {
		return withCode(ErrManifestFileFail, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, *budget+1))
	*budget -= n
	if cerr := out.Close(); err == nil && cerr != nil {
		return withCode(ErrManifestFileFail, cerr)
	}
	if err == nil && *budget < 0 {
		os.Remove(dst)
		code := ErrManifestFileFail
		if br {
			code = ErrManifestBrotliFail
		}
		return withCode(code, fmt.Errorf("unpacks past the bundle's limit of %d bytes", int64(maxBundleBytes)))
	}
	switch {
	case err != nil && brr != nil && brr.err != nil:
		return withCode(ErrManifestBrotliFail, err)
	case err != nil:
		return withCode(ErrManifestFileFail, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantHash {
		return withCode(ErrManifestChecksumFail, fmt.Errorf("SHA-256 is %s, manifest says %s", got, wantHash))
	}
	return nil
}

// Byte patterns of the plugin's decompressBrotli shortcuts (Android and iOS alike).
var (
	brotliEmptyHead    = []byte{0x1b, 0x00, 0x06}
	brotliQuality0Head = []byte{0x0b, 0x02, 0x80}
)

// brotliBody returns what the plugin's decompressBrotli makes of the Brotli file f, which
// is not always a Brotli decoding. Before decoding, the plugin looks at the length, the
// first three bytes and the last byte:
//
//   - an empty file gives an empty file;
//   - exactly 1b 00 06 gives an empty file;
//   - longer than 3 bytes, ending in 03 and starting with 1b 00 06 or 0b 02 80 (the
//     wrappers Node's Brotli writes around short or incompressible data): the bytes between
//     the first three and the last one, copied as they are;
//   - anything else is Brotli-decoded.
//
// The third rule is right only for the streams it was written for: a genuine Brotli stream
// that happens to match it decodes to something else on a device. The packager never
// writes such a stream (archive.Delta); this mirror lets tests catch one if it did.
func brotliBody(f *os.File) (io.Reader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := st.Size()
	if n == 0 {
		return bytes.NewReader(nil), nil
	}
	head := make([]byte, min(3, n))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, n-1); err != nil {
		return nil, err
	}
	if n == 3 && bytes.Equal(head, brotliEmptyHead) {
		return bytes.NewReader(nil), nil
	}
	if n > 3 && last[0] == 0x03 && (bytes.Equal(head, brotliEmptyHead) || bytes.Equal(head, brotliQuality0Head)) {
		return io.NewSectionReader(f, 3, n-4), nil
	}
	return brotli.NewReader(f), nil
}

// errReader remembers the first error its reader returned, to tell which stage failed.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// knownFiles maps the SHA-256 of every file in the installed bundles to its path: the
// files a manifest update can reuse instead of downloading.
func (c *Client) knownFiles() (map[string]string, error) {
	known := map[string]string{}
	root := filepath.Join(c.Dir, "bundles")
	entries, err := os.ReadDir(root)
	if err != nil {
		if isNotExist(err) {
			return known, nil
		}
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(root, e.Name())
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			known[h] = p
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("index earlier bundles: %w", err)
		}
	}
	return known, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// flatten unwraps a bundle whose only top-level entry (ignoring __MACOSX and dot entries,
// as Android does) is a folder, when there is no index.html at the root.
func flatten(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var top []fs.DirEntry
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "__MACOSX") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		top = append(top, e)
	}
	if len(top) != 1 || !top[0].IsDir() {
		return nil
	}
	inner := filepath.Join(dir, top[0].Name())
	moved := dir + ".inner"
	if err := os.Rename(inner, moved); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != top[0].Name() {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil {
		return err
	}
	return os.Rename(moved, dir)
}

// listFiles lists the regular files under dir, slash-separated and sorted.
func listFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(files)
	return files, err
}

// extractCode maps an extraction error to the plugin's stat.
func extractCode(err error) error {
	var pe *archive.PathError
	if errors.As(err, &pe) {
		switch pe.Stat {
		case archive.StatWindowsPath:
			return ErrWindowsPathFail
		case archive.StatCanonicalPath:
			return ErrCanonicalPathFail
		}
	}
	if errors.Is(err, archive.ErrNoIndex) {
		return ErrSetFail
	}
	return ErrUnzipFail
}
