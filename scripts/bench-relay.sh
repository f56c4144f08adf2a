#!/usr/bin/env bash
# bench-relay.sh: update-check throughput and latency of the relay, with wrk.
#
# In one run, against the same machine and the same request mix
# (internal/relay/testdata/bench/updates.lua: 10,000 devices of one app, three channels, a
# 30 % rollout on production, 40 % of checks answered with an offer):
#   1. the relay on Redis (a private redis-server, no persistence),
#   2. the relay on its embedded bbolt store,
#   3. a minimal Go net/http handler returning a fixed JSON answer (the baseline).
# Saturation runs in interleaved rounds (req/s, p50, p99, each process's RSS), then, in
# interleaved rounds too, each relay at half of its median rate (p99 at half saturation) and
# the baseline at each of those rates; the median round by p99 is reported, and each relay's
# p99 divided by the baseline's at the same rate. Below saturation, connections pause a
# random time (exponential, 10 ms on average) between requests, so they act as independent devices rather than
# arriving in lock-step bursts. Prints a Markdown table.
#
# All of that under each wrk load shape in FERRY_BENCH_SHAPES (threads x connections):
# "2x64" (wrk's two threads against the server's, the shape the earlier figures used) and
# "1x32" (wrk and the server one core each, which leaves the server less room and shows a
# lower ratio). A ratio that holds under one shape only is not the figure.
# With FERRY_BENCH_PROFILE=1, each shape ends with a differential CPU profile: every server
# under that shape's saturating load while `perf record` samples it, and a table of where
# the CPU time per request goes (net/http, the handler and its parts, system calls, the
# garbage collector), side by side (needs perf: Debian's linux-perf, and permission to
# sample another process, e.g. root or kernel.perf_event_paranoid <= 1).
# Then, unless FERRY_BENCH_FLEET=0, scripts/bench-fleet.sh: the relay's memory under a
# fleet of FERRY_FLEET_DEVICES distinct devices.
#
# Usage: NICE=-10 scripts/bench-relay.sh   (FERRY_BENCH_DURATION=15s FERRY_BENCH_SHAPES="2x64 1x32"
#                                           FERRY_BENCH_ROUNDS=5 FERRY_BENCH_PAUSES=random|fixed
#                                           FERRY_BENCH_FLEET=1 FERRY_FLEET_DEVICES=1000000
#                                           FERRY_BENCH_PROFILE=0 FERRY_PROFILE_SECONDS=10 FERRY_PROFILE_DIR=)
# Both rate limits are off: wrk sends every request from one address, and its 10,000 devices
# check far more often than real ones.
# Needs: go, wrk and redis-server (scripts/peers.sh installs them; .peers.env names them), curl, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
if [[ -f .peers.env ]]; then set -a; . ./.peers.env; set +a; fi

WRK=${FERRY_WRK:-wrk}
REDIS_SERVER=${FERRY_REDIS_SERVER:-redis-server}
DURATION=${FERRY_BENCH_DURATION:-15s}
SHAPES=${FERRY_BENCH_SHAPES:-2x64 1x32}
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

. scripts/bench-lib.sh
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 closed" >&2; return 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# cpu_ticks PID…: user+system CPU time of the processes so far, in clock ticks.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

PROFILE=${FERRY_BENCH_PROFILE:-0}
PROFILE_SECONDS=${FERRY_PROFILE_SECONDS:-10}
# FERRY_PROFILE_DIR keeps each profile there (relay-redis-2x64.perf.data, …) for
# `perf report -i`; the binaries it needs are kept beside them.
PROFILE_DIR=${FERRY_PROFILE_DIR:-}
if [[ $PROFILE != 0 ]]; then
  [[ $PROFILE_SECONDS =~ ^[0-9]+$ ]] && (( PROFILE_SECONDS >= 3 )) || { echo "FERRY_PROFILE_SECONDS must be a whole number of seconds, at least 3" >&2; exit 1; }
  command -v perf >/dev/null || { echo "FERRY_BENCH_PROFILE=1 needs perf (Debian: apt-get install linux-perf)" >&2; exit 1; }
