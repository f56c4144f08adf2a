package control

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestFlowsOnRedis runs the registration and webhook flows on the Redis store against a real
// redis-server (each flow in its own logical database).
func TestFlowsOnRedis(t *testing.T) {
	t.Parallel()
	const databases = 64
	srv := testpeers.Redis(t, "--databases", fmt.Sprint(databases))
	var db atomic.Int32
	mk := func(t *testing.T) fullStore {
		t.Helper()
		n := db.Add(1)
		if n >= databases {
			t.Fatal("more flows than Redis databases")
		}
		st, err := store.OpenRedis(t.Context(), fmt.Sprintf("redis://%s/%d", srv.Addr, n), store.RedisOptions{})
		if err != nil {
			t.Fatalf("OpenRedis: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	flows := []struct {
		name string
		fn   func(t *testing.T, mk storeMaker)
	}{
		{"TagCreatedPromotes", testWebhookTagCreatedPromotes},
		{"AnnotatedTagUsesHeadCommit", testWebhookAnnotatedTagUsesHeadCommit},
		{"MovedTag", testWebhookMovedTag},
		{"PendingAppliedOnRegistration", testWebhookPendingAppliedOnRegistration},
		{"MovedTagCancelsOlderPending", testWebhookMovedTagCancelsOlderPending},
		{"DeletedTag", testWebhookDeletedTag},
		{"ReplayedDelivery", testWebhookReplayedDelivery},
		{"ReplayUnderNewDeliveryID", testWebhookReplayUnderNewDeliveryID},
		{"FailedDeliveryCanBeRedelivered", testWebhookFailedDeliveryCanBeRedelivered},
		{"ConcurrentCopies", testWebhookConcurrentCopies},
		{"CrashRedeliveredAfterLease", testWebhookCrashRedeliveredAfterLease},
		{"RegisterReplyLost", testRegisterReplyLost},
		{"IdempotentAndConflict", testRegisterIdempotentAndConflict},
		{"LateRetryDoesNotMoveChannelBack", testRegisterLateRetryDoesNotMoveChannelBack},
		{"RetryCompletesInterruptedPromotion", testRegisterRetryCompletesInterruptedPromotion},
		{"OIDCTokenClaimsWinOverBody", testRegisterOIDCTokenClaimsWinOverBody},
		{"EncryptedBundle", testRegisterEncryptedBundle},
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			f.fn(t, mk)
		})
	}
}
