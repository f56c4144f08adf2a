package control

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/channel"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{})
	api, err := New(t.Context(), Options{Config: cfg, Store: e.store, HMACSecret: hmacSecret, WebhookSecret: hookSecret, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	e.engine = newEngine(api)
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusOK)
	body := mustJSON(t, testBundle("1.0.1", commitB))
	e.do("POST", "/api/v1/bundles", body, hmacHeaders("wrong", time.Now(), body))
	e.deliver("push", "d1", tagCreated(t, "v1.0.0", commitA), http.StatusOK)
	e.deliver("ping", "d2", payload(t, "ping.json", nil), http.StatusOK)

	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"registrations created", testutil.ToFloat64(api.metrics.registrations.WithLabelValues("created")), 1},
		{"registrations existing", testutil.ToFloat64(api.metrics.registrations.WithLabelValues("existing")), 1},
		{"registrations bad_signature", testutil.ToFloat64(api.metrics.registrations.WithLabelValues("bad_signature")), 1},
		{"webhook push processed", testutil.ToFloat64(api.metrics.webhooks.WithLabelValues("push", "processed")), 1},
		{"webhook ping", testutil.ToFloat64(api.metrics.webhooks.WithLabelValues("ping", "pong")), 1},
		{"promotions by registration", testutil.ToFloat64(api.metrics.promotions.WithLabelValues("registration")), 1},
		{"promotions by webhook", testutil.ToFloat64(api.metrics.promotions.WithLabelValues("webhook")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "ferry_registrations_total", "ferry_webhook_deliveries_total", "ferry_promotions_total"); err != nil || n == 0 {
		t.Errorf("gathered %d series, %v", n, err)
	}
	// A second API on the same registry is a start-up error, not a panic.
	if _, err := New(t.Context(), Options{Config: cfg, Store: e.store, Registerer: reg}); err == nil {
		t.Error("New registered the same metrics twice")
	}
}
