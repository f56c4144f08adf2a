package relaytest_test

import (
	"fmt"
	"time"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// A registration is signed over "<unix seconds>.<body>"; the headers go on
// POST /api/v1/bundles.
func ExampleHMACHeaders() {
	h := relaytest.HMACHeaders("Jefe", []byte(`{"version":"1.0.0"}`), time.Unix(1700000000, 0))
	fmt.Println(h["X-Ferry-Timestamp"])
	fmt.Println(h["X-Ferry-Signature-256"])
	// Output:
	// 1700000000
	// sha256=276e29f296e33f9d856e70d69e4ea4427ab69070ae76fba36d1033da30035a87
}

func ExampleCommit() {
	a, b := relaytest.Commit("1.0.0"), relaytest.Commit("1.0.0")
	fmt.Println(a == b, len(a))
	// Output: true 40
}
