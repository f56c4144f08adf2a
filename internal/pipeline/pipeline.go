package pipeline

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/publish"
	"github.com/ferryhq/ferry/internal/redact"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/sign"
)

// Context is the build the pipeline runs for: the repository, ref, commit and run, as the
// front end reads them (the action from GitHub's runner, `ferry publish` from flags or the
// CI's variables).
type Context struct {
	Repository, Ref, RefName, RefType, SHA string
	RunID, RunAttempt, EventName           string
	ServerURL, APIURL, Visibility          string
	WorkflowRef, RepositoryID, OwnerID     string
	RunnerEnvironment                      string

	// IDToken says the front end holds an OIDC token it can register with (Pipeline.IDToken),
	// other than the Actions token the OIDC input of Validate looks for.
	IDToken bool
}

// Warnings are problems that do not stop the run.
func Warnings(c *Config) []string {
	var w []string
	if c.Destination == publish.DestinationGitHub && c.Private {
		w = append(w, "the repository is not public, so its release assets need a GitHub login to download: the bundle is registered with its asset ids and devices download it through the relay, which needs release_access for the app (see docs/relay.md#private-repositories). Or use a bucket destination with public-base-url.")
	}
	if c.EncKey == nil {
		w = append(w, "no encryption-key: the bundle is published unencrypted, and anyone with its URL can read your web build. Create a key with `ferry keys` and pass it from a secret.")
	}
	switch {
	case c.Signing == signingNone && c.SigningChosen:
		w = append(w, "signing is none: the bundle has no signature or provenance.")
	case c.Signing == signingNone:
		w = append(w, "signing is none: the bundle has no signature or provenance. Grant `permissions: id-token: write` for keyless signing.")
	}
	return w
}

// UI is how the pipeline talks to the person reading the job log; the action renders it as
// workflow commands (groups, annotations, masks), the CLI as plain lines.
type UI interface {
	Group(title string) // a stage starts
	EndGroup()          // the stage ended
	Warn(msg string)    // a problem that does not stop the run
	Notice(msg string)  // something worth knowing
	Mask(secret string) // never print this value again
}

// Pipeline runs the stages: package → sign → publish → register.
type Pipeline struct {
	Config  *Config
	Context *Context
	UI      UI
	Log     *slog.Logger
	Getenv  func(string) string
	// IDToken returns an OIDC token for audience: for keyless signing and OIDC
	// registration. Nil when the front end has none.
	IDToken func(ctx context.Context, audience string) (string, error)
	// Attest stores keyless provenance in GitHub's attestations (best effort); the action
	// sets it when it runs on GitHub.
	Attest bool
	// UserAgent names the front end to the relay, e.g. ferry-action.
	UserAgent string

	// progressEvery is how often a long stage logs its progress (2 s when zero).
	progressEvery time.Duration
}

// result is everything the outputs and the summary report.
type Result struct {
	FailedStage string
	version     string
	name        string // file name of the archive
	pk          *packed
	mode        sign.Mode
	signature   *channel.Signature // what verify-before-publish found, for the registration
	bundle      *publish.Object
	sigURL      string
	provURL     string
	manifestURL string
	// assets is set when the release is in a private repository (see channel.ReleaseAssets).
	assets     *channel.ReleaseAssets
	deltaFiles int
	deltaBytes int64
	// deltaNew and deltaNewBytes count the delta files this run prepared and uploaded; the
	// others were reused from earlier releases of the key epoch.
	deltaNew      int
	deltaNewBytes int64
	// hintTags are the archive.Epoch.HintTag of each manifest entry, written beside it in the
	// bucket's manifest for the next release to reuse its file_hash without an RSA check.
	hintTags []string
	// listing is the build walked once for the zip and the delta files (delta only).
	listing  *archive.Listing
	attested bool
	manifest []channel.ManifestEntry
	reg      *relayclient.Registration
	channel  string
	timings  [][2]string
}

