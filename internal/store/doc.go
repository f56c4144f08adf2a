// Package store keeps the relay's state: bundles, channel states, the audit log, pending
// promotions, webhook delivery marks, device stats, and the access records (hashed API
// tokens, single sign-on sessions, logins in progress; [Access]), and the signed download
// URLs of private release assets the relay instances share ([AssetLinks]). It states the store contract once,
// as the [Store] interface, implements it twice, and is the only package that imports
// go-redis and bbolt:
//
//   - [Bolt], the embedded default: one bbolt file for a single relay instance;
//   - [Redis], for any number of relay instances sharing one Redis server, a
//     Sentinel-managed master or a Cluster (go-redis UniversalClient).
//
// The conformance suite in [github.com/ferryhq/ferry/internal/store/storetest] runs
// against both, Redis being a real redis-server.
//
//	st, err := store.OpenBolt(filepath.Join(dataDir, "ferry.db"), store.BoltOptions{})
//	// or
//	st, err := store.OpenRedis(ctx, os.Getenv("REDIS_URL"), store.RedisOptions{})
//	if err != nil { … }
//	defer st.Close()
//
// # Contract
//
// Both stores behave alike: PutBundle creates or compares atomically (same checksum: the
// stored bundle, created=false; another checksum: channel.ErrConflict, nothing changed);
// UpdateState is an optimistic read-modify-write that calls fn outside any lock and again
// if another writer changed the channel in between, and writes the state, its audit entry
// and the change notification together or not at all. Bad arguments (an empty app id, app
// ids with braces or control characters, empty versions) wrap [ErrInvalid]; unknown
// bundles wrap channel.ErrNotFound. Every method returns only once its write is durable.
// The access records ([Access]) follow the same rules: PutToken of an existing id is
// channel.ErrConflict; TakeLogin reads and deletes in one atomic step; RevokeToken and
// DeleteSession notify subscribers with [AccessChanged] on the path app ids take.
//
// # Growth bounds
//
//   - The audit log keeps the newest [DefaultAuditLimit] (10 000) entries per app; each
//     append trims the oldest ([BoltOptions].AuditLimit, [RedisOptions].AuditLimit).
//   - A device's failed-version set expires [DefaultFailedTTL] (90 days) after its last
//     update_fail report, and at most [DefaultMaxFailedDevices] (20 000) devices per app
//     have one: a failure of one more deletes the sets of the devices whose last failure
//     is oldest ([BoltOptions].MaxFailedDevices, [RedisOptions].MaxFailedDevices). Device
//     ids are anonymous; this bound, not the caller, keeps them from growing the store.
//   - A commit's pending promotions expire [DefaultPendingTTL] (90 days) after the last
//     one was added (a tag pushed for a commit whose build never registered).
//   - Webhook delivery marks expire after the ttl given to SeenDelivery, or to the
//     MarkDelivery that last extended them ([DefaultDeliveryTTL], 72 hours, when it is not
//     positive).
//   - Sessions and logins vanish at their ExpiresAt (Redis: SET PXAT; Bolt: ignored on
//     read once expired, deleted by the sweeper, and a login also by TakeLogin).
//   - API tokens are kept, revoked and expired ones too (they are listed and name the
//     actor in audit entries); only an admin creates them, so their number is the
//     admins' doing.
//   - Series counters ([Series]) are kept per bucket for their resolution's retention
//     (5-minute buckets 8 days, hourly buckets 90 days): Redis expires each bucket's
//     hash, Bolt deletes old buckets in the next AddSeries' transaction.
//   - Asset links ([AssetLinks]) vanish at their expiry, at most [MaxAssetLinkLifetime]
//     (7 days) ahead (Redis: SET PXAT; Bolt: ignored on read once expired, deleted by the
//     next PutAssetLink and the sweeper). Bolt also keeps at most [DefaultMaxAssetLinks]
//     (10 000) at once, deleting the one that expires first ([BoltOptions].MaxAssetLinks);
//     on Redis there is one per release asset a device downloaded within its URL's lifetime.
//   - Channel History is cut to channel.MaxHistory entries.
//   - Bundles, channel states and per-version counters are kept: they are the record.
//     The stores count whatever versions and actions they are given; the relay passes only
//     registered versions and the plugin's actions (others as "other").
//
// Redis expires keys itself; Bolt ignores expired records on read and a sweeper deletes
// them every [BoltOptions].SweepInterval (1 hour).
//
// # Redis
//
// Keys of one app share the hash tag {<app>}, so every script and MULTI touches one
// Cluster slot:
//
//	ferry:schema                         "1" (the layout version; OpenRedis checks it)
//	ferry:{<app>}:bundles                hash  version -> bundle JSON
//	ferry:{<app>}:order                  list  versions, newest registration first
//	ferry:{<app>}:commits                hash  commit -> version of its newest bundle
//	ferry:{<app>}:states                 hash  channel -> state JSON
//	ferry:{<app>}:state_writes           hash  channel -> token of the last state write (retry detection)
//	ferry:{<app>}:audit                  list  audit entry JSON, newest first, LTRIMmed
//	ferry:{<app>}:pending:<commit>       hash  <channel>\x00<ref> -> {"seq","pending"}; #seq counter; PEXPIRE
//	ferry:{<app>}:versions               set   versions that have stats
//	ferry:{<app>}:stats:<version>        hash  action -> count (HINCRBY)
//	ferry:{<app>}:devices:<version>      HyperLogLog of device ids (PFADD/PFCOUNT, ~0.8% error)
//	ferry:{<app>}:failed:<device>        set   versions the device failed (SADD, PEXPIRE)
//	ferry:{<app>}:failed_devices         zset  device -> ms of its last failure; trimmed to FailedTTL, PEXPIRE
//	ferry:{<app>}:series:<5m|1h>:<unix start>  hash  <channel>\x00<version>\x00<metric> -> count; PEXPIREAT start + retention
//	ferry:{<app>}:asset_link:<asset id>  {"url","expires"} JSON, SET PXAT its expiry
//	ferry:delivery:<id>                  "1", SET NX PX ttl (global: not tied to an app)
//	ferry:{access}:tokens                hash  token id -> token JSON (without LastUsed, RevokedAt)
//	ferry:{access}:token_used            hash  token id -> LastUsed (20-digit unix ns, compared as strings)
//	ferry:{access}:token_revoked         hash  token id -> RevokedAt (same encoding; HSETNX)
//	ferry:{access}:token_writes          hash  token id -> random token of the creating PutToken (retry detection)
//	ferry:session:<id hash>              session JSON, SET PXAT its ExpiresAt
//	ferry:login:<state>                  login JSON, SET PXAT its ExpiresAt; taken with GETDEL
//	ferry:changes                        pub/sub channel; each state change publishes the app id,
//	                                     each revocation and sign-out "\x00access"
//	ferry:failures                       pub/sub channel; RecordStats publishes <app>\x00<device> for each
//	                                     update_fail in its MULTI/EXEC, each instance a heartbeat
//
// PutBundle is one Lua script (HGET, else HSET + LPUSH + HSET commit). UpdateState reads
// the state, runs fn, then a Lua script compares the stored JSON with what fn saw and, if
// unchanged, writes the state, LPUSHes and LTRIMs the audit log and PUBLISHes the app id;
// otherwise it retries (with jittered backoff after three lost races). RecordStats is one
// MULTI/EXEC (plus, when failed_devices holds more than MaxFailedDevices, a script that
// pops the oldest and UNLINKs their sets; sets written before the index existed are not in
// it and simply expire); FailedVersions answers devices that never failed from memory
// when its filter is loaded and fresh (redis_failedset.go: a superset of failed_devices
// kept by ferry:failures, trusted only while the instance hears its own heartbeats back
// within a second, dropped and reloaded on every resubscription), else one SMEMBERS,
// pipelined with the other lookups waiting at the time (one worker sends whatever queued during the previous round trip, so a lone lookup
// is not delayed and each caller still stops at its own deadline); GetBundles one HMGET.
// ClearFailedVersions reads the set (SMEMBERS), then one script deletes it, ZREMs the device
// from failed_devices and LPUSHes its audit entry if the set still holds what was read
// (else it starts again).
// PutAssetLink is one SET PXAT, GetAssetLink one GET.
// PutToken, RevokeToken and TouchToken are one script each over the {access} hashes (so
// a touch never undoes a revocation, and LastUsed only moves forward); GetToken and
// ListTokens one MULTI/EXEC of HGETs or HGETALLs; DeleteSession one script (DEL and
// PUBLISH); TakeLogin one GETDEL.
// Subscribe runs a go-redis
// PubSub goroutine (resubscribing after reconnects; messages published meanwhile are lost,
// so callers also expire their caches). Errors caused by an unreachable or not-yet-ready
// server (network errors, timeouts, LOADING, READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN…),
// and writes refused with OOM at maxmemory, wrap channel.ErrUnavailable; the relay answers
// 503 with Retry-After. [Redis.CheckEviction] reports a maxmemory-policy that could evict
// keys (anything but noeviction while maxmemory is set); cmd/relay refuses to start on it. Default timeouts are
// short (dial 2s, read and write 2s, one retry) so an outage is reported promptly.
//
// Durability is Redis's: a write is acknowledged when Redis applied it. Run Redis with
// appendonly yes and appendfsync always (or everysec, accepting up to a second of loss
// on a crash) for "nothing lost"; the durability test kills redis-server with SIGKILL
// under appendfsync always and finds every acknowledged write. Replication to Sentinel
// replicas is asynchronous: a write acknowledged by a master that dies before its replica
// received it is lost in the failover (Redis's own limit; the failover test waits for the
// replica with WAIT before killing the master).
//
// URL forms accepted by [OpenRedis]:
//
//	redis://[user:pass@]host[:6379][/db][?options]                 one server (rediss:// for TLS)
//	redis-sentinel://[user:pass@]s1[:26379],s2/<master>[/db][?options]  Sentinel (rediss-sentinel://)
//	redis-cluster://[user:pass@]n1[:6379],n2,n3[?options]          Cluster (rediss-cluster://)
//
// plus go-redis's own redis://s1?master_name=m&addr=s2 (Sentinel) and
// redis://n1?addr=n2&addr=n3 (Cluster). Options are go-redis's URL options.
//
// # Bolt
//
// One file, fsynced on every commit (bbolt's default), so a method returns only once its
// write is on disk; a crash (SIGKILL) loses nothing acknowledged, as a test shows. bbolt
// takes an exclusive flock on the file: a second process opening it waits
// [BoltOptions].LockTimeout (1s) and fails with [ErrLocked]. The file records its layout
// version in meta/schema; a file with another version is refused ([ErrSchema]). Buckets:
//
//	meta                         schema = "1"
//	deliveries                   <delivery id> -> expiry (unix ns, 8 bytes big endian)
//	apps/<app>/bundles           <version> -> bundle JSON
//	apps/<app>/order             <seq, 8 bytes BE> -> version (registration order)
//	apps/<app>/commits           <commit> -> version of the newest bundle built from it
//	apps/<app>/states            <channel> -> state JSON
//	apps/<app>/audit             <seq, 8 bytes BE> -> audit entry JSON
//	apps/<app>/pending           <commit>\x00<channel>\x00<ref> -> {seq, pending, expires}
//	apps/<app>/stats/<version>   actions/<action> -> count; devices_hll -> 2^14 HyperLogLog registers
//	apps/<app>/failed            <device>\x00<version> -> expiry (unix ns)
//	apps/<app>/failed_age        <expiry, 8 bytes BE><device> -> "" (one per device; sequence = count)
//	apps/<app>/series/<5m|1h>    <bucket start, 8 bytes BE unix s><channel>\x00<version>\x00<metric> -> count
//	tokens                       <token id> -> token JSON
//	sessions                     <id hash> -> <expiry, 8 bytes BE unix ns><session JSON>
//	logins                       <state> -> <expiry, 8 bytes BE unix ns><login JSON>
//	asset_links                  <app>\x00<asset id, 8 bytes BE> -> {"url","expires"} JSON; sequence = count
//	asset_link_age               <expiry, 8 bytes BE unix ns><app>\x00<asset id, 8 bytes BE> -> ""
//
// OpenBolt creates the last five in a file written before they existed (same schema).
//
// Distinct devices are estimated with a HyperLogLog (16 KiB per version, ~0.8% error, like
// Redis's PFCOUNT), so anonymous stats posts with ever new device ids cannot grow the file;
// an older file's devices/<device> keys and devices_n count are folded into the registers
// and deleted on the version's next device event (bbolt reuses the freed pages; the file
// itself only shrinks with an offline `bbolt compact`). UpdateState reads
// the state, calls fn outside any transaction (so fn may itself use the store), then in one
// write transaction checks that the stored bytes are unchanged, writes the state and
// appends the audit entry; if another writer got in between it starts again.
// PutAssetLink writes the link and its asset_link_age entry in one write transaction, after
// deleting the asset's earlier link and, oldest expiry first, the expired links and (when
// MaxAssetLinks are stored) the ones that expire soonest.
// ClearFailedVersions deletes the device's failed keys and its failed_age entry (one less
// in the bucket's sequence) and appends its audit entry in one write transaction. AddSeries is
// one MULTI/EXEC on Redis, and Series one pipeline of HGETALLs (one per bucket). RecordStats
// is a group commit (bolt_group.go), so concurrent reports share one fsync and a lone one
// commits at once. Subscribe is an in-process broadcast with buffered, non-blocking sends
// (a bbolt file has one process).
package store
