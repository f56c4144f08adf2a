package control

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// payload reads a recorded GitHub payload from testdata and applies edits to its top-level
// fields (a nil value deletes the field).
func payload(t *testing.T, name string, edits map[string]any) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) == 0 {
		return raw
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range edits {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return mustJSON(t, m)
}

// headCommit is the head_commit object of a push to commit.
func headCommit(commit string) map[string]any {
	return map[string]any{"id": commit, "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "message": "release", "url": "https://github.com/acme/mobile-app/commit/" + commit}
}

// githubHeaders are the headers GitHub sends with a delivery signed with secret.
func githubHeaders(event, delivery, secret string, body []byte) http.Header {
	m256 := hmac.New(sha256.New, []byte(secret))
	m256.Write(body)
	m1 := hmac.New(sha1.New, []byte(secret))
	m1.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/8a3b1c2")
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Hook-ID", "451230987")
	h.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	h.Set("X-GitHub-Hook-Installation-Target-ID", "700000001")
	h.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(m1.Sum(nil)))
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m256.Sum(nil)))
	return h
}

// deliver posts a signed delivery and decodes a 200 answer.
func (e *env) deliver(event, delivery string, body []byte, wantCode int) webhookResult {
	e.t.Helper()
	w := e.do("POST", "/webhooks/github", body, githubHeaders(event, delivery, hookSecret, body))
	if w.Code != wantCode {
		e.t.Fatalf("delivery %s (%s): status %d, want %d: %s", delivery, event, w.Code, wantCode, w.Body)
	}
	var r webhookResult
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
			e.t.Fatal(err)
		}
	}
	return r
}

func tagCreated(t *testing.T, tag, commit string) []byte {
	t.Helper()
	return payload(t, "push_tag_created.json", map[string]any{"ref": "refs/tags/" + tag, "after": commit, "head_commit": headCommit(commit)})
}

func tagMoved(t *testing.T, tag, from, to string) []byte {
	t.Helper()
	return payload(t, "push_tag_moved.json", map[string]any{"ref": "refs/tags/" + tag, "before": from, "after": to, "head_commit": headCommit(to)})
}

func TestWebhookTagCreatedPromotes(t *testing.T) {
	t.Parallel()
	testWebhookTagCreatedPromotes(t, newBolt)
}

func testWebhookTagCreatedPromotes(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	changesBefore := e.changes.count()
	r := e.deliver("push", "d-created", payload(t, "push_tag_created.json", nil), http.StatusOK)
	want := []tagOutcome{{App: appID, Channel: "production", Ref: "refs/tags/v1.0.0", Result: "promoted", Version: "1.0.0", Commit: commitA}}
	if r.Status != "processed" || !slices.Equal(r.Actions, want) {
		t.Errorf("result = %+v, want processed %+v", r, want)
	}
	if v := e.state("production").Version; v != "1.0.0" {
		t.Errorf("production = %q, want 1.0.0", v)
	}
	if got := e.audit()[0]; got.Action != "promote" || got.Channel != "production" || got.Cause != "webhook:d-created push refs/tags/v1.0.0" {
		t.Errorf("audit = %+v", got)
	}
	if e.changes.count() != changesBefore+1 {
		t.Errorf("OnChange calls = %d, want %d", e.changes.count(), changesBefore+1)
	}
}

func TestWebhookAnnotatedTagUsesHeadCommit(t *testing.T) {
	t.Parallel()
	testWebhookAnnotatedTagUsesHeadCommit(t, newBolt)
}

func testWebhookAnnotatedTagUsesHeadCommit(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("2.0.0", commitB), http.StatusCreated)
	// "after" is the tag object; head_commit is the commit it points to.
	r := e.deliver("push", "d-annotated", payload(t, "push_annotated_tag.json", nil), http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "promoted" || r.Actions[0].Commit != commitB {
		t.Errorf("result = %+v", r)
	}
	if v := e.state("production").Version; v != "2.0.0" {
		t.Errorf("production = %q, want 2.0.0", v)
	}
}

func TestWebhookMovedTag(t *testing.T) {
	t.Parallel()
	testWebhookMovedTag(t, newBolt)
}

func testWebhookMovedTag(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.registerHMAC(testBundle("1.0.1", commitB), http.StatusCreated)
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitA), http.StatusOK)
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Fatalf("staging = %q, want 1.0.0", v)
	}
	// The recorded payload: channel/staging moved from commitA to commitB (forced).
	r := e.deliver("push", "d2", payload(t, "push_tag_moved.json", nil), http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "promoted" {
		t.Errorf("result = %+v", r)
	}
	st := e.state("staging")
	if st.Version != "1.0.1" || !slices.Equal(st.History, []string{"1.0.0"}) {
		t.Errorf("staging = %q history %v, want 1.0.1 [1.0.0]", st.Version, st.History)
	}
	// Moving it back is a rollback by tag.
	e.deliver("push", "d3", tagMoved(t, "channel/staging", commitB, commitA), http.StatusOK)
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Errorf("staging after moving the tag back = %q, want 1.0.0", v)
	}
}

func TestWebhookPendingAppliedOnRegistration(t *testing.T) {
	t.Parallel()
	testWebhookPendingAppliedOnRegistration(t, newBolt)
}

func testWebhookPendingAppliedOnRegistration(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitA), http.StatusOK)

	// The tag moves to a commit whose bundle is still building: the channel stays put.
	r := e.deliver("push", "d2", payload(t, "push_tag_moved.json", nil), http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "pending" || r.Actions[0].Commit != commitB {
		t.Fatalf("result = %+v, want pending for %s", r, commitB)
	}
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Errorf("staging = %q while the new bundle is pending, want 1.0.0", v)
	}
	pend, err := e.store.ListPending(t.Context(), appID, commitB)
	if err != nil || len(pend) != 1 || pend[0].Channel != "staging" || pend[0].Ref != "refs/tags/channel/staging" {
		t.Fatalf("pending = %+v, %v", pend, err)
	}
	if a := e.audit()[0]; a.Action != "pending" || !strings.Contains(a.Cause, "webhook:d2") || !strings.Contains(a.Cause, commitB) {
		t.Errorf("audit = %+v", a)
	}

	// The bundle registers (from a branch no rule maps): the pending promotion applies.
	b := testBundle("1.0.1", commitB)
	b.Ref = "refs/heads/release"
	reg := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if !slices.Equal(reg.PendingApplied, []string{"staging"}) {
		t.Errorf("pending_applied = %v, want [staging]", reg.PendingApplied)
	}
	if v := e.state("staging").Version; v != "1.0.1" {
		t.Errorf("staging = %q, want 1.0.1", v)
	}
	if pend, _ := e.store.ListPending(t.Context(), appID, commitB); len(pend) != 0 {
		t.Errorf("pending after apply = %+v", pend)
	}
	if a := e.audit()[0]; a.Action != "promote" || !strings.HasPrefix(a.Cause, "webhook:d2 push refs/tags/channel/staging (pending") {
		t.Errorf("audit = %+v", a)
	}
}

