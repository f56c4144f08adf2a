package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

// ExampleOpenBolt registers a bundle, promotes it to a channel and reads the audit log,
// with the embedded store.
func ExampleOpenBolt() {
	dir, err := os.MkdirTemp("", "ferry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.OpenBolt(filepath.Join(dir, "ferry.db"), store.BoltOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()

	b := &channel.Bundle{AppID: "com.example.app", Version: "1.4.0", Checksum: "9f86d08", Commit: "abc123", URL: "https://example.com/1.4.0.zip"}
	// The registration's audit entry is written with the bundle, in one transaction.
	reg := &channel.AuditEntry{Action: "register", Version: b.Version, Cause: "registration"}
	if _, created, err := st.PutBundle(ctx, b, reg); err != nil || !created {
		log.Fatal(created, err)
	}
	s, err := st.UpdateState(ctx, "com.example.app", "production", func(s *channel.State) (*channel.AuditEntry, error) {
		from := s.Version
		s.Version = "1.4.0"
		return &channel.AuditEntry{Action: "promote", Version: "1.4.0", From: from, Cause: "webhook push refs/tags/v1.4.0"}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	audit, err := st.ListAudit(ctx, "com.example.app", 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Channel, s.Version, s.Rev)
	for _, e := range audit {
		fmt.Println(e.Action, e.Version, e.Cause)
	}
	// Output:
	// production 1.4.0 1
	// promote 1.4.0 webhook push refs/tags/v1.4.0
	// register 1.4.0 registration
}

// ExampleOpenRedis shows the URL forms for one server, Sentinel and Cluster. (Not run:
// it needs a server; the tests run the same calls against real ones.)
func ExampleOpenRedis() {
	ctx := context.Background()
	for _, url := range []string{
		"redis://localhost:6379/0",
		"rediss://ferry:" + os.Getenv("REDIS_PASSWORD") + "@cache.internal:6380/0?dial_timeout=3s",
		"redis-sentinel://sentinel-a:26379,sentinel-b:26379,sentinel-c:26379/ferry-master",
		"redis-cluster://node-a:6379,node-b:6379,node-c:6379",
	} {
		st, err := store.OpenRedis(ctx, url, store.RedisOptions{})
		if err != nil {
			log.Print(err) // wraps channel.ErrUnavailable when the server cannot be reached
			continue
		}
		_ = st // ... serve with st, and close it on shutdown:
		st.Close()
	}
}
