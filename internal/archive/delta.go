package archive

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
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
	Object   string // content-addressed object name: "files/<hex sha256 of stored bytes>"
	FileHash string // hex sha256 of the original file; V3-encrypted when encrypting
	Size     int64  // size of the stored (compressed/encrypted) bytes
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
// Before anything is prepared, the names are checked with [CheckDelta]'s rules. Files are
// prepared in parallel into temporary files (memory stays bounded); put is called from one
// goroutine at a time, in sorted order, and must consume body before returning. The
// returned list is in the same order.
func Delta(ctx context.Context, dir string, opts DeltaOptions, put func(f DeltaFile, body io.Reader) error) ([]DeltaFile, error) {
	if opts.Key != nil && opts.Session == nil {
		return nil, fmt.Errorf("delta: encrypting needs the bundle's session key")
	}
	entries, _, err := collect(dir, opts.Zip) // warnings: the zip of the same build reports them
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
		tmp  *os.File
		err  error
		done chan struct{}
	}
	results := make([]*prepared, len(files))
	for i := range results {
		results[i] = &prepared{done: make(chan struct{})}
	}
	slots := make(chan struct{}, 2*workers)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := results[i]
				p.f, p.tmp, p.err = prepareDelta(ctx, files[i], opts)
				close(p.done)
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range files {
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
	cleanup := func(from int) {
		cancel()
		wg.Wait()
		for _, p := range results[from:] {
			if p.tmp != nil {
				p.tmp.Close()
				os.Remove(p.tmp.Name())
			}
		}
	}
	out := make([]DeltaFile, 0, len(files))
	for i, p := range results {
		select {
		case <-p.done:
		case <-ctx.Done():
			cleanup(i)
			return nil, ctx.Err()
		}
		if p.err != nil {
			cleanup(i)
			return nil, p.err
		}
		err := put(p.f, p.tmp)
		p.tmp.Close()
		os.Remove(p.tmp.Name())
		p.tmp = nil
		<-slots
		if err != nil {
			cleanup(i + 1)
			return nil, fmt.Errorf("store delta file %q: %w", p.f.FileName, err)
		}
		out = append(out, p.f)
	}
	cleanup(len(results))
	return out, nil
}

// prepareDelta writes the stored form of one file to a temporary file (rewound) and
// returns its manifest entry.
func prepareDelta(ctx context.Context, e *entry, opts DeltaOptions) (DeltaFile, *os.File, error) {
	if err := ctx.Err(); err != nil {
		return DeltaFile{}, nil, err
	}
	fail := func(err error) (DeltaFile, *os.File, error) {
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
	var brTmp *os.File
	if wrap || e.size >= BrotliMinSize {
		brTmp, err = os.CreateTemp("", "ferry-delta-*.br")
		if err != nil {
			return fail(err)
		}
		defer func() { brTmp.Close(); os.Remove(brTmp.Name()) }()
		bo := brotli.WriterOptions{Quality: BrotliQuality}
		if wrap {
			bo.LGWin = wrapLGWin
		}
		bw := brotli.NewWriterOptions(brTmp, bo)
		n, err := io.Copy(bw, body)
		if err == nil {
			err = bw.Close()
		}
		if err != nil {
			return fail(err)
		}
		brSize, err := brTmp.Seek(0, io.SeekCurrent)
		if err != nil {
			return fail(err)
		}
		if _, err := brTmp.Seek(0, io.SeekStart); err != nil {
			return fail(err)
		}
		if wrap || brSize < n-BrotliMinSaving {
			body = brTmp
			name += ".br"
		} else if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fail(err)
		} else {
			body = src // plain hash already complete
		}
	}

	out, err := os.CreateTemp("", "ferry-delta-*")
	if err != nil {
		return fail(err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	storedHash := sha256.New()
	cw := &countHashWriter{w: out, sum: storedHash}
	if opts.Key != nil {
		enc := opts.Session.NewEncrypter(cw)
		if _, err := io.Copy(enc, body); err != nil {
			return fail(err)
		}
		if err := enc.Close(); err != nil {
			return fail(err)
		}
	} else if _, err := io.Copy(cw, body); err != nil {
		return fail(err)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	fileHash := hex.EncodeToString(plainHash.Sum(nil))
	if opts.Key != nil {
		if fileHash, err = ChecksumV3(opts.Key, plainHash.Sum(nil)); err != nil {
			return fail(err)
		}
	}
	ok = true
	return DeltaFile{
		FileName: name,
		Object:   "files/" + hex.EncodeToString(storedHash.Sum(nil)),
		FileHash: fileHash,
		Size:     cw.n,
	}, out, nil
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