func TestWebhookMovedTagCancelsOlderPending(t *testing.T) {
	t.Parallel()
	testWebhookMovedTagCancelsOlderPending(t, newBolt)
}

func testWebhookMovedTagCancelsOlderPending(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitA), http.StatusOK)
	e.deliver("push", "d2", tagMoved(t, "channel/staging", commitA, commitC), http.StatusOK) // pending on C
	e.deliver("push", "d3", tagMoved(t, "channel/staging", commitC, commitA), http.StatusOK) // back to A
	if pend, _ := e.store.ListPending(t.Context(), appID, commitC); len(pend) != 0 {
		t.Errorf("pending on %s after the tag moved away = %+v", commitC, pend)
	}
	b := testBundle("1.0.2", commitC)
	b.Ref = "refs/heads/release"
	reg := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if len(reg.PendingApplied) != 0 || e.state("staging").Version != "1.0.0" {
		t.Errorf("a void pending promotion applied: %v, staging = %q", reg.PendingApplied, e.state("staging").Version)
	}
}

func TestWebhookDeletedTag(t *testing.T) {
	t.Parallel()
	testWebhookDeletedTag(t, newBolt)
}

func testWebhookDeletedTag(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitA), http.StatusOK)
	e.deliver("push", "d2", tagMoved(t, "channel/staging", commitA, commitB), http.StatusOK) // pending on B
	stateBefore := e.state("staging")

	r := e.deliver("push", "d3", payload(t, "push_tag_deleted.json", nil), http.StatusOK) // deleted, before = B
	want := []tagOutcome{{App: appID, Channel: "staging", Ref: "refs/tags/channel/staging", Result: "tag_deleted", Version: "1.0.0"}}
	if !slices.Equal(r.Actions, want) {
		t.Errorf("actions = %+v, want %+v", r.Actions, want)
	}
	if st := e.state("staging"); st.Version != "1.0.0" || st.Rev != stateBefore.Rev {
		t.Errorf("staging = %q rev %d, want unchanged 1.0.0 rev %d", st.Version, st.Rev, stateBefore.Rev)
	}
	if a := e.audit()[0]; a.Action != "tag_deleted" || a.Version != "1.0.0" || !strings.HasPrefix(a.Cause, "webhook:d3 delete refs/tags/channel/staging") {
		t.Errorf("audit = %+v", a)
	}
	// The promotion that waited for B is void: registering B does not move staging.
	if pend, _ := e.store.ListPending(t.Context(), appID, commitB); len(pend) != 0 {
		t.Errorf("pending after delete = %+v", pend)
	}
	b := testBundle("1.0.1", commitB)
	b.Ref = "refs/heads/release"
	e.registerHMAC(b, http.StatusCreated)
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Errorf("staging = %q after registering the deleted tag's commit, want 1.0.0", v)
	}
}

func TestWebhookReplayedDelivery(t *testing.T) {
	t.Parallel()
	testWebhookReplayedDelivery(t, newBolt)
}

func testWebhookReplayedDelivery(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.registerHMAC(testBundle("1.0.1", commitB), http.StatusCreated)
	old := tagCreated(t, "channel/staging", commitA)
	e.deliver("push", "d-old", old, http.StatusOK)
	e.deliver("push", "d-new", tagMoved(t, "channel/staging", commitA, commitB), http.StatusOK)
	before := e.snapshot()
	changes := e.changes.count()

	// A replay of the old, validly signed delivery must not roll staging back.
	for range 2 {
		r := e.deliver("push", "d-old", old, http.StatusOK)
		if r.Status != "duplicate" {
			t.Errorf("replay status = %q, want duplicate", r.Status)
		}
	}
	e.unchanged(before)
	if v := e.state("staging").Version; v != "1.0.1" {
		t.Errorf("staging = %q, want 1.0.1", v)
	}
	if e.changes.count() != changes {
		t.Error("OnChange called for a replay")
	}
}

func TestWebhookFailedDeliveryCanBeRedelivered(t *testing.T) {
	t.Parallel()
	testWebhookFailedDeliveryCanBeRedelivered(t, newBolt)
}

func testWebhookFailedDeliveryCanBeRedelivered(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	body := payload(t, "push_tag_created.json", nil)
	for _, method := range []string{"BundleByCommit", "UpdateState"} {
		e.store.failNext(method, 1)
		w := e.do("POST", "/webhooks/github", body, githubHeaders("push", "d-retry", hookSecret, body))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%s outage: status %d: %s", method, w.Code, w.Body)
		}
		if v := e.state("production").Version; v != "" {
			t.Fatalf("production = %q after a failed delivery", v)
		}
	}
	// GitHub redelivers with the same delivery id, at once: the failed attempts' marks
	// were removed, not left to expire.
	r := e.deliver("push", "d-retry", body, http.StatusOK)
	if r.Status != "processed" || e.state("production").Version != "1.0.0" {
		t.Errorf("redelivery: %+v, production = %q", r, e.state("production").Version)
	}
	if r := e.deliver("push", "d-retry", body, http.StatusOK); r.Status != "duplicate" {
		t.Errorf("second redelivery status = %q, want duplicate", r.Status)
	}
}

func TestWebhookConcurrentCopies(t *testing.T) {
	t.Parallel()
	testWebhookConcurrentCopies(t, newBolt)
}

