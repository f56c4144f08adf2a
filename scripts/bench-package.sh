#!/usr/bin/env bash
# bench-package.sh: Ferry's packaging against @capgo/cli on real web builds.
#
# For each corpus (the web build shipped inside an npm package, plus an index.html):
#   ferry pack --dir D --out F --key K                      (zip + hash + encrypt, one pass)
#   capgo bundle zip ... --json  +  capgo bundle encrypt ...  (the CLI's two steps)
# and prints wall time, throughput (input MB/s), CPU time (user+system), peak RSS and output
# size for both, and the ratios (wall-time speedup, CPU-time ratio, size difference). Each side runs RUNS times (default 3,
# interleaved); the median wall and CPU times are reported and the peak RSS is the largest seen. Both sides use the same RSA 2048 key.
#
# Usage: scripts/bench-package.sh            (from the repository root)
# Env:   RUNS=3  FERRY_BENCH_CACHE=<dir>  FERRY_CAPGO_DIR=<@capgo/cli scratch project>
#        CORPORA="ionic monaco excalidraw"   (a subset)
#        LEVEL=5    ferry's deflate level (default: ferry's default)
#        NICE=-10   run both tools at this priority (needs root for < 0), to keep a busy
#                   machine's other work from skewing the comparison; it applies to both.
#
# Needs: go, npm, node, /usr/bin/time (installed with apt-get when missing), and the
# @capgo/cli peer from scripts/peers.sh (FERRY_CAPGO_DIR in .peers.env).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
RUNS="${RUNS:-3}"
CACHE="${FERRY_BENCH_CACHE:-$(go env GOPATH)/ferry-peers/corpora}"
if [ -z "${FERRY_CAPGO_DIR:-}" ] && [ -f .peers.env ]; then
	FERRY_CAPGO_DIR="$(sed -n 's/^FERRY_CAPGO_DIR=//p' .peers.env)"
fi
CAPGO_DIR="${FERRY_CAPGO_DIR:?run scripts/peers.sh first (FERRY_CAPGO_DIR unset)}"
CAPGO="$CAPGO_DIR/node_modules/.bin/capgo"
[ -x "$CAPGO" ] || { echo "bench: $CAPGO missing; run scripts/peers.sh" >&2; exit 1; }

if [ ! -x /usr/bin/time ]; then
	echo "bench: installing GNU time" >&2
	apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

. scripts/corpus-lib.sh
WANT="${CORPORA:-ionic monaco excalidraw}"

mkdir -p "$CACHE"

BIN="$CACHE/bin"
mkdir -p "$BIN"
build_ferry "$BIN/ferry"
KEYS="$CACHE/keys"
if [ ! -f "$KEYS/.capgo_key_v2" ]; then
	"$BIN/ferry" keys --dir "$KEYS" --relay https://relay.invalid >/dev/null
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ln -s "$CAPGO_DIR/node_modules" "$WORK/node_modules"
cp "$CAPGO_DIR/package.json" "$WORK/package.json"
node -e 'const fs=require("fs");fs.writeFileSync(process.argv[1],JSON.stringify({appId:"com.example.bench",appName:"Bench",webDir:"dist",plugins:{CapacitorUpdater:{publicKey:fs.readFileSync(process.argv[2],"utf8")}}}))' \
	"$WORK/capacitor.config.json" "$KEYS/.capgo_key_v2.pub"
export CAPGO_DISABLE_TELEMETRY=true CAPGO_DISABLE_POSTHOG=true CI=true
cd "$WORK" # the CLI works in its project directory; every other path is absolute

