package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// destinations
	_ "gocloud.dev/blob/fileblob"  // file:// destinations
	_ "gocloud.dev/blob/gcsblob"   // gs:// destinations
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/ferryhq/ferry/internal/redact"
)

// CacheControl is set on every bucket object: a published URL never changes content.
const CacheControl = "public, max-age=31536000, immutable"

// metaSHA256 is the object metadata key holding the hex SHA-256 of the content.
const metaSHA256 = "sha256"

// Bucket publishes to a gocloud.dev/blob bucket. It is safe for concurrent use.
type Bucket struct {
	b      *blob.Bucket
	scheme string
	prefix string // the URL's prefix parameter, part of every key
	root   string // file:// only: the directory, for file URLs
	opts   Options
}

var _ Publisher = (*Bucket)(nil)

// OpenBucket opens a bucket URL (s3://, gs://, azblob://, file://) with the gocloud.dev
// driver's query parameters, plus "prefix" for a key prefix. It does not contact the bucket.
func OpenBucket(ctx context.Context, rawURL string, opts Options) (*Bucket, error) {
	opts.defaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDestination, err)
	}
	switch u.Scheme {
	case "s3", "gs", "azblob", "file":
	default:
		return nil, fmt.Errorf("%w: %q: want %q or a bucket URL (s3://, gs://, azblob://, file://)", ErrDestination, redact.URL(u.String()), DestinationGitHub)
	}
	if opts.PublicBaseURL != "" {
		pu, err := url.Parse(opts.PublicBaseURL)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("%w: public base URL %q must be an absolute http(s) URL", ErrDestination, opts.PublicBaseURL)
		}
	}
	pb := &Bucket{scheme: u.Scheme, prefix: u.Query().Get("prefix"), opts: opts}
	openURL := rawURL
	if u.Scheme == "file" {
		pb.root = filepath.FromSlash(u.Path)
		// fileblob writes each object to a temporary file and renames it into place. By
		// default that file is in the system's temporary directory, and the rename fails
		// ("invalid cross-device link") when the bucket's directory is on another
		// filesystem: a mounted volume or a tmpfs. Next to the object the rename always
		// works; List hides the temporary files ([isFileblobTemp]).
		if q := u.Query(); q.Get("no_tmp_dir") == "" {
			q.Set("no_tmp_dir", "1")
			next := *u
			next.RawQuery = q.Encode()
			openURL = next.String()
		}
	}
	if u.Scheme == "s3" && opts.Getenv != nil && opts.Getenv("AWS_ACCESS_KEY_ID") != "" {
		mux := new(blob.URLMux)
		mux.RegisterBucket("s3", &s3Opener{getenv: opts.Getenv})
		pb.b, err = mux.OpenBucket(ctx, openURL)
	} else {
		pb.b, err = blob.OpenBucket(ctx, openURL)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrDestination, redact.URL(u.String()), err)
	}
	return pb, nil
}

// ListedObject is one object [Bucket.List] found.
type ListedObject struct {
	Key     string    `json:"key"` // relative to the destination's prefix, as File.Name
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modified"`
}