// testWebhookConcurrentCopies sends copies of one delivery at once: exactly one is
// processed and the others answer duplicate; when the processed one fails, a later
// redelivery is processed.
func testWebhookConcurrentCopies(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.registerHMAC(testBundle("1.0.1", commitB), http.StatusCreated)

	// send posts copies of a delivery at once, the first copy to be processed held in
	// BundleByCommit until every other copy has answered; it returns the statuses.
	send := func(delivery string, body []byte, copies int) (statuses []string, codes []int) {
		t.Helper()
		entered, release := e.store.holdNext(t, "BundleByCommit")
		var mu sync.Mutex
		var wg sync.WaitGroup
		answered := make(chan struct{}, copies)
		for range copies {
			wg.Go(func() {
				w := e.do("POST", "/webhooks/github", body, githubHeaders("push", delivery, hookSecret, body))
				var r webhookResult
				if w.Code == http.StatusOK {
					if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
						t.Errorf("decode %s: %v", w.Body, err)
					}
				}
				mu.Lock()
				statuses, codes = append(statuses, r.Status), append(codes, w.Code)
				mu.Unlock()
				answered <- struct{}{}
			})
		}
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("no copy reached processing")
		}
		for range copies - 1 {
			select {
			case <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("the other copies did not answer while the first was processing")
			}
		}
		release()
		wg.Wait()
		return statuses, codes
	}
	const copies = 8
	statuses, codes := send("d-twice", tagCreated(t, "channel/staging", commitA), copies)
	if countOf(statuses, "processed") != 1 || countOf(statuses, "duplicate") != copies-1 {
		t.Errorf("%d concurrent copies answered %v (%v); want one processed, the rest duplicate", copies, statuses, codes)
	}
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Errorf("staging = %q, want 1.0.0", v)
	}

	// The copy being processed fails: the others were answered duplicate, so GitHub's
	// redelivery of the failed one must be processed.
	body := tagMoved(t, "channel/staging", commitA, commitB)
	e.store.failNext("UpdateState", 1)
	statuses, codes = send("d-fail", body, copies)
	if countOf(codes, http.StatusServiceUnavailable) != 1 || countOf(statuses, "duplicate") != copies-1 {
		t.Errorf("%d concurrent copies, the processed one failing, answered %v (%v); want one 503, the rest duplicate", copies, statuses, codes)
	}
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Errorf("staging = %q after the failed delivery, want 1.0.0", v)
	}
	if r := e.deliver("push", "d-fail", body, http.StatusOK); r.Status != "processed" {
		t.Errorf("redelivery after the failure: status %q, want processed", r.Status)
	}
	if v := e.state("staging").Version; v != "1.0.1" {
		t.Errorf("staging = %q after the redelivery, want 1.0.1", v)
	}
	if r := e.deliver("push", "d-fail", body, http.StatusOK); r.Status != "duplicate" {
		t.Errorf("second redelivery status = %q, want duplicate", r.Status)
	}
}

// countOf returns how many elements of xs equal x.
func countOf[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestWebhookForgetFails: when removing a failed delivery's mark fails too, the failure is
// still answered 503 (GitHub shows it failed), nothing changed, and the error is logged.
func TestWebhookForgetFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	body := payload(t, "push_tag_created.json", nil)
	e.store.failNext("UpdateState", 1)
	e.store.failNext("ForgetDelivery", 1)
	w := e.do("POST", "/webhooks/github", body, githubHeaders("push", "d-stuck", hookSecret, body))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
	}
	if v := e.state("production").Version; v != "" {
		t.Errorf("production = %q after a failed delivery", v)
	}
	// The mark stayed: a redelivery is (wrongly, but knowingly) a duplicate until it expires.
	if r := e.deliver("push", "d-stuck", body, http.StatusOK); r.Status != "duplicate" {
		t.Errorf("redelivery with the mark left = %q, want duplicate", r.Status)
	}
}

// TestWebhookForgetFailsLeaseExpires: the mark a failed forget leaves is only the lease, so
// a redelivery after it is processed.
func TestWebhookForgetFailsLeaseExpires(t *testing.T) {
	t.Parallel()
	const lease = 300 * time.Millisecond
	e := newEnv(t, envOptions{deliveryLease: lease})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	body := payload(t, "push_tag_created.json", nil)
	e.store.failNext("UpdateState", 1)
	e.store.failNext("ForgetDelivery", 1)
	if w := e.do("POST", "/webhooks/github", body, githubHeaders("push", "d-stuck", hookSecret, body)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
	}
	time.Sleep(lease + 200*time.Millisecond)
	if r := e.deliver("push", "d-stuck", body, http.StatusOK); r.Status != "processed" || e.state("production").Version != "1.0.0" {
		t.Errorf("redelivery after the lease: %+v, production = %q; want processed, 1.0.0", r, e.state("production").Version)
	}
}

func TestWebhookCrashRedeliveredAfterLease(t *testing.T) {
	t.Parallel()
	testWebhookCrashRedeliveredAfterLease(t, newBolt)
}

// testWebhookCrashRedeliveredAfterLease: a relay dies after marking a delivery and before
// processing it (held in BundleByCommit and never let go until the end, so neither the
// success nor the failure path runs). Another relay on the same store (or the restarted
// one) answers copies within the lease "duplicate", processes GitHub's redelivery after
// the lease, and keeps that delivery marked long after the lease.
func testWebhookCrashRedeliveredAfterLease(t *testing.T, mk storeMaker) {
	const lease = time.Second
	st := mk(t)
	dead := newEnv(t, envOptions{store: st, deliveryLease: lease})
	live := newEnv(t, envOptions{store: st, deliveryLease: lease})
	live.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	body := payload(t, "push_tag_created.json", nil)

	entered, release := dead.store.holdNext(t, "BundleByCommit")
	marked := time.Now()
	zombie := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		zombie <- dead.do("POST", "/webhooks/github", body, githubHeaders("push", "d-crash", hookSecret, body))
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery did not reach processing")
	}
	// Whatever happens below, let the zombie finish before the test (and its store) ends.
	defer func() {
		release()
		select {
		case <-zombie:
		case <-time.After(10 * time.Second):
			t.Error("the held delivery did not finish after release")
		}
	}()

	r := live.deliver("push", "d-crash", body, http.StatusOK)
	if time.Since(marked) < lease {
		if r.Status != "duplicate" {
			t.Errorf("copy within the lease: status %q, want duplicate", r.Status)
		}
	} else {
		t.Logf("the copy came %v after the mark, past the %v lease; not checking it", time.Since(marked), lease)
	}
	if v := live.state("production").Version; v != "" {
		t.Fatalf("production = %q before any delivery was processed", v)
	}

	time.Sleep(time.Until(marked.Add(lease + 200*time.Millisecond)))
	r = live.deliver("push", "d-crash", body, http.StatusOK)
	if r.Status != "processed" || len(r.Actions) != 1 || r.Actions[0].Result != "promoted" {
		t.Fatalf("redelivery after the lease: %+v, want processed and promoted", r)
	}
	if v := live.state("production").Version; v != "1.0.0" {
		t.Errorf("production = %q after the redelivery, want 1.0.0", v)
	}
	if a := live.audit()[0]; a.Action != "promote" || a.Cause != "webhook:d-crash push refs/tags/v1.0.0" {
		t.Errorf("audit = %+v, want the redelivery's promote", a)
	}

	// The processed redelivery's mark was extended past its own lease.
	time.Sleep(lease + 200*time.Millisecond)
	if r := live.deliver("push", "d-crash", body, http.StatusOK); r.Status != "duplicate" {
		t.Errorf("redelivery after the processed one's lease: status %q, want duplicate", r.Status)
	}
}

