# Sourced by scripts/bench-package.sh and scripts/bench-delta.sh: the packaging corpora,
# fetched from the npm registry once and cached under $CACHE, and the ferry binary they time.

# build_ferry OUT: the binary users run, static and stripped, as scripts/release-binaries.sh
# and the image build it.
build_ferry() {
	CGO_ENABLED=0 go build -trimpath -tags disable_grpc_modules -ldflags="-s -w" -o "$1" ./cmd/ferry
}

# name|npm spec|directory inside the package
CORPUS_LIST="ionic|@ionic/core@9.0.5|dist
monaco|monaco-editor@0.57.0|min
excalidraw|@excalidraw/excalidraw@0.18.1|dist"

# corpus_web NAME SPEC SUB: prints the cached web build of a corpus (the package's SUB
# directory plus an index.html that calls notifyAppReady), fetching it the first time.
corpus_web() {
	local name=$1 spec=$2 sub=$3 web="$CACHE/$1-web"
	if [ ! -f "$web/index.html" ]; then
		local tmp
		tmp="$(mktemp -d)"
		(cd "$tmp" && npm pack --silent "$spec" >/dev/null && tar -xzf ./*.tgz)
		rm -rf "$web"
		cp -R "$tmp/package/$sub" "$web"
		printf '<!doctype html>\n<html><head><meta charset="utf-8"><title>%s</title></head><body><script>window.CapacitorUpdater&&CapacitorUpdater.notifyAppReady()</script></body></html>\n' "$name" >"$web/index.html"
		rm -rf "$tmp"
	fi
	echo "$web"
}
