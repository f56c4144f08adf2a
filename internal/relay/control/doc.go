// Package control is the relay's control plane: everything that changes channel state.
//
// It serves three HTTP surfaces, mounted on the relay's Gin engine by [API.Mount]:
//
//   - POST /api/v1/bundles: bundle registration from CI (DESIGN.md §3.2), authenticated by a
//     GitHub Actions OIDC token or an HMAC signature with a timestamp window. A registration
//     stores the bundle idempotently and moves the channel its ref maps to.
//   - POST /webhooks/github: GitHub push webhooks (DESIGN.md §3.3). A tag push promotes the
//     bundle built from the tag's commit to the channel the tag maps to, or keeps the
//     promotion pending until that bundle registers.
//   - /api/v1/apps/:app/...: the token-protected admin API (DESIGN.md §3.5).
//
// Every state change goes through one Store.UpdateState call with an audit entry naming its
// cause, and is followed by Options.OnChange so the relay can drop its cached state. A request
// is acknowledged only after the store calls it made have returned. Refused requests change
// nothing.
//
// The package does not import internal/relay; it declares the subset of the relay's Store it
// needs as its own [Store] interface.
//
// Usage:
//
//	api, err := control.New(ctx, control.Options{Config: cfg, Store: st, AdminToken: tok, ...})
//	if err != nil { ... }
//	api.Mount(engine)
package control