// TestWebhookExtendMarkFails: when extending a processed delivery's mark fails, the
// delivery is still answered processed (its work is done), and the lease keeps copies out
// until it expires.
func TestWebhookExtendMarkFails(t *testing.T) {
	t.Parallel()
	const lease = 500 * time.Millisecond
	e := newEnv(t, envOptions{deliveryLease: lease})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	body := payload(t, "push_tag_created.json", nil)
	e.store.failNext("MarkDelivery", 1)
	marked := time.Now()
	if r := e.deliver("push", "d-short", body, http.StatusOK); r.Status != "processed" || e.state("production").Version != "1.0.0" {
		t.Fatalf("delivery: %+v, production = %q; want processed, 1.0.0", r, e.state("production").Version)
	}
	r := e.deliver("push", "d-short", body, http.StatusOK)
	if time.Since(marked) < lease && r.Status != "duplicate" {
		t.Errorf("copy within the lease: status %q, want duplicate", r.Status)
	}
	time.Sleep(time.Until(marked.Add(lease + 200*time.Millisecond)))
	// Processed again, without effect: the channel already serves the bundle.
	if r := e.deliver("push", "d-short", body, http.StatusOK); r.Status != "processed" || len(r.Actions) != 1 || r.Actions[0].Result != "unchanged" {
		t.Errorf("copy after the lease: %+v, want processed and unchanged", r)
	}
}

func TestWebhookIgnoredAndRefused(t *testing.T) {
	t.Parallel()
	valid := func(event, file string) func(t *testing.T) (string, []byte, http.Header) {
		return func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, file, nil)
			return "/webhooks/github", body, githubHeaders(event, "d-x", hookSecret, body)
		}
	}
	tests := []struct {
		name       string
		env        envOptions
		req        func(t *testing.T) (string, []byte, http.Header)
		wantCode   int
		wantStatus string // of a 200 answer
		wantErr    string // of a refusal
	}{
		{name: "ping", req: valid("ping", "ping.json"), wantCode: 200, wantStatus: "pong"},
		{name: "branch push", req: valid("push", "push_branch.json"), wantCode: 200, wantStatus: "ignored"},
		{name: "other event", req: valid("issues", "ping.json"), wantCode: 200, wantStatus: "ignored"},
		{name: "unknown repository", req: func(t *testing.T) (string, []byte, http.Header) {
			var m map[string]any
			if err := json.Unmarshal(payload(t, "push_tag_created.json", nil), &m); err != nil {
				t.Fatal(err)
			}
			m["repository"].(map[string]any)["full_name"] = "mallory/mobile-app"
			body := mustJSON(t, m)
			return "/webhooks/github", body, githubHeaders("push", "d-x", hookSecret, body)
		}, wantCode: 200, wantStatus: "ignored"},
		{name: "tag no rule maps", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", map[string]any{"ref": "refs/tags/experiment-1"})
			return "/webhooks/github", body, githubHeaders("push", "d-x", hookSecret, body)
		}, wantCode: 200, wantStatus: "ignored"},
		{name: "tag names an unconfigured channel", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", map[string]any{"ref": "refs/tags/channel/nightly"})
			return "/webhooks/github", body, githubHeaders("push", "d-x", hookSecret, body)
		}, wantCode: 200, wantStatus: "ignored"},
		{name: "wrong signature", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", nil)
			return "/webhooks/github", body, githubHeaders("push", "d-x", "not-the-secret", body)
		}, wantCode: 401, wantErr: "bad_signature"},
		{name: "body changed after signing", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", nil)
			h := githubHeaders("push", "d-x", hookSecret, body)
			return "/webhooks/github", []byte(strings.Replace(string(body), "v1.0.0", "v9.9.9", 1)), h
		}, wantCode: 401, wantErr: "bad_signature"},
		{name: "unsigned", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", nil)
			h := githubHeaders("push", "d-x", hookSecret, body)
			h.Del("X-Hub-Signature-256")
			h.Del("X-Hub-Signature")
			return "/webhooks/github", body, h
		}, wantCode: 401, wantErr: "bad_signature"},
		{name: "SHA-1 signature only", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", nil)
			h := githubHeaders("push", "d-x", hookSecret, body)
			h.Del("X-Hub-Signature-256")
			return "/webhooks/github", body, h
		}, wantCode: 401, wantErr: "bad_signature"},
		{name: "signed garbage", req: func(t *testing.T) (string, []byte, http.Header) {
			body := []byte(`{"ref": 42`)
			return "/webhooks/github", body, githubHeaders("push", "d-x", hookSecret, body)
		}, wantCode: 400, wantErr: "bad_payload"},
		{name: "signed push without repository", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", map[string]any{"repository": nil})
			return "/webhooks/github", body, githubHeaders("push", "d-x", hookSecret, body)
		}, wantCode: 400, wantErr: "bad_payload"},
		{name: "no delivery id", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", nil)
			h := githubHeaders("push", "", hookSecret, body)
			return "/webhooks/github", body, h
		}, wantCode: 400, wantErr: "bad_delivery"},
		{name: "text/plain", req: func(t *testing.T) (string, []byte, http.Header) {
			body := payload(t, "push_tag_created.json", nil)
			h := githubHeaders("push", "d-x", hookSecret, body)
			h.Set("Content-Type", "text/plain")
			return "/webhooks/github", body, h
		}, wantCode: 415, wantErr: "bad_content_type"},
		{name: "disabled", env: envOptions{noWebhooks: true}, req: valid("push", "push_tag_created.json"), wantCode: 404, wantErr: "webhooks_disabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.env)
			e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
			before := e.snapshot()
			changes := e.changes.count()
			path, body, h := tc.req(t)
			w := e.do("POST", path, body, h)
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.wantCode, w.Body)
			}
			if tc.wantErr != "" {
				if code, msg := errorBody(t, w); code != tc.wantErr {
					t.Errorf("error = %q (%s), want %q", code, msg, tc.wantErr)
				}
			} else {
				var r webhookResult
				if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || r.Status != tc.wantStatus {
					t.Errorf("answer = %s (%v), want status %q", w.Body, err, tc.wantStatus)
				}
			}
			e.unchanged(before)
			if e.changes.count() != changes {
				t.Error("OnChange called")
			}
		})
	}
}

