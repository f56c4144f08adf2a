# Ferry's two commands: `make demo` runs the main job locally, `make test` runs the whole suite.
SHELL := /usr/bin/env bash
export GOTOOLCHAIN := local
GO ?= go
PKGS := ./...
# disable_grpc_modules leaves out cloud.google.com/go/storage's gRPC DirectPath and RLS
# packages (grpc xds, the envoy protos): their package init is about a fifth of every ferry
# process's start (docs/benchmarks.md). gs:// over the JSON API, the default, is unchanged;
# ?grpc=true still works, without DirectPath.
BUILD_TAGS ?= -tags disable_grpc_modules
# `make fuzz FUZZTIME=5m` for a long run; `make test` ends with a short pass of TEST_FUZZTIME
# per target.
FUZZTIME ?= 10s
TEST_FUZZTIME ?= 5s

.PHONY: test peers vet lint fmt-check build demo fuzz bench clean

## test: install/build the test peers (cached), vet, lint, run every test with the race
## detector against the real peers, the allocation guards without it (the race detector
## changes allocation counts, so they skip under it), then a short pass of every fuzz target.
test: peers fmt-check vet lint
	set -a; . ./.peers.env; set +a; FERRY_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 60m $(PKGS)
	$(GO) test -count=1 -run 'Allocations$$' ./internal/channel ./internal/relay
	FUZZTIME=$(TEST_FUZZTIME) bash scripts/fuzz.sh

## peers: install or build redis-server, versitygw, cosign, gh, actionlint, golangci-lint,
## @capgo/cli, java, wrk, chromium and axe-core.
peers:
	bash scripts/peers.sh

vet:
	$(GO) vet $(PKGS)

## lint: golangci-lint (the version scripts/peers.sh pins) with the linters .golangci.yml chooses.
lint: peers
	set -a; . ./.peers.env; set +a; "$$FERRY_GOLANGCI_LINT" run $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

## build: the binaries into ./bin: relay, ferry and ferry-action (the GitHub Action's binary).
build:
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath $(BUILD_TAGS) -o bin/ ./cmd/relay ./cmd/ferry
	CGO_ENABLED=0 $(GO) build -trimpath $(BUILD_TAGS) -o bin/ferry-action ./cmd/action

## demo: the main job, locally: relay, keys, the action packages examples/web into a local bucket, a device updates.
demo:
	bash scripts/demo.sh

## fuzz: run every fuzz target for FUZZTIME each and print executions.
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

clean:
	rm -rf bin .demo
