package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/pipeline"
	"github.com/ferryhq/ferry/internal/publish"
	"github.com/ferryhq/ferry/internal/redact"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const pruneUsage = "usage: bundles prune --bucket URL [--older-than 24h] [--delta-files] [--delete] [--json]"

// pruneCall is `ferry admin bundles prune`'s arguments.
type pruneCall struct {
	bucket    string
	olderThan time.Duration
	delete    bool
	json      bool
	// deltaFiles also reports (and deletes) unreferenced shared delta files.
	deltaFiles bool
}

// pruneRequest parses the arguments after `bundles prune`.
func pruneRequest(args []string) (*pruneCall, error) {
	fs := flag.NewFlagSet("bundles prune", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p := &pruneCall{}
	fs.StringVar(&p.bucket, "bucket", "", "")
	fs.DurationVar(&p.olderThan, "older-than", 24*time.Hour, "")
	fs.BoolVar(&p.delete, "delete", false, "")
	fs.BoolVar(&p.json, "json", false, "")
	fs.BoolVar(&p.deltaFiles, "delta-files", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("bundles prune: %w; %s", err, pruneUsage)
	}
	switch {
	case fs.NArg() > 0:
		return nil, errors.New(pruneUsage)
	case p.bucket == "":
		return nil, fmt.Errorf("bundles prune: --bucket is required (the destination the bundles were published to, e.g. s3://bucket?prefix=live/); %s", pruneUsage)
	case p.olderThan < 0:
		return nil, fmt.Errorf("bundles prune: --older-than %s is negative", p.olderThan)
	}
	return p, nil
}

// pruneReport is what `bundles prune` found (and deleted, with --delete).
type pruneReport struct {
	App    string `json:"app"`
	Bucket string `json:"bucket"`
	// DryRun is true without --delete: nothing was deleted.
	DryRun bool `json:"dry_run"`
	// Objects are the objects no registered bundle and no channel references, older than
	// OlderThan; with --delete, Deleted says which were.
	Objects    []prunedObject `json:"objects"`
	TotalBytes int64          `json:"total_bytes"`
	// Referenced and Young count the objects kept: referenced, or unreferenced but younger
	// than OlderThan (perhaps a publish in progress).
	Referenced int `json:"referenced"`
	Young      int `json:"young"`
	// DeltaKept counts the unreferenced delta files of key epochs (<app>/files/) kept
	// because --delta-files was not given: a publish of the same epoch reuses any of them
	// it finds without uploading it again, so deleting one it is about to reference would
	// break that bundle's delta updates.
	DeltaKept int    `json:"delta_kept"`
	OlderThan string `json:"older_than"`
}

type prunedObject struct {
	publish.ListedObject
	Deleted bool   `json:"deleted,omitempty"`
	Error   string `json:"error,omitempty"`
}

// runPrune lists the bucket objects under the app's prefix and reports, or with --delete
// deletes, those that no registered bundle and no channel references, and a file://
// bucket's temporary files that writers which died left behind. It refuses to run
// when the relay cannot be read in full: "could not list" never counts as "unreferenced".
func runPrune(ctx context.Context, c *relayclient.Client, app string, p *pruneCall) (*pruneReport, error) {
	if strings.ContainsAny(app, "/") {
		return nil, fmt.Errorf("bundles prune: app id %q contains '/', which the bucket layout cannot hold", app)
	}
	b, err := publish.OpenBucket(ctx, p.bucket, publish.Options{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	// List first, then read the relay: a bundle registered before the relay is read
	// protects every object listed.
	objs, err := b.List(ctx, app+"/")
	if err != nil {
		return nil, fmt.Errorf("list the bucket: %w", err)
	}
	refs, err := readReferences(ctx, c, app, b.Prefix())
	if err != nil {
		return nil, err
	}
	rep := &pruneReport{App: app, Bucket: redact.URL(p.bucket), DryRun: !p.delete, Objects: []prunedObject{}, OlderThan: p.olderThan.String()}
	cutoff := time.Now().Add(-p.olderThan)
	var orphans []publish.ListedObject
	for _, o := range objs {
		switch {
		case refs.has(o.Key):
			rep.Referenced++
		case !o.ModTime.Before(cutoff):
			rep.Young++
		case !p.deltaFiles && strings.HasPrefix(o.Key, app+"/files/"):
			rep.DeltaKept++
		default:
			orphans = append(orphans, o)
		}
	}
	if p.delete && len(orphans) > 0 {
		// Read the relay again just before deleting, so a bundle registered meanwhile
		// (a re-run reusing an earlier attempt's objects) keeps them.
		if refs, err = readReferences(ctx, c, app, b.Prefix()); err != nil {
			return nil, err
		}
	}
	// Orphans a bundle registered meanwhile references are kept.
	orphans = slices.DeleteFunc(orphans, func(o publish.ListedObject) bool {
		if refs.has(o.Key) {
			rep.Referenced++
			return true
		}
		return false
	})
	// A file:// bucket's temporary files left by writers that died are never referenced,
	// whatever directory they are in; younger ones may belong to a publish in progress.
	for _, o := range b.Leftovers(app + "/") {
		if o.ModTime.Before(cutoff) {
			orphans = append(orphans, o)
		} else {
			rep.Young++
		}
	}
	slices.SortFunc(orphans, func(a, b publish.ListedObject) int { return strings.Compare(a.Key, b.Key) })
	var failed int
	for _, o := range orphans {
		po := prunedObject{ListedObject: o}
		if p.delete {
			if err := b.Delete(ctx, o.Key); err != nil {
				po.Error = err.Error()
				failed++
			} else {
				po.Deleted = true
			}
		}
		rep.Objects = append(rep.Objects, po)
		rep.TotalBytes += o.Size
	}
	if failed > 0 {
		return rep, fmt.Errorf("bundles prune: %d of %d objects could not be deleted", failed, len(rep.Objects))
	}
	return rep, nil
}

// references is what an app's registered bundles and channels reference in the bucket.
type references struct {
	// dirs are the key prefixes (pipeline.BucketKey with no name) of every registered
	// version and every version a channel serves, rolls out or keeps in its history.
	dirs []string
	// paths holds every "/"-separated suffix of the paths of the bundles' URLs; a key is
	// referenced when its full key (the destination's prefix and the key) is one.
	paths map[string]bool
	// prefix is the destination's prefix.
	prefix string
}

func (r *references) has(key string) bool {
	for _, d := range r.dirs {
		if strings.HasPrefix(key, d) {
			return true
		}
	}
	return r.paths[r.prefix+key]
}

// readReferences reads every registered bundle of app and every channel's state through
// the relay; any failure is an error, never an empty set.
func readReferences(ctx context.Context, c *relayclient.Client, app, prefix string) (*references, error) {
	bundles, err := c.AllBundles(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("read the relay's bundles of %s (nothing was deleted: prune only deletes what it knows nothing references): %w", app, err)
	}
	chans, err := c.ListChannels(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("read the relay's channels of %s (nothing was deleted): %w", app, err)
	}
	r := &references{paths: map[string]bool{}, prefix: prefix}
	versions := map[string]bool{}
	for _, b := range bundles {
		versions[b.Version] = true
		urls := []string{b.URL, b.SignatureURL, b.ProvenanceURL, b.ManifestURL}
		for _, m := range b.Manifest {
			urls = append(urls, m.DownloadURL)
		}
		for _, u := range urls {
			r.addURL(u)
		}
	}
	for _, ch := range chans.Channels {
		for _, v := range stateVersions(ch.State) {
			versions[v] = true
		}
	}
	for v := range versions {
		r.dirs = append(r.dirs, pipeline.BucketKey(app, v, ""))
	}
	return r, nil
}

// stateVersions lists every version a channel's state references.
func stateVersions(s *channel.State) []string {
	if s == nil {
		return nil
	}
	vs := append([]string{s.Version}, s.History...)
	if s.Rollout != nil {
		vs = append(vs, s.Rollout.Version)
	}
	return vs
}

// addURL records every "/"-separated suffix of raw's (unescaped) path.
func (r *references) addURL(raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	p := strings.TrimPrefix(u.Path, "/")
	for p != "" {
		r.paths[p] = true
		_, rest, ok := strings.Cut(p, "/")
		if !ok {
			break
		}
		p = rest
	}
}

// print writes the report for people.
func (rep *pruneReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rep.Objects) > 0 {
		fmt.Fprintln(tw, "KEY\tSIZE\tMODIFIED\tSTATUS")
	}
	for _, o := range rep.Objects {
		status := "would delete"
		switch {
		case o.Error != "":
			status = "error: " + o.Error
		case o.Deleted:
			status = "deleted"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Key, archive.FormatSize(o.Size), timeText(o.ModTime), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "deleted"
	if rep.DryRun {
		verb = "would be deleted (dry run: pass --delete to delete them)"
	}
	if _, err := fmt.Fprintf(w, "%d unreferenced objects older than %s, %s in total, %s; kept %d referenced and %d younger objects\n",
		len(rep.Objects), rep.OlderThan, archive.FormatSize(rep.TotalBytes), verb, rep.Referenced, rep.Young); err != nil {
		return err
	}
	if rep.DeltaKept > 0 {
		_, err := fmt.Fprintf(w, "kept %d unreferenced delta files (--delta-files includes them; only while no delta publish is running)\n", rep.DeltaKept)
		return err
	}
	return nil
}
