package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ferryhq/ferry/internal/redact"
	"github.com/ferryhq/ferry/internal/store"
)

// openRedis opens the Redis store named by cfg.RedisURL (standalone, Sentinel or Cluster)
// and checks that it answers, so a wrong URL fails at start-up.
func openRedis(ctx context.Context, cfg *Config, logger *slog.Logger) (store.Store, string, error) {
	r, err := store.OpenRedis(ctx, cfg.RedisURL, store.RedisOptions{Logger: logger})
	if err != nil {
		return nil, "", fmt.Errorf("open redis store %s: %w", redact.Passwords(cfg.RedisURL), err)
	}
	return r, "redis " + redact.Passwords(cfg.RedisURL), nil
}
