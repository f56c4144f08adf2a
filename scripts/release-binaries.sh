#!/usr/bin/env bash
# Release binaries: build `ferry` and `relay` for every platform a release ships, from a clean
# checkout of a version tag, and write SHA256SUMS beside them. The release workflow
# (.github/workflows/release.yml) runs it, then signs SHA256SUMS and uploads everything.
#
#   scripts/release-binaries.sh v1.2.0 "$RUNNER_TEMP/dist"
#
# Files: <cmd>_<version>_<os>_<arch>[.exe], e.g. ferry_1.2.0_linux_amd64, relay_1.2.0_windows_arm64.exe.
# Binaries are static (CGO_ENABLED=0), stripped and reproducible (-trimpath), like the images,
# and built with -tags disable_grpc_modules (no GCS gRPC DirectPath: a faster start; see the Makefile).
#
# The version is Go's own VCS stamp (-buildvcs=true): at a commit a tag vX.Y.Z points to, in a
# clean tree, `go build` records vX.Y.Z and the commit, which internal/buildinfo prints for
# --version ("ferry v1.2.0 commit abc1234"). Go counts untracked files as modifications
# (the version would become v1.2.0+dirty), so OUTDIR must be outside the checkout, and the
# script refuses a dirty tree. Each binary the build machine can run is checked to say so.
# FERRY_RELEASE_PLATFORMS overrides the platform list (the test builds one).
set -euo pipefail

die() { echo "release-binaries: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: scripts/release-binaries.sh vX.Y.Z OUTDIR"
tag=$1
out=$2
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
[[ $tag =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "$tag is not a version tag vX.Y.Z"
version=${tag#v}
platforms=${FERRY_RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}

cd "$(dirname "$0")/.."
root=$(pwd -P)
head=$(git rev-parse HEAD)
tagged=$(git rev-parse -q --verify "refs/tags/$tag^{commit}") || die "no tag $tag in this checkout"
[ "$head" = "$tagged" ] || die "HEAD is $head, but $tag is $tagged: check out the tag"
[ -z "$(git status --porcelain)" ] || die "the checkout has changes, so the version would be $tag+dirty: $(git status --short | head -5)"
for dir in "$root" "$(pwd -L)"; do
  case "$out/" in "$dir"/*) die "OUTDIR $out is inside the checkout (the version would be $tag+dirty)" ;; esac
done
mkdir -p "$out"

host="$(go env GOHOSTOS)/$(go env GOHOSTARCH)"
files=()
for platform in $platforms; do
  os=${platform%/*}
  arch=${platform#*/}
  ext=
  [ "$os" = windows ] && ext=.exe
  for cmd in ferry relay; do
    name=${cmd}_${version}_${os}_${arch}${ext}
    echo "building $name"
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -buildvcs=true -trimpath -tags disable_grpc_modules -ldflags="-s -w" -o "$out/$name" "./cmd/$cmd"
    if [ "$platform" = "$host" ]; then
      got=$("$out/$name" --version)
      want="$cmd $tag commit ${head:0:7}"
      [ "$got" = "$want" ] || die "$name --version says '$got', want '$want'"
      echo "  $got"
    fi
    files+=("$name")
  done
done
(cd "$out" && sha256sum -- "${files[@]}" >SHA256SUMS)
echo "wrote $out/SHA256SUMS"
