package control

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// register serves POST /api/v1/bundles (docs/architecture.md §3.2): authenticate, parse and
// validate the bundle, store it idempotently, move the channel its ref or explicit channel names,
// apply pending tag promotions for its commit, and answer only once every store call has
// returned.
func (a *API) register(c *gin.Context) (err error) {
	result := "error"
	defer func() {
		// result is "created" or "existing" on success, the refusal's code otherwise.
		var he *httpError
		if err != nil && errors.As(err, &he) {
			result = he.Code
		}
		a.metrics.registrations.WithLabelValues(result).Inc()
	}()
	ctx := c.Request.Context()
	who, body, err := a.authenticateRegistration(c, MaxRegistrationBody)
	if err != nil {
		return err
	}
	b, err := parseBundle(body)
	if err != nil {
		return err
	}
	if who.Method == "token" && !who.token.Can(b.AppID, access.Publish) {
		// Like the admin API: an app the token may not publish is refused whether or not it
		// is configured, so app ids do not leak.
		return forbidden(access.Publish, b.AppID)
	}
	app := a.apps[b.AppID]
	if app == nil {
		return errorf(http.StatusNotFound, "app_not_found", "app %q is not configured on this relay", b.AppID)
	}
	if err := a.bindIdentity(ctx, app, who, b); err != nil {
		return err
	}
	if err := checkAgainstApp(app, b); err != nil {
		return err
	}
	if err := a.privateDownloads(app, b); err != nil {
		return err
	}

	// The cause names this request's source; for a re-registration it may differ from the
	// stored bundle's (a deterministic rebuild of the same commit for a tag, say). The
	// register entry is written in the same store transaction as the bundle: were it a
	// second call, a crash in between would leave the bundle stored, and the client's retry
	// (created=false) would be acknowledged with no audit entry ever written.
	cause := fmt.Sprintf("registration %s@%s %s", b.Repository, b.Commit, b.Ref)
	actor := who.actor(b.Repository, c.ClientIP())
	entry := &channel.AuditEntry{Time: a.now().UTC(), App: app.ID, Channel: b.Channel, Action: "register", Version: b.Version, Cause: cause, Actor: actor}
	stored, created, err := a.store.PutBundle(ctx, b, entry)
	if errors.Is(err, channel.ErrConflict) {
		return &httpError{Status: http.StatusConflict, Code: "version_conflict",
			Msg: fmt.Sprintf("version %q of app %q is already registered with another checksum; bundles are immutable, register a new version", b.Version, b.AppID), Err: err}
	}
	if err != nil {
		return storeError("put bundle", err)
	}

	resp := relayclient.Registration{Bundle: stored, Created: created}
	changed := false
	defer func() {
		if changed {
			a.onChange(app.ID)
		}
	}()

	// The registration's own channel.
	ch := b.Channel
	if ch == "" && b.Ref != "" {
		ch, _ = app.MatchRef(b.Ref)
	}
	resp.Channel = ch
	fromPR := who.fromPullRequest(b.Ref)
	_, configured := app.Channels[ch]
	switch {
	case ch == "":
		resp.Reason = "no rule of the app matches the ref " + quoteOrEmpty(b.Ref) + "; " + describeRules(app.Rules)
	case !configured:
		// A rule with a capture ("refs/tags/channel/*" -> "$1") named a channel the
		// config does not list.
		resp.Reason = fmt.Sprintf("the ref maps to channel %q, which is not configured", ch)
		resp.Channel = ""
	case fromPR:
		resp.Reason = "bundles built for pull requests are registered but never move a channel"
	case b.Channel != "" && !who.mayNameChannel(app, b.Ref, b.Channel):
		// An explicit channel widens what the credentials may do only as far as the
		// configuration allows: otherwise any branch's workflow could move production.
		resp.Reason = fmt.Sprintf("the ref %s may not name channel %q: no rule of the app maps it there and the channel's allow_refs do not list it; the bundle is registered but moves no channel",
			quoteOrEmpty(b.Ref), b.Channel)
		a.metrics.refused.WithLabelValues("explicit_channel").Inc()
	default:
		moved, reason, err := a.promoteRegistration(ctx, app, ch, stored, cause, actor, !created)
		if err != nil {
			return storeError("promote", err)
		}
		changed = changed || moved
		resp.Promoted = moved
		switch {
		case reason != "":
			resp.Reason = reason
		case !moved:
			resp.Reason = "the channel already serves or has served this version"
		}
	}

	// Tag pushes that were waiting for this commit's bundle.
	if !fromPR && !isPRRef(stored.Ref) {
		applied, moved, err := a.applyPending(ctx, app, stored, actor)
		changed = changed || moved
		if err != nil {
			return err
		}
		resp.PendingApplied = applied
	}

	status := http.StatusOK
	result = "existing"
	if created {
		status = http.StatusCreated
		result = "created"
	}
	a.logger(ctx).InfoContext(ctx, "bundle registered", "app", app.ID, "version", stored.Version, "created", created,
		"method", who.Method, "repository", stored.Repository, "commit", stored.Commit, "ref", stored.Ref,
		"workflow", who.Workflow, "channel", ch, "promoted", resp.Promoted, "pending_applied", resp.PendingApplied)
	c.JSON(status, resp)
	return nil
}

