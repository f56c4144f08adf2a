#!/usr/bin/env bash
# bench-relay.sh: update-check throughput and latency of the relay, with wrk.
#
# In one run, against the same machine and the same request mix
# (internal/relay/testdata/bench/updates.lua: 10,000 devices of one app, three channels, a
# 30 % rollout on production, 40 % of checks answered with an offer):
#   1. the relay on Redis (a private redis-server, no persistence),
#   2. the relay on its embedded bbolt store,
#   3. a minimal Go net/http handler returning a fixed JSON answer (the baseline).
# For each: a saturation run (req/s, p50, p99, the process's RSS), then for the relays a run
# at half of that rate (p99 at half saturation). Prints a Markdown table and the ratios.
#
# Usage: NICE=-10 scripts/bench-relay.sh   (FERRY_BENCH_DURATION=15s FERRY_BENCH_CONNECTIONS=64
#                                           FERRY_BENCH_THREADS=2 to change the run)
# Needs: go, wrk and redis-server (scripts/peers.sh installs them; .peers.env names them), curl, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
if [[ -f .peers.env ]]; then set -a; . ./.peers.env; set +a; fi

WRK=${FERRY_WRK:-wrk}
REDIS_SERVER=${FERRY_REDIS_SERVER:-redis-server}
DURATION=${FERRY_BENCH_DURATION:-15s}
CONNS=${FERRY_BENCH_CONNECTIONS:-64}
THREADS=${FERRY_BENCH_THREADS:-2}
# NICE=-10 runs every server and wrk at a raised priority (same for all), for shared machines.
NICE=${NICE:-0}
run() { nice -n "$NICE" "$@"; }
# start CMD… &: the background job becomes CMD itself, so $! is its PID (for RSS and kill).
start() { exec nice -n "$NICE" "$@"; }
APP=com.example.bench
LUA=internal/relay/testdata/bench/updates.lua
HMAC_SECRET=bench-hmac-secret
ADMIN_TOKEN=bench-admin-token

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 closed" >&2; return 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

echo "building relay and baseline..." >&2
CGO_ENABLED=0 go build -trimpath -o "$work/relay" ./cmd/relay
CGO_ENABLED=0 go build -trimpath -o "$work/minimal" ./internal/relay/testdata/bench/minimal.go

cat >"$work/bench.yaml" <<EOF
apps:
  - id: $APP
    repository: acme/bench-app
    default_channel: production
    channels:
      production: { public: true }
      beta: { allow_device_self_set: true }
      canary: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: refs/heads/canary, channel: canary }
      - { ref: "refs/tags/v*", channel: production }
EOF

# register VERSION REF: a bundle registration signed with the HMAC secret.
register() {
  local base=$1 version=$2 ref=$3 sum body ts sig
  sum=$(printf '%s' "$version" | sha256sum | cut -d' ' -f1)
  body=$(printf '{"app_id":"%s","version":"%s","url":"https://cdn.example.com/bench/%s.zip","checksum":"%s","sha256":"%s","size":123456,"commit":"%s","ref":"%s"}' \
    "$APP" "$version" "$version" "$sum" "$sum" "$(printf '%s' "$version" | sha1sum | cut -d' ' -f1)" "$ref")
  ts=$(date +%s)
  sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$HMAC_SECRET" -r | cut -d' ' -f1)
  curl -fsS -o /dev/null -X POST "$base/api/v1/bundles" -H 'Content-Type: application/json' \
    -H "X-Ferry-Timestamp: $ts" -H "X-Ferry-Signature-256: sha256=$sig" --data "$body"
}

seed() {
  local base=$1
  register "$base" 1.0.0 refs/tags/v1.0.0
  register "$base" 1.1.0 refs/tags/v1.1.0
  register "$base" 1.2.0 refs/heads/main
  register "$base" 1.3.0-rc.1 refs/heads/canary
  curl -fsS -o /dev/null -X PUT "$base/api/v1/apps/$APP/channels/production/rollout" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' --data '{"version":"1.2.0","percent":30}'
}

# wrk_run BASE CONNS DELAY_MS → the BENCH line of the Lua done() hook.
wrk_run() {
  BENCH_APP=$APP BENCH_DELAY_MS=$3 run "$WRK" -t "$THREADS" -c "$2" -d "$DURATION" --latency -s "$LUA" "$1/updates" | grep '^BENCH'
}
field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }

