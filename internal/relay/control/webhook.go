package control

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-github/v60/github"

	"github.com/ferryhq/ferry/internal/channel"
)

// zeroSHA is the "after" of a deleted ref and the "before" of a created one.
const zeroSHA = "0000000000000000000000000000000000000000"

// webhookResult is the answer to a processed delivery.
type webhookResult struct {
	// Status is "processed", "ignored", "duplicate" or "pong".
	Status   string `json:"status"`
	Delivery string `json:"delivery,omitempty"`
	// Reason says why a delivery was ignored.
	Reason string `json:"reason,omitempty"`
	// Actions lists what the delivery did, per app.
	Actions []tagOutcome `json:"actions,omitempty"`
}

// tagOutcome is what one tag push did to one app's channel.
type tagOutcome struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
	Ref     string `json:"ref"`
	// Result is "promoted", "unchanged" (the channel already served the bundle, or this
	// very push was already applied), "pending" (no bundle for the commit yet),
	// "tag_deleted" (nothing changes) or "stale" (a newer push was already applied to the
	// channel: nothing changes).
	Result  string `json:"result"`
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
	// Reason says why a push changed nothing, for "stale" and a replayed "unchanged".
	Reason string `json:"reason,omitempty"`
}

// tagAction is what a tag push asks of one app: move channel Channel to the bundle built
// from Commit, or (Deleted) record that the tag is gone.
type tagAction struct {
	App     *channel.App
	Channel string
	Ref     string
	// Commit is the commit the tag now points to; empty when Deleted.
	Commit string
	// Before is the object the tag pointed to before ("" when the tag is new).
	Before  string
	Deleted bool
	// PushedAt is the push's time as GitHub stamped it (repository.pushed_at; zero when
	// the payload has none) and PushKey its identity: together they order pushes
	// (channel.CheckPush).
	PushedAt time.Time
	PushKey  string
	// Actor names the push in the audit log: kind "webhook", the delivery id, the repository.
	Actor *channel.Actor
}

// webhook serves POST /webhooks/github (docs/architecture.md §3.3). The signature is checked
// against every configured secret before anything is parsed, and a push acts only on the
// apps that secret speaks for. Deliveries are deduplicated by their signed content (the
// body's HMAC) and by X-GitHub-Delivery, and a delivery is remembered for long only once it
// was processed, so a delivery that failed (5xx) or whose processing the relay did not live
// to finish can be redelivered; a push older than one already applied to a channel changes
// nothing there whatever its delivery id.
func (a *API) webhook(c *gin.Context) (err error) {
	event := github.WebHookType(c.Request)
	result := "error"
	defer func() {
		var he *httpError
		if err != nil && errors.As(err, &he) {
			result = he.Code
		}
		a.metrics.webhooks.WithLabelValues(eventLabel(event), result).Inc()
	}()
	if len(a.webhookKeys) == 0 {
		return errorf(http.StatusNotFound, "webhooks_disabled", "GitHub webhooks are disabled on this relay (neither FERRY_WEBHOOK_SECRET nor any app's webhook_secret_env is set)")
	}
	ctx := c.Request.Context()
	sig := c.GetHeader(github.SHA256SignatureHeader)
	if !strings.HasPrefix(sig, "sha256=") {
		return errorf(http.StatusUnauthorized, "bad_signature", "%s is required (set a secret on the GitHub webhook)", github.SHA256SignatureHeader)
	}
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || (mt != "application/json" && mt != "application/x-www-form-urlencoded") {
		return errorf(http.StatusUnsupportedMediaType, "bad_content_type", "the webhook's content type must be application/json")
	}
	// Read the raw body (bounded) and check its signature before parsing anything: a form
	// body is decoded only once it is known to come from GitHub.
	body, err := readBody(c, MaxWebhookBody)
	if err != nil {
		return err
	}
	key, mac, err := a.matchWebhookKey(sig, body)
	if err != nil {
		return err
	}
	// Authenticated from here on.
	payload := body
	if mt == "application/x-www-form-urlencoded" {
		// GitHub's "application/x-www-form-urlencoded" content type puts the JSON in the
		// payload field.
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return &httpError{Status: http.StatusBadRequest, Code: "bad_payload", Msg: "the form-encoded delivery cannot be decoded", Err: err}
		}
		payload = []byte(form.Get("payload"))
	}
	delivery := github.DeliveryID(c.Request)
	if delivery == "" || len(delivery) > 128 || !printable(delivery) {
		return errorf(http.StatusBadRequest, "bad_delivery", "%s is required", github.DeliveryIDHeader)
	}
	res, err := a.processDelivery(ctx, event, delivery, c.ClientIP(), payload, key, mac)
	if err != nil {
		return err
	}
	result = res.Status
	c.JSON(http.StatusOK, res)
	return nil
}

