#!/usr/bin/env bash
# Builds the patchmesh .deb and .rpm packages with nfpm (scripts/package/nfpm.yaml):
# the binary, the systemd unit, /etc/patchmesh/node.yaml, the postinstall script
# that creates the patchmesh user, and the data folder.
#   scripts/package.sh                     packages for linux/amd64 and linux/arm64 into dist/
#   ARCHS=amd64 OUT=/tmp/pkgs scripts/package.sh
#   BINARY=./patchmesh ARCHS=amd64 scripts/package.sh   package a binary built elsewhere
# VERSION defaults to the newest v* tag (without the v), else 0.0.0+git<commit>.
# nfpm runs through `go run module@version`: the Go checksum database pins it,
# the build cache makes later runs quick, and the project's go.mod stays free
# of a packaging tool's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
OUT=${OUT:-dist}
ARCHS=${ARCHS:-amd64 arm64}
if [ -z "${VERSION:-}" ]; then
  VERSION=$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//') ||
    true
  [ -n "$VERSION" ] || VERSION="0.0.0+git$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fi
if [ -n "${BINARY:-}" ] && [ "$(wc -w <<<"$ARCHS")" != 1 ]; then
  echo "package.sh: BINARY packages one architecture; set ARCHS to it" >&2
  exit 2
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in $ARCHS; do
  dir="$work/$arch"
  mkdir -p "$dir"
  ln -s "$PWD" "$dir/src"
  bin="$dir/patchmesh"
  if [ -n "${BINARY:-}" ]; then
    cp "$BINARY" "$bin"
  else
    echo "== build linux/$arch $VERSION"
    # The lead aligns main.version with the --version command's variable.
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
      -ldflags "-s -w -X main.version=$VERSION" -o "$bin" ./cmd/patchmesh
  fi
  for packager in deb rpm; do
    echo "== $packager linux/$arch"
    (cd "$dir" && PKG_ARCH=$arch PKG_VERSION=$VERSION \
      go run "$NFPM" package --config src/scripts/package/nfpm.yaml --packager "$packager" --target "$OUT/")
  done
done
ls -l "$OUT"
