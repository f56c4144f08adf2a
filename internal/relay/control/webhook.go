package control

import (
	"context"
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
	// Result is "promoted", "unchanged" (the channel already served the bundle),
	// "pending" (no bundle for the commit yet) or "tag_deleted" (nothing changes).
	Result  string `json:"result"`
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
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
}

// webhook serves POST /webhooks/github (docs/architecture.md §3.3). The signature is checked before
// anything is parsed; deliveries are deduplicated by X-GitHub-Delivery, and a delivery is
// remembered for long only once it was processed, so a delivery that failed (5xx) or whose
// processing the relay did not live to finish can be redelivered.
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
	if len(a.webhookSecret) == 0 {
		return errorf(http.StatusNotFound, "webhooks_disabled", "GitHub webhooks are disabled on this relay (FERRY_WEBHOOK_SECRET is not set)")
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
	if err := github.ValidateSignature(sig, body, a.webhookSecret); err != nil {
		return &httpError{Status: http.StatusUnauthorized, Code: "bad_signature", Msg: "the webhook signature does not match the payload", Err: err}
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
	res, err := a.processDelivery(ctx, event, delivery, payload)
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

// processDelivery handles one authenticated delivery.
func (a *API) processDelivery(ctx context.Context, event, delivery string, payload []byte) (*webhookResult, error) {
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
	actions, reason := a.planPush(ev)
	if len(actions) == 0 {
		return &webhookResult{Status: "ignored", Delivery: delivery, Reason: reason}, nil
	}

	// Deduplicate: SeenDelivery tests and marks in one atomic step, so of concurrent copies
	// of a delivery exactly one is processed. The mark is a lease, not the full retention:
	// if the relay dies before processing ends, nothing removes or extends the mark, and
	// GitHub's redelivery is processed once the lease has expired. When processing
	// succeeds the mark is extended to DeliveryTTL; when it fails (or panics) it is removed
	// at once, so that a redelivery is processed rather than answered "duplicate".
	seen, err := a.store.SeenDelivery(ctx, deliveryKey(delivery), a.lease)
	if err != nil {
		return nil, storeError("check delivery", err)
	}
	if seen {
		return &webhookResult{Status: "duplicate", Delivery: delivery, Reason: "this delivery was already processed"}, nil
	}
	done := false
	defer func() {
		if !done {
			a.forgetDelivery(ctx, delivery)
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
	a.keepDelivery(ctx, delivery)
	return res, nil
}

func deliveryKey(id string) string { return "github:" + id }

// forgetTimeout bounds removing a failed delivery's mark or extending a processed one's.
const forgetTimeout = 5 * time.Second

// keepDelivery extends the lease mark of a processed delivery to DeliveryTTL. It runs even
// if the request was cancelled meanwhile (the work is done). If it fails, the delivery was
// still processed and is answered so; the mark then expires with its lease, after which a
// replay of the delivery would be processed again, so it is logged as an error.
func (a *API) keepDelivery(ctx context.Context, delivery string) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	if err := a.store.MarkDelivery(mctx, deliveryKey(delivery), DeliveryTTL); err != nil {
		a.logger(ctx).ErrorContext(ctx, "extend processed webhook delivery's mark; a replay will be processed again once the lease expires",
			"delivery", delivery, "lease", a.lease, "error", err)
	}
}

// forgetDelivery removes the mark of a delivery whose processing failed. It runs even if
// the request was cancelled (a cancelled request is one of the failures); if it fails, a
// redelivery is answered "duplicate" until the mark expires, so it is logged as an error.
func (a *API) forgetDelivery(ctx context.Context, delivery string) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	if err := a.store.ForgetDelivery(fctx, deliveryKey(delivery)); err != nil {
		a.logger(ctx).ErrorContext(ctx, "forget failed webhook delivery; a redelivery will be answered duplicate until the lease expires",
			"delivery", delivery, "lease", a.lease, "error", err)
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

// planPush decides, without I/O, what a push asks of each configured app. Branch pushes are
// ignored: registration moves branch channels. It returns the reason when nothing applies.
func (a *API) planPush(ev *github.PushEvent) ([]tagAction, string) {
	ref := ev.GetRef()
	if !strings.HasPrefix(ref, "refs/tags/") {
		return nil, "only tag pushes promote; branch channels move on registration"
	}
	repo := ev.GetRepo().GetFullName()
	apps := a.appsForRepository(repo)
	if len(apps) == 0 {
		return nil, fmt.Sprintf("no app is configured for repository %q", repo)
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
		return nil, "the push names no commit"
	}
	var out []tagAction
	for _, app := range apps {
		ch, ok := app.MatchRef(ref)
		if !ok {
			continue
		}
		if _, ok := app.Channels[ch]; !ok {
			continue
		}
		act := tagAction{App: app, Channel: ch, Ref: ref, Before: before, Deleted: deleted}
		if !deleted {
			act.Commit = commit
		}
		out = append(out, act)
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("no rule maps %q to a channel", ref)
	}
	return out, ""
}

// applyTag carries out one tag action. A tag that moves or is deleted never leaves its
// channel without a bundle: a moved tag whose new commit has no bundle yet keeps the
// channel where it is until that bundle registers, and a deleted tag changes no channel.
func (a *API) applyTag(ctx context.Context, delivery string, act tagAction) (tagOutcome, bool, error) {
	app := act.App.ID
	out := tagOutcome{App: app, Channel: act.Channel, Ref: act.Ref, Commit: act.Commit}
	if act.Deleted {
		out.Result = "tag_deleted"
		cause := fmt.Sprintf("webhook:%s delete %s", delivery, act.Ref)
		if act.Before != "" {
			if err := a.cancelPending(ctx, app, act.Before, act.Channel, act.Ref); err != nil {
				return out, false, err
			}
		}
		st, err := a.store.GetState(ctx, app, act.Channel)
		if err != nil {
			return out, false, storeError("get state", err)
		}
		out.Version = st.Version
		err = a.store.AppendAudit(ctx, channel.AuditEntry{Time: a.now().UTC(), App: app, Channel: act.Channel, Action: "tag_deleted", Version: st.Version,
			Cause: cause + " (the channel keeps serving its version)"})
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
	b, err := a.store.BundleByCommit(ctx, app, act.Commit)
	switch {
	case err == nil && !isPRRef(b.Ref):
		st, moved, err := a.promote(ctx, app, act.Channel, b.Version, cause)
		if err != nil {
			return out, false, storeError("promote", err)
		}
		out.Version = st.Version
		out.Result = "unchanged"
		if moved {
			out.Result = "promoted"
		}
		a.logger(ctx).InfoContext(ctx, "tag push", "app", app, "channel", act.Channel, "ref", act.Ref, "version", b.Version, "result", out.Result, "delivery", delivery)
		return out, moved, nil
	case err == nil || errors.Is(err, channel.ErrNotFound):
		// No bundle built from the commit yet (or only one built for a pull request):
		// wait for its registration.
		p := channel.Pending{Channel: act.Channel, Ref: act.Ref, Cause: cause, Time: a.now().UTC()}
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
			st, moved, err := a.promote(ctx, app, act.Channel, b.Version, cause+" (the bundle registered meanwhile)")
			if err != nil {
				return out, false, storeError("promote", err)
			}
			if err := a.cancelPending(ctx, app, act.Commit, act.Channel, act.Ref); err != nil {
				return out, moved, err
			}
			out.Version = st.Version
			out.Result = "unchanged"
			if moved {
				out.Result = "promoted"
			}
			a.logger(ctx).InfoContext(ctx, "tag push", "app", app, "channel", act.Channel, "ref", act.Ref, "version", b.Version, "result", out.Result, "delivery", delivery)
			return out, moved, nil
		}
		if err := a.store.AppendAudit(ctx, channel.AuditEntry{Time: a.now().UTC(), App: app, Channel: act.Channel, Action: "pending",
			Cause: cause + " (waiting for the bundle of " + act.Commit + ")"}); err != nil {
			return out, false, storeError("append audit", err)
		}
		out.Result = "pending"
		a.logger(ctx).InfoContext(ctx, "tag push pending", "app", app, "channel", act.Channel, "ref", act.Ref, "commit", act.Commit, "delivery", delivery)
		return out, false, nil
	default:
		return out, false, storeError("bundle by commit", err)
	}
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