// describeRules lists an app's ref rules for a registration that matched none, so CI can
// say which refs would have shipped.
func describeRules(rules []channel.Rule) string {
	if len(rules) == 0 {
		return "the app has no rules"
	}
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = r.Ref + " → " + r.Channel
	}
	return "its rules: " + strings.Join(parts, ", ")
}

func quoteOrEmpty(s string) string {
	if s == "" {
		return "(no ref given)"
	}
	return fmt.Sprintf("%q", s)
}

// registrationEvents are the workflow events whose OIDC-authenticated runs may register a
// bundle: in each, the token's ref and sha name the code the run checked out. Bundles of
// pull_request runs are registered but never move a channel.
var registrationEvents = []string{"push", "workflow_dispatch", "release", "schedule", "pull_request"}

func isPRRef(ref string) bool { return strings.HasPrefix(ref, "refs/pull/") }

// bindIdentity fills the bundle's repository, ref and commit from the credentials: from the
// OIDC token's claims (never from the body), or for HMAC and API tokens from the body and
// the app's configured repository.
func (a *API) bindIdentity(ctx context.Context, app *channel.App, who *principal, b *channel.Bundle) error {
	switch who.Method {
	case "oidc":
		if !strings.EqualFold(who.Repository, app.Repository) {
			return errorf(http.StatusForbidden, "repository_not_allowed", "repository %q may not publish app %q", who.Repository, app.ID)
		}
		if app.RepositoryID != 0 && who.RepositoryID != strconv.FormatInt(app.RepositoryID, 10) {
			// Same name, another repository: the configured one was deleted or renamed and
			// the name taken again.
			return errorf(http.StatusForbidden, "repository_not_allowed",
				"the token's repository %q has id %q, but app %q is pinned to repository id %d (repository_id in the relay's configuration)",
				who.Repository, who.RepositoryID, app.ID, app.RepositoryID)
		}
		if !slices.Contains(registrationEvents, who.EventName) {
			// Runs triggered by other events (pull_request_target, workflow_run,
			// issue_comment, pull_request_review, ...) can be started from a fork, carry the
			// base branch's ref and commit in their token, and may build the fork's code:
			// registering it would attach that code to a real commit, which a tag or the
			// ref rules could then promote.
			return errorf(http.StatusForbidden, "event_not_allowed",
				"bundles built by workflows triggered by %q are refused: such a run's token names the base branch's commit, not necessarily the code built; register from a workflow triggered by one of %s (pull_request registers but never moves a channel)",
				who.EventName, strings.Join(registrationEvents, ", "))
		}
		if b.Repository != "" && !strings.EqualFold(b.Repository, who.Repository) {
			return errorf(http.StatusForbidden, "repository_not_allowed", "the body names repository %q but the token is for %q", b.Repository, who.Repository)
		}
		if (b.Commit != "" && b.Commit != who.Commit) || (b.Ref != "" && b.Ref != who.Ref) {
			a.logger(ctx).WarnContext(ctx, "registration body's ref or commit differ from the token; using the token's",
				"app", app.ID, "body_ref", b.Ref, "body_commit", b.Commit, "token_ref", who.Ref, "token_commit", who.Commit)
		}
		b.Repository, b.Ref, b.Commit = who.Repository, who.Ref, who.Commit
	case "hmac", "token":
		if who.Method == "hmac" && !who.key.speaksFor(app) {
			return errorf(http.StatusUnauthorized, "bad_signature", "the registration is signed with an HMAC secret that is not the one configured for app %q; nothing changed", app.ID)
		}
		if b.Repository != "" && !strings.EqualFold(b.Repository, app.Repository) {
			return errorf(http.StatusForbidden, "repository_not_allowed", "the body names repository %q but app %q belongs to %q", b.Repository, app.ID, app.Repository)
		}
		if b.Commit == "" {
			return errorf(http.StatusBadRequest, "invalid_bundle", "commit is required for HMAC and API token registrations")
		}
		b.Repository = app.Repository
	default:
		return fmt.Errorf("unknown authentication method %q", who.Method)
	}
	return nil
}

