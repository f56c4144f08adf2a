package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// pointTo makes a device talk to another relay instance.
func pointTo(c *device.Client, relayURL string) *device.Client {
	c.UpdateURL, c.StatsURL, c.ChannelURL = relayURL+"/updates", relayURL+"/stats", relayURL+"/channel_self"
	return c
}

// TestRelaysShareOneRedis: two relay instances on one Redis. A bundle registered through
// one is served by the other well before its cached snapshot would expire (10 s), because
// state changes are published to every instance; stats sent to either are counted once.
func TestRelaysShareOneRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := e.startRelay(t) // default --snapshot-ttl 10s: only change notifications refresh it
	key := newKey(t)
	dev := pointTo(e.device(t, appEnc, deviceOpts{Key: &key.PublicKey}), other.URL)
	if ans := mustCheck(t, dev); ans.Error != "no_new_version_available" {
		t.Fatalf("before any bundle: %+v", ans)
	}

	e.publish(t, build{App: appEnc, Version: "10.0.0", Ref: "refs/tags/v10.0.0", Dir: webBuild(t, "10.0.0", nil), Key: key})
	relaytest.WaitFor(t, 5*time.Second, "the other instance to serve 10.0.0", func() bool {
		return mustCheck(t, dev).Version == "10.0.0"
	})
	mustUpdate(t, dev, "10.0.0")

	// Stats went to the other instance; the admin API of the first one counts them.
	relaytest.WaitFor(t, 5*time.Second, "the first instance to count the set of 10.0.0 sent through the other once", func() bool {
		var stats struct {
			Versions []channel.VersionStats `json:"versions"`
		}
		e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/stats", nil, &stats)
		for _, s := range stats.Versions {
			if s.Version == "10.0.0" && s.Actions["set"] == 1 {
				return true
			}
		}
		return false
	})
}

// TestRelayCrashLosesNothing: a relay killed with SIGKILL and started again on the same
// Redis still has every bundle, channel, audit entry and device failure record.
func TestRelayCrashLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newKey(t)
	e.publish(t, build{App: appEnc, Version: "11.0.0", Ref: "refs/tags/v11.0.0", Dir: webBuild(t, "11.0.0", nil), Key: key})
	dev := e.device(t, appEnc, deviceOpts{Key: &key.PublicKey})
	mustUpdate(t, dev, "11.0.0")
	dev.NotifyAppReady()
	e.publish(t, build{App: appEnc, Version: "11.1.0", Ref: "refs/tags/v11.1.0", Dir: webBuild(t, "11.1.0", nil), Key: key})
	mustUpdate(t, dev, "11.1.0")
	if _, err := dev.AppReadyTimeout(t.Context(), 10000); err != nil {
		t.Fatal(err)
	}
	var auditBefore struct {
		Entries []channel.AuditEntry `json:"entries"`
	}
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/audit", nil, &auditBefore)

	_ = e.relay.Stop(syscall.SIGKILL)
	e.relay.Start()

	if ans := mustCheck(t, dev); ans.Version == "11.1.0" {
		t.Errorf("after the crash the relay offers 11.1.0 again to the device that reported update_fail: %+v", ans)
	}
	fresh := e.device(t, appEnc, deviceOpts{ID: "00000000-0000-4000-8000-0000000000aa", Key: &key.PublicKey})
	mustUpdate(t, fresh, "11.1.0")
	var list struct {
		Bundles []channel.Bundle `json:"bundles"`
	}
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/bundles", nil, &list)
	if len(list.Bundles) != 2 {
		t.Errorf("after the crash the relay lists %d bundles, want 2", len(list.Bundles))
	}
	var auditAfter struct {
		Entries []channel.AuditEntry `json:"entries"`
	}
	e.admin(t, http.MethodGet, "/api/v1/apps/"+appEnc+"/audit", nil, &auditAfter)
	if len(auditBefore.Entries) == 0 || len(auditAfter.Entries) < len(auditBefore.Entries) {
		t.Errorf("audit log: %d entries before the crash, %d after", len(auditBefore.Entries), len(auditAfter.Entries))
	}
}
