#!/usr/bin/env bash
# bench-delta.sh: what incremental delta publishing costs on real web builds.
#
# For each corpus (the web builds of bench-package.sh), `ferry publish` to a file:// bucket,
# encrypted, signing none, no relay, one run each:
#   1. the full bundle alone (delta false)
#   2. the first delta release of a key epoch, into an empty bucket
#   3. the next release with one file (index.html) changed
# and prints the wall time of each, the CPU time (user + system) it used, and the bucket's
# growth. The CPU time is the steadier figure on a shared machine.
#
# The buckets live in memory (/dev/shm) when it can be written: on a disk, creating the
# thousands of objects of a first delta release costs the kernel's inode allocator from
# almost nothing to 2 CPU seconds on ionic, depending on how many files were deleted on that
# disk lately, which measures the machine's history rather than Ferry. An S3 or GCS bucket
# pays neither.
#
# Usage: scripts/bench-delta.sh            (from the repository root)
# Env:   FERRY_BENCH_CACHE=<dir>  CORPORA="ionic monaco excalidraw" (a subset)
#        FERRY_BIN=<ferry binary> (default: built from this checkout; set it to compare builds)
#        FERRY_BENCH_BUCKETS=<dir> where the file:// buckets go (default: /dev/shm if
#        writable, else the work directory)
# Needs: go, npm, bc, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
CACHE="${FERRY_BENCH_CACHE:-$(go env GOPATH)/ferry-peers/corpora}"
. scripts/corpus-lib.sh
WANT="${CORPORA:-ionic monaco excalidraw}"
mkdir -p "$CACHE/bin"
FERRY="${FERRY_BIN:-}"
if [ -z "$FERRY" ]; then
	build_ferry "$CACHE/bin/ferry"
	FERRY="$CACHE/bin/ferry"
fi
[ -f "$CACHE/keys/.capgo_key_v2" ] || "$FERRY" keys --dir "$CACHE/keys" --relay https://relay.invalid >/dev/null
export FERRY_ENCRYPTION_KEY="$(cat "$CACHE/keys/.capgo_key_v2")"
WORK="$(mktemp -d)"
if [ -n "${FERRY_BENCH_BUCKETS:-}" ]; then
	BUCKETS="$(mktemp -d "$FERRY_BENCH_BUCKETS/ferry-bench-delta.XXXXXX")"
elif [ -d /dev/shm ] && [ -w /dev/shm ]; then
	BUCKETS="$(mktemp -d /dev/shm/ferry-bench-delta.XXXXXX)"
else
	BUCKETS="$WORK"
fi
trap 'rm -rf "$WORK" "$BUCKETS"' EXIT

# prepare NAME SPEC SUB: the corpus's web build copied to $WORK/NAME.
prepare() {
	cp -R "$(corpus_web "$1" "$2" "$3")" "$WORK/$1"
}

mb() { du -sm "$1" 2>/dev/null | cut -f1; }

# run LABEL DIR BUCKET VERSION DELTA: one publish, timed; prints the line.
run() {
	local before wall user sys
	before="$(mb "$3" || echo 0)"
	/usr/bin/time -o "$WORK/time" -f '%e %U %S' \
		"$FERRY" publish --app-id com.example.bench --build-dir "$2" --version "$4" --destination "file://$3" \
		--signing none --delta "$5" >/dev/null 2>"$WORK/$1.log" || { cat "$WORK/$1.log" >&2; exit 1; }
	read -r wall user sys <"$WORK/time"
	printf '  %-28s %6.2f s wall %6.2f s cpu   bucket +%s MB\n' "$1" "$wall" "$(echo "$user + $sys" | bc)" "$(($(mb "$3") - ${before:-0}))"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); buckets in $(df --output=fstype "$BUCKETS" 2>/dev/null | tail -1 || echo '?') $BUCKETS"
while IFS='|' read -r name spec sub; do
	case " $WANT " in *" $name "*) ;; *) continue ;; esac
	prepare "$name" "$spec" "$sub"
	echo "$name ($(find "$WORK/$name" -type f | wc -l) files, $(mb "$WORK/$name") MB):"
	run "full bundle (delta false)" "$WORK/$name" "$BUCKETS/$name-full" 1.0.0 false
	run "first delta release" "$WORK/$name" "$BUCKETS/$name-delta" 1.0.0 true
	echo "// changed" >>"$WORK/$name/index.html"
	run "one file changed, delta" "$WORK/$name" "$BUCKETS/$name-delta" 1.0.1 true
done <<<"$CORPUS_LIST"
