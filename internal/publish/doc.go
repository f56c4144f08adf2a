// Package publish uploads Ferry's release files (the archive, its Sigstore bundles, delta
// files and manifests) to where devices download them, and returns URLs that never serve
// different bytes.
//
// Two destinations exist behind one small interface, [Publisher]:
//
//   - [GitHub] uploads release assets through the GitHub REST API (go-github v60). It finds
//     the release for a tag (drafts included, which GetReleaseByTag cannot see) or creates
//     it at the commit being published, uploads each file from an [io.ReadSeeker], and
//     retries rate limits (primary and secondary) and 5xx answers within bounds. GHES is
//     reached through [GitHubOptions.APIURL] and [GitHubOptions.ServerURL].
//   - [Bucket] writes objects through gocloud.dev/blob: s3://, gs://, azblob:// and file://
//     URLs, with the drivers' query parameters (region, endpoint, use_path_style, prefix …).
//     Objects get a Content-Type, `Cache-Control: public, max-age=31536000, immutable` and
//     a sha256 metadata entry. The URL returned is PublicBaseURL + "/" + key when a public
//     base is configured, else a presigned URL that expires (a warning is logged).
//
// Invariants, for both destinations:
//
//   - Immutability: a name that already holds the same bytes is reused (Object.Reused);
//     a name that holds different bytes is refused with an error wrapping [ErrAssetExists]
//     and nothing is replaced. Re-running a publish is therefore idempotent.
//   - Atomicity: a failed upload leaves nothing downloadable. Bucket writes are aborted
//     (never closed) when the reader fails; GitHub assets left in the "starter" state by a
//     broken upload are deleted before the next attempt.
//   - Bounded retries: transport errors, 5xx, 429 and rate limits are retried with backoff,
//     at most [Options.Attempts] times, waiting at most [Options.MaxWait] at a time.
//
// Usage:
//
//	p, err := publish.New(ctx, "s3://web?region=eu-west-1", publish.Options{PublicBaseURL: "https://cdn.example.com"})
//	if err != nil { … }
//	defer p.Close()
//	f, _ := os.Open("app-1.2.3.zip")
//	obj, err := p.Put(ctx, publish.File{Name: "app/1.2.3/app.zip", Body: f, ContentType: "application/zip"})
//	// obj.URL == "https://cdn.example.com/app/1.2.3/app.zip"
package publish