// checkAgainstApp checks what depends on the app's configuration.
func checkAgainstApp(app *channel.App, b *channel.Bundle) error {
	if b.Channel != "" {
		if _, ok := app.Channels[b.Channel]; !ok {
			return errorf(http.StatusBadRequest, "channel_not_found", "app %q has no channel %q (configured: %s)", app.ID, b.Channel, strings.Join(app.ChannelNames(), ", "))
		}
	}
	return nil
}

// applyPending promotes b on every channel whose tag push was waiting for b's commit,
// forgetting each pending promotion once it is applied. Only the entries listed here are
// deleted, one by one: an entry another instance adds meanwhile stays (and that tag push
// finds the bundle itself when it looks again). A failure leaves the rest in place, so a
// retry of the registration applies them (promotion is idempotent).
// The promotions are recorded with actor, the registration that carried them out.
func (a *API) applyPending(ctx context.Context, app *channel.App, b *channel.Bundle, actor *channel.Actor) (applied []string, changed bool, err error) {
	pend, err := a.store.ListPending(ctx, app.ID, b.Commit)
	if err != nil {
		return nil, false, storeError("list pending", err)
	}
	if len(pend) == 0 {
		return nil, false, nil
	}
	for _, p := range pend {
		if _, ok := app.Channels[p.Channel]; !ok {
			a.logger(ctx).WarnContext(ctx, "pending promotion names a channel no longer configured; dropped", "app", app.ID, "channel", p.Channel, "ref", p.Ref)
			if err := a.store.DeletePendingEntry(ctx, app.ID, b.Commit, p.Channel, p.Ref); err != nil {
				return applied, changed, storeError("delete pending", err)
			}
			continue
		}
		cause := p.Cause + " (pending, applied on registration of " + b.Version + ")"
		_, moved, _, order, err := a.promotePush(ctx, app, p.Channel, p.Ref, b.Version, cause, actor, p.PushedAt, p.PushKey, true)
		if err != nil {
			return applied, changed, storeError("apply pending promotion", err)
		}
		changed = changed || moved
		if order != channel.PushStale {
			applied = append(applied, p.Channel)
		} else {
			// A newer tag push was applied to the channel while this one waited for its
			// bundle: it is superseded.
			a.logger(ctx).WarnContext(ctx, "pending promotion superseded by a newer push; dropped", "app", app.ID, "channel", p.Channel, "ref", p.Ref, "version", b.Version)
		}
		if err := a.store.DeletePendingEntry(ctx, app.ID, b.Commit, p.Channel, p.Ref); err != nil {
			return applied, changed, storeError("delete pending", err)
		}
	}
	return applied, changed, nil
}

// parseBundle decodes a registration body strictly (unknown fields, trailing data and
// duplicate manifest entries are refused) and validates every field that does not depend
// on the relay's configuration. All problems are reported at once.
func parseBundle(body []byte) (*channel.Bundle, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b channel.Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "invalid_json", Msg: "the body is not a bundle JSON object: " + jsonErrorText(err), Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")
	}
	if err := validateBundle(&b); err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "invalid_bundle", Msg: joinMessages(err), Err: err}
	}
	return &b, nil
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	return err.Error()
}

