#!/usr/bin/env bash
# bench-delta.sh: what incremental delta publishing costs on real web builds.
#
# For each corpus (the web builds of bench-package.sh), `ferry publish` to a file:// bucket,
# encrypted, signing none, no relay, one run each:
#   1. the full bundle alone (delta false)
#   2. the first delta release of a key epoch, into an empty bucket
#   3. the next release with one file (index.html) changed
# and prints the wall time of each and the bucket's growth.
#
# Usage: scripts/bench-delta.sh            (from the repository root)
# Env:   FERRY_BENCH_CACHE=<dir>  CORPORA="ionic monaco excalidraw" (a subset)
# Needs: go, npm, bc.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
CACHE="${FERRY_BENCH_CACHE:-$(go env GOPATH)/ferry-peers/corpora}"
. scripts/corpus-lib.sh
WANT="${CORPORA:-ionic monaco excalidraw}"
mkdir -p "$CACHE/bin"
go build -trimpath -o "$CACHE/bin/ferry" ./cmd/ferry
FERRY="$CACHE/bin/ferry"
[ -f "$CACHE/keys/.capgo_key_v2" ] || "$FERRY" keys --dir "$CACHE/keys" --relay https://relay.invalid >/dev/null
export FERRY_ENCRYPTION_KEY="$(cat "$CACHE/keys/.capgo_key_v2")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# prepare NAME SPEC SUB: the corpus's web build copied to $WORK/NAME.
prepare() {
	cp -R "$(corpus_web "$1" "$2" "$3")" "$WORK/$1"
}

mb() { du -sm "$1" 2>/dev/null | cut -f1; }

# run LABEL DIR BUCKET VERSION DELTA: one publish, timed; prints the line.
run() {
	local before s e
	before="$(mb "$3" || echo 0)"
	s=$(date +%s.%N)
	"$FERRY" publish --app-id com.example.bench --build-dir "$2" --version "$4" --destination "file://$3" \
		--signing none --delta "$5" >/dev/null 2>"$WORK/$1.log" || { cat "$WORK/$1.log" >&2; exit 1; }
	e=$(date +%s.%N)
	printf '  %-28s %6.2f s   bucket +%s MB\n' "$1" "$(echo "$e - $s" | bc)" "$(($(mb "$3") - ${before:-0}))"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
while IFS='|' read -r name spec sub; do
	case " $WANT " in *" $name "*) ;; *) continue ;; esac
	prepare "$name" "$spec" "$sub"
	echo "$name ($(find "$WORK/$name" -type f | wc -l) files, $(mb "$WORK/$name") MB):"
	run "full bundle (delta false)" "$WORK/$name" "$WORK/$name-full" 1.0.0 false
	run "first delta release" "$WORK/$name" "$WORK/$name-delta" 1.0.0 true
	echo "// changed" >>"$WORK/$name/index.html"
	run "one file changed, delta" "$WORK/$name" "$WORK/$name-delta" 1.0.1 true
done <<<"$CORPUS_LIST"
