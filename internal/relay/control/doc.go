// Package control is the relay's control plane: everything that changes channel state.
//
// It serves three HTTP surfaces, mounted on the relay's Gin engine by [API.Mount] and
// documented for users in docs/admin-api.md:
//
//   - POST /api/v1/bundles: bundle registration from CI (docs/architecture.md §3.2),
//     authenticated by a GitHub Actions OIDC token (go-oidc: issuer discovery, JWKS, audience,
//     expiry; the token's repository must own the app, and ref and commit come from its claims)
//     by an API token with the publisher role on the app, or by an HMAC signature over
//     "<timestamp>.<body>" (the app's own secret or the relay-wide one) with a ±5 minute
//     window. A registration
//     stores the bundle idempotently, moves the channel its ref (or explicit channel) names, and
//     applies tag promotions that were waiting for its commit.
//   - POST /webhooks/github: GitHub push webhooks (docs/architecture.md §3.3). The signature is
//     checked before anything is parsed. A tag push promotes the bundle built from the tag's commit
//     to the channel the tag maps to, or keeps the promotion pending until that bundle
//     registers.
//   - /api/v1/apps/:app/... and /api/v1/tokens: the admin API (docs/architecture.md §3.5).
//     Each request's credential (API token, single sign-on session, bootstrap token) resolves
//     to an access.Principal and each route needs a permission on the app (authz.go,
//     docs/access.md); failed attempts are throttled per client address.
//
// Invariants:
//
//   - Every state change is one Store.UpdateState call (through API.updateState) whose audit
//     entry names the cause ("registration <repo>@<commit> <ref>", "webhook:<delivery> push
//     <ref>", "admin") and the actor, and is followed by Options.OnChange so the relay drops
//     its cached state. Once stored, a promotion, rollback or rollout change is handed to
//     Options.Notifier (outgoing notifications), exactly once, without waiting.
//   - A refused request changes nothing; a request is acknowledged only after the store
//     calls it made returned. Store outages answer 503 with Retry-After, and every step is
//     idempotent, so the caller's retry completes what an interrupted attempt began.
//   - No channel is ever left pointing at nothing: a tag moved to a commit without a bundle
//     keeps the channel where it is (the promotion waits), and a deleted tag changes no
//     channel.
//   - Bundles built for pull requests register but never move a channel, by ref, explicit
//     channel or tag; pull_request_target runs, whose token names a base-branch commit, are
//     refused.
//   - A re-registration never moves a channel back to a version it served before, so a late
//     retry of an old build is harmless.
//   - A webhook delivery id is remembered only once the delivery was processed, so a
//     delivery that failed can be redelivered; a replay of a processed one changes nothing.
//
// Neither this package nor internal/relay imports the other (only this package's tests do, to
// run it mounted on the real relay); cmd/relay wires the two. It does not import
// internal/store either: it declares the store methods it calls as its own [Store]
// interface, whose contracts internal/store states. Its handlers log through the request's
// logger that the relay's middleware puts in the request's context (package
// internal/relay/reqlog, which both import), so their lines carry the relay's request_id and
// route. The repository's imports_test.go holds both packages to this.
//
// Usage:
//
//	api, err := control.New(ctx, control.Options{
//		Config: cfg, Store: st, Logger: logger,
//		AdminToken: getenv("FERRY_ADMIN_TOKEN"), WebhookSecret: getenv("FERRY_WEBHOOK_SECRET"),
//		HMACSecret: getenv("FERRY_HMAC_SECRET"), OIDCAudience: getenv("FERRY_OIDC_AUDIENCE"),
//		OnChange: srv.Invalidate,
//	})
//	if err != nil {
//		return err
//	}
//	defer api.Close()
//	api.Mount(engine) // or relay.Server.Mount, which also forwards store notifications (StoreChanged)
package control
