package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/klauspost/compress/flate"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// ZipOptions controls how a build directory becomes a zip. The zero value is the default
// used by the action.
type ZipOptions struct {
	// ModTime is the time stamped on every entry. Zero means 1980-01-01T00:00:00Z, the
	// earliest time a zip can hold. Use [ModTimeFromEpoch] to honour SOURCE_DATE_EPOCH.
	ModTime time.Time
	// IncludeHidden includes files and directories whose name starts with "." (.DS_Store,
	// .git, .env ...). By default they are skipped so secrets and VCS data never ship;
	// ".well-known" is always included.
	IncludeHidden bool
	// Workers is the number of parallel compressors; zero means runtime.GOMAXPROCS(0).
	// The output does not depend on it.
	Workers int
	// Level is the Deflate level (1-9) of every entry; zero means the default,
	// [CompressionLevel] for files that fit in one chunk (up to 1 MiB) and
	// [ChunkedCompressionLevel] for the chunks of bigger files.
	// Lower is faster and larger. The archive's bytes depend on it, so reproducing a
	// bundle needs the same level.
	Level int
}

// DefaultModTime is the entry time used when [ZipOptions.ModTime] is zero.
var DefaultModTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// ModTimeFromEpoch parses a SOURCE_DATE_EPOCH value (decimal seconds since the Unix epoch)
// into an entry time. The empty string gives the zero time (the default). Times before 1980
// or after 2107 cannot be stored in a zip and give an error. The caller reads the variable.
func ModTimeFromEpoch(sourceDateEpoch string) (time.Time, error) {
	if sourceDateEpoch == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds: %w", sourceDateEpoch, err)
	}
	t := time.Unix(n, 0).UTC()
	if t.Before(DefaultModTime) || t.Year() > 2107 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is outside the range a zip can store (1980-2107)", sourceDateEpoch)
	}
	return t, nil
}

// ZipStats describes a written zip.
type ZipStats struct {
	Files      int    // regular file entries
	InputBytes int64  // total size of those files
	ZipSize    int64  // bytes written
	SHA256     string // lowercase hex SHA-256 of the bytes written: the plain checksum
	// Warnings are problems devices cope with (name twins with the same bytes), for the
	// caller to show.
	Warnings []string
}

// WriteZip writes the deterministic zip of dir to w and returns its statistics. It walks
// dir with the policy described in the package comment, compresses files in parallel and
// writes entries in sorted order; the same directory content always gives the same bytes.
// Memory use is bounded (a few MiB per worker) whatever the size of the build. WriteZip
// blocks until done; it does not close w.
func WriteZip(ctx context.Context, w io.Writer, dir string, opts ZipOptions) (*ZipStats, error) {
	return writeZip(ctx, w, dir, opts, nil, nil)
}

// chunkSize is the unit of parallel compression. Files larger than this are cut into
// chunks compressed independently (each primed with the previous 32 KiB as dictionary and
// ended with a sync flush, as pigz does), so one big file still uses every core.
const chunkSize = 1 << 20

const dictSize = 32 << 10

// slotSize is the unit of the input bytes in flight (see writeZip).
const slotSize = 64 << 10

// job is one chunk of one entry.
type job struct {
	e     *entry
	off   int64 // chunk offset in the file
	n     int64 // chunk length
	last  bool  // last chunk of the entry
	index int   // chunk index in the entry
	hash  bool  // record the entry's SHA-256 (a Listing's pass)
	res   chan result
}

// slots is the number of slotSize units of the in-flight bound the chunk takes.
func (j *job) slots() int {
	return max(1, int((j.n+slotSize-1)/slotSize))
}

type result struct {
	data []byte        // compressed bytes
	buf  *bytes.Buffer // holds data; back to getBuffer's pool once written
	crc  uint32        // CRC-32 of the chunk's input
	n    int64         // input bytes actually compressed
	err  error
	// plain holds a copy of the input of a chunk of a file cut in several, when hashing:
	// their chunks are compressed in parallel and hashed in order by writeEntries.
	plain *bytes.Buffer
}

