package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestRegisterAuditEntryIsNotLost is the regression test of a gap TestRelayCrash found by
// timing: POST /api/v1/bundles used to store the bundle and append its "register" audit
// entry in two store calls, so when the second failed (a crash or an outage in between) the
// client's retry was acknowledged as "already registered" and no audit entry was ever
// written. Here a Redis ACL refuses writes to the app's audit key only: the first attempt
// must store nothing (bundle and entry are one write now), and once the ACL is lifted the
// retry must leave both the bundle and its register entry.
func TestRegisterAuditEntryIsNotLost(t *testing.T) {
	rdb := testpeers.Redis(t)
	relay := startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr})
	ctx := t.Context()
	body := mustJSON(t, bundleFor(appID, "5.0.0", "refs/heads/feature"))

	// Every key stays readable; writes are allowed everywhere except the app's audit list.
	redisCmd(t, rdb.Addr, "ACL", "SETUSER", "default", "resetkeys", "%R~*", "~ferry:{"+appID+"}:[^a]*", "~ferry:delivery:*")
	first, err := relay.register(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := relay.bundlesOf(t, appID)["5.0.0"]; ok {
		t.Errorf("bundle 5.0.0 stored although its audit entry could not be written")
	}
	redisCmd(t, rdb.Addr, "ACL", "SETUSER", "default", "resetkeys", "~*")
	if first.Status < 500 {
		t.Fatalf("first registration with the audit write refused: %s, want a 5xx (nothing acknowledged)", first)
	}
	final, _, err := registerRetrying(ctx, relay.URL, body)
	if err != nil || (final.Status != http.StatusOK && final.Status != http.StatusCreated) {
		t.Fatalf("retry: %v %s", err, final)
	}
	if _, ok := relay.bundlesOf(t, appID)["5.0.0"]; !ok {
		t.Fatal("bundle 5.0.0 not stored after the acknowledged retry")
	}
	audit := relay.auditOf(t, appID)
	if !slices.ContainsFunc(audit, func(e channel.AuditEntry) bool { return e.Action == "register" && e.Version == "5.0.0" }) {
		t.Errorf("registration of 5.0.0 was acknowledged (%s) but the audit log has no register entry for it: %+v", final, audit)
	}
}

// redisCmd sends one command in RESP and requires a +OK answer.
func redisCmd(t *testing.T, addr string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("redis %v: %q %v", args, line, err)
	}
}
