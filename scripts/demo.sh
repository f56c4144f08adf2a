#!/usr/bin/env bash
# make demo: Ferry's main job on this machine, end to end, with no accounts and no network.
#
#   1. build the binaries (relay, action, ferry) into bin/
#   2. start the relay on its embedded store, configured by examples/ferry.yaml
#   3. create the app's encryption keys
#   4. start a local "bucket" (a directory that `ferry serve-dir` serves over HTTP, standing in
#      for S3 + CDN)
#   5. run the GitHub Action binary as CI would on a tag push: zip examples/web, encrypt,
#      upload to the bucket, register the bundle with the relay
#   6. ask the relay as a phone would, then download, decrypt, verify and unpack the update
#   7. a second build from main lands on beta; a tag push (GitHub's webhook, played by
#      scripts/demo/pushtag) promotes that same bundle to production without rebuilding
#   8. the web console: its URL and the demo's bootstrap token to sign in with; run in a
#      terminal, the demo keeps the relay up for it until Enter (FERRY_DEMO_WAIT=0 or 1
#      decides instead)
#
# Everything lives under .demo/ and is stopped on exit. Needs only Go.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

# FERRY_DEMO_DIR and FERRY_DEMO_BIN move the work directory and the binaries (the e2e test
# of this script uses them); the defaults are .demo and bin.
DEMO=${FERRY_DEMO_DIR:-.demo}
BIN=${FERRY_DEMO_BIN:-bin}
APP=com.example.ferrydemo
REPO=acme/ferry-demo
PIDS=()

