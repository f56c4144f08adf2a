// Package relay is Ferry's HTTP surface for devices: the self-hosted update protocol of the
// unmodified @capgo/capacitor-updater plugin (docs/protocol.md §1–§4), plus the
// operational endpoints every deployment needs.
//
// Routes served by a [Server]:
//
//   - POST /updates: the update check. Answered from an in-process [channel.Snapshot] of the
//     app (states and the bundles they reference) by [channel.Decide]. Always HTTP 200 with a
//     JSON object, except 400 for a body that is not a JSON object (or lacks app_id or
//     device_id), 413 for an oversized body and 429 for real abuse.
//   - POST /updates/manifest_size: sizes of delta-manifest files (docs/protocol.md §1.5), for
//     versions a device could be offered only.
//   - POST /stats: device events, one object or an array; unknown actions are accepted
//     (counted as "other") and "update_fail" of a registered version stops the relay offering
//     that version to that device. It is anonymous, so what it can store is bounded (drops
//     are counted in ferry_stats_dropped_total); 503 with Retry-After when the events could
//     not be stored.
//   - POST|PUT|GET|DELETE /channel_self: the plugin's channel calls with their exact shapes
//     (docs/protocol.md §3).
//   - GET /healthz (process alive), GET /readyz (store reachable, cached for a second;
//     "degraded" with [Options.Degraded]), GET /metrics (Prometheus; optionally behind
//     [Options].MetricsToken, or moved to its own listener with [Options].SeparateMetrics and
//     [Server.ServeMetrics]).
//   - Whatever is added with [Server.Mount], e.g. the control plane of package control
//     (registration, webhooks, admin API), which calls [Server.Invalidate] after each change.
//
// # Hot path
//
// An update check costs no store round trip for channel state: each configured app has a
// cached snapshot, filled from the store (Store.ListStates, then Store.GetBundles for
// Snapshot.Versions) by one goroutine at a time, dropped when Store.Subscribe reports a change
// (from any relay sharing the store) or [Server.Invalidate] is called, and refreshed after
// [Options.SnapshotTTL] as a safety net against lost notifications. The only per-device
// lookup, Store.FailedVersions, is made only when the answer would offer a bundle, in one
// round trip. When the store is unreachable the relay keeps answering from the last snapshot
// it has, logs it and counts it in ferry_store_errors_total.
//
// # Middleware
//
// Every request gets a request id (X-Request-ID, accepted from the client when well-formed,
// generated otherwise) and a request-scoped *slog.Logger in its context (package reqlog, which
// the control plane's handlers log through too); panics are recovered; per-route latency and
// status codes are measured with the route template as label. Device and API routes also get
// a body limit (413, before reading when the declared length says so; mounted routes take
// theirs from a [BodyLimiter]), a place in the process-wide body budget
// ([Options].BodyBudget; 503 with Retry-After when full) and a per-client token bucket (per
// IPv4 address or IPv6 /64), and update checks a per-device one (429 with Retry-After, the
// only use of 429). The client IP honours X-Forwarded-For only from [Options.TrustedProxies].
// [Server.Serve] caps open connections ([Options].MaxConns).
//
// The device routes (update check, manifest_size, stats, channel_self) are served without
// Gin: [Server.Handler] dispatches their exact method and path to their handlers, with the
// same middleware through the same code, and hands everything else to the Gin engine (see
// direct.go). Their bodies are decoded into slices of one string rather than a string per
// field; what outlives a request is cloned where it is kept.
//
// Usage:
//
//	srv, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: logger})
//	if err != nil { ... }
//	err = srv.ListenAndServe(ctx, ":8080") // returns after ctx ends and requests drained
package relay
