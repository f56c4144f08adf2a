// Package e2e holds Ferry's end-to-end tests: the built action binary packages a web app
// (examples/web) and publishes it to a real bucket (versitygw, or a directory through
// file://), registers it with the built relay binary running on a real redis-server (HMAC,
// or an OIDC token from a fake GitHub issuer), and the reference device client
// (internal/device) checks, downloads, decrypts, verifies and unpacks it.
//
// Each scenario is its own test with its own Redis and relay: first install; a branch build
// lands on beta; a tag push promotes the same bundle without rebuilding; moving the tag back
// rolls back; a 10 % rollout over 2 000 devices; update_fail stops offering a version; native
// targeting; delta updates; encrypted and unencrypted apps; key rotation; OIDC registration;
// two relays on one Redis; a relay crash. Run them with
//
//	set -a; . ./.peers.env; set +a
//	FERRY_REQUIRE_PEERS=1 go test -race -count=1 ./e2e/
//
// Without the peers (redis-server, versitygw) the tests skip, unless FERRY_REQUIRE_PEERS=1.
package e2e