// joinMessages flattens an errors.Join into one line.
func joinMessages(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// Limits on registration fields.
const (
	maxVersionLen = 128
	maxURLLen     = 8192
	maxRefLen     = 1024
)

// validateBundle checks every field of a registration body and returns all problems joined.
func validateBundle(b *channel.Bundle) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if b.AppID == "" {
		bad("app_id is required")
	} else if len(b.AppID) > 255 || !printable(b.AppID) {
		bad("app_id must be at most 255 printable characters")
	}
	if err := validVersion(b.Version); err != nil {
		bad("version: %w", err)
	}
	if err := validURL(b.URL); err != nil {
		bad("url: %w", err)
	}
	encrypted := b.SessionKey != ""
	switch {
	case encrypted:
		if !isHex(b.Checksum, 512) {
			bad("checksum of an encrypted bundle must be the V3 checksum: 512 lowercase hex characters")
		}
		if err := validSessionKey(b.SessionKey); err != nil {
			bad("session_key: %w", err)
		}
		if b.KeyID == "" {
			bad("key_id is required with session_key")
		}
	default:
		if !isHex(b.Checksum, 64) {
			if isHex(b.Checksum, 512) {
				bad("checksum is a V3 (encrypted) checksum but session_key is empty")
			} else {
				bad("checksum of a plain bundle must be the SHA-256 of the zip: 64 lowercase hex characters")
			}
		} else if b.SHA256 != "" && b.Checksum != b.SHA256 {
			bad("checksum of a plain bundle must equal sha256")
		}
		if b.KeyID != "" {
			bad("key_id is set but session_key is empty")
		}
	}
	if b.KeyID != "" && (len(b.KeyID) < 4 || len(b.KeyID) > 64 || !isBase64Chars(b.KeyID)) {
		bad("key_id must be 4 to 64 base64 characters (the start of the public key's PEM body)")
	}
	if !isHex(b.SHA256, 64) {
		bad("sha256 must be the SHA-256 of the plain zip: 64 lowercase hex characters")
	}
	if b.Size <= 0 {
		bad("size must be the byte size of the file at url, greater than 0")
	}
	if b.Commit != "" && !isHex(b.Commit, 40) && !isHex(b.Commit, 64) {
		bad("commit must be a full lowercase hex commit id (40 or 64 characters)")
	}
	if b.Ref != "" && (!strings.HasPrefix(b.Ref, "refs/") || len(b.Ref) > maxRefLen || !printable(b.Ref) || strings.ContainsAny(b.Ref, " \\")) {
		bad("ref must be a full git ref such as refs/heads/main or refs/tags/v1.2.0")
	}
	if b.Channel != "" && (len(b.Channel) > 128 || !printable(b.Channel) || strings.ContainsAny(b.Channel, " /\\")) {
		bad("channel must be a channel name (at most 128 characters, no spaces or slashes)")
	}
	if b.Native != "" {
		if err := channel.ParseRange(b.Native); err != nil {
			bad("native: %w", err)
		}
	}
	for name, u := range map[string]string{"manifest_url": b.ManifestURL, "signature_url": b.SignatureURL, "provenance_url": b.ProvenanceURL} {
		if u == "" {
			continue
		}
		if err := validURL(u); err != nil {
			bad("%s: %w", name, err)
		}
	}
	errs = append(errs, validateSignature(b.Signature)...)
	if b.Repository != "" && !validRepository(b.Repository) {
		bad("repository must be \"owner/name\"")
	}
	if !b.CreatedAt.IsZero() {
		bad("created_at is set by the relay and must be absent")
	}
	errs = append(errs, validateManifest(b.Manifest, encrypted)...)
	errs = append(errs, validateAssets(b)...)
	slices.SortStableFunc(errs, func(x, y error) int { return strings.Compare(x.Error(), y.Error()) })
	return errors.Join(errs...)
}

// maxSignatureField bounds each text field of a registration's signature facts.
const maxSignatureField = 512

// validateSignature checks the signature facts a publisher sends: a known mode, short
// printable texts, a non-negative log index.
func validateSignature(sg *channel.Signature) []error {
	if sg == nil {
		return nil
	}
	var errs []error
	if sg.Mode != "keyless" && sg.Mode != "key" {
		errs = append(errs, fmt.Errorf("signature.mode must be keyless or key, not %q", sg.Mode))
	}
	for name, v := range map[string]string{"identity": sg.Identity, "issuer": sg.Issuer, "workflow": sg.Workflow, "key_hint": sg.KeyHint} {
		if len(v) > maxSignatureField || !printable(v) {
			errs = append(errs, fmt.Errorf("signature.%s must be at most %d printable characters", name, maxSignatureField))
		}
	}
	if sg.LogIndex != nil && *sg.LogIndex < 0 {
		errs = append(errs, fmt.Errorf("signature.log_index must not be negative"))
	}
	if !sg.IntegratedTime.IsZero() && sg.LogIndex == nil {
		errs = append(errs, fmt.Errorf("signature.integrated_time needs a log_index"))
	}
	return errs
}