// eventLabel bounds the event label of metrics.
func eventLabel(e string) string {
	switch e {
	case "push", "ping":
		return e
	default:
		return "other"
	}
}

// sharedKey is one shared secret (a GitHub webhook secret or an HMAC registration
// secret) and the apps it speaks for.
type sharedKey struct {
	secret []byte
	// global is set for the relay-wide secret (FERRY_WEBHOOK_SECRET, FERRY_HMAC_SECRET): it
	// speaks for the apps without a secret of their own.
	global bool
	// apps lists the apps whose own variable holds this secret.
	apps []string
	// env names an app's own variable of this kind (webhook_secret_env, hmac_secret_env).
	env secretEnv
}

// secretEnv says which configuration field names an app's own secret of a kind, and how
// the configuration calls it.
type secretEnv struct {
	field string
	of    func(*channel.App) string
}

var (
	webhookEnv = secretEnv{"webhook_secret_env", func(a *channel.App) string { return a.WebhookSecretEnv }}
	hmacEnv    = secretEnv{"hmac_secret_env", func(a *channel.App) string { return a.HMACSecretEnv }}
)

// speaksFor reports whether a request signed with k may act on app.
func (k *sharedKey) speaksFor(app *channel.App) bool {
	if k.env.of(app) != "" {
		return slices.Contains(k.apps, app.ID)
	}
	return k.global
}

// sharedKeys builds the distinct secrets of one kind: the relay-wide one and each app's,
// read from the environment through getenv. An app naming a variable that is unset or
// empty is an error: the relay must not start with an app it cannot authenticate.
func sharedKeys(cfg *channel.Config, global string, getenv func(string) string, env secretEnv) ([]*sharedKey, error) {
	var keys []*sharedKey
	find := func(secret string) *sharedKey {
		for _, k := range keys {
			if hmac.Equal(k.secret, []byte(secret)) {
				return k
			}
		}
		k := &sharedKey{secret: []byte(secret), env: env}
		keys = append(keys, k)
		return k
	}
	if global != "" {
		find(global).global = true
	}
	var errs []error
	for i := range cfg.Apps {
		app := &cfg.Apps[i]
		name := env.of(app)
		if name == "" {
			continue
		}
		v := ""
		if getenv != nil {
			v = getenv(name)
		}
		if v == "" {
			errs = append(errs, fmt.Errorf("control: app %q: %s names %s, which is not set in the environment (or is empty)", app.ID, env.field, name))
			continue
		}
		k := find(v)
		k.apps = append(k.apps, app.ID)
	}
	return keys, errors.Join(errs...)
}

// matchWebhookKey checks X-Hub-Signature-256 against every webhook secret and returns the
// one that signed body and the body's HMAC under it: the key deliveries are de-duplicated
// on. Every secret's HMAC is computed, so the time taken does not tell which matched.
func (a *API) matchWebhookKey(sig string, body []byte) (*sharedKey, []byte, error) {
	got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if err != nil || len(got) != sha256.Size {
		return nil, nil, errorf(http.StatusUnauthorized, "bad_signature", "%s must be \"sha256=<64 hex characters>\"", github.SHA256SignatureHeader)
	}
	match := matchKey(a.webhookKeys, got, func(secret []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		return m.Sum(nil)
	})
	if match == nil {
		return nil, nil, errorf(http.StatusUnauthorized, "bad_signature", "the webhook signature does not match the payload")
	}
	return match, got, nil
}

