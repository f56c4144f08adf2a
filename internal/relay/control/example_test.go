package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
)

// ExampleAPI_Mount registers a bundle built from main with an HMAC signature; the ref rules
// move the beta channel to it, which the admin API then shows.
func ExampleAPI_Mount() {
	ctx := context.Background()
	cfg, err := channel.ParseConfig([]byte(`
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels: {production: {}, beta: {}}
    rules:
      - {ref: refs/heads/main, channel: beta}
      - {ref: "refs/tags/v*", channel: production}
`))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ferry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.OpenBolt(filepath.Join(dir, "ferry.db"), store.BoltOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	api, err := control.New(ctx, control.Options{Config: cfg, Store: st, HMACSecret: "ci-secret", AdminToken: "admin-token"})
	if err != nil {
		log.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	api.Mount(engine)

	sum := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	body, _ := json.Marshal(channel.Bundle{
		AppID: "com.example.app", Version: "1.4.0", URL: "https://cdn.example.com/1.4.0.zip",
		Checksum: sum, SHA256: sum, Size: 1024,
		Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Ref: "refs/heads/main",
	})
	req := httptest.NewRequest("POST", "/api/v1/bundles", bytes.NewReader(body))
	req.Header.Set("X-Ferry-Timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("X-Ferry-Signature-256", relayclient.Sign([]byte("ci-secret"), time.Now(), body))
	w := httptest.NewRecorder()
	engine.ServeHTTP(w, req)
	var reg struct {
		Channel  string `json:"channel"`
		Promoted bool   `json:"promoted"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &reg); err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.Code, reg.Channel, reg.Promoted)

	req = httptest.NewRequest("GET", "/api/v1/apps/com.example.app/channels/beta", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	w = httptest.NewRecorder()
	engine.ServeHTTP(w, req)
	var ch struct {
		State channel.State `json:"state"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &ch); err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.Code, ch.State.Version)

	req = httptest.NewRequest("GET", "/api/v1/apps/com.example.app/channels/beta", nil)
	w = httptest.NewRecorder()
	engine.ServeHTTP(w, req)
	fmt.Println(w.Code, http.StatusText(w.Code))
	// Output:
	// 201 beta true
	// 200 1.4.0
	// 401 Unauthorized
}
