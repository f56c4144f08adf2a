package relayclient_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestSignKnownVector pins the signature recipe to a value computed independently (the
// relay's test kit and the documented shell recipe give the same).
func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	const want = "sha256=276e29f296e33f9d856e70d69e4ea4427ab69070ae76fba36d1033da30035a87"
	body := []byte(`{"version":"1.0.0"}`)
	at := time.Unix(1700000000, 0)
	if got := relayclient.Sign([]byte("Jefe"), at, body); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
	h := http.Header{}
	relayclient.SetSignature(h, []byte("Jefe"), at, body)
	if h.Get(relayclient.HeaderTimestamp) != "1700000000" || h.Get(relayclient.HeaderSignature) != want {
		t.Errorf("SetSignature set %v", h)
	}
}