// matchKey returns the key whose mac equals got, or nil. Every key's MAC is computed, so the
// time taken does not tell which matched.
func matchKey(keys []*sharedKey, got []byte, mac func(secret []byte) []byte) *sharedKey {
	var match *sharedKey
	for _, k := range keys {
		if hmac.Equal(mac(k.secret), got) && match == nil {
			match = k
		}
	}
	return match
}

// processDelivery handles one authenticated delivery, signed with key; mac is the body's
// HMAC under it.
func (a *API) processDelivery(ctx context.Context, event, delivery, ip string, payload []byte, key *sharedKey, mac []byte) (*webhookResult, error) {
	switch event {
	case "ping":
		return &webhookResult{Status: "pong", Delivery: delivery, Reason: pingAdvice(payload)}, nil
	case "push":
	default:
		return &webhookResult{Status: "ignored", Delivery: delivery, Reason: fmt.Sprintf("event %q is not used; subscribe the webhook to push events only", event)}, nil
	}
	ev, err := parsePush(payload)
	if err != nil {
		return nil, err
	}
	actions, reason, err := a.planPush(ev, key)
	if err != nil {
		return nil, err
	}
	actor := &channel.Actor{Kind: "webhook", ID: delivery, Name: ev.GetRepo().GetFullName(), IP: ip}
	for i := range actions {
		actions[i].Actor = actor
	}
	if len(actions) == 0 {
		return &webhookResult{Status: "ignored", Delivery: delivery, Reason: reason}, nil
	}

	// Deduplicate, first on the signed content, then on the (unsigned) delivery id: a body
	// GitHub signed is one delivery, whatever X-GitHub-Delivery says. SeenDelivery tests
	// and marks in one atomic step, so of concurrent copies exactly one is processed. The
	// marks are a lease, not the full retention: if the relay dies before processing ends,
	// nothing removes or extends them, and GitHub's redelivery is processed once the lease
	// has expired. When processing succeeds the marks are extended to DeliveryTTL; when it
	// fails (or panics) they are removed at once, so that a redelivery is processed rather
	// than answered "duplicate".
	marks := []string{contentKey(mac), deliveryKey(delivery)}
	seen, err := a.store.SeenDelivery(ctx, marks[0], a.lease)
	if err != nil {
		return nil, storeError("check delivery", err)
	}
	if seen {
		a.metrics.refused.WithLabelValues("replayed_push").Inc()
		return &webhookResult{Status: "duplicate", Delivery: delivery, Reason: "a delivery with this signed body was already processed"}, nil
	}
	seen, err = a.store.SeenDelivery(ctx, marks[1], a.lease)
	if err != nil || seen {
		a.forgetDelivery(ctx, delivery, marks[:1]) // the content mark just taken
	}
	if err != nil {
		return nil, storeError("check delivery", err)
	}
	if seen {
		return &webhookResult{Status: "duplicate", Delivery: delivery, Reason: "this delivery was already processed"}, nil
	}
	done := false
	defer func() {
		if !done {
			a.forgetDelivery(ctx, delivery, marks)
		}
	}()

	res := &webhookResult{Status: "processed", Delivery: delivery}
	changed := map[string]bool{}
	defer func() {
		for app := range changed {
			a.onChange(app)
		}
	}()
	for _, act := range actions {
		out, moved, err := a.applyTag(ctx, delivery, act)
		if moved {
			changed[act.App.ID] = true
		}
		if err != nil {
			return nil, err
		}
		res.Actions = append(res.Actions, out)
	}
	done = true
	a.keepDelivery(ctx, delivery, marks)
	return res, nil
}

func deliveryKey(id string) string { return "github:" + id }

// contentKey is the de-duplication mark of a signed body: its HMAC under the secret that
// signed it, so one body is one delivery per secret (two webhooks of one repository with
// different secrets each deliver it once).
func contentKey(mac []byte) string { return "github-body:" + hex.EncodeToString(mac) }

// forgetTimeout bounds removing a failed delivery's mark or extending a processed one's.
const forgetTimeout = 5 * time.Second