# timed LOG cmd...: runs cmd under GNU time (at priority $NICE when set); sets SECS (wall),
# CPU (user+system seconds) and RSS_KB (peak resident set).
timed() {
	local log=$1
	shift
	local t0 t1 pre=()
	[ -n "${NICE:-}" ] && pre=(nice -n "$NICE")
	t0=$(date +%s.%N)
	"${pre[@]}" /usr/bin/time -v -o "$log" "$@" >"$log.out" 2>&1 || { cat "$log.out" "$log" >&2; return 1; }
	t1=$(date +%s.%N)
	SECS=$(echo "$t1 - $t0" | bc -l)
	CPU=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$log")
	RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
max() { echo "if ($1 > $2) $1 else $2" | bc -l; }

printf '%s\n' "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load before: $(cut -d' ' -f1-3 /proc/loadavg); runs: $RUNS (median wall and CPU time, largest RSS)${NICE:+; both tools at nice $NICE}${LEVEL:+; ferry --level $LEVEL}"
printf '%-11s %5s %6s | %7s %7s %6s %7s %9s | %7s %7s %6s %7s %9s | %7s %7s %6s\n' \
	corpus files "in MB" "ferry s" "MB/s" "cpu s" "RSS MB" "bytes" "CLI s" "MB/s" "cpu s" "RSS MB" "bytes" "speedup" "cpu x" "size"
while IFS='|' read -r name spec sub; do
	case " $WANT " in *" $name "*) ;; *) continue ;; esac
	web="$(corpus_web "$name" "$spec" "$sub")"
	files=$(find "$web" -type f ! -name '.*' | wc -l)
	inbytes=$(find "$web" -type f ! -name '.*' -printf '%s\n' | awk '{s+=$1} END {print s}')
	inmb=$(echo "$inbytes / 1048576" | bc -l)
	fwall=() fcpus=() frss=0 cwall=() ccpus=() crss=0
	for _ in $(seq "$RUNS"); do
		rm -f "$WORK/ferry.zip"
		timed "$WORK/ferry.time" "$BIN/ferry" pack --dir "$web" --out "$WORK/ferry.zip" --key "$KEYS/.capgo_key_v2" ${LEVEL:+--level "$LEVEL"}
		fwall+=("$SECS") fcpus+=("$CPU")
		frss=$(max "$frss" "$RSS_KB")
		fsize=$(stat -c %s "$WORK/ferry.zip")

		rm -f "$WORK"/com.example.bench_*
		timed "$WORK/zip.time" "$CAPGO" bundle zip com.example.bench --path "$web" --bundle 1.0.0 --json --no-code-check
		zsecs=$SECS zrss=$RSS_KB zcpu=$CPU
		sum=$(sed -n 's/.*"checksum": *"\([0-9a-f]*\)".*/\1/p' "$WORK/zip.time.out")
		timed "$WORK/enc.time" "$CAPGO" bundle encrypt com.example.bench_1.0.0.zip "$sum" --key "$KEYS/.capgo_key_v2" --json
		csecs=$(echo "$zsecs + $SECS" | bc -l)
		cwall+=("$csecs") ccpus+=("$(echo "$zcpu + $CPU" | bc -l)")
		crss=$(max "$crss" "$(max "$zrss" "$RSS_KB")")
		csize=$(stat -c %s "$WORK/com.example.bench_1.0.0.zip_encrypted.zip")
	done
	fmed=$(median "${fwall[@]}") fcpu=$(median "${fcpus[@]}") cmed=$(median "${cwall[@]}") ccpu=$(median "${ccpus[@]}")
	printf '%-11s %5d %6.1f | %7.2f %7.1f %6.2f %7.1f %9d | %7.2f %7.1f %6.2f %7.1f %9d | %6.1fx %6.1fx %+5.1f%%\n' \
		"$name" "$files" "$inmb" "$fmed" "$(echo "$inmb / $fmed" | bc -l)" "$fcpu" "$(echo "$frss / 1024" | bc -l)" "$fsize" \
		"$cmed" "$(echo "$inmb / $cmed" | bc -l)" "$ccpu" "$(echo "$crss / 1024" | bc -l)" "$csize" \
		"$(echo "$cmed / $fmed" | bc -l)" "$(echo "$ccpu / $fcpu" | bc -l)" "$(echo "($fsize - $csize) * 100 / $csize" | bc -l)"
done <<<"$CORPUS_LIST"