func TestWebhookFormEncoded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	form := []byte("payload=" + url.QueryEscape(string(payload(t, "push_tag_created.json", nil))))
	h := githubHeaders("push", "d-form", hookSecret, form)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	w := e.do("POST", "/webhooks/github", form, h)
	if w.Code != http.StatusOK || e.state("production").Version != "1.0.0" {
		t.Errorf("form delivery: %d %s, production = %q", w.Code, w.Body, e.state("production").Version)
	}
}

func TestWebhookPullRequestBundleIsNotPromotedByTag(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// A bundle built for a pull request, registered with OIDC, for commitA.
	c := e.issuer.claims(time.Now())
	c["ref"], c["event_name"] = "refs/pull/7/merge", "pull_request"
	w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle("0.0.1-pr7", "")), bearerHeader(e.issuer.token(t, c)))
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	r := e.deliver("push", "d1", tagCreated(t, "v1.0.0", commitA), http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "pending" {
		t.Errorf("result = %+v, want pending", r)
	}
	if v := e.state("production").Version; v != "" {
		t.Errorf("production = %q, want nothing promoted", v)
	}
}

func TestWebhookTwoAppsOneRepository(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(testConfigY, "repository: acme/other-app", "repository: acme/mobile-app", 1)
	e := newEnv(t, envOptions{})
	parsed, err := channel.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(t.Context(), Options{Config: parsed, Store: e.store, WebhookSecret: hookSecret, HMACSecret: hmacSecret, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.engine = newEngine(api)
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	r := e.deliver("push", "d1", tagCreated(t, "v1.0.0", commitA), http.StatusOK)
	if len(r.Actions) != 2 || r.Actions[0].Result != "promoted" || r.Actions[1].App != "com.example.other" || r.Actions[1].Result != "pending" {
		t.Errorf("actions = %+v", r.Actions)
	}
}

func newEngine(api *API) *gin.Engine {
	e := gin.New()
	api.Mount(e)
	return e
}

func TestWebhookPingAdvice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if r := e.deliver("ping", "p1", payload(t, "ping.json", nil), http.StatusOK); r.Status != "pong" || r.Reason != "" {
		t.Errorf("ping of a push hook = %+v", r)
	}
	var m map[string]any
	if err := json.Unmarshal(payload(t, "ping.json", nil), &m); err != nil {
		t.Fatal(err)
	}
	m["hook"].(map[string]any)["events"] = []string{"issues", "release"}
	r := e.deliver("ping", "p2", mustJSON(t, m), http.StatusOK)
	if r.Status != "pong" || !strings.Contains(r.Reason, "not push events") {
		t.Errorf("ping of a hook without push = %+v", r)
	}
}

func TestWebhookPendingSurvivesAFailedRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if r := e.deliver("push", "d1", tagCreated(t, "v1.0.0", commitA), http.StatusOK); r.Actions[0].Result != "pending" {
		t.Fatalf("tag push = %+v, want pending", r)
	}
	b := testBundle("1.0.0", commitA)
	b.Ref = "refs/heads/release" // no rule: only the pending promotion moves a channel
	body := mustJSON(t, b)
	e.store.failNext("UpdateState", 1)
	if w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("registration during an outage: %d %s", w.Code, w.Body)
	}
	if pend, _ := e.store.ListPending(t.Context(), appID, commitA); len(pend) != 1 {
		t.Fatalf("pending after the failed attempt = %+v, want it kept", pend)
	}
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusOK)) // the action retries
	if !slices.Equal(r.PendingApplied, []string{"production"}) || e.state("production").Version != "1.0.0" {
		t.Errorf("retry: pending_applied %v, production %q", r.PendingApplied, e.state("production").Version)
	}
}

// registerDuringLookup runs hook inside the first BundleByCommit call, after the real
// lookup answered: the interleaving where a registration lands while a tag push is between
// its lookup and its AddPending.
type registerDuringLookup struct {
	fullStore
	once sync.Once
	hook func()
}

func (s *registerDuringLookup) BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error) {
	b, err := s.fullStore.BundleByCommit(ctx, app, commit)
	s.once.Do(func() {
		if s.hook != nil {
			s.hook()
		}
	})
	return b, err
}

func TestWebhookTagPushRacingRegistrationPromotes(t *testing.T) {
	t.Parallel()
	st := &registerDuringLookup{fullStore: newBolt(t)}
	e := newEnv(t, envOptions{store: st})
	b := testBundle("1.0.1", commitB)
	b.Ref = "refs/heads/release" // no rule maps it: only the tag can move staging
	var reg relayclient.Registration
	st.hook = func() { reg = decodeRegistration(t, e.registerHMAC(b, http.StatusCreated)) }

	r := e.deliver("push", "d-race", tagCreated(t, "channel/staging", commitB), http.StatusOK)
	if len(reg.PendingApplied) != 0 {
		t.Fatalf("the registration saw a pending entry (%v): the race was not reproduced", reg.PendingApplied)
	}
	if len(r.Actions) != 1 || r.Actions[0].Result != "promoted" || r.Actions[0].Version != "1.0.1" {
		t.Errorf("actions = %+v, want staging promoted to 1.0.1", r.Actions)
	}
	if v := e.state("staging").Version; v != "1.0.1" {
		t.Errorf("staging = %q, want 1.0.1", v)
	}
	if pend, err := e.store.ListPending(t.Context(), appID, commitB); err != nil || len(pend) != 0 {
		t.Errorf("pending after the race = %+v, %v; want none", pend, err)
	}
}

// pendingHooks runs afterList once, right after the first ListPending answered, and fails
// every AddPending once failAdd is set (the relay dying between two store calls).
type pendingHooks struct {
	fullStore
	once      sync.Once
	afterList func()
	failAdd   bool
}