func (r *Result) Outputs() [][2]string {
	m := map[string]string{"version": r.version, "channel": r.channel, "signature-url": r.sigURL, "provenance-url": r.provURL, "manifest-url": r.manifestURL}
	if r.pk != nil {
		m["checksum"], m["sha256"], m["session-key"], m["key-id"] = r.pk.Checksum, r.pk.SHA256, r.pk.SessionKey, r.pk.KeyID
	}
	if r.bundle != nil {
		m["bundle-url"] = r.bundle.URL
	}
	out := make([][2]string, 0, len(Outputs))
	for _, k := range Outputs {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}

// stage runs fn inside a log group and records its duration.
func (p *Pipeline) stage(res *Result, name string, fn func() (string, error)) error {
	p.UI.Group(name)
	start := time.Now()
	detail, err := fn()
	d := time.Since(start).Round(time.Millisecond)
	if err != nil {
		res.FailedStage = strings.ToLower(name)
		p.Log.Error(name+" failed", "duration", d, "error", err)
	} else {
		p.Log.Info(name+" done", "duration", d, "result", detail)
		res.timings = append(res.timings, [2]string{name, d.String()})
	}
	p.UI.EndGroup()
	return err
}

// Run runs every stage; on error, Result.FailedStage names the stage that failed.
func (p *Pipeline) Run(ctx context.Context) (*Result, error) {
	c := p.Config
	res := &Result{FailedStage: "setup", version: c.Version, name: assetName(c.AppID, c.Version), channel: c.Channel}
	p.Log.Info("publishing", "app", c.AppID, "version", c.Version, "destination", redact.URL(c.Destination), "signing", c.Signing, "relay", redact.URL(c.RelayURL))
	work, err := os.MkdirTemp(c.TempDir, "ferry-")
	if err != nil {
		return res, fmt.Errorf("create a work directory in %s: %w", c.TempDir, err)
	}
	defer os.RemoveAll(work)

	var key *rsa.PrivateKey
	if c.EncKey != nil {
		if key, err = archive.ParsePrivateKey(c.EncKey); err != nil {
			return res, err
		}
	}
	var zo archive.ZipOptions
	if zo.ModTime, err = archive.ModTimeFromEpoch(p.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return res, err
	}
	artifact := filepath.Join(work, res.name)
	var epoch *archive.Epoch
	if c.Delta {
		if epoch, err = archive.DeriveEpoch(key, c.AppID, c.deltaEpoch()); err != nil {
			return res, err
		}
	}
	var session *archive.SessionKey
	if epoch != nil {
		session = epoch.Session
	}

	// 1. Package.
	if err := p.stage(res, "Package", func() (string, error) {
		if c.Delta {
			// One walk of the build for the zip and the delta files, whose zip pass records
			// each file's SHA-256: an unchanged file is then not read again.
			var err error
			if res.listing, err = archive.Scan(c.BuildDir, zo); err != nil {
				return "", fmt.Errorf("package %s: %w", c.BuildDir, err)
			}
			// Delta files are prepared after the bundle is uploaded: refuse a build they
			// cannot carry now, before anything is published.
			if err := res.listing.CheckDelta(); err != nil {
				return "", fmt.Errorf("package %s for delta updates: %w", c.BuildDir, err)
			}
		}
		pk, err := pack(ctx, c.BuildDir, artifact, c.AppID, c.Version, key, session, zo, res.listing)
		if err != nil {
			return "", fmt.Errorf("package %s: %w", c.BuildDir, err)
		}
		res.pk = pk
		for _, w := range pk.Warnings {
			p.UI.Warn("package: " + w)
		}
		enc := "unencrypted"
		if pk.SessionKey != "" {
			enc = "encrypted, key_id " + pk.KeyID
		}
		return fmt.Sprintf("%d files, %s in → %s zip → %s %s", pk.Files, archive.FormatSize(pk.InputBytes), archive.FormatSize(pk.ZipSize), archive.FormatSize(pk.Size), enc), nil
	}); err != nil {
		return res, err
	}

	// Preflight: ask the relay whether it will accept the registration before anything
	// leaves the machine (a signature is public too: keyless signing logs it in Rekor).
	if c.RelayURL != "" {
		if err := p.stage(res, "Preflight", func() (string, error) {
			return p.preflight(ctx, res)
		}); err != nil {
			return res, err
		}
	}

	// 2. Sign, and verify before publishing.
	var sigJSON, provJSON []byte
	if c.Signing != signingNone {
		if err := p.stage(res, "Sign", func() (string, error) {
			return p.sign(ctx, res, artifact, &sigJSON, &provJSON)
		}); err != nil {
			return res, err
		}
	}

	// 3. Publish.
	if err := p.stage(res, "Publish", func() (string, error) {
		return p.publish(ctx, res, artifact, key, epoch, zo, sigJSON, provJSON)
	}); err != nil {
		return res, err
	}

	// 4. Register.
	if c.RelayURL != "" {
		if err := p.stage(res, "Register", func() (string, error) {
			return p.register(ctx, res)
		}); err != nil {
			return res, err
		}
	} else {
		p.UI.Notice("relay-url is not set: the bundle was published but not registered; devices will not be offered it until it is registered with a relay.")
	}
	res.FailedStage = ""
	return res, nil
}

// idToken fetches an OIDC token for audience and masks it before anything can log it.
func (p *Pipeline) idToken(ctx context.Context, audience string) (string, error) {
	if p.IDToken == nil {
		return "", sign.ErrNoIDToken
	}
	tok, err := p.IDToken(ctx, audience)
	if err != nil {
		return "", fmt.Errorf("%w: %v", sign.ErrNoIDToken, err)
	}
	p.UI.Mask(tok)
	return tok, nil
}

func (p *Pipeline) sign(ctx context.Context, res *Result, artifact string, sigJSON, provJSON *[]byte) (string, error) {
	c := p.Config
	opts := sign.Options{
		Mode: sign.Mode(c.Signing), Private: c.Private, Logger: p.Log,
		FulcioURL: p.Getenv("FERRY_FULCIO_URL"), RekorURL: p.Getenv("FERRY_REKOR_URL"), TSAURL: p.Getenv("FERRY_TSA_URL"),
		TrustedRoot: p.Getenv("FERRY_TRUSTED_ROOT"),
	}
	if c.Signing == signingKeyless {
		opts.IDToken = p.idToken
	} else {
		opts.Key, opts.KeyPassword = c.SigningKey, c.SigningPass
	}
	s, err := sign.NewSigner(ctx, opts)
	if err != nil {
		return "", err
	}
	res.mode = s.Mode()
	f, err := os.Open(artifact)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var rep *sign.Report
	if *sigJSON, rep, err = s.SignArtifactReport(ctx, res.name, f); err != nil {
		return "", err
	}
	res.signature = signatureOf(rep)
	detail := fmt.Sprintf("%s signature (%s)", c.Signing, archive.FormatSize(int64(len(*sigJSON))))
	if c.Provenance {
		in := sign.ProvenanceInput{SubjectName: res.name, SHA256: res.pk.ArtifactSHA256, Claims: p.claims()}
		if *provJSON, err = s.SignProvenance(ctx, in); err != nil {
			return "", err
		}
		detail += fmt.Sprintf(", SLSA provenance (%s)", archive.FormatSize(int64(len(*provJSON))))
	}
	if c.Provenance {
		return detail + ", both verified", nil
	}
	return detail + ", verified", nil
}

// signatureOf is the registration's account of the signature the pipeline just verified.
func signatureOf(rep *sign.Report) *channel.Signature {
	if rep == nil {
		return nil
	}
	return &channel.Signature{Mode: string(rep.Mode), Identity: rep.Identity, Issuer: rep.Issuer, Workflow: rep.Workflow,
		KeyHint: rep.KeyHint, LogIndex: rep.LogIndex, IntegratedTime: rep.IntegratedTime, Verified: true}
}

// claims describe the build for key-mode provenance (keyless reads them from the token).
func (p *Pipeline) claims() sign.Claims {
	rc := p.Context
	return sign.Claims{
		Issuer: sign.GitHubActionsIssuer, Repository: rc.Repository, RepositoryID: rc.RepositoryID,
		RepositoryOwner: strings.Split(rc.Repository, "/")[0], RepositoryOwnerID: rc.OwnerID,
		Visibility: rc.Visibility, WorkflowRef: rc.WorkflowRef, JobWorkflowRef: rc.WorkflowRef,
		Ref: rc.Ref, SHA: p.Config.SHA, RunID: rc.RunID, RunAttempt: rc.RunAttempt, EventName: rc.EventName,
		RunnerEnvironment: rc.RunnerEnvironment, ServerURL: rc.ServerURL,
	}
}

// Delta uploads run in parallel: small files are read into memory and handed to
// deltaUploaders workers; files above deltaInline stream from their temporary file in
// order. Memory stays below deltaUploaders*deltaInline.
const (
	deltaUploaders = 8
	deltaInline    = 4 << 20
)

// publishDelta stores the build's files that the key epoch's objects do not hold yet, and
// fills manifest with every file, in the order archive.Delta returns them. The epoch's
// objects are listed once; unchanged files are only hashed, and point at the objects earlier
// releases stored (docs/protocol.md §4).
func (p *Pipeline) publishDelta(ctx context.Context, pub publish.Publisher, res *Result, key *rsa.PrivateKey, epoch *archive.Epoch, zo archive.ZipOptions, manifest *[]channel.ManifestEntry) ([]archive.DeltaFile, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bucket, _ := pub.(*publish.Bucket)
	var existing map[string]archive.Stored
	if bucket != nil {
		var err error
		if existing, err = p.epochObjects(ctx, bucket, epoch); err != nil {
			return nil, err
		}
	}
	type job struct {
		f    archive.DeltaFile
		body []byte
	}
	var (
		mu       sync.Mutex
		urls     = map[string]string{} // by object
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	var stored, storedBytes atomic.Int64
	upload := func(f archive.DeltaFile, body publishBody) {
		obj, err := pub.Put(ctx, publish.File{Name: p.Config.AppID + "/" + f.Object, Body: body, ContentType: "application/octet-stream"})
		if err != nil {
			fail(fmt.Errorf("%s: %w", f.FileName, err))
			return
		}
		mu.Lock()
		urls[f.Object] = obj.URL
		mu.Unlock()
		stored.Add(1)
		storedBytes.Add(f.Size)
	}
	buildFiles := 0
	if res.listing != nil {
		buildFiles = res.listing.Files()
	}
	stopProgress := p.deltaProgress(&stored, &storedBytes, buildFiles)
	defer stopProgress()
	jobs := make(chan job)
	for range deltaUploaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				upload(j.f, bytes.NewReader(j.body))
			}
		}()
	}
	opts := archive.DeltaOptions{Key: key, Session: res.pk.Session, Zip: zo, Epoch: epoch, Existing: existing, Listing: res.listing}
	files, err := archive.Delta(ctx, p.Config.BuildDir, opts, func(f archive.DeltaFile, body io.Reader) error {
		if rs, ok := body.(publishBody); ok && f.Size > deltaInline {
			upload(f, rs) // large: stream it now, in this goroutine
		} else {
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			select {
			case jobs <- job{f, b}:
			case <-ctx.Done():
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	})
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		u, ok := urls[f.Object]
		if !ok && f.Reused && bucket != nil {
			obj, err := bucket.URL(ctx, p.Config.AppID+"/"+f.Object)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.FileName, err)
			}
			u, urls[f.Object] = obj.URL, obj.URL
		}
		if u == "" {
			return nil, fmt.Errorf("%s: object %s was neither stored nor found", f.FileName, f.Object)
		}
		*manifest = append(*manifest, channel.ManifestEntry{FileName: f.FileName, FileHash: f.FileHash, DownloadURL: u, Size: f.Size})
		res.hintTags = append(res.hintTags, epoch.HintTag(f.Object, f.FileHash))
		res.deltaBytes += f.Size
		if !f.Reused {
			res.deltaNew++
			res.deltaNewBytes += f.Size
		}
	}
	return files, nil
}