fi

echo "building relay and baseline..." >&2
CGO_ENABLED=0 go build -trimpath -o "$work/relay" ./cmd/relay
CGO_ENABLED=0 go build -trimpath -o "$work/minimal" ./internal/relay/testdata/bench/minimal.go

write_bench_config "$work/bench.yaml"


seed() {
  local base=$1
  register "$base" 1.0.0 refs/tags/v1.0.0
  register "$base" 1.1.0 refs/tags/v1.1.0
  register "$base" 1.2.0 refs/heads/main
  register "$base" 1.3.0-rc.1 refs/heads/canary
  curl -fsS -o /dev/null -X PUT "$base/api/v1/apps/$APP/channels/production/rollout" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' --data '{"version":"1.2.0","percent":30}'
}

# wrk_run BASE CONNS DELAY_MS → the BENCH line of the Lua done() hook (THREADS wrk threads).
wrk_run() {
  BENCH_APP=$APP BENCH_DELAY_MS=$3 BENCH_PAUSES=$PAUSES run "$WRK" -t "$THREADS" -c "$2" -d "$DURATION" --latency -s "$LUA" "$1/updates" | grep '^BENCH'
}
field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }

# Start all three servers, then measure them in ROUNDS interleaved rounds (Redis relay,
# bbolt relay, baseline, Redis relay, …) so that a change in the machine's load hits all of
# them alike. Each server's figures are from its median round by req/s; its ratio is the
# median of the per-round ratios to the baseline measured right after it. Five rounds by
# default: on a shared 2-CPU VM one round's ratio moves by up to 0.2, and a median of three
# read 0.76 where five rounds of the same build right after read 0.94 (docs/benchmarks.md).
ROUNDS=${FERRY_BENCH_ROUNDS:-5}
# Pauses of the below-saturation run: random (exponential, independent devices) or fixed
# (every connection pauses exactly 10 ms, so they stay in lock-step and arrive in bursts).
PAUSES=${FERRY_BENCH_PAUSES:-random}

rport=$(free_port)
start "$REDIS_SERVER" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($!)
wait_port "$rport"

names=("relay, Redis" "relay, embedded bbolt" "minimal net/http handler")
bases=() spids=()
port=$(free_port)
FERRY_HMAC_SECRET=$HMAC_SECRET FERRY_ADMIN_TOKEN=$ADMIN_TOKEN start "$work/relay" --config "$work/bench.yaml" \
  --addr "127.0.0.1:$port" --redis-url "redis://127.0.0.1:$rport/0" --rate-limit 0 --device-rate-limit 0 --log-level warn >"$work/relay-redis.log" 2>&1 &
spids+=($!); pids+=($!); bases+=("http://127.0.0.1:$port")
port=$(free_port)
FERRY_HMAC_SECRET=$HMAC_SECRET FERRY_ADMIN_TOKEN=$ADMIN_TOKEN start "$work/relay" --config "$work/bench.yaml" \
  --addr "127.0.0.1:$port" --data-dir "$work/data" --rate-limit 0 --device-rate-limit 0 --log-level warn >"$work/relay-bolt.log" 2>&1 &
spids+=($!); pids+=($!); bases+=("http://127.0.0.1:$port")
port=$(free_port)
start "$work/minimal" -addr "127.0.0.1:$port" >"$work/minimal.log" 2>&1 &
spids+=($!); pids+=($!); bases+=("http://127.0.0.1:$port")
for i in 0 1; do wait_http "${bases[$i]}/readyz"; seed "${bases[$i]}"; done
wait_port "$port"
for i in 0 1 2; do run "$WRK" -t 2 -c 64 -d 3s -s "$LUA" "${bases[$i]}/updates" >/dev/null; done # warm-up