if [ -t 1 ]; then B=$'\033[1m'; D=$'\033[2m'; G=$'\033[32m'; R=$'\033[31m'; N=$'\033[0m'; else B= D= G= R= N=; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
run() { printf '   %s$ %s%s\n' "$D" "$*" "$N"; "$@"; }
indent() { sed 's/^/   | /'; }
show() { printf '   %s$ %s%s\n' "$D" "$*" "$N"; }
# actionlog makes the action's GitHub workflow commands readable in a terminal: the runner
# would hide ::add-mask:: lines (they register secrets to redact) and fold ::group:: sections.
actionlog() {
  sed -e '/^::add-mask::/d' -e '/^::endgroup::/d' -e 's/^::group::\(.*\)/[\1]/' \
    -e 's/^::warning::/warning: /' -e 's/^::notice::/notice: /' -e 's/^time=[^ ]* level=[A-Z]* //' | indent
}
die() { printf '\n%sdemo failed: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for_file FILE PROCESS-LOG: wait until a background process wrote FILE (its address).
wait_for() {
  local what=$1 test=$2 log=$3 i
  for i in $(seq 1 200); do
    if eval "$test"; then return 0; fi
    sleep 0.05
  done
  cat "$log" >&2 || true
  die "$what did not start"
}

rand_hex() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

rm -rf "$DEMO"
mkdir -p "$DEMO"/{keys,bucket,data,ci,device}
DEMO_ABS=$(cd "$DEMO" && pwd)

step "1. Build Ferry"
say "The relay (update server), the GitHub Action (packager) and the ferry CLI, into bin/."
run go build -trimpath -tags disable_grpc_modules -o "$BIN/" ./cmd/relay ./cmd/ferry
run go build -trimpath -tags disable_grpc_modules -o "$BIN/ferry-action" ./cmd/action
run go build -o "$DEMO/" ./scripts/demo/pushtag ./scripts/demo/signkey

step "2. Start the relay"
say "It reads the app's channels and rules from examples/ferry.yaml:"
grep -v '^#' examples/ferry.yaml | indent
HMAC_SECRET=$(rand_hex)
WEBHOOK_SECRET=$(rand_hex)
# The bootstrap admin token, for this demo only: it signs you in to the console (step 8).
ADMIN_TOKEN=demo-$(rand_hex)
say "No Redis given, so it keeps its state in an embedded file ($DEMO/data/ferry.db)."
say "FERRY_HMAC_SECRET lets CI without OIDC register bundles; FERRY_WEBHOOK_SECRET checks GitHub's webhooks;"
say "FERRY_ADMIN_TOKEN is the bootstrap admin token (the console and the admin API)."
FERRY_ADMIN_TOKEN=$ADMIN_TOKEN FERRY_HMAC_SECRET=$HMAC_SECRET FERRY_WEBHOOK_SECRET=$WEBHOOK_SECRET LOG_FORMAT=text \
  "$BIN"/relay --config examples/ferry.yaml --addr 127.0.0.1:0 --data-dir "$DEMO/data" >"$DEMO/relay.log" 2>&1 &
PIDS+=($!)
wait_for "the relay" "grep -q 'relay listening' '$DEMO/relay.log'" "$DEMO/relay.log"
RELAY="http://$(grep -o 'addr=[0-9.:]*' "$DEMO/relay.log" | head -1 | cut -d= -f2)"
say "${G}relay listening on $RELAY${N} (log: $DEMO/relay.log)"

step "3. Create the app's keys"
say "The encryption key pair: the private key stays with CI (a repository secret), the public key"
say "ships inside the app, which then accepts only bundles encrypted for it."
show "$BIN"/ferry keys --dir "$DEMO/keys" --relay "$RELAY"
"$BIN"/ferry keys --dir "$DEMO/keys" --relay "$RELAY" | indent
say "A signing key, so anyone can check who published a bundle. (In GitHub Actions Ferry signs"
say "keylessly with the workflow's identity instead; no key to keep.)"
show "$DEMO/signkey" --dir "$DEMO/keys"
"$DEMO/signkey" --dir "$DEMO/keys"
say "wrote $DEMO/keys/signing.key (private) and $DEMO/keys/signing.pub"

step "4. Start a local bucket"
say "The action uploads bundles to a bucket (S3, GCS, Azure, or a directory); devices download"
say "them from its public URL. Here the bucket is $DEMO/bucket, served over HTTP on loopback."
show "$BIN"/ferry serve-dir "$DEMO/bucket" --addr 127.0.0.1:0
"$BIN"/ferry serve-dir "$DEMO/bucket" --addr 127.0.0.1:0 >"$DEMO/bucket.log" 2>&1 &
PIDS+=($!)
wait_for "the bucket server" "grep -q '^Serving ' '$DEMO/bucket.log'" "$DEMO/bucket.log"
BUCKET_URL=$(grep -o 'at http://[0-9.:]*' "$DEMO/bucket.log" | head -1 | cut -d' ' -f2)
say "${G}bucket served at $BUCKET_URL${N}"

# ci VERSION REF SHA: run the action binary exactly as the GitHub runner runs the container:
# inputs as INPUT_<NAME> variables (dashes kept, so `env` sets them) and the GITHUB_* context.
ci() {
  local version=$1 ref=$2 sha=$3 build=$4 work="$DEMO/ci/$1"
  mkdir -p "$work"
  : >"$work/output"; : >"$work/summary"
  printf '{"ref":"%s","after":"%s","repository":{"full_name":"%s","name":"ferry-demo","owner":{"login":"acme"},"visibility":"public"}}\n' \
    "$ref" "$sha" "$REPO" >"$work/event.json"
  env \
    "INPUT_APP-ID=$APP" \
    "INPUT_BUILD-DIR=$build" \
    "INPUT_VERSION=$version" \
    "INPUT_ENCRYPTION-KEY=$(cat "$DEMO/keys/.capgo_key_v2")" \
    "INPUT_DESTINATION=file://$DEMO_ABS/bucket" \
    "INPUT_PUBLIC-BASE-URL=$BUCKET_URL" \
    "INPUT_RELAY-URL=$RELAY" \
    "INPUT_RELAY-SECRET=$HMAC_SECRET" \
    "INPUT_SIGNING=key" \
    "INPUT_SIGNING-KEY=$(cat "$DEMO/keys/signing.key")" \
    GITHUB_ACTIONS=true CI=true \
    GITHUB_REPOSITORY=$REPO GITHUB_REPOSITORY_OWNER=acme \
    GITHUB_REF="$ref" GITHUB_REF_NAME="${ref##*/}" GITHUB_REF_TYPE="$( [[ $ref == refs/tags/* ]] && echo tag || echo branch )" \
    GITHUB_SHA="$sha" GITHUB_RUN_ID=1 GITHUB_RUN_ATTEMPT=1 GITHUB_EVENT_NAME=push \
    GITHUB_EVENT_PATH="$work/event.json" GITHUB_WORKSPACE="$PWD" RUNNER_TEMP="$work" \
    GITHUB_OUTPUT="$work/output" GITHUB_STEP_SUMMARY="$work/summary" \
    GITHUB_SERVER_URL=http://127.0.0.1:9 GITHUB_API_URL=http://127.0.0.1:9 \
    "$BIN"/ferry-action 2>&1 | actionlog
}

step "5. CI: a tag push (v1.0.0) runs the Ferry Action"
say "It zips examples/web deterministically, encrypts it with the private key (Capgo's scheme),"
say "signs the encrypted file (a Sigstore bundle, checked before upload), uploads both to the"
say "bucket and registers the bundle with the relay (an HMAC-signed request)."
say "The relay's rule refs/tags/v* puts it on the production channel."
SHA1=3f786850e387550fdab836ed7e6dc881de23001b
SHA2=89e6c98d92887913cadf06b2adb97f26cde4849b
ci 1.0.0 refs/tags/v1.0.0 "$SHA1" examples/web
say "The bucket now holds:"
(cd "$DEMO/bucket" && find . -type f ! -name '*.attrs' | sort | sed 's|^\./||') | indent
ZIP="$DEMO/bucket/$APP/1.0.0/$APP-1.0.0.zip"
say "Anyone can check who published it, with Ferry or with plain cosign:"
VERIFY=("$BIN"/ferry verify --artifact "$ZIP" --key "$DEMO/keys/signing.pub")
if [ -f "$ZIP.provenance.sigstore.json" ]; then VERIFY+=(--provenance "$ZIP.provenance.sigstore.json"); fi
show "${VERIFY[@]}"
"${VERIFY[@]}" | indent
say "Same check with cosign (offline, and this key signature was deliberately not logged in Rekor):"
say "  cosign verify-blob $ZIP --bundle $ZIP.sigstore.json \\"
say "    --key $DEMO/keys/signing.pub --insecure-ignore-tlog=true"

step "6. A phone asks for an update"
say "This is what @capgo/capacitor-updater sends and does, played by Ferry's reference device:"
show "$BIN"/ferry probe --relay "$RELAY" --app "$APP" --public-key "$DEMO/keys/.capgo_key_v2.pub" \
  --device-id 7239a82f-4ea8-4e33-9085-f4ad974d3fc4 --download --dir "$DEMO/device"
"$BIN"/ferry probe --relay "$RELAY" --app "$APP" --public-key "$DEMO/keys/.capgo_key_v2.pub" \
  --device-id 7239a82f-4ea8-4e33-9085-f4ad974d3fc4 --download --dir "$DEMO/device" | indent

step "7. A push to main lands on beta; a tag promotes it to production, no rebuild"
say "A developer changes the page's heading and pushes to main; CI builds version 1.1.0 and the"
say "rule refs/heads/main puts it on beta."
cp -R examples/web "$DEMO/web-1.1.0"
sed 's/Hello from a live update/Hello again: this is version 1.1.0/' examples/web/index.html >"$DEMO/web-1.1.0/index.html"
ci 1.1.0 refs/heads/main "$SHA2" "$DEMO/web-1.1.0"
say "A tester on beta is offered it; production devices (running 1.0.0) are not:"
for ch in beta production; do
  show "$BIN"/ferry probe --relay "$RELAY" --app "$APP" --channel $ch --running 1.0.0 --public-key "$DEMO/keys/.capgo_key_v2.pub"
  "$BIN"/ferry probe --relay "$RELAY" --app "$APP" --channel $ch --running 1.0.0 \
    --public-key "$DEMO/keys/.capgo_key_v2.pub" | grep 'Decision' | indent
done
say "A maintainer tags that commit: git tag v1.1.0 ${SHA2:0:7} && git push origin v1.1.0."
say "GitHub sends the relay a signed push webhook; we play GitHub here:"
show "$DEMO/pushtag" --relay "$RELAY" --repo "$REPO" --tag v1.1.0 --commit "$SHA2"
FERRY_WEBHOOK_SECRET=$WEBHOOK_SECRET "$DEMO/pushtag" --relay "$RELAY" --repo "$REPO" --tag v1.1.0 --commit "$SHA2" | indent
say "The relay promoted the bundle built from that commit. The production phone updates:"
show "$BIN"/ferry probe --relay "$RELAY" --app "$APP" --running 1.0.0 --public-key "$DEMO/keys/.capgo_key_v2.pub" \
  --device-id 7239a82f-4ea8-4e33-9085-f4ad974d3fc4 --download --dir "$DEMO/device"
"$BIN"/ferry probe --relay "$RELAY" --app "$APP" --running 1.0.0 --public-key "$DEMO/keys/.capgo_key_v2.pub" \
  --device-id 7239a82f-4ea8-4e33-9085-f4ad974d3fc4 --download --dir "$DEMO/device" | indent
grep -o 'Hello again[^<]*' "$DEMO/device/bundles/1.1.0/index.html" | sed 's/^/   The new index.html says: /' 
say "Rolling back is moving the tag back (or the admin API's rollback)."

step "8. The web console"
say "The relay serves a console for maintainers: apps, channels, promote and roll back, rollouts,"
say "bundles with their signatures, the audit log, devices and stats (docs/console.md)."
say "${G}Console: $RELAY/console/${N}"
say "Sign in with the demo's bootstrap token (demo only; a real relay uses single sign-on or"
say "tokens from \`ferry admin tokens create\`):"
say "  ${B}$ADMIN_TOKEN${N}"
say "then open $RELAY/console/apps/$APP/channels/production for what the tag push just did."

step "Done"
say "${G}CI packaged, encrypted and published the app; the relay served it; the phone verified it.${N}"
say "Next: README.md (quickstart for your own app), docs/devices.md (the plugin side)."
WAIT=${FERRY_DEMO_WAIT:-}
if [ -z "$WAIT" ]; then if [ -t 0 ] && [ -t 1 ]; then WAIT=1; else WAIT=0; fi; fi
if [ "$WAIT" = 1 ]; then
  printf '\n   %sThe relay keeps running for the console at %s/console/ — press Enter to stop it.%s\n' "$B" "$RELAY" "$N"
  read -r _ || true
fi