// keepDelivery extends the lease marks of a processed delivery to DeliveryTTL, the delivery
// id's first. It runs even if the request was cancelled meanwhile (the work is done). If
// one fails, the store is failing: the rest are left to expire with their lease too. The
// delivery was still processed and is answered so; once the lease expired a replay is
// processed again, and changes nothing the push order recorded on each channel does not
// allow (channel.CheckPush), so it is logged as an error.
func (a *API) keepDelivery(ctx context.Context, delivery string, marks []string) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	for _, m := range slices.Backward(marks) {
		if err := a.store.MarkDelivery(mctx, m, DeliveryTTL); err != nil {
			a.logger(ctx).ErrorContext(ctx, "extend processed webhook delivery's mark; a replay will be processed again once the lease expires",
				"delivery", delivery, "mark", m, "lease", a.lease, "error", err)
			return
		}
	}
}

// forgetDelivery removes the marks of a delivery whose processing failed. It runs even if
// the request was cancelled (a cancelled request is one of the failures); if it fails, a
// redelivery is answered "duplicate" until the mark expires, so it is logged as an error.
func (a *API) forgetDelivery(ctx context.Context, delivery string, marks []string) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	for _, m := range slices.Backward(marks) {
		if err := a.store.ForgetDelivery(fctx, m); err != nil {
			a.logger(ctx).ErrorContext(ctx, "forget failed webhook delivery; a redelivery will be answered duplicate until the lease expires",
				"delivery", delivery, "mark", m, "lease", a.lease, "error", err)
		}
	}
}

// pingAdvice checks the hook configuration GitHub sends with a ping and says what is wrong
// with it, if anything: the relay needs push events, and learns of repositories by name.
func pingAdvice(payload []byte) string {
	v, err := github.ParseWebHook("ping", payload)
	if err != nil {
		return ""
	}
	ping, ok := v.(*github.PingEvent)
	if !ok || ping.Hook == nil {
		return ""
	}
	if ev := ping.Hook.Events; len(ev) > 0 && !slices.Contains(ev, "push") && !slices.Contains(ev, "*") {
		return fmt.Sprintf("this webhook sends %v but not push events: tag pushes will not promote; subscribe it to push", ev)
	}
	return ""
}

// parsePush decodes an authenticated push payload.
func parsePush(payload []byte) (*github.PushEvent, error) {
	v, err := github.ParseWebHook("push", payload)
	if err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "bad_payload", Msg: "the push payload is not valid JSON", Err: err}
	}
	ev, ok := v.(*github.PushEvent)
	if !ok || ev.GetRef() == "" || ev.GetRepo().GetFullName() == "" {
		return nil, errorf(http.StatusBadRequest, "bad_payload", "the push payload lacks ref or repository.full_name")
	}
	return ev, nil
}

