// Package e2e holds Ferry's end-to-end tests: the built action binary packages a web app
// and publishes it to a real bucket (versitygw, or a directory through file://), registers
// it with the built relay binary running on a real redis-server, and the reference device
// client (internal/device) checks, downloads, decrypts, verifies and unpacks it.
//
// Each scenario is its own test with its own Redis and relay. Run them with
//
//	set -a; . ./.peers.env; set +a
//	FERRY_REQUIRE_PEERS=1 go test -race -count=1 ./e2e/
//
// Without the peers (redis-server, versitygw) the tests skip, unless FERRY_REQUIRE_PEERS=1.
package e2e
