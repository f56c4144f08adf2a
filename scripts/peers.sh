#!/usr/bin/env bash
# peers.sh installs or builds the real programs Ferry's tests talk to, once, into a cache
# directory, and writes scripts/../.peers.env with one FERRY_* variable per peer.
#
#   redis-server   Debian package (apt) when missing
#   versitygw      v1.8.0, S3 server            (go install)
#   cosign         v3.1.3, signature verifier   (go install)
#   gh             v2.90.0, attestation verifier (wrapper module; the proxy hides gh's version list)
#   actionlint     v1.7.7, workflow linter       (go install)
#   golangci-lint  v2.15.0, Go linters for `make lint` (go install; .golangci.yml)
#   capgo          @capgo/cli@8.68.1 with @capgo/capacitor-updater@8.51.23 (npm, scratch project)
#   java, javac    JDK 17 (present on the machine; apt when missing)
#   wrk            HTTP load generator for benchmarks (apt)
#   chromium       Debian's headless Chromium, driven by chromedp in browser tests (apt)
#   axe-core       axe-core@4.14.1's axe.min.js, accessibility rules run in that browser (npm)
#   ferry-test-op  zitadel/oidc v3.52.0's example OpenID Provider, for single sign-on tests
#                  (go install outside Ferry's module; renamed from "server")
#
# Re-running is cheap: every step checks its cache first. FERRY_PEERS_DIR overrides the cache
# directory (default: $(go env GOPATH)/ferry-peers).
set -euo pipefail
export GOTOOLCHAIN=local
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${FERRY_PEERS_DIR:-$(go env GOPATH)/ferry-peers}
bin=$dir/bin
mkdir -p "$bin"
log() { printf 'peers: %s\n' "$*" >&2; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v redis-server >/dev/null || apt_install redis-server
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl   # the README's admin recipes (e2e/readme_test.go)
{ command -v java >/dev/null && command -v javac >/dev/null; } || apt_install openjdk-17-jdk-headless
command -v chromium >/dev/null || apt_install chromium

go_peer() { # name version module-path
  local name=$1 version=$2 pkg=$3
  if [ -x "$bin/$name-$version" ]; then return; fi
  log "building $name $version (one time, several minutes)"
  local tmp; tmp=$(mktemp -d)
  GOBIN=$tmp go install "$pkg@$version"
  mv "$tmp/$name" "$bin/$name-$version"
  rm -rf "$tmp"
}
go_peer versitygw v1.8.0 github.com/versity/versitygw/cmd/versitygw
go_peer actionlint v1.7.7 github.com/rhysd/actionlint/cmd/actionlint
go_peer cosign v3.1.3 github.com/sigstore/cosign/v3/cmd/cosign
go_peer golangci-lint v2.15.0 github.com/golangci/golangci-lint/v2/cmd/golangci-lint

if [ ! -x "$bin/ferry-test-op-v3.52.0" ]; then
  log "building ferry-test-op (zitadel/oidc v3.52.0 example server)"
  tmp=$(mktemp -d)
  GOBIN=$tmp go install github.com/zitadel/oidc/v3/example/server@v3.52.0
  mv "$tmp/server" "$bin/ferry-test-op-v3.52.0"
  rm -rf "$tmp"
fi

if [ ! -x "$bin/gh-v2.90.0" ]; then
  log "building gh v2.90.0 (one time, several minutes)"
  w=$(mktemp -d)
  printf 'module example.com/ghwrap\n\ngo 1.26.1\n' > "$w/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/cli/cli/v2/cmd/gh"\n' > "$w/tools.go"
  # `go get` of the package (not just the module) records the sums of everything gh imports.
  (cd "$w" && go get github.com/cli/cli/v2/cmd/gh@v2.90.0 && go build -trimpath -o "$bin/gh-v2.90.0.tmp" github.com/cli/cli/v2/cmd/gh)
  mv "$bin/gh-v2.90.0.tmp" "$bin/gh-v2.90.0"
  rm -rf "$w"
fi

capgo=$dir/capgo-8.68.1
if [ ! -x "$capgo/node_modules/.bin/capgo" ]; then
  log "installing @capgo/cli@8.68.1 and @capgo/capacitor-updater@8.51.23 (npm)"
  mkdir -p "$capgo"
  (cd "$capgo" && printf '{"name":"ferry-capgo-peer","private":true}\n' > package.json &&
    npm install --no-audit --no-fund --loglevel=error @capgo/cli@8.68.1 @capgo/capacitor-updater@8.51.23 >/dev/null)
fi

axe=$dir/axe-core-4.14.1
if [ ! -f "$axe/node_modules/axe-core/axe.min.js" ]; then
  log "installing axe-core@4.14.1 (npm)"
  mkdir -p "$axe"
  (cd "$axe" && printf '{"name":"ferry-axe-peer","private":true}\n' > package.json &&
    npm install --no-audit --no-fund --loglevel=error axe-core@4.14.1 >/dev/null)
fi

cat > "$here/.peers.env" <<ENV
FERRY_REDIS_SERVER=$(command -v redis-server)
FERRY_VERSITYGW=$bin/versitygw-v1.8.0
FERRY_COSIGN=$bin/cosign-v3.1.3
FERRY_GH=$bin/gh-v2.90.0
FERRY_ACTIONLINT=$bin/actionlint-v1.7.7
FERRY_GOLANGCI_LINT=$bin/golangci-lint-v2.15.0
FERRY_CAPGO_DIR=$capgo
FERRY_JAVA=$(command -v java)
FERRY_JAVAC=$(command -v javac)
FERRY_WRK=$(command -v wrk)
FERRY_TEST_OP=$bin/ferry-test-op-v3.52.0
FERRY_CHROMIUM=$(command -v chromium)
FERRY_AXE_JS=$axe/node_modules/axe-core/axe.min.js
ENV
log "ready: $(tr '\n' ' ' < "$here/.peers.env")"