func (s *pendingHooks) ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error) {
	p, err := s.fullStore.ListPending(ctx, app, commit)
	s.once.Do(func() {
		if s.afterList != nil {
			s.afterList()
		}
	})
	return p, err
}

func (s *pendingHooks) AddPending(ctx context.Context, app, commit string, p channel.Pending) error {
	if s.failAdd {
		return errInjected
	}
	return s.fullStore.AddPending(ctx, app, commit, p)
}

// An entry another instance adds while a registration applies the pending promotions it
// listed survives: only the applied entries are deleted.
func TestRegistrationKeepsPendingAddedMeanwhile(t *testing.T) {
	t.Parallel()
	st := &pendingHooks{fullStore: newBolt(t)}
	e := newEnv(t, envOptions{store: st})
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitB), http.StatusOK) // pending on B
	late := channel.Pending{Channel: "production", Ref: "refs/tags/v1.0.1", Cause: "webhook:other-instance", Time: time.Now().UTC()}
	st.afterList = func() {
		if err := st.fullStore.AddPending(t.Context(), appID, commitB, late); err != nil {
			t.Error(err)
		}
	}
	b := testBundle("1.0.1", commitB)
	b.Ref = "refs/heads/release"
	reg := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if !slices.Equal(reg.PendingApplied, []string{"staging"}) {
		t.Errorf("pending_applied = %v, want [staging]", reg.PendingApplied)
	}
	pend, err := e.store.ListPending(t.Context(), appID, commitB)
	if err != nil || len(pend) != 1 || pend[0].Channel != "production" || pend[0].Ref != late.Ref {
		t.Errorf("pending after the registration = %+v, %v; want only the entry added meanwhile", pend, err)
	}
}

// Cancelling one tag's pending promotion is one store step: a failure (or crash) cannot
// lose the commit's other entries.
func TestCancelPendingKeepsOthersOnFailure(t *testing.T) {
	t.Parallel()
	st := &pendingHooks{fullStore: newBolt(t)}
	e := newEnv(t, envOptions{store: st})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitB), http.StatusOK) // pending on B
	e.deliver("push", "d2", tagCreated(t, "v1.0.1", commitB), http.StatusOK)          // pending on B
	st.failAdd = true
	// The staging tag moves from B to A (registered): its entry on B is cancelled.
	e.do("POST", "/webhooks/github", tagMoved(t, "channel/staging", commitB, commitA),
		githubHeaders("push", "d3", hookSecret, tagMoved(t, "channel/staging", commitB, commitA)))
	st.failAdd = false
	pend, err := e.store.ListPending(t.Context(), appID, commitB)
	if err != nil || len(pend) != 1 || pend[0].Channel != "production" || pend[0].Ref != "refs/tags/v1.0.1" {
		t.Errorf("pending on B after cancelling staging's = %+v, %v; want only production's", pend, err)
	}
	if v := e.state("staging").Version; v != "1.0.0" {
		t.Errorf("staging = %q, want 1.0.0", v)
	}
}

// A form-encoded delivery is decoded only after its signature matched: a badly signed one
// is refused as such whatever its body, and a well signed one that is not a valid form is a
// payload error, not a signature error.
func TestWebhookFormDecodedOnlyAfterSignature(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	before := e.snapshot()
	bad := []byte("payload=%zz&" + strings.Repeat("x=1&", 1000))
	for _, tc := range []struct {
		name     string
		secret   string
		wantCode int
		wantErr  string
	}{
		{"bad signature", "not-the-secret", http.StatusUnauthorized, "bad_signature"},
		{"good signature", hookSecret, http.StatusBadRequest, "bad_payload"},
	} {
		h := githubHeaders("push", "d-badform", tc.secret, bad)
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		w := e.do("POST", "/webhooks/github", bad, h)
		if code, msg := errorBody(t, w); w.Code != tc.wantCode || code != tc.wantErr {
			t.Errorf("%s: %d %s (%s), want %d %s", tc.name, w.Code, code, msg, tc.wantCode, tc.wantErr)
		}
	}
	e.unchanged(before)
	// The same tag push as JSON and as a form both promote.
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	if r := e.deliver("push", "d-json", tagCreated(t, "channel/staging", commitA), http.StatusOK); len(r.Actions) != 1 || r.Actions[0].Result != "promoted" {
		t.Errorf("JSON delivery: %+v", r)
	}
	form := []byte("payload=" + url.QueryEscape(string(tagCreated(t, "v1.0.0", commitA))))
	h := githubHeaders("push", "d-form2", hookSecret, form)
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if w := e.do("POST", "/webhooks/github", form, h); w.Code != http.StatusOK || e.state("production").Version != "1.0.0" {
		t.Errorf("form delivery: %d %s, production = %q", w.Code, w.Body, e.state("production").Version)
	}
	// An oversized body is refused before its signature is checked.
	big := make([]byte, MaxWebhookBody+1)
	h = githubHeaders("push", "d-big", hookSecret, big)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := e.do("POST", "/webhooks/github", big, h); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d %s, want 413", w.Code, w.Body)
	}
}

// pushAt sets the repository fields of a recorded push payload: pushed_at (GitHub's time of
// the push) and, when set, full_name and id.
func pushAt(t *testing.T, body []byte, at time.Time, fullName string, id int64) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	repo := m["repository"].(map[string]any)
	repo["pushed_at"] = at.Unix()
	if fullName != "" {
		repo["full_name"] = fullName
		repo["name"] = strings.SplitN(fullName, "/", 2)[1]
	}
	if id != 0 {
		repo["id"] = id
	}
	return mustJSON(t, m)
}