// planPush decides, without I/O, what a push signed with key asks of each configured app.
// Branch pushes are ignored: registration moves branch channels. It returns the reason
// when nothing applies, and an error when the push names a repository whose apps key does
// not speak for (a push signed with another app's secret).
func (a *API) planPush(ev *github.PushEvent, key *sharedKey) ([]tagAction, string, error) {
	ref := ev.GetRef()
	repo := ev.GetRepo().GetFullName()
	all := a.appsForRepository(repo)
	var apps []*channel.App
	for _, app := range all {
		if key.speaksFor(app) {
			apps = append(apps, app)
		}
	}
	// An app's own secret speaks for its repository only; the relay-wide one for the
	// repositories of apps without their own (and for unknown ones, which change nothing).
	if len(apps) == 0 && (len(all) > 0 || !key.global) {
		a.metrics.refused.WithLabelValues("webhook_secret").Inc()
		return nil, "", errorf(http.StatusUnauthorized, "bad_signature",
			"the delivery is signed with a webhook secret that is not the one configured for repository %q; nothing changed", repo)
	}
	if !strings.HasPrefix(ref, "refs/tags/") {
		return nil, "only tag pushes promote; branch channels move on registration", nil
	}
	if len(all) == 0 {
		return nil, fmt.Sprintf("no app is configured for repository %q", repo), nil
	}
	var pinned []string
	apps = slices.DeleteFunc(apps, func(app *channel.App) bool {
		if app.RepositoryID != 0 && ev.GetRepo().GetID() != app.RepositoryID {
			pinned = append(pinned, app.ID)
			return true
		}
		return false
	})
	if len(apps) == 0 {
		return nil, fmt.Sprintf("repository %q has id %d, not the repository_id the relay's configuration pins for %s", repo, ev.GetRepo().GetID(), strings.Join(pinned, ", ")), nil
	}
	before := ev.GetBefore()
	if before == zeroSHA {
		before = ""
	}
	deleted := ev.GetDeleted()
	// For an annotated tag, "after" is the tag object; head_commit is the commit it points
	// to. For a lightweight tag both are the commit.
	commit := strings.ToLower(ev.GetHeadCommit().GetID())
	if commit == "" {
		commit = strings.ToLower(ev.GetAfter())
	}
	if !deleted && (commit == "" || commit == zeroSHA || !(isHex(commit, 40) || isHex(commit, 64))) {
		return nil, "the push names no commit", nil
	}
	var pushedAt time.Time
	if t := ev.GetRepo().GetPushedAt(); !t.IsZero() {
		pushedAt = t.UTC().Truncate(time.Second)
	}
	pushKey := channel.PushKey(ref, strings.ToLower(ev.GetBefore()), strings.ToLower(ev.GetAfter()))
	var out []tagAction
	for _, app := range apps {
		ch, ok := app.MatchRef(ref)
		if !ok {
			continue
		}
		if _, ok := app.Channels[ch]; !ok {
			continue
		}
		act := tagAction{App: app, Channel: ch, Ref: ref, Before: before, Deleted: deleted, PushedAt: pushedAt, PushKey: pushKey}
		if !deleted {
			act.Commit = commit
		}
		out = append(out, act)
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("no rule maps %q to a channel", ref), nil
	}
	return out, "", nil
}

// applyTag carries out one tag action. A tag that moves or is deleted never leaves its
// channel without a bundle: a moved tag whose new commit has no bundle yet keeps the
// channel where it is until that bundle registers, and a deleted tag changes no channel.
// A push older than one already applied to the channel, or that very push again, changes
// nothing (channel.CheckPush): replaying a logged body under a new delivery id cannot
// roll a channel back.
func (a *API) applyTag(ctx context.Context, delivery string, act tagAction) (tagOutcome, bool, error) {
	app := act.App.ID
	out := tagOutcome{App: app, Channel: act.Channel, Ref: act.Ref, Commit: act.Commit}
	st, err := a.store.GetState(ctx, app, act.Channel)
	if err != nil {
		return out, false, storeError("get state", err)
	}
	if order := channel.CheckPush(st, act.PushedAt, act.PushKey); order != channel.PushNew {
		a.pushRefused(ctx, &out, st, order, delivery)
		return out, false, nil
	}
	if act.Deleted {
		out.Result = "tag_deleted"
		cause := fmt.Sprintf("webhook:%s delete %s", delivery, act.Ref)
		if act.Before != "" {
			if err := a.cancelPending(ctx, app, act.Before, act.Channel, act.Ref); err != nil {
				return out, false, err
			}
		}
		out.Version = st.Version
		err = a.store.AppendAudit(ctx, channel.AuditEntry{Time: a.now().UTC(), App: app, Channel: act.Channel, Action: "tag_deleted", Version: st.Version,
			Cause: cause + " (the channel keeps serving its version)", Actor: act.Actor})
		if err != nil {
			return out, false, storeError("append audit", err)
		}
		return out, false, nil
	}

	cause := fmt.Sprintf("webhook:%s push %s", delivery, act.Ref)
	// The tag no longer points where it did: a promotion still waiting for the old commit
	// is void. (For annotated tags, Before is the old tag object and matches nothing.)
	if act.Before != "" && act.Before != act.Commit {
		if err := a.cancelPending(ctx, app, act.Before, act.Channel, act.Ref); err != nil {
			return out, false, err
		}
	}
	// One tag push, one promotion: a channel that already serves a bundle of the tagged
	// commit (the tag's own build registered first, say) keeps it, and only takes the tag
	// as its release name.
	served, err := a.servedFromCommit(ctx, st, act.Commit)
	if err != nil {
		return out, false, err
	}
	if served != "" {
		return a.promoteTag(ctx, out, act, served, cause, delivery)
	}
	b, err := a.store.BundleByCommit(ctx, app, act.Commit)
	switch {
	case err == nil && !isPRRef(b.Ref):
		return a.promoteTag(ctx, out, act, b.Version, cause, delivery)
	case err == nil || errors.Is(err, channel.ErrNotFound):
		// No bundle built from the commit yet (or only one built for a pull request):
		// wait for its registration.
		p := channel.Pending{Channel: act.Channel, Ref: act.Ref, Cause: cause, Time: a.now().UTC(), PushedAt: act.PushedAt, PushKey: act.PushKey}
		if err := a.store.AddPending(ctx, app, act.Commit, p); err != nil {
			return out, false, storeError("add pending", err)
		}
		// A registration of the commit may have landed between BundleByCommit and
		// AddPending, and looked for pending entries before this one was written. Both
		// sides write before they read, so one of them sees the other: look again, and if
		// the bundle is there now, promote it here (promoting twice changes nothing).
		b, err := a.store.BundleByCommit(ctx, app, act.Commit)
		if err != nil && !errors.Is(err, channel.ErrNotFound) {
			return out, false, storeError("bundle by commit", err)
		}
		if err == nil && !isPRRef(b.Ref) {
			out, moved, err := a.promoteTag(ctx, out, act, b.Version, cause+" (the bundle registered meanwhile)", delivery)
			if err != nil {
				return out, moved, err
			}
			if err := a.cancelPending(ctx, app, act.Commit, act.Channel, act.Ref); err != nil {
				return out, moved, err
			}
			return out, moved, nil
		}
		if err := a.recordPending(ctx, act, channel.AuditEntry{Time: a.now().UTC(), App: app, Channel: act.Channel, Action: "pending",
			Cause: cause + " (waiting for the bundle of " + act.Commit + ")", Actor: act.Actor}); err != nil {
			return out, false, err
		}
		out.Result = "pending"
		a.logger(ctx).InfoContext(ctx, "tag push pending", "app", app, "channel", act.Channel, "ref", act.Ref, "commit", act.Commit, "delivery", delivery)
		return out, false, nil
	default:
		return out, false, storeError("bundle by commit", err)
	}
}