// deltaProgress logs how many new delta files are stored, every progressEvery until stop
// is called: the first delta release of a key epoch compresses and signs every file of the
// build, which takes seconds for a small app and minutes for a large one.
func (p *Pipeline) deltaProgress(stored, storedBytes *atomic.Int64, buildFiles int) (stop func()) {
	every := p.progressEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.Log.Info("storing delta files", "new", stored.Load(), "new_size", archive.FormatSize(storedBytes.Load()),
					"build_files", buildFiles, "elapsed", time.Since(start).Round(time.Second).String())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// maxHintManifest bounds the earlier manifest read for file_hash hints.
const maxHintManifest = 64 << 20

// epochObjects lists the app's directory once and returns the key epoch's objects, with the
// file_hash the newest earlier manifest gave each as a hint (a V3 checksum is an RSA
// signature per file; archive.Delta verifies a hint with the public key before using it).
// A manifest that cannot be read only costs the hints.
func (p *Pipeline) epochObjects(ctx context.Context, bucket *publish.Bucket, epoch *archive.Epoch) (map[string]archive.Stored, error) {
	appDir := p.Config.AppID + "/"
	listed, err := bucket.List(ctx, appDir)
	if err != nil {
		return nil, fmt.Errorf("list the objects earlier releases stored: %w", err)
	}
	existing := map[string]archive.Stored{}
	var newest *publish.ListedObject
	for i, o := range listed {
		name := strings.TrimPrefix(o.Key, appDir)
		switch {
		case epoch.IsObject(name):
			existing[name] = archive.Stored{Size: o.Size}
		case strings.HasSuffix(name, ".manifest.json") && (newest == nil || o.ModTime.After(newest.ModTime)):
			newest = &listed[i]
		}
	}
	if newest == nil || len(existing) == 0 {
		return existing, nil
	}
	b, err := bucket.Read(ctx, newest.Key, maxHintManifest)
	var entries []storedManifestEntry
	if err == nil {
		err = json.Unmarshal(b, &entries)
	}
	if err != nil {
		p.Log.Warn("the newest earlier manifest could not be read: file hashes of reused files are computed again", "manifest", newest.Key, "error", err)
		return existing, nil
	}
	for _, e := range entries {
		u := e.DownloadURL
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		i := strings.LastIndex(u, "/"+epoch.Prefix())
		if i < 0 {
			continue
		}
		if st, ok := existing[u[i+1:]]; ok {
			st.FileHash, st.Tag = e.FileHash, e.HintTag
			existing[u[i+1:]] = st
		}
	}
	return existing, nil
}

// marshalManifest is the manifest stored beside a bundle: a JSON array of its entries, each
// with its hint tag, one entry a line. json.MarshalIndent took as long again to indent what it
// had encoded, on the critical path of a release of thousands of files.
func marshalManifest(manifest []channel.ManifestEntry, tags []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("[")
	for i, e := range manifest {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		j, err := json.Marshal(storedManifestEntry{ManifestEntry: e, HintTag: tags[i]})
		if err != nil {
			return nil, fmt.Errorf("encode the manifest: %w", err)
		}
		b.Write(j)
	}
	b.WriteString("\n]\n")
	return b.Bytes(), nil
}

// storedManifestEntry is an entry of the manifest stored beside a bundle: the registered
// entry, plus the tag that lets the next release of the key epoch reuse its file_hash
// without an RSA check (archive.Stored.Tag). Readers of the manifest ignore the extra field.
type storedManifestEntry struct {
	channel.ManifestEntry
	HintTag string `json:"ferry_hint_tag,omitempty"`
}

// key returns where a file of this bundle goes: a release asset name, or a bucket key
// under <app-id>/<version>/.
func (p *Pipeline) key(name string) string {
	if p.Config.Destination == publish.DestinationGitHub {
		return name
	}
	return BucketKey(p.Config.AppID, p.Config.Version, name)
}

// BucketKey is the bucket key (under the destination's prefix) of a file named name of
// version of app: <app-id>/<version>/<name>, the version with characters other than
// letters, digits, ".", "-" and "_" replaced by "_". With name "" it is the directory
// holding every file of that version except the shared delta files, which are under
// <app-id>/files/ (`ferry admin bundles prune` maps keys to versions with it).
func BucketKey(app, version, name string) string {
	return app + "/" + safeKeyPart(version) + "/" + name
}

func (p *Pipeline) publish(ctx context.Context, res *Result, artifact string, key *rsa.PrivateKey, epoch *archive.Epoch, zo archive.ZipOptions, sigJSON, provJSON []byte) (string, error) {
	c := p.Config
	if u, err := url.Parse(c.Destination); err == nil && u.Scheme == "file" {
		if err := os.MkdirAll(filepath.FromSlash(u.Path), 0o755); err != nil {
			return "", fmt.Errorf("create the destination directory: %w", err)
		}
	}
	var progressMu sync.Mutex
	var lastProgress time.Time
	pub, err := publish.New(ctx, c.Destination, publish.Options{
		GitHub: publish.GitHubOptions{
			Repository: c.Repository, Token: c.GitHubToken, Tag: c.ReleaseTag, Commit: c.SHA,
			APIURL: c.APIURL, ServerURL: c.ServerURL,
			Prerelease: c.RefType != "tag" || strings.Contains(c.Version, "-"),
			Body:       fmt.Sprintf("Live update bundles published by Ferry. %s %s was built from %s.", c.AppID, c.Version, c.SHA),
		},
		PublicBaseURL: c.PublicBase,
		Getenv:        p.Getenv,
		Logger:        p.Log,
		Progress: func(name string, sent, total int64) {
			progressMu.Lock()
			defer progressMu.Unlock()
			if time.Since(lastProgress) < time.Second {
				return
			}
			lastProgress = time.Now()
			p.Log.Info("uploading", "file", name, "sent", archive.FormatSize(sent), "total", archive.FormatSize(total), "percent", sent*100/max(total, 1))
		},
	})
	if err != nil {
		return "", err
	}
	defer pub.Close()

	// In a bucket, the delta files are stored while the bundle uploads: they do not depend on
	// it, and listing the key epoch's objects and hashing the build take as long as the upload
	// of a build's bundle. A GitHub release is created by its first asset, the bundle, so
	// there the delta files follow it.
	var (
		manifest     []channel.ManifestEntry
		deltaFiles   []archive.DeltaFile
		deltaErr     error
		deltaDone    = make(chan struct{})
		deltaStarted bool
	)
	deltaCtx, cancelDelta := context.WithCancel(ctx)
	startDelta := func() {
		deltaStarted = true
		go func() {
			defer close(deltaDone)
			deltaFiles, deltaErr = p.publishDelta(deltaCtx, pub, res, key, epoch, zo, &manifest)
		}()
	}
	defer func() {
		cancelDelta()
		if deltaStarted {
			<-deltaDone
		}
	}()
	if _, ok := pub.(*publish.Bucket); ok && c.Delta {
		startDelta()
	}
	f, err := os.Open(artifact)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if res.bundle, err = pub.Put(ctx, publish.File{Name: p.key(res.name), Body: f, ContentType: "application/zip"}); err != nil {
		return "", fmt.Errorf("publish the bundle: %w", err)
	}
	if gh, ok := pub.(*publish.GitHub); ok {
		private, err := gh.Private(ctx)
		if err != nil {
			return "", fmt.Errorf("find whether %s is private: %w", c.Repository, err)
		}
		if private {
			res.assets = &channel.ReleaseAssets{Repository: c.Repository, Archive: channel.ReleaseAsset{Name: res.bundle.Name, ID: res.bundle.AssetID}}
			p.UI.Notice(fmt.Sprintf("%s is private: its release assets need a GitHub login, so the bundle is registered with its asset ids (archive %d) and devices download through the relay's /dl route, which redirects to short-lived URLs GitHub signs. The relay needs release_access for %s.", c.Repository, res.bundle.AssetID, c.AppID))
		} else {
			p.UI.Notice(fmt.Sprintf("%s is public: devices download the release assets from GitHub directly.", c.Repository))
		}
	}
	if res.bundle.Reused {
		p.Log.Info("the bundle was already published with identical bytes (a re-run); reusing it", "url", res.bundle.URL)
	}
	if !res.bundle.Expires.IsZero() {
		p.UI.Warn(fmt.Sprintf("no public-base-url: the bundle URL is presigned and stops working at %s; devices offered it later cannot download it. Set public-base-url.", res.bundle.Expires.UTC().Format(time.RFC3339)))
	}
	// put publishes one more file and, in a private repository, records its asset in *asset.
	put := func(name string, body []byte, ct string, asset **channel.ReleaseAsset) (string, error) {
		obj, err := pub.Put(ctx, publish.File{Name: p.key(name), Body: bytes.NewReader(body), ContentType: ct})
		var ee *publish.ExistsError
		if errors.As(err, &ee) && res.bundle.Reused && ee.URL != "" {
			// A re-run: the earlier attempt signed these same bundle bytes (signatures
			// differ on every run); keep what it published rather than conflict.
			p.Log.Info("keeping the file published by an earlier run for the same bundle", "file", name, "url", ee.URL)
			obj, err = &publish.Object{Name: ee.Name, URL: ee.URL, AssetID: ee.AssetID}, nil
		}
		if err != nil {
			return "", fmt.Errorf("publish %s: %w", name, err)
		}
		if asset != nil && res.assets != nil {
			*asset = &channel.ReleaseAsset{Name: obj.Name, ID: obj.AssetID}
		}
		return obj.URL, nil
	}
	var sigAsset, provAsset *channel.ReleaseAsset
	if sigJSON != nil {
		if res.sigURL, err = put(res.name+".sigstore.json", sigJSON, "application/json", &sigAsset); err != nil {
			return "", err
		}
	}
	if provJSON != nil {
		if res.provURL, err = put(res.name+".provenance.sigstore.json", provJSON, "application/json", &provAsset); err != nil {
			return "", err
		}
	}
	if res.assets != nil {
		res.assets.Signature, res.assets.Provenance = sigAsset, provAsset
	}
	if c.Delta {
		if !deltaStarted {
			startDelta()
		}
		<-deltaDone
		if deltaErr != nil {
			return "", fmt.Errorf("publish delta files: %w", deltaErr)
		}
		res.deltaFiles = len(deltaFiles)
		mj, err := marshalManifest(manifest, res.hintTags)
		if err != nil {
			return "", err
		}
		if res.manifestURL, err = put(res.name+".manifest.json", mj, "application/json", nil); err != nil {
			return "", err
		}
	}
	res.manifest = manifest

	// Provenance for `gh attestation verify` without --bundle (best effort).
	if provJSON != nil && c.Signing == signingKeyless && c.Repository != "" && c.GitHubToken != "" && p.Attest {
		if err := sign.UploadAttestation(ctx, &http.Client{Timeout: time.Minute}, c.APIURL, c.Repository, c.GitHubToken, provJSON); err != nil {
			p.UI.Warn("provenance not stored in GitHub's attestations (gh attestation verify needs --bundle): " + err.Error())
		} else {
			res.attested = true
		}
	}
	detail := fmt.Sprintf("bundle %s", res.bundle.URL)
	if c.Delta {
		detail += fmt.Sprintf(", %d delta files (%s), %d of them (%s) new, the others reused from earlier releases of key epoch %s",
			res.deltaFiles, archive.FormatSize(res.deltaBytes), res.deltaNew, archive.FormatSize(res.deltaNewBytes), c.deltaEpoch())
	}
	return detail, nil
}

// Bundle is the record registered with the relay (or to register later with `ferry
// register --from`); nil before the bundle is published.
func (r *Result) Bundle(c *Config) *channel.Bundle {
	if r.pk == nil || r.bundle == nil {
		return nil
	}
	return &channel.Bundle{
		AppID: c.AppID, Version: c.Version, URL: r.bundle.URL, Checksum: r.pk.Checksum, SHA256: r.pk.SHA256,
		Size: r.pk.Size, SessionKey: r.pk.SessionKey, KeyID: r.pk.KeyID, Commit: c.SHA, Ref: c.Ref,
		Channel: c.Channel, Native: c.Native, Manifest: r.manifest, ManifestURL: r.manifestURL,
		SignatureURL: r.sigURL, ProvenanceURL: r.provURL, Repository: c.Repository, Signature: r.signature,
		Assets: r.assets,
	}
}

func (p *Pipeline) register(ctx context.Context, res *Result) (string, error) {
	c := p.Config
	b := res.Bundle(c)
	timeout := 5 * time.Minute
	if d, err := time.ParseDuration(p.Getenv("FERRY_REGISTER_TIMEOUT")); err == nil && d > 0 {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	relay, err := p.relayClient()
	if err != nil {
		return "", err
	}
	reg, err := relay.RegisterBundle(ctx, b)
	if err := explainRefusal(c, err); err != nil {
		return "", err
	}
	res.reg = reg
	if reg.Channel != "" {
		res.channel = reg.Channel
	}
	if err := checkLanded(c, reg); err != nil {
		return "", err
	}
	state := "registered"
	if !reg.Created {
		state = "already registered (idempotent re-run)"
	}
	switch {
	case reg.Promoted:
		state += ", channel " + reg.Channel + " now serves it"
	case reg.Reason != "":
		state += ", " + reg.Reason
	}
	return state, nil
}

// preflight asks the relay to run the registration's checks on the packaged bundle, so a
// wrong app id, secret, channel or rule, or a version registered with other content, fails
// before anything is uploaded. A relay without the endpoint, or one that is down for a
// moment, only earns a warning: the registration checks everything again and retries.
func (p *Pipeline) preflight(ctx context.Context, res *Result) (string, error) {
	c := p.Config
	relay, err := p.relayClient()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pf, err := relay.Preflight(ctx, &relayclient.PreflightRequest{
		AppID: c.AppID, Version: c.Version, Checksum: res.pk.Checksum, Commit: c.SHA, Ref: c.Ref,
		Repository: c.Repository, Channel: c.Channel, Native: c.Native, RegisterOnly: c.RegisterOnly,
	})
	var re *relayclient.Error
	switch {
	case errors.Is(err, relayclient.ErrPreflightUnsupported):
		p.UI.Warn("the relay has no preflight endpoint (an older relay): the registration is checked only after the upload. Upgrade the relay to catch a wrong app id, secret or channel before anything is uploaded.")
		return "skipped: the relay does not support it", nil
	case err != nil && !errors.Is(err, relayclient.ErrUnreachable) && (!errors.As(err, &re) || re.Temporary()):
		p.UI.Warn("preflight did not get an answer (" + err.Error() + "); publishing anyway, the registration retries")
		return "skipped: no answer", nil
	case err != nil:
		if err := explainRefusal(c, err); err != nil {
			return "", fmt.Errorf("%w\nNothing was uploaded.", err) //nolint:staticcheck // ST1005: a paragraph for the job log
		}
	}
	detail := "the relay will accept version " + c.Version
	switch {
	case pf.Registered:
		detail += " (already registered with this content: a re-run)"
	case pf.Channel != "" && pf.Reason == "":
		detail += " for channel " + pf.Channel
	}
	if pf.Reason != "" {
		detail += "; " + pf.Reason
	}
	return detail, nil
}

// explainRefusal adds what to do to the relay's refusals a publisher can fix; nil stays nil.
func explainRefusal(c *Config, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, &relayclient.Error{StatusCode: http.StatusConflict}):
		return fmt.Errorf("%w\nThe relay already has version %s of %s with another checksum. Bundles are immutable: publish a new version (bump the version input or push a new tag).", err, c.Version, c.AppID) //nolint:staticcheck // ST1005: a paragraph for the job log, not a wrap
	case errors.Is(err, &relayclient.Error{Code: "bad_signature"}) && c.RelaySecret != "":
		return fmt.Errorf("%w\nThe relay refused the HMAC signature: the action's relay-secret must equal the relay's FERRY_HMAC_SECRET (check both for stray spaces or newlines), and the runner's clock must be within 5 minutes of the relay's.", err) //nolint:staticcheck // ST1005: a paragraph for the job log, not a wrap
	case errors.Is(err, &relayclient.Error{Code: "app_not_found"}):
		return fmt.Errorf("%w\nCheck the app-id input (%q): it must be one of the apps in the relay's configuration.", err, c.AppID) //nolint:staticcheck // ST1005: a paragraph for the job log
	case errors.Is(err, &relayclient.Error{Code: "no_matching_rule"}):
		return fmt.Errorf("%w\nSet register-only: true if a tag push promotes this build later.", err) //nolint:staticcheck // ST1005: a paragraph for the job log
	}
	return err
}