results=()
# measure NAME PID BASE HALF(yes|no)
measure() {
  local name=$1 pid=$2 base=$3 half=$4 sat rps line hc hd
  run "$WRK" -t "$THREADS" -c "$CONNS" -d 3s -s "$LUA" "$base/updates" >/dev/null # warm-up
  sat=$(wrk_run "$base" "$CONNS" 0)
  rps=$(field rps "$sat")
  line="$name|$rps|$(field p50_us "$sat")|$(field p99_us "$sat")|$(rss_kb "$pid")|$(hwm_kb "$pid")|$(field non2xx "$sat")"
  if [[ $half == yes ]]; then
    # Half of saturation: about rps/2 requests per second from connections that pause 10 ms
    # between requests.
    hc=$(awk -v r="$rps" 'BEGIN { c = int(r / 2 / 100 + 0.5); if (c < 1) c = 1; if (c > 2000) c = 2000; print c }')
    hd=$(wrk_run "$base" "$hc" 10)
    line="$line|$(field rps "$hd")|$(field p50_us "$hd")|$(field p99_us "$hd")"
  else
    line="$line|||"
  fi
  results+=("$line")
  echo "  $name: $sat" >&2
}

# 1. Relay on Redis.
rport=$(free_port)
start "$REDIS_SERVER" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port "$rport"
port=$(free_port)
FERRY_HMAC_SECRET=$HMAC_SECRET FERRY_ADMIN_TOKEN=$ADMIN_TOKEN start "$work/relay" --config "$work/bench.yaml" \
  --addr "127.0.0.1:$port" --redis-url "redis://127.0.0.1:$rport/0" --rate-limit 0 --log-level warn >"$work/relay-redis.log" 2>&1 &
rpid=$!; pids+=($rpid)
wait_http "http://127.0.0.1:$port/readyz"
seed "http://127.0.0.1:$port"
echo "relay on Redis..." >&2
measure "relay, Redis" "$rpid" "http://127.0.0.1:$port" yes
kill "$rpid"; wait "$rpid" 2>/dev/null || true

# 2. Relay on the embedded store.
port=$(free_port)
FERRY_HMAC_SECRET=$HMAC_SECRET FERRY_ADMIN_TOKEN=$ADMIN_TOKEN start "$work/relay" --config "$work/bench.yaml" \
  --addr "127.0.0.1:$port" --data-dir "$work/data" --rate-limit 0 --log-level warn >"$work/relay-bolt.log" 2>&1 &
bpid=$!; pids+=($bpid)
wait_http "http://127.0.0.1:$port/readyz"
seed "http://127.0.0.1:$port"
echo "relay on bbolt..." >&2
measure "relay, embedded bbolt" "$bpid" "http://127.0.0.1:$port" yes
kill "$bpid"; wait "$bpid" 2>/dev/null || true

# 3. Baseline.
port=$(free_port)
start "$work/minimal" -addr "127.0.0.1:$port" >"$work/minimal.log" 2>&1 &
mpid=$!; pids+=($mpid)
wait_port "$port"
echo "minimal net/http handler..." >&2
measure "minimal net/http handler" "$mpid" "http://127.0.0.1:$port" no

base_rps=$(cut -d'|' -f2 <<<"${results[2]}")
echo
echo "wrk $("$WRK" --version 2>&1 | head -1 | awk '{print $2}'), -t $THREADS -c $CONNS -d $DURATION; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); nice $NICE; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(go version | awk '{print $3}')"
echo
echo "| Server | req/s | p50 | p99 | RSS (peak) | ratio to baseline | half-saturation req/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do
  IFS='|' read -r name rps p50 p99 rss hwm non2xx hrps hp50 hp99 <<<"$r"
  ratio=$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
  ms() { [[ -z $1 ]] && { echo "–"; return; }; awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
  printf '| %s | %.0f | %s | %s | %d MB (%d MB) | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$(ms "$p50")" "$(ms "$p99")" \
    $((rss / 1024)) $((hwm / 1024)) "$ratio" "${hrps:-–}" "$(ms "$hp50")" "$(ms "$hp99")" "$non2xx"
done
