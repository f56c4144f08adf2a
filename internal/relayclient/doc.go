// Package relayclient is the relay's control API seen from both ends: its wire types, the
// registration signature, and one typed [Client].
//
// The relay (internal/relay/control) encodes its answers and decodes its requests with the
// types declared here, and the clients (the action, `ferry admin`, tests) decode and encode
// with the same ones, so a field added on one side and forgotten on the other is a compile
// error, not a silent drift.
//
// # Endpoints
//
//	POST /api/v1/bundles                                 channel.Bundle → [Registration]
//	GET  /api/v1/apps/{app}/channels                     [ChannelList]
//	GET  /api/v1/apps/{app}/channels/{channel}           [ChannelView]
//	GET  /api/v1/apps/{app}/bundles?limit=N              [BundleList]
//	GET  /api/v1/apps/{app}/bundles/{version}            channel.Bundle
//	POST /api/v1/apps/{app}/channels/{channel}/promote   [PromoteRequest] → [ChangeResult]
//	POST /api/v1/apps/{app}/channels/{channel}/rollback  (no body) → [ChangeResult]
//	PUT  /api/v1/apps/{app}/channels/{channel}/rollout   [RolloutRequest] → [ChangeResult]
//	POST /api/v1/apps/{app}/channels/{channel}/rollout/{pause|resume|complete|cancel}
//	GET  /api/v1/apps/{app}/channels/{channel}/plan      [PlanView]
//	POST /api/v1/apps/{app}/channels/{channel}/plan      [PlanRequest] → [ChangeResult]
//	PUT  /api/v1/apps/{app}/channels/{channel}/policy    [PolicyRequest] → [ChangeResult]
//	GET  /api/v1/apps/{app}/stats                        [Stats]
//	GET  /api/v1/apps/{app}/audit?limit=N                [AuditList]
//
// Every refusal is a non-2xx answer whose body is an [ErrorBody], {"error": code,
// "message": text}; the relay's device endpoints use the same shape with a "kind".
//
// # Authentication
//
// A registration carries either a GitHub Actions OIDC token (Authorization: Bearer) or an
// HMAC signature: [HeaderTimestamp] holds the signing time in unix seconds and
// [HeaderSignature] "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<raw body>" ([Sign],
// [MAC]). The admin API takes the relay's admin token as a bearer token.
//
// # Errors
//
// Every non-2xx answer becomes an [*Error] carrying the status, the body's code and message
// and any Retry-After ([CheckResponse]); errors.As reaches it through the client's
// wrapping, and errors.Is matches it against a template such as
// &Error{StatusCode: http.StatusConflict}. Error bodies are read up to [MaxErrorBody] bytes,
// answers up to [MaxAnswer], and URLs in errors never carry credentials.
//
// [Client.RegisterBundle] retries what a retry can change (429, 5xx, transport errors, a
// token the runner could not issue for a moment) with exponential backoff, honouring
// Retry-After, until the context ends; the admin calls are never retried.
//
// The package imports only the standard library and internal/channel.
package relayclient