// relayClient returns a client of the relay with the registration's credentials.
func (p *Pipeline) relayClient() (*relayclient.Client, error) {
	c := p.Config
	opts := relayclient.Options{HTTPClient: &http.Client{Timeout: 30 * time.Second}, UserAgent: p.UserAgent, Logger: p.Log,
		RetryBackoff: time.Second, RetryMaxWait: 30 * time.Second}
	if c.RelaySecret != "" {
		opts.HMACSecret = []byte(c.RelaySecret)
	} else {
		opts.IDToken = func(ctx context.Context) (string, error) { return p.idToken(ctx, c.Audience) }
	}
	if d, err := time.ParseDuration(p.Getenv("FERRY_REGISTER_BACKOFF")); err == nil && d > 0 {
		opts.RetryBackoff = d
	}
	return relayclient.New(c.RelayURL, opts)
}

// checkLanded fails a registration that put the bundle on no channel (no rule matches the
// ref, or the rule names an unconfigured channel) unless register-only is set: otherwise a
// rule written "main" instead of "refs/heads/main" ships nothing with a green build.
// Pull-request builds are registered without a channel by design.
func checkLanded(c *Config, reg *relayclient.Registration) error {
	if reg.Channel != "" || c.RegisterOnly || strings.HasPrefix(c.Ref, "refs/pull/") {
		return nil
	}
	return fmt.Errorf("version %s of %s is registered but no channel serves it: %s\n"+
		"Add a rule for %s to the relay's config (rules match full refs such as refs/heads/main), set the channel input, "+
		"or set register-only: true if a tag push promotes this build later", c.Version, c.AppID, reg.Reason, c.Ref)
}

// assetName is the archive's file name: <app-id>-<version>.zip, with characters GitHub
// would rewrite in asset names replaced.
func assetName(app, version string) string {
	return app + "-" + safeKeyPart(version) + ".zip"
}

func safeKeyPart(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// publishBody is what publish.File.Body takes: a body that can be read again, and read by
// several upload attempts at once.
type publishBody interface {
	io.ReadSeeker
	io.ReaderAt
}
