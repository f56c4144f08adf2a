package archive

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/andybalholm/brotli"
)

// Brotli rule of the CLI (docs/protocol.md §4; cli 8.68.1 keeps the raw file when the compressed
// size is >= size - 10): only files of at least BrotliMinSize bytes are compressed, and only
// when the result is smaller than the file by more than BrotliMinSaving bytes.
const (
	BrotliMinSize   = 8192
	BrotliMinSaving = 10
	// BrotliQuality is the Brotli level used for delta files (0-11). The CLI uses Node's
	// default, 11, which is several times slower for a few percent.
	BrotliQuality = 9
)

// wrapLGWin is the Brotli window (log2 bytes) of wrapped files, those Brotli-compressed
// whatever the CLI's rule says: names ending in ".br" and empty files. It is not 22, the
// encoder's default, so a wrapped stream's first byte (WBITS) is never 0x1b or 0x0b and the
// plugin's decompressBrotli shortcuts, which copy the bytes of streams starting 1b 00 06 or
// 0b 02 80 and ending 03 instead of decoding them, never apply (docs/protocol.md §4). The
// CLI's rule only compresses files of 8192 bytes or more, which cannot match them.
const wrapLGWin = 16

// MaxManifestName is the longest manifest file_name, in bytes, that the relay registers.
const MaxManifestName = 1024

// DeltaFile is one entry of a delta (manifest) update. The relay turns it into
// {file_name, file_hash, download_url}.
type DeltaFile struct {
	FileName string // manifest file_name: the build's "/"-separated path, plus ".br" when the stored bytes are Brotli
	Object   string // content-addressed object name: "files/<hex sha256 of stored bytes>", or an epoch's ([Epoch.Object])
	FileHash string // hex sha256 of the original file; V3-encrypted when encrypting
	Size     int64  // size of the stored (compressed/encrypted) bytes
	// Reused reports that the object was already stored ([DeltaOptions.Existing]): nothing
	// was compressed or encrypted for it, and put was not called.
	Reused bool
}

// Stored describes an epoch object that is already stored ([DeltaOptions.Existing]).
type Stored struct {
	Size int64 // the object's size
	// FileHash is the manifest file_hash an earlier bundle gave the object, if known: a hint
	// that spares an RSA signature, used only when it opens to the file's SHA-256.
	FileHash string
	// Tag is the [Epoch.HintTag] the earlier manifest gave with FileHash, if any: when it is
	// the epoch's tag of the object and FileHash, the hint is taken without the RSA check
	// (one HMAC instead of an RSA public operation per file).
	Tag string
}

// DeltaOptions controls [Delta]. With Key nil the files are stored unencrypted and
// FileHash is the plain SHA-256.
type DeltaOptions struct {
	// Key is the publisher's private key; when set, Session must be set too.
	Key *rsa.PrivateKey
	// Session is the bundle's session key ([Result.Session]): the device decrypts every
	// file with the session_key of the update answer.
	Session *SessionKey
	// Zip gives the file policy (hidden files); it must match the bundle's.
	Zip ZipOptions
	// Epoch, when set, names objects by content and form ([Epoch.Object]) instead of by their
	// stored bytes, so a name is known before anything is compressed; Session must then be
	// the epoch's (nil when unencrypted). Files whose object Existing holds are not prepared
	// again: their entry is computed from the file's hash and the stored object's size.
	Epoch *Epoch
	// Existing are the epoch's objects already stored, by object name (as [Epoch.Object]).
	Existing map[string]Stored
	// Listing, when set, is the build ([Scan] of dir with Zip's file policy), which Delta
	// does not walk again. When a [Package] of the bundle was given the same listing, Delta
	// takes each file's SHA-256 from it: a file whose object Existing holds is not read at
	// all, and a file it prepares must still have the bytes the bundle zipped.
	Listing *Listing
}

