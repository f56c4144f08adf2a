// Package relaytest runs Ferry's own binaries as real processes for tests, chiefly the
// relay, and signs what tests send it the way the action and GitHub do.
//
// [Build] compiles the module's commands once per test binary, with GOTOOLCHAIN=local and
// CGO_ENABLED=0 as the release images build them, into one temporary directory, which
// [Run] removes once the tests have run:
//
//	func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }
//
// [Start] runs the relay on a free loopback port with the flags and environment a test
// chooses, waits until /readyz answers 200, and collects its output in a [Buffer]. A test
// ends it with [Relay.Stop] and a signal of its choice (SIGKILL for a crash, SIGTERM for a
// drain) and brings it back on the same address and store with [Relay.Start]; t.Cleanup
// stops it for good and shows its output when the test failed.
//
//	bin := relaytest.Build(t, "cmd/relay")[0]
//	r := relaytest.Start(t, bin, relaytest.Options{
//		Args: []string{"--config", relaytest.WriteConfig(t, config), "--data-dir", t.TempDir()},
//		Env:  append(os.Environ(), "FERRY_HMAC_SECRET="+secret),
//	})
//	hdr := relaytest.HMACHeaders(secret, body, time.Now()) // for POST r.URL+"/api/v1/bundles"
//
// [HMACHeaders] and [WebhookHeaders] are computed here from the documented wire format, not
// by the relay's own code, so a test that uses them checks the relay against the protocol.
// [Hex] and [Commit] derive stable ids from a label, and [WaitFor] polls a condition.
//
// The kit is test support: tests and other kits may import it, production code never does
// (imports_test.go enforces both). Free ports and peer servers such as redis-server come
// from internal/testpeers.
package relaytest