// List returns every object whose key starts with prefix (relative to the destination's
// prefix), sorted by key.
func (pb *Bucket) List(ctx context.Context, prefix string) ([]ListedObject, error) {
	if pb.scheme == "file" {
		if out, ok := pb.listFiles(prefix, false); ok {
			return out, nil
		}
	}
	var out []ListedObject
	it := pb.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, err)
		}
		if !o.IsDir && !(pb.scheme == "file" && isFileblobTemp(o.Key)) {
			out = append(out, ListedObject{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
		}
	}
	slices.SortFunc(out, func(a, b ListedObject) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// listFiles is List for a file:// bucket, walking its directory as gocloud's fileblob does
// but without opening each object's attributes file, which fileblob reads to report an MD5
// that List does not return, once per object and again for every page of 1000 objects
// before it: the listing of a key epoch's thousands of objects cost more than preparing
// a release's changed files. ok is false, for the caller to list through gocloud, when a
// key could hold one of fileblob's escape sequences ("__0x"), which only it decodes. With
// temps, it lists fileblob's temporary files ([isFileblobTemp]) instead of the objects.
func (pb *Bucket) listFiles(prefix string, temps bool) (out []ListedObject, ok bool) {
	full := pb.prefix + prefix
	if strings.Contains(full, "__0x") || strings.Contains(full, "..") || strings.Contains(full, "//") || strings.ContainsRune(full, '\\') {
		return nil, false
	}
	root := pb.root
	if i := strings.LastIndex(full, "/"); i >= 0 {
		root = filepath.Join(root, filepath.FromSlash(full[:i]))
	}
	ok = true
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || strings.HasSuffix(path, ".attrs") || !d.IsDir() && isFileblobTemp(path) != temps { // fileblob skips unreadable entries too
			return nil
		}
		rel, err := filepath.Rel(pb.root, path)
		if err != nil || rel == "." {
			return nil
		}
		key := filepath.ToSlash(rel)
		if strings.Contains(key, "__0x") {
			ok = false
			return filepath.SkipAll
		}
		if d.IsDir() {
			if key += "/"; len(key) > len(full) && !strings.HasPrefix(key, full) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, full) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, ListedObject{Key: strings.TrimPrefix(key, pb.prefix), Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if !ok {
		return nil, false
	}
	slices.SortFunc(out, func(a, b ListedObject) int { return strings.Compare(a.Key, b.Key) })
	return out, true
}

// Leftovers returns the temporary files under prefix that writers to a file:// bucket left
// when they died mid-write, each with its size and last write. They are not objects: List
// hides them and no bundle references them, but they take space until Delete removes them
// (`ferry admin bundles prune` does, once they are older than its cut-off). Buckets of
// other schemes leave no partial object under a key, and a file:// key that could hold an
// escape sequence of fileblob's is not looked into: both return nothing.
func (pb *Bucket) Leftovers(prefix string) []ListedObject {
	if pb.scheme != "file" {
		return nil
	}
	out, _ := pb.listFiles(prefix, true)
	return out
}

// isFileblobTemp reports whether name is one of fileblob's temporary files: the object's
// path, a dot, the hexadecimal time it was created in nanoseconds, and ".tmp". One is there
// while an object is written, and is left behind if the writer dies; it is not an object.
// Ferry writes no key of that shape.
func isFileblobTemp(name string) bool {
	rest, ok := strings.CutSuffix(name, ".tmp")
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 || len(rest)-i-1 < 1 || len(rest)-i-1 > 16 {
		return false
	}
	for _, c := range rest[i+1:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Delete removes the object under key; a key that does not exist is no error.
func (pb *Bucket) Delete(ctx context.Context, key string) error {
	if err := pb.b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// Prefix is the destination URL's prefix parameter, which every key is under in the
// bucket itself (and in the URLs [Bucket.Put] returns).
func (pb *Bucket) Prefix() string { return pb.prefix }

// Close closes the bucket.
func (pb *Bucket) Close() error { return pb.b.Close() }

// Put writes f under its key unless the same bytes are already there. An existing object
// with other bytes is an error wrapping [ErrAssetExists]. If reading f.Body fails part-way
// the write is aborted and no object appears.
func (pb *Bucket) Put(ctx context.Context, f File) (*Object, error) {
	if err := checkName(f.Name, true); err != nil {
		return nil, err
	}
	size, sum, md5sum, err := digest(f.Body)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", f.Name, err)
	}
	obj := &Object{Name: f.Name, Size: size, SHA256: sum}
	reused, err := pb.same(ctx, f.Name, size, sum, md5sum)
	if err != nil {
		return nil, err
	}
	if !reused {
		err := pb.write(ctx, f, size, sum, md5sum)
		if gcerrors.Code(errors.Unwrap(err)) == gcerrors.FailedPrecondition || gcerrors.Code(err) == gcerrors.FailedPrecondition {
			// Another writer created the key since we looked: compare with what it wrote.
			if reused, err = pb.same(ctx, f.Name, size, sum, md5sum); err == nil && !reused {
				err = fmt.Errorf("write %q: object appeared during upload", f.Name)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	obj.Reused = reused
	if err := pb.url(ctx, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// URL returns the [Object] of an object already stored under name, with the URL devices
// download it from, without reading or writing it: for reusing objects found by [Bucket.List].
func (pb *Bucket) URL(ctx context.Context, name string) (*Object, error) {
	if err := checkName(name, true); err != nil {
		return nil, err
	}
	obj := &Object{Name: name, Reused: true}
	if err := pb.url(ctx, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Read returns the content of the object name, refusing one larger than limit bytes.
func (pb *Bucket) Read(ctx context.Context, name string, limit int64) ([]byte, error) {
	r, err := pb.b.NewReader(ctx, name, nil)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	defer r.Close()
	if r.Size() > limit {
		return nil, fmt.Errorf("read %q: %d bytes, more than the %d expected", name, r.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("more than the %d bytes expected", limit)
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	return b, nil
}

// same reports whether key already holds exactly these bytes; an error wrapping
// ErrAssetExists when it holds others; false when it does not exist.
func (pb *Bucket) same(ctx context.Context, key string, size int64, sum string, md5sum []byte) (bool, error) {
	attrs, err := pb.b.Attributes(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %q: %w", key, err)
	}
	differ := func(why string) (bool, error) {
		e := &ExistsError{Name: key, Detail: why}
		obj := &Object{Name: key}
		if pb.url(ctx, obj) == nil {
			e.URL = obj.URL
		}
		return false, e
	}
	if attrs.Size != size {
		return differ(fmt.Sprintf("size %d, ours %d", attrs.Size, size))
	}
	if got := attrs.Metadata[metaSHA256]; got != "" {
		if got != sum {
			return differ("sha256 " + got + ", ours " + sum)
		}
		return true, nil
	}
	if len(attrs.MD5) == len(md5sum) {
		if string(attrs.MD5) != string(md5sum) {
			return differ("md5 differs")
		}
		return true, nil
	}
	// No digest stored (e.g. file:// with metadata=skip): read the object and hash it.
	r, err := pb.b.NewReader(ctx, key, nil)
	if err != nil {
		return false, fmt.Errorf("read %q: %w", key, err)
	}
	defer r.Close()
	_, got, err := hashReader(r)
	if err != nil {
		return false, fmt.Errorf("read %q: %w", key, err)
	}
	if got != sum {
		return differ("sha256 " + got + ", ours " + sum)
	}
	return true, nil
}

// write uploads f under a context it cancels on any read error, so the driver aborts the
// write (a closed writer would commit a truncated object).
func (pb *Bucket) write(ctx context.Context, f File, size int64, sum string, md5sum []byte) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := pb.b.NewWriter(wctx, f.Name, &blob.WriterOptions{
		ContentType:                 contentType(f.ContentType),
		DisableContentTypeDetection: true,
		CacheControl:                CacheControl,
		Metadata:                    map[string]string{metaSHA256: sum},
		ContentMD5:                  md5sum,
		IfNotExist:                  true,
	})
	if err != nil {
		return fmt.Errorf("write %q: %w", f.Name, err)
	}
	start := time.Now()
	n, err := copyObject(w, newProgressReader(f.Body, f.Name, size, &pb.opts))
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, want %d: the file changed while uploading", n, size)
	}
	if err != nil {
		cancel()
		_ = w.Close()
		return fmt.Errorf("write %q: %w", f.Name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %q: %w", f.Name, err)
	}
	pb.opts.Logger.DebugContext(ctx, "object written", "key", f.Name, "size", size, "duration", time.Since(start))
	return nil
}

// copyBuffers recycles [copyObject]'s buffers.
var copyBuffers = sync.Pool{New: func() any { return new([1 << 20]byte) }}

// copyObject copies r to w with a recycled buffer. blob.Writer.ReadFrom allocates a new
// 1 MiB buffer for each object when r is not an io.WriterTo (the progress reader is not),
// and clearing it cost more than writing the small objects of a delta release; w is
// wrapped so that io.CopyBuffer cannot call it.
func copyObject(w io.Writer, r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[1 << 20]byte)
	defer copyBuffers.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{w}, r, buf[:])
}

// url fills obj.URL: the public base URL, a presigned URL, or for file:// a file URL.
func (pb *Bucket) url(ctx context.Context, obj *Object) error {
	if pb.opts.PublicBaseURL != "" {
		obj.URL = strings.TrimRight(pb.opts.PublicBaseURL, "/") + "/" + escapeKey(pb.prefix+obj.Name)
		return nil
	}
	exp := pb.opts.SignedURLExpiry
	s, err := pb.b.SignedURL(ctx, obj.Name, &blob.SignedURLOptions{Expiry: exp})
	if gcerrors.Code(err) == gcerrors.Unimplemented && pb.scheme == "file" {
		obj.URL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(pb.root, filepath.FromSlash(pb.prefix+obj.Name)))}).String()
		return nil
	}
	if err != nil {
		return fmt.Errorf("sign URL for %q (set a public base URL to avoid presigning): %w", obj.Name, err)
	}
	obj.URL = s
	obj.Expires = time.Now().Add(exp)
	pb.opts.Logger.WarnContext(ctx, "no public base URL: using a presigned URL, which stops working when it expires; set public-base-url for a permanent URL",
		"key", obj.Name, "expires", obj.Expires.UTC().Format(time.RFC3339))
	return nil
}

func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// s3Opener opens s3:// URLs like s3blob.URLOpener, but with static credentials read through
// an injected getenv instead of the process environment.
type s3Opener struct {
	getenv func(string) string
}

func (o *s3Opener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	var bo s3blob.Options
	var s3opts []func(*s3.Options)
	take := func(key string) string { v := q.Get(key); q.Del(key); return v }
	boolParam := func(key string, set func(bool)) error {
		if v := take(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("invalid value for %q: %w", key, err)
			}
			set(b)
		}
		return nil
	}
	for _, k := range []string{"use_path_style", "s3ForcePathStyle"} {
		if err := boolParam(k, func(b bool) { s3opts = append(s3opts, func(o *s3.Options) { o.UsePathStyle = b }) }); err != nil {
			return nil, err
		}
	}
	if err := boolParam("disable_https", func(b bool) { s3opts = append(s3opts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = b }) }); err != nil {
		return nil, err
	}
	if err := boolParam("accelerate", func(b bool) { s3opts = append(s3opts, func(o *s3.Options) { o.UseAccelerate = b }) }); err != nil {
		return nil, err
	}
	if v := take("ssetype"); v != "" {
		bo.EncryptionType = types.ServerSideEncryption(v)
	}
	bo.KMSEncryptionID = take("kmskeyid")
	if q.Get("region") == "" {
		if r := o.getenv("AWS_REGION"); r != "" {
			q.Set("region", r)
		}
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	cfg.Credentials = credentials.NewStaticCredentialsProvider(o.getenv("AWS_ACCESS_KEY_ID"), o.getenv("AWS_SECRET_ACCESS_KEY"), o.getenv("AWS_SESSION_TOKEN"))
	bo.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, s3opts...), u.Host, &bo)
}