// Delta walks dir with the same file policy as WriteZip and calls put for each file with
// its stored bytes, so that a device installing the manifest gets the same directory as one
// unzipping the bundle (docs/protocol.md §4).
//
// The device strips one ".br" from a manifest name and Brotli-decodes the file. So a file
// is Brotli-compressed, and its FileName gets ".br", when the CLI's rule says so (at least
// [BrotliMinSize] bytes and saving more than [BrotliMinSaving]) and always when its own
// name ends in ".br" (a precompressed "app.js.br" travels as "app.js.br.br" and is written
// back byte for byte) or when it is empty (the plugin refuses an empty file from an
// encrypted bundle; Brotli makes it one byte). Every build path thus has its own manifest
// name. Then, when opts.Key is set, each file is AES-128-CBC encrypted with opts.Session
// (CBC restarts for each file) and its FileHash is the V3 checksum of the original file's
// SHA-256. Objects are named by the SHA-256 of the stored bytes, so an unchanged file maps
// to the same object across versions whenever the stored bytes are equal (always for
// unencrypted bundles; for encrypted ones only when the session key is reused).
//
// With opts.Epoch, objects are named by [Epoch.Object] instead, and files whose object
// opts.Existing holds are only hashed: their entries come back with Reused set and put is not
// called for them. That is what makes publishing a release whose files mostly did not change
// cost only the changed files (docs/protocol.md §4).
//
// Before anything is prepared, the names are checked with [CheckDelta]'s rules. Files are
// prepared in parallel, largest first, in memory up to [spoolMemory] bytes and in temporary
// files beyond (memory stays bounded); files with equal bytes share one file_hash (one RSA
// signature). put is called from one goroutine at a time, for each file as soon as it is
// prepared (so in no fixed order), with a body that is also an io.Seeker and io.ReaderAt,
// and must consume body before returning. The returned list is in the build's sorted order,
// whatever the order of the calls to put.
func Delta(ctx context.Context, dir string, opts DeltaOptions, put func(f DeltaFile, body io.Reader) error) ([]DeltaFile, error) {
	if opts.Key != nil && opts.Session == nil {
		return nil, fmt.Errorf("delta: encrypting needs the bundle's session key")
	}
	if e := opts.Epoch; e != nil && ((opts.Key == nil) != (e.Session == nil) || e.Session != nil && *e.Session != *opts.Session) {
		return nil, fmt.Errorf("delta: the session key must be the epoch's, and the epoch encrypted exactly when a key is given")
	}
	var entries []entry
	var err error
	if opts.Listing != nil {
		entries, _, err = opts.Listing.use(dir, opts.Zip)
	} else {
		entries, _, err = collect(dir, opts.Zip) // warnings: the zip of the same build reports them
	}
	if err != nil {
		return nil, err
	}
	if err := checkDeltaNames(entries); err != nil {
		return nil, err
	}
	var files []*entry
	for i := range entries {
		if !entries[i].dir {
			files = append(files, &entries[i])
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := opts.Zip.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type prepared struct {
		f    DeltaFile
		body *spool
		err  error
	}
	results := make([]prepared, len(files))
	// Files are handed out largest first and stored as they are ready: a build's few big
	// files (monaco's two 7 MB TypeScript workers) each take one worker for seconds, and in
	// walk order, with results stored in that order, the other workers would fill the
	// in-flight bound behind the first of them and wait.
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(files[b].size, files[a].size) })
	// slots bounds the files handed out and not yet stored: those being prepared and the
	// spools of those prepared.
	slots := make(chan struct{}, 2*workers)
	next := make(chan int)
	ready := make(chan int, len(files))
	hashes := &fileHashes{key: opts.Key, known: map[[sha256.Size]byte]string{}}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w deltaWorker
			for i := range next {
				p := &results[i]
				reused := false
				if opts.Epoch != nil {
					p.f, reused, p.err = reuseDelta(ctx, files[i], opts, hashes)
				}
				if !reused && p.err == nil {
					p.f, p.body, p.err = w.prepare(ctx, files[i], opts, hashes)
				}
				ready <- i
			}
		}()
	}
	go func() {
		defer close(next)
		for _, i := range order {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	// stop cancels the workers, waits for them and drops the spools not stored.
	stop := func() {
		cancel()
		wg.Wait()
		for i := range results {
			results[i].body.close()
		}
	}
	for range files {
		var i int
		select {
		case i = <-ready:
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		}
		p := &results[i]
		if p.err != nil {
			stop()
			return nil, p.err
		}
		if !p.f.Reused {
			err := put(p.f, p.body.reader())
			p.body.close()
			p.body = nil
			if err != nil {
				stop()
				return nil, fmt.Errorf("store delta file %q: %w", p.f.FileName, err)
			}
		}
		<-slots
	}
	stop()
	out := make([]DeltaFile, len(files))
	for i := range results {
		out[i] = results[i].f
	}
	return out, nil
}

// reuseDelta hashes one file and, when its epoch object is already stored, returns its
// manifest entry (reused true) without compressing or encrypting anything. A file under the
// Brotli threshold, or wrapped, has one possible form; a larger one is Brotli or raw
// depending on its bytes, and at most one of the two objects exists, as the rule is
// deterministic.
func reuseDelta(ctx context.Context, e *entry, opts DeltaOptions, hashes *fileHashes) (DeltaFile, bool, error) {
	if err := ctx.Err(); err != nil {
		return DeltaFile{}, false, err
	}
	sum := e.sum[:]
	if !e.hashed {
		src, err := os.Open(e.path)
		if err != nil {
			return DeltaFile{}, false, fmt.Errorf("delta file %q: %w", e.name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, src)
		src.Close()
		if err != nil {
			return DeltaFile{}, false, fmt.Errorf("delta file %q: %w", e.name, err)
		}
		sum = h.Sum(nil)
	}
	forms := []Form{FormRaw}
	switch {
	case e.size == 0 || strings.HasSuffix(e.name, ".br"):
		forms = []Form{FormWrapped}
	case e.size >= BrotliMinSize:
		forms = []Form{FormBrotli, FormRaw}
	}
	for _, form := range forms {
		object := opts.Epoch.Object(sum, form)
		st, ok := opts.Existing[object]
		if !ok {
			continue
		}
		name := e.name
		if form != FormRaw {
			name += ".br"
		}
		trusted := st.Tag != "" && st.FileHash != "" && hmac.Equal([]byte(st.Tag), []byte(opts.Epoch.HintTag(object, st.FileHash)))
		fileHash, err := hashes.get(sum, st.FileHash, trusted)
		if err != nil {
			return DeltaFile{}, false, fmt.Errorf("delta file %q: %w", e.name, err)
		}
		return DeltaFile{FileName: name, Object: object, FileHash: fileHash, Size: st.Size, Reused: true}, true, nil
	}
	return DeltaFile{}, false, nil
}

// fileHashes gives the manifest file_hash of each content once per [Delta]: files with equal
// bytes (4% of the files of a build like @ionic/core's, 23% of @excalidraw/excalidraw's)
// share one RSA signature or one hint check.
type fileHashes struct {
	key   *rsa.PrivateKey
	mu    sync.Mutex
	known map[[sha256.Size]byte]string
}

// get is the manifest file_hash of a file with SHA-256 sum: hint when it is the V3 checksum
// of sum under the key, else a new one; the plain hex sum when there is no key. The hint
// comes from a manifest read from the bucket, which whoever can write the bucket can edit,
// so it is checked with the public key (an RSA public operation, far cheaper than signing):
// taken unchecked, an edited hint would have the publisher register a file_hash of other
// content (say an older, signed version of the file) for this file. The check accepts only
// what [ChecksumV3] itself writes: PKCS#1 v1.5 type-1 padding is deterministic, so a valid
// hint is byte for byte the checksum signing would give.
//
// A trusted hint (its [Epoch.HintTag] checked) is taken as it is.
func (h *fileHashes) get(sum []byte, hint string, trusted bool) (string, error) {
	if h.key == nil {
		return hex.EncodeToString(sum), nil
	}
	k := [sha256.Size]byte(sum)
	h.mu.Lock()
	fileHash, ok := h.known[k]
	h.mu.Unlock()
	if ok {
		return fileHash, nil
	}
	if trusted {
		fileHash = hint
	} else if sig, err := hex.DecodeString(hint); err == nil && hint == hex.EncodeToString(sig) &&
		rsa.VerifyPKCS1v15(&h.key.PublicKey, crypto.Hash(0), sum, sig) == nil {
		fileHash = hint
	} else {
		var err error
		if fileHash, err = ChecksumV3(h.key, sum); err != nil {
			return "", err
		}
	}
	h.mu.Lock()
	h.known[k] = fileHash
	h.mu.Unlock()
	return fileHash, nil
}

// deltaWorker is what one of [Delta]'s workers keeps from file to file: its Brotli writers.
// A new writer allocates and zeroes its match finder's tables (32 MB at quality 9) on its
// first file, which cost more than compressing the small files of a build; a reset one
// writes the same bytes.
//
// It also keeps the buffers every file needs, so that preparing a build's thousands of small
// files does not allocate (and clear) a copy buffer and an encryption buffer for each.
type deltaWorker struct {
	brotli, wrapped *brotli.Writer
	copyBuf, encBuf []byte
}

// copy is io.Copy through the worker's buffer. src is wrapped so that an *os.File's WriteTo,
// which copies through a new buffer, is not used.
func (w *deltaWorker) copy(dst io.Writer, src io.Reader) (int64, error) {
	if w.copyBuf == nil {
		w.copyBuf = make([]byte, 32<<10)
	}
	if r, ok := src.(*bytes.Reader); ok {
		return r.WriteTo(dst)
	}
	return io.CopyBuffer(dst, struct{ io.Reader }{src}, w.copyBuf)
}

// brotliWriter returns the worker's Brotli writer for wrapped files (wrap) or for the CLI's
// rule, reset to write to dst.
func (w *deltaWorker) brotliWriter(dst io.Writer, wrap bool) *brotli.Writer {
	bw, opts := &w.brotli, brotli.WriterOptions{Quality: BrotliQuality}
	if wrap {
		bw, opts.LGWin = &w.wrapped, wrapLGWin
	}
	if *bw == nil {
		*bw = brotli.NewWriterOptions(dst, opts)
	} else {
		(*bw).Reset(dst)
	}
	return *bw
}

// prepare writes the stored form of one file to a spool and returns its manifest entry.
func (w *deltaWorker) prepare(ctx context.Context, e *entry, opts DeltaOptions, hashes *fileHashes) (DeltaFile, *spool, error) {
	if err := ctx.Err(); err != nil {
		return DeltaFile{}, nil, err
	}
	fail := func(err error) (DeltaFile, *spool, error) {
		return DeltaFile{}, nil, fmt.Errorf("delta file %q: %w", e.name, err)
	}
	src, err := os.Open(e.path)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	plainHash := sha256.New()
	name := e.name
	var body io.Reader = io.TeeReader(src, plainHash)

	// Compressed candidate first (compress, then encrypt).
	wrap := e.size == 0 || strings.HasSuffix(e.name, ".br")
	form := FormRaw
	if wrap || e.size >= BrotliMinSize && !sampleIncompressible(src) {
		br := newSpool(e.size)
		defer br.close()
		bw := w.brotliWriter(br, wrap)
		n, err := w.copy(bw, body)
		if err == nil {
			err = bw.Close()
		}
		if err == nil {
			err = br.err
		}
		if err != nil {
			return fail(err)
		}
		if wrap || br.n < n-BrotliMinSaving {
			body = br.reader()
			name += ".br"
			form = FormBrotli
			if wrap {
				form = FormWrapped
			}
		} else if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fail(err)
		} else {
			body = src // plain hash already complete
		}
	}

	out := newSpool(e.size + aes.BlockSize)
	ok := false
	defer func() {
		if !ok {
			out.close()
		}
	}()
	storedHash := sha256.New()
	cw := &countHashWriter{w: out, sum: storedHash}
	if opts.Key != nil {
		if w.encBuf == nil {
			w.encBuf = make([]byte, 0, encChunk)
		}
		enc := opts.Session.newEncrypterBuffer(cw, w.encBuf)
		if _, err := w.copy(enc, body); err != nil {
			return fail(err)
		}
		if err := enc.Close(); err != nil {
			return fail(err)
		}
	} else if _, err := w.copy(cw, body); err != nil {
		return fail(err)
	}
	if out.err != nil {
		return fail(out.err)
	}
	sum := plainHash.Sum(nil)
	if e.hashed && !bytes.Equal(sum, e.sum[:]) {
		return fail(errors.New("the file changed since the bundle was zipped"))
	}
	fileHash, err := hashes.get(sum, "", false)
	if err != nil {
		return fail(err)
	}
	object := "files/" + hex.EncodeToString(storedHash.Sum(nil))
	if opts.Epoch != nil {
		object = opts.Epoch.Object(sum, form)
	}
	ok = true
	return DeltaFile{
		FileName: name,
		Object:   object,
		FileHash: fileHash,
		Size:     cw.n,
	}, out, nil
}

// spoolMemory is the most a [spool] holds in memory.
const spoolMemory = 1 << 20

// spool holds one prepared form of a file: in memory up to [spoolMemory] bytes, in a
// temporary file beyond. Creating, writing, reading back and removing two temporary files
// for each of a build's thousands of small files cost more system time than preparing them.
type spool struct {
	mem  []byte
	file *os.File
	n    int64
	err  error // the first write error; Write reports it too
}

// newSpool returns an empty spool for about size bytes.
func newSpool(size int64) *spool {
	return &spool{mem: make([]byte, 0, min(size, spoolMemory))}
}

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.file == nil && len(s.mem)+len(p) > spoolMemory {
		if s.file, s.err = os.CreateTemp("", "ferry-delta-*"); s.err == nil {
			_, s.err = s.file.Write(s.mem)
		}
		s.mem = nil
	}
	n := 0
	switch {
	case s.err != nil:
	case s.file != nil:
		n, s.err = s.file.Write(p)
	default:
		s.mem, n = append(s.mem, p...), len(p)
	}
	s.n += int64(n)
	return n, s.err
}

