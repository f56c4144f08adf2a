// Package reliability is Ferry's proving ground for faults, hostile input and load. Its
// tests build cmd/relay, run it as a real process on the embedded store or a private
// redis-server, and then break things: Redis stops under wrk load, the relay is killed with
// SIGKILL in the middle of registrations and webhooks, webhooks and admin calls race on one
// channel, every endpoint receives malformed, oversized and forged requests, and a mixed
// load runs long enough to show memory or goroutine growth. Every test asserts what the
// relay promises in docs/relay.md and docs/admin-api.md and that nothing it acknowledged
// was lost. Figures and the commands that produce them are in docs/reliability.md.
//
// Knobs: FERRY_SOAK (duration of the soak, default 30s), FERRY_OUTAGE (Redis outage,
// default 10s).
package reliability