// recordPending records a push whose bundle is not registered yet on its channel, with
// the audit entry e, so that an older push replayed meanwhile (a deletion of the tag, say)
// is recognised as stale. A push without a time has nothing to record: e is appended alone.
func (a *API) recordPending(ctx context.Context, act tagAction, e channel.AuditEntry) error {
	if act.PushedAt.IsZero() {
		if err := a.store.AppendAudit(ctx, e); err != nil {
			return storeError("append audit", err)
		}
		return nil
	}
	_, err := a.updateState(ctx, act.App.ID, act.Channel, func(s *channel.State) (*channel.AuditEntry, error) {
		if channel.CheckPush(s, act.PushedAt, act.PushKey) != channel.PushNew {
			// A newer push was recorded meanwhile; the pending entry is dropped as
			// superseded when its bundle registers.
			return nil, nil
		}
		channel.RecordPush(s, act.PushedAt, act.PushKey)
		return &e, nil
	})
	if err != nil {
		return storeError("record pending push", err)
	}
	return nil
}

// promoteTag promotes version on the action's channel for a tag push and records the push
// on the channel, both in one state update: if a newer push was recorded meanwhile (by
// another instance), nothing changes and the outcome says so.
func (a *API) promoteTag(ctx context.Context, out tagOutcome, act tagAction, version, cause, delivery string) (tagOutcome, bool, error) {
	st, moved, renamed, order, err := a.promotePush(ctx, act.App, act.Channel, act.Ref, version, cause, act.Actor, act.PushedAt, act.PushKey, false)
	if err != nil {
		return out, false, storeError("promote", err)
	}
	if order != channel.PushNew {
		a.pushRefused(ctx, &out, st, order, delivery)
		return out, false, nil
	}
	out.Version = st.Version
	switch {
	case moved:
		out.Result = "promoted"
	case renamed:
		out.Result = "renamed" // the channel serves version already, now under the tag's name
	default:
		out.Result = "unchanged"
	}
	a.logger(ctx).InfoContext(ctx, "tag push", "app", act.App.ID, "channel", act.Channel, "ref", act.Ref, "version", version, "result", out.Result, "delivery", delivery)
	return out, moved, nil
}

