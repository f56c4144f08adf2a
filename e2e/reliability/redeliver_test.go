package reliability

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// TestWebhookRedeliveryAfterCrash kills the relay (SIGKILL) at increasing delays while it
// processes a tag push, restarts it and redelivers the same delivery (same
// X-GitHub-Delivery, as GitHub's "Redeliver" button does). A delivery the relay never
// answered must not be lost: after the redelivery the channel serves the tag's bundle.
//
// It failed on the relay of b65ea71, which marked a delivery id as seen for 7 days before
// processing it and un-marked it only when processing failed in-process: a crash in between
// left the mark, and the redelivery was answered "duplicate" while the channel never moved.
// The relay now claims a delivery for a short lease (--webhook-lease) and extends the mark
// only once processing succeeded, so the redelivery after the lease is processed.
func TestWebhookRedeliveryAfterCrash(t *testing.T) {
	const lease = 500 * time.Millisecond
	relay := startRelay(t, relayOpts{Extra: []string{"--webhook-lease", lease.String()}})
	ctx := t.Context()
	const attempts = 40
	for i := range attempts {
		v := fmt.Sprintf("6.0.%d", i)
		if rep, err := relay.register(ctx, mustJSON(t, bundleFor(appID, v, "refs/heads/feature"))); err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("register %s: %v %s", v, err, rep)
		}
	}
	interrupted, lost := 0, 0
	for i := range attempts {
		v := fmt.Sprintf("6.0.%d", i)
		delivery := fmt.Sprintf("redeliver-%d", i)
		body := webhookPayload(repository, "refs/tags/channel/staging", "", relaytest.Commit(appID+"@"+v))
		type answer struct {
			rep reply
			err error
		}
		done := make(chan answer, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			rep, err := relay.webhook(wctx, delivery, body)
			done <- answer{rep, err}
		}()
		time.Sleep(time.Duration(i*150) * time.Microsecond)
		_ = relay.Stop(syscall.SIGKILL)
		first := <-done
		relay.Start()
		if first.err == nil && first.rep.Status == http.StatusOK {
			continue // answered before the kill: not interrupted
		}
		interrupted++
		time.Sleep(lease + 100*time.Millisecond) // GitHub's redelivery comes later still
		again, err := relay.webhook(ctx, delivery, body)
		if err != nil {
			t.Fatalf("redelivery %s: %v", delivery, err)
		}
		if got := relay.stateOf(t, appID)["staging"].Version; got != v {
			lost++
			t.Errorf("delivery %s (tag → %s) was interrupted by a crash (%v); its redelivery answered %s and staging serves %q",
				delivery, v, first.err, again, got)
		}
	}
	t.Logf("FIGURE redeliver attempts=%d interrupted=%d lost=%d", attempts, interrupted, lost)
}
