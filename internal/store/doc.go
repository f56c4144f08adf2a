// Package store keeps the relay's state: bundles, channel states, the audit log, pending
// promotions, webhook delivery marks and device stats. It implements the relay's Store
// interface twice, and is the only package that imports go-redis and bbolt:
//
//   - [Bolt], the embedded default: one bbolt file for a single relay instance;
//   - [Redis], for any number of relay instances sharing a Redis server, Sentinel-managed
//     master or Cluster.
//
// The conformance suite in [github.com/ferryhq/ferry/internal/store/storetest] runs
// against both (Redis being a real redis-server).
//
//	st, err := store.OpenBolt(filepath.Join(dataDir, "ferry.db"), store.BoltOptions{})
//	// or
//	st, err := store.OpenRedis(ctx, "redis://localhost:6379/0", store.RedisOptions{})
//
// # Bolt
//
// One file, fsynced on every commit (bbolt's default), so a method returns only once its
// write is on disk. bbolt takes an exclusive flock on the file: a second process opening
// it waits [BoltOptions].LockTimeout and then fails with [ErrLocked]. The file records its
// layout version in meta/schema; a file with another version is refused ([ErrSchema]).
// Buckets:
//
//	meta                         schema = "1"
//	deliveries                   <delivery id> -> expiry (unix ns, 8 bytes big endian)
//	apps/<app>/bundles           <version> -> bundle JSON
//	apps/<app>/order             <seq, 8 bytes BE> -> version (registration order)
//	apps/<app>/commits           <commit> -> version of the newest bundle built from it
//	apps/<app>/states            <channel> -> state JSON
//	apps/<app>/audit             <seq, 8 bytes BE> -> audit entry JSON
//	apps/<app>/pending           <commit>\x00<channel>\x00<ref> -> {seq, pending, expires}
//	apps/<app>/stats/<version>   actions/<action> -> count; devices/<device>; devices_n -> count
//	apps/<app>/failed            <device>\x00<version> -> expiry (unix ns)
//
// UpdateState reads the state, calls fn outside any transaction (so fn may use the store),
// then in one write transaction checks the stored bytes are unchanged, writes the state and
// appends the audit entry; if another writer got in between it starts again. Subscribe is
// an in-process broadcast with buffered, non-blocking sends.
package store
