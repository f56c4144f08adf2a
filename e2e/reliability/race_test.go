package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestConcurrentPromotions races signed tag-push webhooks (each with its own
// X-GitHub-Delivery) and admin promote calls on one channel, on the embedded store and on
// two relays sharing one Redis. The end state must equal a serial replay of the audit log:
// the final version is one that was promoted, each entry's "from" is the previous entry's
// version, the history and Rev are what channel.Promote gives applied in that order, and
// the number of promote entries equals the number of acknowledged changes.
func TestConcurrentPromotions(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		r := startRelay(t, relayOpts{})
		promotionRace(t, []*relayProc{r})
	})
	t.Run("redis-two-relays", func(t *testing.T) {
		rdb := testpeers.Redis(t)
		a := startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr})
		b := startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr})
		promotionRace(t, []*relayProc{a, b})
	})
}

func promotionRace(t *testing.T, relays []*relayProc) {
	const (
		versions = 12
		webhooks = 60
		admins   = 60
	)
	ctx := t.Context()
	r0 := relays[0]
	var vs []string
	for i := range versions {
		v := fmt.Sprintf("3.0.%d", i)
		vs = append(vs, v)
		// A feature branch maps to no channel: registration moves nothing.
		if rep, err := r0.register(ctx, mustJSON(t, bundleFor(appID, v, "refs/heads/feature"))); err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("register %s: %v %s", v, err, rep)
		}
	}
	if st := r0.stateOf(t, appID)["production"]; st.Version != "" || st.Rev != 0 {
		t.Fatalf("production before the race: %+v", st)
	}

	var mu sync.Mutex
	changes, renames, unchanged := 0, 0, 0
	promoted := map[string]bool{}
	var failures []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range webhooks + admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := vs[(i*7+i/len(vs))%len(vs)]
			r := relays[i%len(relays)]
			<-start
			var changed, renamed bool
			var err error
			if i < webhooks {
				delivery := fmt.Sprintf("race-%s-%d", t.Name(), i)
				// Distinct tags v<version>-<i> all map to production through refs/tags/v*.
				body := webhookPayload(repository, fmt.Sprintf("refs/tags/v%s-%d", v, i), "", relaytest.Commit(appID+"@"+v))
				var rep reply
				rep, err = r.webhook(ctx, delivery, body)
				if err == nil && rep.Status != http.StatusOK {
					err = fmt.Errorf("webhook %s: %s", delivery, rep)
				}
				if err == nil {
					var ans struct {
						Actions []struct{ Result, Channel, Version string } `json:"actions"`
					}
					err = json.Unmarshal(rep.Body, &ans)
					if err == nil && (len(ans.Actions) != 1 || ans.Actions[0].Channel != "production") {
						err = fmt.Errorf("webhook %s: unexpected actions %s", delivery, rep)
					}
					if err == nil {
						switch ans.Actions[0].Result {
						case "promoted":
							changed = true
						case "renamed":
							// Already served under another tag's name: the channel's
							// release name changed, its version did not.
							renamed = true
							if ans.Actions[0].Version != v {
								err = fmt.Errorf("webhook %s: renamed, but the channel serves %q, not %s", delivery, ans.Actions[0].Version, v)
							}
						case "unchanged":
							if ans.Actions[0].Version != v {
								err = fmt.Errorf("webhook %s: unchanged, but the channel serves %q, not %s", delivery, ans.Actions[0].Version, v)
							}
						default:
							err = fmt.Errorf("webhook %s: result %s", delivery, rep)
						}
					}
				}
			} else {
				var rep reply
				rep, err = r.admin(ctx, http.MethodPost, appID+"/channels/production/promote", map[string]string{"version": v})
				if err == nil && rep.Status != http.StatusOK {
					err = fmt.Errorf("admin promote %s: %s", v, rep)
				}
				if err == nil {
					var ans struct {
						Changed bool        `json:"changed"`
						Channel channelView `json:"channel"`
					}
					err = json.Unmarshal(rep.Body, &ans)
					changed = ans.Changed
					if err == nil && ans.Channel.State.Version != v {
						err = fmt.Errorf("admin promote %s answered a channel serving %q", v, ans.Channel.State.Version)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err.Error())
				return
			}
			promoted[v] = true
			switch {
			case changed:
				changes++
			case renamed:
				renames++
			default:
				unchanged++
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}

	for _, r := range relays {
		st := r.stateOf(t, appID)["production"]
		if !promoted[st.Version] {
			t.Errorf("final version %q was never promoted", st.Version)
		}
		if st.Rev != int64(changes+renames) {
			t.Errorf("Rev = %d, want %d (one per acknowledged change or rename; %d unchanged)", st.Rev, changes+renames, unchanged)
		}
		// Replay the audit log, oldest first, with the domain's own Promote.
		audit := r.auditOf(t, appID)
		var replay channel.State
		n, named := 0, 0
		for _, e := range slices.Backward(audit) {
			if e.Channel != "production" {
				continue
			}
			if e.Action == "tag_push" && e.Version == replay.Version && e.Release != "" {
				named++ // a rename: the version stays
				continue
			}
			if e.Action != "promote" {
				t.Errorf("unexpected audit entry on production: %+v", e)
				continue
			}
			if e.From != replay.Version {
				t.Errorf("audit entry %d: from %q, but the previous entry left %q", n, e.From, replay.Version)
			}
			if !channel.Promote(&replay, e.Version) {
				t.Errorf("audit entry %d promotes %s, which was already served", n, e.Version)
			}
			n++
		}
		if n != changes || named != renames {
			t.Errorf("%d promote and %d rename audit entries, want %d and %d (one per acknowledged change)", n, named, changes, renames)
		}
		if replay.Version != st.Version || !slices.Equal(replay.History, st.History) {
			t.Errorf("state %s %v differs from the serial replay of the audit log: %s %v", st.Version, st.History, replay.Version, replay.History)
		}
		u, _, err := r.check(context.Background(), appID, "production", 3)
		if err != nil || u.Version != st.Version || consistent(appID, u) != nil {
			t.Errorf("device on production: %v %+v, want %s", err, u, st.Version)
		}
	}
	t.Logf("FIGURE race %s relays=%d requests=%d changes=%d renames=%d unchanged=%d", t.Name(), len(relays), webhooks+admins, changes, renames, unchanged)
}
