package main

import (
	"io"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestRedisEvictionPolicy: a Redis with a memory limit and an evicting policy can delete
// the relay's state (channels, bundles, webhook de-duplication marks, failed versions),
// so the relay refuses it with an error naming the policy and the fix, unless
// --redis-allow-eviction is given: then it starts, logs the risk loudly and /readyz says
// "degraded". A Redis with noeviction starts normally.
func TestRedisEvictionPolicy(t *testing.T) {
	t.Parallel()
	cfgPath := relaytest.WriteConfig(t, testConfig)
	lru := testpeers.Redis(t, "--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru")
	args := []string{"--config", cfgPath, "--addr", "127.0.0.1:0", "--redis-url", "redis://" + lru.Addr + "/0"}

	err := run(t.Context(), args, env(nil), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("relay started on a Redis with maxmemory-policy allkeys-lru")
	}
	for _, want := range []string{"allkeys-lru", "maxmemory-policy noeviction", "--redis-allow-eviction", "FERRY_REDIS_ALLOW_EVICTION"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}

	p := startInProcess(t, args, map[string]string{"FERRY_REDIS_ALLOW_EVICTION": "true"})
	if code, body := relaytest.Call(t, "GET", p.base+"/readyz", nil, nil); code != 200 || !strings.Contains(body, `"status":"degraded"`) {
		t.Errorf("GET /readyz with an evicting Redis allowed = %d %s, want 200 degraded", code, body)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if logs := p.stdout.String(); !strings.Contains(logs, `"level":"ERROR","msg":"REDIS MAY DELETE THE RELAY'S STATE`) {
		t.Errorf("logs do not shout about the eviction policy:\n%s", logs)
	}

	safe := testpeers.Redis(t, "--maxmemory", "10mb", "--maxmemory-policy", "noeviction")
	p = startInProcess(t, []string{"--config", cfgPath, "--addr", "127.0.0.1:0", "--redis-url", "redis://" + safe.Addr + "/0"}, nil)
	if code, body := relaytest.Call(t, "GET", p.base+"/readyz", nil, nil); code != 200 || body != `{"status":"ok"}` {
		t.Errorf("GET /readyz with noeviction = %d %s, want 200 ok", code, body)
	}
}
