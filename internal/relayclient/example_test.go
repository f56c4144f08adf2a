package relayclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// ExampleClient registers a bundle (signed with the relay's HMAC secret) and then reads
// the channel it moved with the admin token; a second registration of the same version with
// another checksum is refused. A stand-in plays the relay.
func ExampleClient() {
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == relayclient.BundlesPath {
			body, _ := io.ReadAll(r.Body)
			var b channel.Bundle
			_ = json.Unmarshal(body, &b)
			if b.Checksum != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" {
				w.WriteHeader(http.StatusConflict)
				_ = json.NewEncoder(w).Encode(relayclient.ErrorBody{Code: "version_conflict", Message: "version 1.4.0 is registered with another checksum"})
				return
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(relayclient.Registration{Bundle: &b, Created: true, Channel: "beta", Promoted: true})
			return
		}
		_ = json.NewEncoder(w).Encode(relayclient.ChannelView{Name: "beta", State: &channel.State{Channel: "beta", Version: "1.4.0"}})
	}))
	defer relay.Close()

	ctx := context.Background()
	c, err := relayclient.New(relay.URL, relayclient.Options{HMACSecret: []byte("ci-secret"), AdminToken: "admin-token"})
	if err != nil {
		log.Fatal(err)
	}
	sum := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	b := &channel.Bundle{
		AppID: "com.example.app", Version: "1.4.0", URL: "https://cdn.example.com/1.4.0.zip",
		Checksum: sum, SHA256: sum, Size: 1024,
		Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Ref: "refs/heads/main",
	}
	reg, err := c.RegisterBundle(ctx, b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reg.Created, reg.Channel, reg.Promoted)

	ch, err := c.GetChannel(ctx, "com.example.app", "beta")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.Name, ch.State.Version)

	b.Checksum = "0000000000000000000000000000000000000000000000000000000000000000"
	_, err = c.RegisterBundle(ctx, b)
	var re *relayclient.Error
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, re.Code, errors.Is(err, &relayclient.Error{Code: "version_conflict"}))
	}
	// Output:
	// true beta true
	// beta 1.4.0
	// 409 version_conflict true
}
