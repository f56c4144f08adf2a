package relay

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/internal/peers"
	"github.com/ferryhq/ferry/internal/store"
)

// openRedis opens the Redis store on a private redis-server (peers.Redis); the test skips
// when redis-server is not installed, or fails under FERRY_REQUIRE_PEERS=1.
func openRedis(t testing.TB) Store {
	t.Helper()
	srv := peers.Redis(t)
	r, err := store.OpenRedis(context.Background(), "redis://"+srv.Addr, store.RedisOptions{})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