// pushRefused fills the outcome of a push the channel's push order refuses.
func (a *API) pushRefused(ctx context.Context, out *tagOutcome, st *channel.State, order channel.PushOrder, delivery string) {
	out.Version = st.Version
	reason := "replayed_push"
	if order == channel.PushStale {
		reason = "stale_push"
		out.Result = "stale"
		out.Reason = fmt.Sprintf("a newer push (of %s) was already applied to the channel; this one changes nothing", st.LastPush.At.Format(time.RFC3339))
	} else {
		out.Result = "unchanged"
		out.Reason = "this push was already applied to the channel; applying it again changes nothing"
	}
	a.metrics.refused.WithLabelValues(reason).Inc()
	a.logger(ctx).WarnContext(ctx, "tag push not applied", "app", out.App, "channel", out.Channel, "ref", out.Ref, "result", out.Result, "reason", reason, "delivery", delivery)
}

// promotePush makes version the stable version of (app, ch) for a push of ref stamped at
// with identity key (or starts the rollout plan the ref's rule names, see deploy), in one UpdateState call, unless the push is older than a push already
// recorded on the channel, or (for a push applied directly, not pending) the same push:
// then nothing is written and order says which. A pending push was recorded when it
// arrived, so being the newest recorded push is what lets it apply. The push is recorded
// on the channel even when the channel already served version (with a "tag_push" audit
// entry), so a later replay of it is recognised, and the channel's release name becomes
// ref's release name (the tag's name); a ref whose rule names a rollout plan starts the
// plan instead (see deploy). It reports whether the channel's version changed (or a plan
// started), and else whether only its release name did.
func (a *API) promotePush(ctx context.Context, app *channel.App, ch, ref, version, cause string, actor *channel.Actor, at time.Time, key string, pending bool) (st *channel.State, changed, renamed bool, order channel.PushOrder, err error) {
	order = channel.PushNew
	release := channel.ReleaseName(ref)
	st, err = a.updateState(ctx, app.ID, ch, func(s *channel.State) (*channel.AuditEntry, error) {
		changed, renamed = false, false
		order = channel.CheckPush(s, at, key)
		if order == channel.PushStale || (order == channel.PushApplied && !pending) {
			return nil, nil
		}
		recorded := order == channel.PushNew && !at.IsZero()
		from := s.Version
		var action string
		changed, action = a.deploy(s, app, ref, ch, version)
		named, rel := false, ""
		if action == "promote" { // a plan started keeps the stable version and its name
			named, rel = s.Release != release, release
			s.Release = release
		}
		channel.RecordPush(s, at, key)
		switch {
		case changed:
			return &channel.AuditEntry{Time: a.now().UTC(), App: app.ID, Channel: ch, Action: action, Version: version, From: from, Release: rel, Cause: cause, Actor: actor}, nil
		case recorded || named:
			renamed = named
			return &channel.AuditEntry{Time: a.now().UTC(), App: app.ID, Channel: ch, Action: "tag_push", Version: version, Release: rel,
				Cause: cause + " (the channel already serves it; push recorded)", Actor: actor}, nil
		default:
			return nil, nil
		}
	})
	if err != nil {
		return nil, false, false, order, err
	}
	if changed {
		a.metrics.promotions.WithLabelValues(causeSource(cause)).Inc()
	}
	return st, changed, renamed, order, nil
}

// cancelPending removes the promotion of (ch, ref) waiting for commit, keeping the others:
// one atomic store step, so nothing is lost if the relay dies or another instance adds an
// entry for the commit meanwhile.
func (a *API) cancelPending(ctx context.Context, app, commit, ch, ref string) error {
	if err := a.store.DeletePendingEntry(ctx, app, commit, ch, ref); err != nil {
		return storeError("delete pending", err)
	}
	return nil
}
