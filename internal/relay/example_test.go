package relay_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/store"
)

// A relay on the embedded store, answering one update check.
func ExampleNew() {
	cfg, err := channel.ParseConfig([]byte(`
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels: { production: {} }
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "relay-example")
	defer os.RemoveAll(dir)
	st, err := store.OpenBolt(filepath.Join(dir, "ferry.db"), store.BoltOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	srv, err := relay.New(relay.Options{Config: cfg, Store: st})
	if err != nil {
		fmt.Println(err)
		return
	}
	// srv.ListenAndServe(ctx, ":8080") serves until ctx ends; here, one request.
	body := `{"platform":"ios","device_id":"7239a82f-4ea8-4e33-9085-f4ad974d3fc4","app_id":"com.example.app",` +
		`"version_build":"1.0.0","version_name":"builtin","plugin_version":"8.51.23"}`
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(body)))
	out, _ := io.ReadAll(w.Body)
	fmt.Println(w.Code, string(out))
	// Output:
	// 200 {"error":"no_new_version_available","message":"No new version available: the channel has no version yet","kind":"up_to_date"}
}