// webhookMAC is the HMAC of body under secret, as the relay computes its content mark.
func webhookMAC(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// GitHub signs the body, not X-GitHub-Delivery: a logged push resent byte for byte under a
// new delivery id is a duplicate, and once its marks are gone (expired, evicted), the push
// order recorded on the channel still keeps it from rolling the channel back. Moving a tag
// (a new push) still rolls back deliberately, and a pending promotion overtaken by a newer
// push is dropped.
func TestWebhookReplayUnderNewDeliveryID(t *testing.T) {
	t.Parallel()
	testWebhookReplayUnderNewDeliveryID(t, newBolt)
}

func testWebhookReplayUnderNewDeliveryID(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("4.0.0", commitA), http.StatusCreated)
	e.registerHMAC(testBundle("4.1.0", commitB), http.StatusCreated)
	t0 := time.Unix(1763980000, 0)
	v400 := pushAt(t, tagCreated(t, "v4.0.0", commitA), t0, "", 0)
	v410 := pushAt(t, tagCreated(t, "v4.1.0", commitB), t0.Add(time.Hour), "", 0)
	e.deliver("push", "d-400", v400, http.StatusOK)
	e.deliver("push", "d-410", v410, http.StatusOK)
	if v := e.state("production").Version; v != "4.1.0" {
		t.Fatalf("production = %q, want 4.1.0", v)
	}
	forgetMarks := func(body []byte) {
		t.Helper()
		if err := e.store.Store.ForgetDelivery(t.Context(), contentKey(webhookMAC(hookSecret, body))); err != nil {
			t.Fatal(err)
		}
	}

	// The old tag push under a new delivery id: a duplicate, nothing changes.
	before := e.snapshot()
	for i := range 3 {
		if r := e.deliver("push", fmt.Sprintf("d-evil-%d", i), v400, http.StatusOK); r.Status != "duplicate" {
			t.Errorf("replay under a new id: status %q, want duplicate", r.Status)
		}
	}
	e.unchanged(before)

	// Its marks gone: processed, but older than the push production recorded.
	forgetMarks(v400)
	r := e.deliver("push", "d-evil-late", v400, http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "stale" || r.Actions[0].Reason == "" {
		t.Errorf("late replay: %+v, want one stale action with a reason", r)
	}
	if v := e.state("production").Version; v != "4.1.0" {
		t.Fatalf("production = %q after a late replay, want 4.1.0", v)
	}

	// An admin rolls back; a replay of the newest push (marks gone) does not undo it.
	if w := e.do("POST", "/api/v1/apps/"+appID+"/channels/production/rollback", nil, adminHeader()); w.Code != http.StatusOK {
		t.Fatalf("rollback: %d %s", w.Code, w.Body)
	}
	forgetMarks(v410)
	r = e.deliver("push", "d-evil-newest", v410, http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "unchanged" || r.Actions[0].Reason == "" {
		t.Errorf("replay of the newest push: %+v, want one unchanged action with a reason", r)
	}
	if v := e.state("production").Version; v != "4.0.0" {
		t.Fatalf("production = %q after replaying the newest push over a rollback, want 4.0.0", v)
	}

	// A deliberate rollback by tag is a new push: applied.
	e.registerHMAC(testBundle("4.2.0", commitC), http.StatusCreated)
	e.deliver("push", "d-420", pushAt(t, tagCreated(t, "v4.2.0", commitC), t0.Add(2*time.Hour), "", 0), http.StatusOK)
	back := pushAt(t, tagMoved(t, "v4.2.0", commitC, commitB), t0.Add(3*time.Hour), "", 0)
	if r := e.deliver("push", "d-back", back, http.StatusOK); len(r.Actions) != 1 || r.Actions[0].Result != "promoted" {
		t.Errorf("moving the tag back: %+v, want promoted", r)
	}
	if v := e.state("production").Version; v != "4.1.0" {
		t.Fatalf("production = %q after moving v4.2.0 back to 4.1.0's commit, want 4.1.0", v)
	}

	// A pending promotion overtaken by a newer push is dropped when its bundle arrives.
	const commitD = "dddddddddddddddddddddddddddddddddddddddd"
	if r := e.deliver("push", "d-500", pushAt(t, tagCreated(t, "v5.0.0", commitD), t0.Add(4*time.Hour), "", 0), http.StatusOK); r.Actions[0].Result != "pending" {
		t.Fatalf("push of an unbuilt commit: %+v, want pending", r)
	}
	e.deliver("push", "d-421", pushAt(t, tagCreated(t, "v4.2.1", commitC), t0.Add(5*time.Hour), "", 0), http.StatusOK)
	if v := e.state("production").Version; v != "4.2.0" {
		t.Fatalf("production = %q, want 4.2.0", v)
	}
	reg := decodeRegistration(t, e.registerHMAC(testBundle("5.0.0", commitD), http.StatusCreated))
	if len(reg.PendingApplied) != 0 || e.state("production").Version != "4.2.0" {
		t.Errorf("an overtaken pending promotion applied: %v, production = %q", reg.PendingApplied, e.state("production").Version)
	}
	if pend, _ := e.store.ListPending(t.Context(), appID, commitD); len(pend) != 0 {
		t.Errorf("overtaken pending promotion kept: %+v", pend)
	}
}

// A tag deletion replayed after the tag was pushed again changes nothing either: it must
// not cancel the newer push's pending promotion.
func TestWebhookStaleDeleteKeepsPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	t0 := time.Unix(1763980000, 0)
	const ref = "refs/tags/channel/staging"
	del := pushAt(t, payload(t, "push_tag_deleted.json", map[string]any{"ref": ref, "before": commitC}), t0, "", 0)
	e.deliver("push", "d1", pushAt(t, tagCreated(t, "channel/staging", commitC), t0.Add(-time.Minute), "", 0), http.StatusOK) // pending on C
	e.deliver("push", "d2", del, http.StatusOK)                                                                               // cancels it
	r := e.deliver("push", "d3", pushAt(t, tagCreated(t, "channel/staging", commitC), t0.Add(time.Minute), "", 0), http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "pending" {
		t.Fatalf("re-created tag: %+v, want pending", r)
	}
	if err := e.store.Store.ForgetDelivery(t.Context(), contentKey(webhookMAC(hookSecret, del))); err != nil {
		t.Fatal(err)
	}
	if r := e.deliver("push", "d-replay", del, http.StatusOK); len(r.Actions) != 1 || r.Actions[0].Result != "stale" {
		t.Errorf("replayed deletion: %+v, want stale", r)
	}
	if pend, _ := e.store.ListPending(t.Context(), appID, commitC); len(pend) != 1 {
		t.Fatalf("pending on %s after the replayed deletion = %+v, want the re-created tag's", commitC, pend)
	}
	b := testBundle("1.0.2", commitC)
	b.Ref = "refs/heads/release"
	reg := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if !slices.Equal(reg.PendingApplied, []string{"staging"}) || e.state("staging").Version != "1.0.2" {
		t.Errorf("pending_applied = %v, staging = %q; want [staging], 1.0.2", reg.PendingApplied, e.state("staging").Version)
	}
}

// A secret per app: a push is acted on only for the apps whose secret signed it, or, for
// apps without one, the relay-wide secret. A push for one repository signed with another
// app's secret is refused (401) and changes nothing.
func TestWebhookSecretPerApp(t *testing.T) {
	t.Parallel()
	cfg := `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    webhook_secret_env: FERRY_TEST_HOOK_APP
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
  - id: com.example.other
    repository: acme/other-app
    webhook_secret_env: FERRY_TEST_HOOK_OTHER
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
  - id: com.example.legacy
    repository: acme/legacy-app
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
`
	env := map[string]string{"FERRY_TEST_HOOK_APP": "secret-of-app", "FERRY_TEST_HOOK_OTHER": "secret-of-other"}
	e := newEnv(t, envOptions{config: cfg, getenv: func(k string) string { return env[k] }})
	other := testBundle("1.0.0", commitB)
	other.AppID = "com.example.other"
	e.registerHMAC(other, http.StatusCreated)
	legacy := testBundle("1.0.0", commitC)
	legacy.AppID = "com.example.legacy"
	e.registerHMAC(legacy, http.StatusCreated)
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)

	send := func(secret, delivery string, body []byte) *httptest.ResponseRecorder {
		return e.do("POST", "/webhooks/github", body, githubHeaders("push", delivery, secret, body))
	}
	otherPush := pushAt(t, tagCreated(t, "v1.0.0", commitB), time.Unix(1763980000, 0), "acme/other-app", 0)
	var branchPush map[string]any
	if err := json.Unmarshal(payload(t, "push_branch.json", nil), &branchPush); err != nil {
		t.Fatal(err)
	}
	branchPush["repository"].(map[string]any)["full_name"] = "acme/other-app"
	unknownRepo := pushAt(t, tagCreated(t, "v1.0.0", commitB), time.Unix(1763980000, 0), "mallory/unknown", 0)
	before := e.snapshot()
	for i, tc := range []struct {
		secret string
		body   []byte
	}{
		{"secret-of-app", otherPush}, {hookSecret, otherPush}, {"not-a-secret", otherPush},
		{"secret-of-app", mustJSON(t, branchPush)}, // branch pushes too
		{"secret-of-app", unknownRepo},             // an app's secret speaks for its repository only
	} {
		w := send(tc.secret, fmt.Sprint("d-forged-", i), tc.body)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("case %d: push signed with %q: status %d, want 401: %s", i, tc.secret, w.Code, w.Body)
		}
		if code, _ := errorBody(t, w); code != "bad_signature" {
			t.Errorf("case %d: error = %q, want bad_signature", i, code)
		}
	}
	e.unchanged(before)
	// The relay-wide secret on a repository no app is configured for changes nothing either.
	if r := e.deliver("push", "d-unknown", unknownRepo, http.StatusOK); r.Status != "ignored" {
		t.Errorf("unknown repository with the relay-wide secret: %+v, want ignored", r)
	}

	for _, tc := range []struct{ app, secret, repo, commit string }{
		{"com.example.other", "secret-of-other", "acme/other-app", commitB},
		{appID, "secret-of-app", "acme/mobile-app", commitA},
		{"com.example.legacy", hookSecret, "acme/legacy-app", commitC}, // the relay-wide fallback
	} {
		body := pushAt(t, tagCreated(t, "v1.0.0", tc.commit), time.Unix(1763980000, 0), tc.repo, 0)
		w := send(tc.secret, "d-ok-"+tc.app, body)
		if w.Code != http.StatusOK {
			t.Fatalf("%s's push with its secret: %d %s", tc.app, w.Code, w.Body)
		}
		st, err := e.store.GetState(t.Context(), tc.app, "production")
		if err != nil || st.Version != "1.0.0" {
			t.Errorf("%s production = %+v, %v; want 1.0.0", tc.app, st, err)
		}
	}
}