# median_round_by ARRAY FIELD I: the round of the current shape whose FIELD (rps, p99_us…)
# is the median for entry I of ARRAY (sat: saturation runs, half: half-saturation runs).
median_round_by() {
  local -n runs=$1
  local round
  for round in $(seq "$ROUNDS"); do echo "$(field "$2" "${runs[$3,$round]}") $round"; done | sort -n | awk '{ r[NR] = $2 } END { print r[int((NR + 1) / 2)] }'
}
# median_round I: the saturation round whose req/s is the median for server I.
median_round() { median_round_by sat rps "$1"; }
median_ratio() {
  for round in $(seq "$ROUNDS"); do
    awk -v a="$(field rps "${sat[$1,$round]}")" -v b="$(field rps "${sat[2,$round]}")" 'BEGIN { printf "%.4f\n", a / b }'
  done | sort -n | awk '{ r[NR] = $1 } END { printf "%.2f", r[int((NR + 1) / 2)] }'
}

ms() { [[ -z $1 ]] && { echo "–"; return; }; awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
# half_median I: the line of half-saturation entry I's median round by p99.
half_median() { echo "${half[$1,$(median_round_by half p99_us "$1")]}"; }
# half_cols I: entry I's half-saturation table columns (req/s, p50, p99 of its median round,
# and every round's p99).
half_cols() {
  local hd hper round
  hd=$(half_median "$1")
  hper=$(for round in $(seq "$ROUNDS"); do printf '%s ' "$(ms "$(field p99_us "${half[$1,$round]}")" | sed 's/ ms//')"; done)
  echo "$(printf '%.0f' "$(field rps "$hd")") | $(ms "$(field p50_us "$hd")") | $(ms "$(field p99_us "$hd")") | ${hper}ms"
}

# cleanup_servers stops the relays, redis-server and the baseline (before the fleet run).
cleanup_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

# measure_shape: the interleaved saturation rounds, then the table with the half-saturation
# runs, under the current THREADS and CONNS.
measure_shape() {
  unset sat; declare -gA sat
  for round in $(seq "$ROUNDS"); do
    for i in 0 1 2; do
      # CPU per request: the server's, and for the Redis relay redis-server's too.
      cpids=("${spids[$i]}")
      [[ $i -eq 0 ]] && cpids+=("$redis_pid")
      c0=$(cpu_ticks "${cpids[@]}")
      line=$(wrk_run "${bases[$i]}" "$CONNS" 0)
      c1=$(cpu_ticks "${cpids[@]}")
      sat[$i,$round]="$line cpu_us=$(awk -v t=$((c1 - c0)) -v u="$TICK_US" -v n="$(field requests "$line")" 'BEGIN { printf "%.1f", t * u / n }')"
      echo "  round $round, ${names[$i]}: ${sat[$i,$round]}" >&2
    done
  done

  # Half saturation, in interleaved rounds as well: each relay at about half its median rate
  # (rate/2/100 connections that pause 10 ms on average between requests), and the baseline
  # at each relay's half rate (what the machine itself adds to the tail at the same rate).
  # One 15 s p99 on a shared machine is noise: each row shows its median round by p99 and
  # every round's p99, and each relay's p99 is divided by the baseline's at its rate.
  # Half-saturation entries: 0 and 1 the relays, 2 and 3 the baseline at their rates.
  local hcs=() hbase=(0 1 2 2)
  for i in 0 1; do
    rps=$(field rps "${sat[$i,$(median_round "$i")]}")
    hcs[i]=$(awk -v r="$rps" 'BEGIN { c = int(r / 2 / 100 + 0.5); if (c < 1) c = 1; if (c > 2000) c = 2000; print c }')
  done
  hcs[2]=${hcs[0]} hcs[3]=${hcs[1]}
  unset half; declare -gA half
  for round in $(seq "$ROUNDS"); do
    for i in 0 1 2 3; do
      [[ $i -eq 3 && ${hcs[3]} -eq ${hcs[2]} ]] && { half[3,$round]=${half[2,$round]}; continue; }
      half[$i,$round]=$(wrk_run "${bases[${hbase[$i]}]}" "${hcs[$i]}" 10)
      echo "  half-saturation round $round, ${names[${hbase[$i]}]} (${hcs[$i]} connections): ${half[$i,$round]}" >&2
    done
  done
  echo
  echo "wrk $("$WRK" --version 2>&1 | head -1 | awk '{print $2}'), -t $THREADS -c $CONNS -d $DURATION, $ROUNDS interleaved rounds, $PAUSES pauses below saturation; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); nice $NICE; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(go version | awk '{print $3}')"
  echo
  echo "| Server | req/s (median round) | p50 | p99 | CPU per request | RSS (peak) | ratio to baseline (median) | req/s per round | half-saturation req/s | p50 | p99 (median round) | half-saturation p99 per round | p99 ÷ baseline's at that rate |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|"
  for i in 0 1 2; do
    m=$(median_round "$i")
    line=${sat[$i,$m]}
    rps=$(field rps "$line")
    per=$(for round in $(seq "$ROUNDS"); do printf '%.0f ' "$(field rps "${sat[$i,$round]}")"; done)
    ratio=1.00 p99x=1.00
    if [[ $i -lt 2 ]]; then
      ratio=$(median_ratio "$i")
      p99x=$(awk -v a="$(field p99_us "$(half_median "$i")")" -v b="$(field p99_us "$(half_median $((i + 2)))")" 'BEGIN { printf "%.2f", a / b }')
    fi
    name=${names[$i]}
    [[ $i -eq 2 ]] && name="$name (half rate: the Redis relay's)"
    rss=$(rss_kb "${spids[$i]}") hwm=$(hwm_kb "${spids[$i]}")
    printf '| %s | %.0f | %s | %s | %s µs | %d MB (%d MB) | %s | %s| %s | %s |\n' "$name" "$rps" "$(ms "$(field p50_us "$line")")" \
      "$(ms "$(field p99_us "$line")")" "$(field cpu_us "$line")" $((rss / 1024)) $((hwm / 1024)) "$ratio" "$per" "$(half_cols "$i")" "$p99x"
  done
  printf '| %s | | | | | | | | %s | |\n' "${names[2]} (half rate: the bbolt relay's)" "$(half_cols 3)"
}

profile_files=(relay-redis relay-bolt minimal)
if [[ $PROFILE != 0 ]]; then
  if [[ -n $PROFILE_DIR ]]; then mkdir -p "$PROFILE_DIR" && cp "$work/relay" "$work/minimal" "$PROFILE_DIR/"; fi
  perf record -q -e cpu-clock -o "$work/probe.data" -p "${spids[2]}" -- true 2>"$work/probe.err" ||
    { echo "perf cannot sample the servers: $(head -3 "$work/probe.err"); run as root or lower kernel.perf_event_paranoid" >&2; exit 1; }
fi

# Where a request's CPU time goes: each row is the inclusive time (perf's "children" column)
# of the functions it names, separated by spaces (they never call one another). The relay's
# rows are empty for the baseline, which has none of those functions.
R=github.com/ferryhq/ferry/internal/relay
profile_groups=(
  "net/http reads the request|net/http.(*conn).readRequest"
  "handler, all of it|net/http.serverHandler.ServeHTTP"
  "↳ decode and check the body|$R.parseObjectInto"
  "↳ decision|$R.(*Server).decide"
  "↳ answer|$R.respondUpdate"
  "↳ stats series|$R.(*seriesRecorder).check"
  "↳ metrics|$R.(*metrics).observe $R.(*metrics).decided"
  "↳ request id|$R.assignRequestID"
  "net/http finishes the request|net/http.(*response).finishRequest"
  "read system calls|internal/poll.(*FD).Read"
  "write system calls|internal/poll.(*FD).Write"
  "allocation|runtime.mallocgc"
  "garbage collector's background work|runtime.gcBgMarkWorker"
  "scheduler|runtime.schedule"
)

# profile_server I: entry I under the current shape's saturating load for PROFILE_SECONDS,
# sampled by perf from the second second on (so wrk is at full rate throughout); prints
# "requests_in_window cpu_ns" and leaves perf's report in $work/profile-I.txt.
profile_server() {
  local i=$1 window=$((PROFILE_SECONDS - 2)) line
  DURATION=${PROFILE_SECONDS}s wrk_run "${bases[$i]}" "$CONNS" 0 >"$work/profile-$i.wrk" &
  local wrk_pid=$!
  sleep 1
  perf record -q -e cpu-clock -F 1999 -g -p "${spids[$i]}" -o "$work/profile-$i.data" -- sleep "$window" 2>/dev/null
  wait "$wrk_pid"
  perf report -i "$work/profile-$i.data" --stdio --children --sort sym -g none 2>/dev/null >"$work/profile-$i.txt"
  if [[ -n $PROFILE_DIR ]]; then
    cp "$work/profile-$i.data" "$PROFILE_DIR/${profile_files[$i]}-${THREADS}x${CONNS}.perf.data"
  fi
  line=$(cat "$work/profile-$i.wrk")
  awk -v r="$(field rps "$line")" -v w="$window" '/^# Event count/ { gsub(/[^0-9]/, "", $0); printf "%.0f %s\n", r * w, $0 }' "$work/profile-$i.txt"
}

# profile_us I WHAT: µs per request in entry I's report of the functions WHAT names, or of
# "total", "user" or "kernel" (the self time of every, every user or every kernel symbol).
profile_us() {
  awk -v what="$2" -v n="${preq[$1]}" -v ns="${pns[$1]}" '
    BEGIN { k = split(what, names, " "); for (j = 1; j <= k; j++) want[names[j]] = 1 }
    /^ +[0-9.]+% +[0-9.]+% +\[[.k]\] / {
      children = $1; self = $2; sub(/%/, "", children); sub(/%/, "", self)
      sym = $0; sub(/^ +[0-9.]+% +[0-9.]+% +\[[.k]\] /, "", sym); sub(/ +$/, "", sym)
      if (what == "total" || (what == "user" && $3 == "[.]") || (what == "kernel" && $3 == "[k]")) { t += self; found = 1 }
      else if (sym in want) { t += children; found = 1 }
    }
    END { if (!found) { print "–"; exit } printf "%.2f", t / 100 * ns / 1000 / n }' "$work/profile-$1.txt"
}

profile_shape() {
  unset preq pns; declare -gA preq pns
  local i g label what
  for i in 0 1 2; do
    read -r preq[$i] pns[$i] < <(profile_server "$i")
    echo "  profiled ${names[$i]}: ${preq[$i]} requests in the window" >&2
  done
  echo
  echo "CPU time per request in µs, -t $THREADS -c $CONNS, from \`perf record -g\` of each server for $((PROFILE_SECONDS - 2)) s at saturation (inclusive time of the functions named, so rows overlap: allocation, for one, is also inside the handler's; the Redis relay's column leaves out redis-server; perf's own sampling adds some time to every column):"
  echo
  echo "| Where | ${names[0]} | ${names[1]} | ${names[2]} |"
  echo "|---|---:|---:|---:|"
  for g in "total|total" "↳ in user space|user" "↳ in the kernel|kernel" "${profile_groups[@]}"; do
    label=${g%%|*} what=${g#*|}
    printf '| %s | %s | %s | %s |\n' "$label" "$(profile_us 0 "$what")" "$(profile_us 1 "$what")" "$(profile_us 2 "$what")"
  done
}

for shape in $SHAPES; do
  THREADS=${shape%x*} CONNS=${shape#*x}
  measure_shape
  if [[ $PROFILE != 0 ]]; then profile_shape; fi
done

if [[ ${FERRY_BENCH_FLEET:-1} != 0 ]]; then
  echo
  echo "fleet memory (scripts/bench-fleet.sh, FERRY_FLEET_DEVICES=${FERRY_FLEET_DEVICES:-1000000}):"
  echo
  cleanup_servers
  NICE=$NICE bash scripts/bench-fleet.sh
fi