// reader returns what was written, from its start; it is an io.ReadSeeker and io.ReaderAt.
// The spool must not be written after.
func (s *spool) reader() io.Reader {
	if s.file == nil {
		return bytes.NewReader(s.mem)
	}
	return io.NewSectionReader(s.file, 0, s.n)
}

// close removes the temporary file, if any. A nil spool is fine.
func (s *spool) close() {
	if s != nil && s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
}

// sampleIncompressible reports whether the start of f looks already compressed (fonts,
// images), with the zip's entropy test, and rewinds f. Brotli could not save the
// [BrotliMinSaving] bytes the rule asks on such a file, and trying costs most of a first delta
// release's time, so it is stored raw. The test is a function of the bytes, so the same file
// always gets the same form (and epoch object name).
func sampleIncompressible(f *os.File) bool {
	buf := make([]byte, sampleSize)
	n, _ := io.ReadFull(f, buf)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	return incompressible(buf[:n])
}

// CheckDelta reports whether the build in dir, walked with opts' file policy, can be
// published as a delta update, without preparing any file: the build rules of [WriteZip],
// plus the names the relay refuses in a manifest: a name with a control character, or one
// longer than [MaxManifestName] bytes once ".br" may be added ([ErrUnsafeFile]). Call it
// before uploading anything; [Delta] applies the same check.
func CheckDelta(dir string, opts ZipOptions) error {
	entries, _, err := collect(dir, opts)
	if err != nil {
		return err
	}
	return checkDeltaNames(entries)
}

func checkDeltaNames(entries []entry) error {
	for _, e := range entries {
		if e.dir {
			continue
		}
		if len(e.name)+len(".br") > MaxManifestName {
			return fmt.Errorf("%w: file name %.60q… is %d bytes; a delta manifest holds names of at most %d bytes, %d before the \".br\" it may add", ErrUnsafeFile, e.name, len(e.name), MaxManifestName, MaxManifestName-len(".br"))
		}
		for _, r := range e.name {
			if r < 0x20 || r == 0x7f || r == utf8.RuneError {
				return fmt.Errorf("%w: file name %q has a control character (or U+FFFD); the relay refuses such names in a delta manifest", ErrUnsafeFile, e.name)
			}
		}
	}
	return nil
}