// The relay refuses to start with an app whose webhook_secret_env is unset, naming it.
func TestWebhookSecretEnvMustBeSet(t *testing.T) {
	t.Parallel()
	cfg, err := channel.ParseConfig([]byte(strings.Replace(testConfigY, "repository: acme/other-app", "repository: acme/other-app\n    webhook_secret_env: FERRY_WEBHOOK_SECRET_OTHER", 1)))
	if err != nil {
		t.Fatal(err)
	}
	for name, getenv := range map[string]func(string) string{
		"unset": func(string) string { return "" },
		"nil":   nil,
	} {
		_, err := New(t.Context(), Options{Config: cfg, Store: newBolt(t), WebhookSecret: hookSecret, Getenv: getenv})
		if err == nil || !strings.Contains(err.Error(), "FERRY_WEBHOOK_SECRET_OTHER") || !strings.Contains(err.Error(), "com.example.other") {
			t.Errorf("%s: New error = %v, want one naming the app and FERRY_WEBHOOK_SECRET_OTHER", name, err)
		}
	}
	// Per-app secrets alone enable webhooks.
	api, err := New(t.Context(), Options{Config: cfg, Store: newBolt(t), Getenv: func(string) string { return "s" }})
	if err != nil {
		t.Fatal(err)
	}
	body := tagCreated(t, "v1.0.0", commitA)
	w := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(t.Context(), "POST", "/webhooks/github", strings.NewReader(string(body)))
	req.Header = githubHeaders("push", "d1", "s", body)
	newEngine(api).ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized { // signed with other-app's secret, for mobile-app
		t.Errorf("status %d, want 401 (webhooks enabled, the secret is not mobile-app's): %s", w.Code, w.Body)
	}
}

// A push from a repository whose id differs from the pinned repository_id changes nothing.
func TestWebhookRepositoryID(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(testConfigY, "repository: acme/mobile-app", "repository: acme/mobile-app\n    repository_id: 700000001", 1)
	e := newEnv(t, envOptions{config: cfg})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	before := e.snapshot()
	r := e.deliver("push", "d-recreated", pushAt(t, tagCreated(t, "v1.0.0", commitA), time.Unix(1763980000, 0), "", 700000002), http.StatusOK)
	if r.Status != "ignored" || !strings.Contains(r.Reason, "repository_id") {
		t.Errorf("push from a re-created repository: %+v, want ignored naming repository_id", r)
	}
	e.unchanged(before)
	r = e.deliver("push", "d-same", pushAt(t, tagCreated(t, "v1.0.0", commitA), time.Unix(1763980000, 0), "", 700000001), http.StatusOK)
	if len(r.Actions) != 1 || r.Actions[0].Result != "promoted" {
		t.Errorf("push from the pinned repository: %+v, want promoted", r)
	}
}