type countHashWriter struct {
	w   io.Writer
	n   int64
	sum hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func (c *countHashWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	_, _ = c.sum.Write(p[:n]) // a hash never fails to write
	return n, err
}

// writeZip is WriteZip, with progress reports and, when l is set, the entries of l instead of
// a walk of dir, whose files' SHA-256 it records in l.
func writeZip(ctx context.Context, w io.Writer, dir string, opts ZipOptions, progress func(done, total int64), l *Listing) (*ZipStats, error) {
	var entries []entry
	var warnings []string
	var err error
	if l != nil {
		entries, warnings, err = l.use(dir, opts)
	} else {
		entries, warnings, err = collect(dir, opts)
	}
	if err != nil {
		return nil, err
	}
	var total int64
	files := 0
	for _, e := range entries {
		if !e.dir {
			total += e.size
			files++
		}
	}
	mod := opts.ModTime
	if mod.IsZero() {
		mod = DefaultModTime
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	level, chunkedLevel := opts.Level, opts.Level
	if level == 0 {
		level, chunkedLevel = CompressionLevel, ChunkedCompressionLevel
	}
	if level < flate.BestSpeed || level > flate.BestCompression {
		return nil, fmt.Errorf("deflate level %d: want 1-9", level)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Bound the input bytes in flight (compressed or being compressed) to about
	// (2*workers + 2) * chunkSize, counted in slots of slotSize: a chunk takes one slot per
	// slotSize bytes, and a small file one slot, so that a build of many small files keeps
	// many in flight and the compressors do not wait for the writer file by file.
	inflight := (2*workers + 2) * (chunkSize / slotSize)
	slots := make(chan struct{}, inflight)
	jobs := make(chan *job, inflight)
	order := make(chan *job, inflight)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newCompressor(level, chunkedLevel)
			for j := range jobs {
				j.res <- c.compress(ctx, j)
			}
		}()
	}
	go func() { // producer: hands out chunks in zip order
		defer close(order)
		defer close(jobs)
		for i := range entries {
			e := &entries[i]
			if e.dir {
				j := &job{e: e, last: true, res: make(chan result, 1)}
				j.res <- result{}
				select {
				case order <- j:
				case <-ctx.Done():
					return
				}
				continue
			}
			for k, off := 0, int64(0); ; k++ {
				n := min(int64(chunkSize), e.size-off)
				j := &job{e: e, off: off, n: n, index: k, last: off+n >= e.size, hash: l != nil, res: make(chan result, 1)}
				for range j.slots() {
					select {
					case slots <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
				select {
				case order <- j:
				case <-ctx.Done():
					return
				}
				select {
				case jobs <- j:
				case <-ctx.Done():
					return
				}
				off += n
				if j.last {
					break
				}
			}
		}
	}()

	cw := &countHashWriter{w: w, sum: sha256.New()}
	zw := zip.NewWriter(cw)
	err = writeEntries(ctx, zw, order, slots, mod, total, progress)
	cancel()
	for range order { // drain so the producer exits
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write zip directory: %w", err)
	}
	return &ZipStats{Files: files, InputBytes: total, ZipSize: cw.n, SHA256: hex.EncodeToString(cw.sum.Sum(nil)), Warnings: warnings}, nil
}

func writeEntries(ctx context.Context, zw *zip.Writer, order <-chan *job, slots <-chan struct{}, mod time.Time, total int64, progress func(done, total int64)) error {
	dosDate, dosTime := msDosTime(mod)
	var done int64
	var fh *zip.FileHeader
	var fw io.Writer
	var crc uint32
	var raw, comp int64
	var plain hash.Hash // the SHA-256 of a file cut in chunks, when hashing
	for j := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		var r result
		select {
		case r = <-j.res:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return r.err
		}
		if j.e.dir {
			// The MS-DOS fields alone: Modified would add an extended-timestamp extra field.
			h := &zip.FileHeader{Name: j.e.name, Method: zip.Store, ModifiedDate: dosDate, ModifiedTime: dosTime} //nolint:staticcheck // deliberate, see above
			h.SetMode(os.ModeDir | 0o755)
			if _, err := zw.CreateRaw(h); err != nil {
				return fmt.Errorf("write zip entry %q: %w", j.e.name, err)
			}
			continue
		}
		if j.index == 0 {
			fh = &zip.FileHeader{Name: j.e.name, Method: zip.Deflate, ModifiedDate: dosDate, ModifiedTime: dosTime} //nolint:staticcheck // no extended-timestamp field, as above
			fh.SetMode(0o644)
			if j.last {
				// Whole entry known: sizes in the local header, no data descriptor (the
				// layout every reader, including ZipInputStream, handles).
				fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = r.crc, uint64(len(r.data)), uint64(r.n)
			} else {
				// A big file streams chunk by chunk: Deflate with a data descriptor, which
				// ZipInputStream accepts for deflated entries.
				fh.Flags |= 0x8
			}
			var err error
			if fw, err = zw.CreateRaw(fh); err != nil {
				return fmt.Errorf("write zip entry %q: %w", j.e.name, err)
			}
			crc, raw, comp = 0, 0, 0
		}
		if _, err := fw.Write(r.data); err != nil {
			return fmt.Errorf("write zip entry %q: %w", j.e.name, err)
		}
		putBuffer(r.buf)
		if r.plain != nil {
			if j.index == 0 {
				plain = sha256.New()
			}
			plain.Write(r.plain.Bytes())
			putBuffer(r.plain)
			if j.last {
				plain.Sum(j.e.sum[:0])
				j.e.hashed = true
			}
		}
		for range j.slots() {
			<-slots
		}
		if j.index == 0 {
			crc = r.crc
		} else {
			crc = crc32Combine(crc, r.crc, r.n)
		}
		raw += r.n
		comp += int64(len(r.data))
		done += r.n
		if j.last && j.index > 0 {
			fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = crc, uint64(comp), uint64(raw)
			// archive/zip writes the 32-bit fields into a raw entry's data descriptor and
			// directory record when it is not zip64, so they are needed too.
			fh.CompressedSize, fh.UncompressedSize = uint32(min(comp, 1<<32-1)), uint32(min(raw, 1<<32-1)) //nolint:staticcheck // see above
		}
		if progress != nil {
			progress(done, total)
		}
	}
	return ctx.Err()
}

// msDosTime converts t (UTC) to the MS-DOS date and time fields of a zip header.
func msDosTime(t time.Time) (uint16, uint16) {
	t = t.UTC()
	date := uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	tm := uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, tm
}

// CompressionLevel is the default Deflate level of a file that fits in one chunk (up to
// 1 MiB), and ChunkedCompressionLevel that of the chunks of bigger files. Levels are those
// of github.com/klauspost/compress/flate, whose levels 7 to 9 are zlib's lazy matcher with
// shorter searches: on the corpora of docs/benchmarks.md its level 7 gives bundles 0.4 to
// 1.8 % larger than the CLI's (zlib level 6), its level 8 within 0.2 % of them for 10 to
// 60 % more CPU. The split is the cheapest tried that keeps all three within 1 % (+0.2 to
// +0.9 %): level 8 saves more bytes per CPU second on small files than on the chunks of
// big ones, which are also the longest jobs. Levels 1 to 6 are faster matchers; level 6
// costs 40 % less CPU than 7 for 0.3 to 2 % more bytes.
const (
	CompressionLevel        = 8
	ChunkedCompressionLevel = 7
)

// Incompressible data (fonts, images, already-compressed files) is detected from a sample
// and written as Deflate "stored" blocks (still method Deflate, which ZipInputStream needs),
// which costs a copy instead of a futile match search. A chunk counts as incompressible
// when the byte entropy of its first sampleSize bytes is above 7.85 bits per byte
// (Huffman coding could not shrink it by more than about 2%). Chunks under minSample are
// always compressed. The test uses integer arithmetic only, so the choice, and the
// archive, is the same on every platform.
const (
	sampleSize              = 16 << 10
	minSample               = 2 << 10
	incompressibleCentibits = 785 // 7.85 bits per byte
)

// log2Table returns the table t with t[c] = round(c * log2(c) * 2^16), for the fixed-point
// entropy of a sample. It is built on first use, not at package init: building it (16 Ki
// logarithms, 128 KiB) would otherwise be paid by every process that links this package,
// `ferry --version` and `ferry verify` included, not only by the ones that compress.
var log2Table = sync.OnceValue(func() []int64 {
	t := make([]int64, sampleSize+1)
	for c := 2; c <= sampleSize; c++ {
		t[c] = int64(math.Round(float64(c) * math.Log2(float64(c)) * (1 << 16)))
	}
	return t
})

// incompressible reports whether in looks like already-compressed data.
func incompressible(in []byte) bool {
	if len(in) < minSample {
		return false
	}
	s := in[:min(len(in), sampleSize)]
	var hist [256]int
	for _, b := range s {
		hist[b]++
	}
	// n*H = n*log2(n) - sum(c*log2(c)), in 1/65536 bits.
	log2 := log2Table()
	bits := log2[len(s)]
	for _, c := range hist {
		bits -= log2[c]
	}
	return bits*100 > incompressibleCentibits*(1<<16)*int64(len(s))
}

// compressor is one worker's reusable state.
type compressor struct {
	fw      *flate.Writer // level: files that fit in one chunk
	chunked *flate.Writer // chunkedLevel: the chunks of bigger files (fw when the same)
	store   *flate.Writer // flate.NoCompression
	buf     []byte        // dictionary, chunk and one byte
}

func newCompressor(level, chunkedLevel int) *compressor {
	c := &compressor{buf: make([]byte, dictSize+chunkSize+1)}
	c.fw, _ = flate.NewWriter(nil, level)
	c.chunked = c.fw
	if chunkedLevel != level {
		c.chunked, _ = flate.NewWriter(nil, chunkedLevel)
	}
	c.store, _ = flate.NewWriter(nil, flate.NoCompression)
	return c
}

func (c *compressor) compress(ctx context.Context, j *job) result {
	if err := ctx.Err(); err != nil {
		return result{err: err}
	}
	fail := func(err error) result { return result{err: fmt.Errorf("read %q: %w", j.e.name, err)} }
	// One read takes the chunk, the 32 KiB before it (the dictionary of a later chunk) and,
	// for the last chunk, one byte more: a file that grew would give a zip that does not
	// match the directory.
	d := min(int64(dictSize), j.off)
	want := d + j.n
	if j.last {
		want++
	}
	got, err := readFileAt(j.e.path, c.buf[:want], j.off-d, int(d+j.n))
	switch {
	case err != nil:
		return fail(err)
	case int64(got) < d+j.n:
		return fail(errors.New("file shrank while packaging"))
	case int64(got) > d+j.n:
		return fail(errors.New("file grew while packaging"))
	}
	dict, in := c.buf[:d], c.buf[d:d+j.n]
	out := getBuffer(int(j.n/2) + 64)
	var fw *flate.Writer
	if incompressible(in) {
		fw = c.store
		fw.Reset(out)
	} else {
		// ResetDict, not Reset: Reset would prime the window with the previous chunk's
		// dictionary, which the reader does not have. The first chunk has none.
		fw = c.fw
		if j.e.size > chunkSize {
			fw = c.chunked
		}
		fw.ResetDict(out, dict)
	}
	if _, err := fw.Write(in); err != nil {
		return fail(err)
	}
	if j.last {
		err = fw.Close()
	} else {
		err = fw.Flush()
	}
	if err != nil {
		return fail(err)
	}
	r := result{data: out.Bytes(), buf: out, crc: crc32.ChecksumIEEE(in), n: j.n}
	switch {
	case !j.hash:
	case j.index == 0 && j.last: // the whole file
		j.e.sum, j.e.hashed = sha256.Sum256(in), true
	default:
		r.plain = getBuffer(len(in))
		r.plain.Write(in)
	}
	return r
}

// buffers recycles the compressed chunks once written, so packaging does not allocate
// (and the garbage collector clear) a new one per file.
var buffers sync.Pool

func getBuffer(n int) *bytes.Buffer {
	b, _ := buffers.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Reset()
	b.Grow(n)
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b != nil && b.Cap() <= 2*chunkSize {
		buffers.Put(b)
	}
}

// crc32Combine returns the CRC-32 (IEEE) of A‖B given crc1 = CRC(A), crc2 = CRC(B) and
// len2 = len(B): crc1 times x^(8·len2) modulo the CRC polynomial, plus crc2 (zlib 1.2.12's
// crc32_combine, a few dozen 32-bit carry-less products whatever len2 is).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	return multModP(x2nModP(len2, 3), crc1) ^ crc2
}

// crcPoly is the IEEE polynomial in the reflected bit order of CRC-32, where bit 31 is x^0.
const crcPoly = 0xedb88320

// multModP returns a·b modulo the CRC polynomial, both in the reflected order.
func multModP(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nTable[k] is x^(2^k) modulo the CRC polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// x2nModP returns x^(n·2^k) modulo the CRC polynomial.
func x2nModP(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		k++
	}
	return p
}
