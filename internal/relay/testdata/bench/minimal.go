//go:build ignore

// Command minimal is the baseline of scripts/bench-relay.sh: the least a Go net/http server
// can do for an update check. It reads the request body and answers a fixed "no new version"
// JSON object, with no routing library, decoding, state or logging.
//
//	go run ./internal/relay/testdata/bench/minimal.go -addr 127.0.0.1:18090
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
)

var answer = []byte(`{"error":"no_new_version_available","message":"No new version available","kind":"up_to_date"}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	flag.Parse()
	http.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(answer)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