// validateManifest applies the plugin's path rules to a delta manifest (docs/protocol.md §4):
// relative '/'-separated names without "..", backslash, NUL or control characters, and no two
// entries writing the same file (a ".br" suffix is removed on the device).
func validateManifest(m []channel.ManifestEntry, encrypted bool) []error {
	var errs []error
	if len(m) > MaxManifestEntries {
		return []error{fmt.Errorf("manifest has %d entries; at most %d", len(m), MaxManifestEntries)}
	}
	seen := make(map[string]int, len(m))
	hashLen := 64
	if encrypted {
		hashLen = 512
	}
	for i, e := range m {
		if err := validManifestName(e.FileName); err != nil {
			errs = append(errs, fmt.Errorf("manifest[%d].file_name %q: %w", i, e.FileName, err))
		} else {
			target := strings.TrimSuffix(e.FileName, ".br")
			if j, dup := seen[target]; dup {
				errs = append(errs, fmt.Errorf("manifest[%d].file_name %q writes the same file as manifest[%d]", i, e.FileName, j))
			}
			seen[target] = i
		}
		if !isHex(e.FileHash, hashLen) {
			errs = append(errs, fmt.Errorf("manifest[%d].file_hash must be %d lowercase hex characters", i, hashLen))
		}
		if err := validURL(e.DownloadURL); err != nil {
			errs = append(errs, fmt.Errorf("manifest[%d].download_url: %w", i, err))
		}
		if e.Size < 0 {
			errs = append(errs, fmt.Errorf("manifest[%d].size must not be negative", i))
		}
	}
	return errs
}

func validManifestName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > 1024:
		return errors.New("longer than 1024 bytes")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path")
	case strings.ContainsRune(name, '\\'):
		return errors.New("contains a backslash")
	case !printable(name):
		return errors.New("contains NUL or control characters")
	case strings.TrimSuffix(name, ".br") == "":
		return errors.New("empty file name")
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return errors.New("empty path segment")
		case ".", "..":
			return errors.New("contains . or .. segments")
		}
	}
	if len(name) >= 2 && name[1] == ':' {
		return errors.New("drive-letter path")
	}
	return nil
}

// validVersion accepts 1 to 128 characters of [0-9A-Za-z.+_-], not starting with a dot,
// and not the plugin's reserved names.
func validVersion(v string) error {
	switch {
	case v == "":
		return errors.New("required")
	case len(v) > maxVersionLen:
		return fmt.Errorf("longer than %d characters", maxVersionLen)
	case strings.EqualFold(v, "builtin") || strings.EqualFold(v, "unknown"):
		return fmt.Errorf("%q is reserved by the plugin", v)
	case v[0] == '.' || v[0] == '-':
		return errors.New("must start with a letter, digit, '+' or '_'")
	}
	for _, r := range v {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '+' || r == '_' || r == '-') {
			return fmt.Errorf("character %q not allowed (use letters, digits, '.', '+', '_' and '-')", r)
		}
	}
	return nil
}

// validURL accepts absolute http and https URLs with a host and no credentials.
func validURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if len(s) > maxURLLen {
		return fmt.Errorf("longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("must be an http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("has no host")
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	if !printable(s) || strings.ContainsAny(s, " ") {
		return errors.New("contains spaces or control characters")
	}
	return nil
}

// validSessionKey checks "<b64 IV>:<b64 RSA-wrapped AES key>" in strict standard base64
// with padding: a 16-byte IV and a 256-byte wrapped key (RSA-2048, docs/protocol.md §5.1).
func validSessionKey(s string) error {
	iv, key, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(key, ":") {
		return errors.New("must be \"<base64 IV>:<base64 wrapped key>\"")
	}
	ivb, err := base64.StdEncoding.Strict().DecodeString(iv)
	if err != nil || len(ivb) != 16 {
		return errors.New("IV must be 16 bytes in standard padded base64")
	}
	kb, err := base64.StdEncoding.Strict().DecodeString(key)
	if err != nil || len(kb) != 256 {
		return errors.New("wrapped key must be 256 bytes (RSA-2048) in standard padded base64")
	}
	return nil
}

func validRepository(s string) bool {
	owner, name, ok := strings.Cut(s, "/")
	return ok && owner != "" && name != "" && !strings.Contains(name, "/") && len(s) <= 200 && printable(s) && !strings.ContainsAny(s, " \\")
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isBase64Chars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}
