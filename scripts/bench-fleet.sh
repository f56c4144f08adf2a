#!/usr/bin/env bash
# bench-fleet.sh: the relay's memory under a large fleet. Starts the relay binary on its
# embedded bbolt store with its default limits except the per-IP one (wrk sends everything
# from one address), so the per-device limiter is on, registers the same state as
# bench-relay.sh, then has wrk send update checks from FLEET_DEVICES distinct device ids
# (internal/relay/testdata/bench/fleet.lua; each id once before any repeats) for
# FERRY_FLEET_DURATION. Prints the requests answered, the distinct devices seen, the relay's
# RSS from /proc at the end and at its peak, and bytes per device over the RSS right after
# seeding.
#
# Usage: FERRY_FLEET_DEVICES=1000000 scripts/bench-fleet.sh
# Env:   FERRY_FLEET_DEVICES=1000000 FERRY_FLEET_DURATION=120s FERRY_BENCH_CONNECTIONS=64
#        FERRY_BENCH_THREADS=2 NICE=0   GODEBUG=gctrace=1 (prints the relay's last GC line)
# A million devices need about 50 000 checks per second for 20 s, or one run of a few
# minutes on a shared 2-CPU machine: raise FERRY_FLEET_DURATION until "devices" reaches
# FERRY_FLEET_DEVICES. Needs: go, wrk (scripts/peers.sh), curl, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
if [[ -f .peers.env ]]; then set -a; . ./.peers.env; set +a; fi

WRK=${FERRY_WRK:-wrk}
DEVICES=${FERRY_FLEET_DEVICES:-1000000}
DURATION=${FERRY_FLEET_DURATION:-120s}
CONNS=${FERRY_BENCH_CONNECTIONS:-64}
THREADS=${FERRY_BENCH_THREADS:-2}
NICE=${NICE:-0}
APP=com.example.bench
HMAC_SECRET=bench-hmac-secret
ADMIN_TOKEN=bench-admin-token

work=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. scripts/bench-lib.sh
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

echo "building relay..." >&2
CGO_ENABLED=0 go build -trimpath -o "$work/relay" ./cmd/relay
write_bench_config "$work/bench.yaml"


port=$(free_port)
base="http://127.0.0.1:$port"
FERRY_HMAC_SECRET=$HMAC_SECRET FERRY_ADMIN_TOKEN=$ADMIN_TOKEN nice -n "$NICE" "$work/relay" --config "$work/bench.yaml" \
  --addr "127.0.0.1:$port" --data-dir "$work/data" --rate-limit 0 --log-level warn >"$work/relay.log" 2>&1 &
pid=$!
wait_http "$base/readyz"
register "$base" 1.0.0 refs/tags/v1.0.0
register "$base" 1.1.0 refs/tags/v1.1.0
register "$base" 1.2.0 refs/heads/main
register "$base" 1.3.0-rc.1 refs/heads/canary
curl -fsS -o /dev/null -X PUT "$base/api/v1/apps/$APP/channels/production/rollout" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' --data '{"version":"1.2.0","percent":30}'
rss0=$(rss_kb "$pid")

line=$(BENCH_APP=$APP FLEET_DEVICES=$DEVICES FLEET_THREADS=$THREADS nice -n "$NICE" "$WRK" -t "$THREADS" -c "$CONNS" -d "$DURATION" \
  -s internal/relay/testdata/bench/fleet.lua "$base/updates" | grep '^BENCH')
field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }
reqs=$(field requests "$line")
seen=$((reqs < DEVICES ? reqs : DEVICES))
rss=$(rss_kb "$pid") hwm=$(hwm_kb "$pid")
echo "$line"
# With GODEBUG=gctrace=1 in the environment: the collector's last line (live heap after "->").
grep '^gc ' "$work/relay.log" | tail -1 || true
echo "devices=$seen of $DEVICES requests=$reqs rss_start_kb=$rss0 rss_end_kb=$rss rss_peak_kb=$hwm" \
  "bytes_per_device=$(awk -v a="$hwm" -v b="$rss0" -v n="$seen" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }') (peak RSS over the RSS after seeding)" \
  "gogc=${GOGC:-relay default} gomemlimit=${GOMEMLIMIT:-unset}; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
