package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestRelayCrash kills the relay with SIGKILL twice in the middle of concurrent
// registrations, webhook promotions and update checks, on the embedded store and on Redis
// with AOF (fsync always; Redis is SIGKILLed together with the relay). After each restart
// every acknowledged registration, promotion and its audit entry is there, and no device
// was ever offered a bundle that is not registered or whose url/checksum do not match it.
func TestRelayCrash(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		relay := startRelay(t, relayOpts{})
		crashRun(t, relay, nil)
	})
	t.Run("redis-aof", func(t *testing.T) {
		rdb := testpeers.Redis(t, "--appendonly", "yes", "--appendfsync", "always")
		relay := startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr})
		crashRun(t, relay, rdb)
	})
}

// crashLedger is what clients saw acknowledged.
type crashLedger struct {
	mu         sync.Mutex
	registered map[string]bool   // version → acknowledged (201/200)
	promotedBy map[string]string // version → "registration" when the answer said promoted on beta
	deliveries map[string]string // delivery id → version promoted on staging
	offered    map[string]bool   // versions devices were offered
	bad        []string          // inconsistent answers
	attempts   int
	connErrs   int
}

func crashRun(t *testing.T, relay *relayProc, rdb *testpeers.Process) {
	const (
		rounds        = 2
		registrars    = 3
		perRegistrar  = 50 // per round
		webhookers    = 2
		perWebhooker  = 20
		killAfter     = 700 * time.Millisecond
		checkersCount = 2
	)
	ctx := t.Context()
	led := &crashLedger{registered: map[string]bool{}, promotedBy: map[string]string{}, deliveries: map[string]string{}, offered: map[string]bool{}}
	// A first bundle so webhooks have a commit to point at from the start.
	if rep, err := relay.register(ctx, mustJSON(t, bundleFor(appID, "0.1.0", "refs/heads/main"))); err != nil || rep.Status != http.StatusCreated {
		t.Fatalf("register: %v %s", err, rep)
	}
	led.registered["0.1.0"] = true

	for round := range rounds {
		stop := make(chan struct{})
		var wg, cwg sync.WaitGroup
		for w := range registrars {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perRegistrar {
					v := fmt.Sprintf("1.%d.%d", round*10+w, i)
					body := mustJSON(t, bundleFor(appID, v, "refs/heads/main"))
					// Like the action: retry the same body while the relay is down.
					for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
						rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
						rep, err := relay.register(rctx, body)
						cancel()
						led.mu.Lock()
						led.attempts++
						switch {
						case err != nil:
							led.connErrs++
						case rep.Status == http.StatusCreated || rep.Status == http.StatusOK:
							led.registered[v] = true
							var ans struct {
								Promoted bool   `json:"promoted"`
								Channel  string `json:"channel"`
							}
							if json.Unmarshal(rep.Body, &ans) == nil && ans.Promoted && ans.Channel == "beta" {
								led.promotedBy[v] = "registration"
							}
						default:
							led.bad = append(led.bad, fmt.Sprintf("register %s: %s", v, rep))
						}
						led.mu.Unlock()
						if err == nil {
							break
						}
						time.Sleep(20 * time.Millisecond) // relay down
					}
					time.Sleep(25 * time.Millisecond)
				}
			}()
		}
		for w := range webhookers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWebhooker {
					led.mu.Lock()
					var known []string
					for v := range led.registered {
						known = append(known, v)
					}
					led.mu.Unlock()
					slices.Sort(known)
					v := known[(i*7+w)%len(known)]
					delivery := fmt.Sprintf("crash-%s-%d-%d-%d", t.Name(), round, w, i)
					body := webhookPayload(repository, "refs/tags/channel/staging", "", relaytest.Commit(appID+"@"+v))
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					rep, err := relay.webhook(wctx, delivery, body)
					cancel()
					led.mu.Lock()
					switch {
					case err != nil:
						led.connErrs++
					case rep.Status == http.StatusOK:
						var ans struct {
							Actions []struct {
								Result, Version, Channel string
							} `json:"actions"`
						}
						_ = json.Unmarshal(rep.Body, &ans)
						for _, a := range ans.Actions {
							if a.Result == "promoted" && a.Channel == "staging" {
								led.deliveries[delivery] = a.Version
							}
						}
					default:
						led.bad = append(led.bad, fmt.Sprintf("webhook %s: %s", delivery, rep))
					}
					led.mu.Unlock()
					time.Sleep(30 * time.Millisecond)
				}
			}()
		}
		for c := range checkersCount {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					for _, ch := range []string{"beta", "staging"} {
						u, _, err := relay.check(ctx, appID, ch, c*100000+n)
						if err != nil {
							time.Sleep(20 * time.Millisecond)
							continue
						}
						led.mu.Lock()
						if err := consistent(appID, u); err != nil {
							led.bad = append(led.bad, err.Error())
						}
						if u.Version != "" && u.Error == "" {
							led.offered[u.Version] = true
						}
						led.mu.Unlock()
					}
				}
			}()
		}

		time.Sleep(killAfter)
		_ = relay.Stop(syscall.SIGKILL)
		if rdb != nil {
			rdb.Stop()
		}
		t.Logf("round %d: relay killed", round)
		time.Sleep(300 * time.Millisecond)
		if rdb != nil {
			if err := rdb.Start(); err != nil {
				t.Fatal(err)
			}
		}
		relay.Start()
		wg.Wait() // writers finish their bounded work against the restarted relay
		close(stop)
		cwg.Wait()
	}

	// Restart once more, cleanly killed, so the final check reads only what is durable.
	_ = relay.Stop(syscall.SIGKILL)
	if rdb != nil {
		rdb.Stop()
		if err := rdb.Start(); err != nil {
			t.Fatal(err)
		}
	}
	relay.Start()

	led.mu.Lock()
	defer led.mu.Unlock()
	for _, b := range led.bad {
		t.Errorf("bad answer: %s", b)
	}
	bundles := relay.bundlesOf(t, appID)
	audit := relay.auditOf(t, appID)
	states := relay.stateOf(t, appID)
	auditHas := func(action, ch, version, causePart string) bool {
		return slices.ContainsFunc(audit, func(e channel.AuditEntry) bool {
			return e.Action == action && (ch == "" || e.Channel == ch) && e.Version == version && strings.Contains(e.Cause, causePart)
		})
	}
	var missingRegisterAudit []string
	for v := range led.registered {
		b, ok := bundles[v]
		if !ok || b.Checksum != bundleChecksum(appID, v) || b.URL != bundleURL(appID, v) {
			t.Errorf("acknowledged bundle %s lost or changed after the crash: %+v", v, b)
		}
		if !auditHas("register", "", v, "") {
			missingRegisterAudit = append(missingRegisterAudit, v)
			t.Errorf("acknowledged registration of %s has no register audit entry", v)
		}
	}
	for v := range led.promotedBy {
		if !auditHas("promote", "beta", v, "registration") {
			t.Errorf("acknowledged promotion of %s on beta has no audit entry", v)
		}
	}
	for d, v := range led.deliveries {
		if !auditHas("promote", "staging", v, "webhook:"+d) {
			t.Errorf("acknowledged webhook %s (promote %s on staging) has no audit entry", d, v)
		}
	}
	for v := range led.offered {
		if _, ok := bundles[v]; !ok {
			t.Errorf("devices were offered %s, which is not registered", v)
		}
	}
	for ch, st := range states {
		for _, v := range append([]string{st.Version}, st.History...) {
			if v == "" || v == "builtin" {
				continue
			}
			if _, ok := bundles[v]; !ok {
				t.Errorf("channel %s refers to %s, which is not registered", ch, v)
			}
		}
	}
	// Devices after the restart: every channel answers a consistent, registered bundle.
	for _, ch := range []string{"beta", "staging"} {
		u, _, err := relay.check(ctx, appID, ch, 7)
		if err != nil || consistent(appID, u) != nil || u.Version != states[ch].Version {
			t.Errorf("%s after restart: %v %+v, want %s", ch, err, u, states[ch].Version)
		}
	}
	t.Logf("FIGURE crash store=%s kills=%d attempts=%d conn_errors=%d acked_registrations=%d acked_promotions=%d acked_webhook_promotions=%d offered_versions=%d lost=0 audit_entries=%d register_audit_missing=%d",
		t.Name(), rounds+1, led.attempts, led.connErrs, len(led.registered), len(led.promotedBy), len(led.deliveries), len(led.offered), len(audit), len(missingRegisterAudit))
}
