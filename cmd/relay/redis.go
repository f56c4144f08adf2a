package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ferryhq/ferry/internal/redact"
	"github.com/ferryhq/ferry/internal/store"
)

// openRedis opens the Redis store named by cfg.RedisURL (standalone, Sentinel or Cluster)
// and checks that it answers, so a wrong URL fails at start-up. It also checks Redis's
// eviction policy (docs/relay.md): a Redis that may evict keys is refused unless
// cfg.RedisAllowEviction, and then degraded names the risk for /readyz.
func openRedis(ctx context.Context, cfg *Config, logger *slog.Logger) (st store.Store, desc, degraded string, err error) {
	r, err := store.OpenRedis(ctx, cfg.RedisURL, store.RedisOptions{Logger: logger})
	if err != nil {
		return nil, "", "", fmt.Errorf("open redis store %s: %w", redact.Passwords(cfg.RedisURL), err)
	}
	desc = "redis " + redact.Passwords(cfg.RedisURL)
	switch err := r.CheckEviction(ctx); {
	case err == nil:
	case errors.Is(err, store.ErrEvictionPolicy) && cfg.RedisAllowEviction:
		degraded = "Redis may evict the relay's keys (maxmemory-policy is not noeviction); started with --redis-allow-eviction"
		logger.Error("REDIS MAY DELETE THE RELAY'S STATE: started anyway because of --redis-allow-eviction (FERRY_REDIS_ALLOW_EVICTION); "+
			"channels, bundles, webhook de-duplication marks and failed versions can vanish under memory pressure",
			"error", err)
	case errors.Is(err, store.ErrEvictionPolicy):
		r.Close()
		return nil, "", "", fmt.Errorf("refusing to use %s: %w\n(to run anyway, accepting that state may vanish, pass --redis-allow-eviction or set FERRY_REDIS_ALLOW_EVICTION=true)", desc, err)
	case errors.Is(err, store.ErrConfigUnreadable):
		logger.Warn("cannot check Redis's eviction policy; make sure maxmemory-policy is noeviction (docs/relay.md)", "error", err)
	default:
		r.Close()
		return nil, "", "", fmt.Errorf("check eviction policy of %s: %w", desc, err)
	}
	return r, desc, degraded, nil
}
