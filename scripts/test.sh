#!/usr/bin/env bash
# The test command of the README and of CI: installs what the tests need when it
# is missing (Chromium for the dashboard's browser test, its npm package,
# staticcheck), then checks formatting, vets, lints and runs every test.
#   ./scripts/test.sh            the default run: cross-builds, unit under -race, fuzz seeds, multi-node
#                                integration, browser, the .deb installed with dpkg -i in an overlay root
#   ./scripts/test.sh -run Mesh  extra arguments go to `go test`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

need_root() { [ "$(id -u)" = 0 ] || { echo "test.sh: installing $1 needs root (or install it yourself)" >&2; exit 1; }; }

if ! command -v chromium >/dev/null 2>&1; then
  need_root chromium
  echo "== installing chromium (browser test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
  need_root npm
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# curl and wget are the plain clients of the file view's integration test.
if ! command -v curl >/dev/null 2>&1 || ! command -v wget >/dev/null 2>&1; then
  need_root "curl and wget"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl wget >/dev/null
fi
if [ ! -d integration/browser/node_modules/playwright-core ]; then
  echo "== installing the browser test's npm packages"
  (cd integration/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! command -v staticcheck >/dev/null 2>&1; then
  echo "== installing staticcheck"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
staticcheck ./...
echo "== cross-builds"
# The node runs on Linux, macOS and Windows; a file that only builds on Linux
# fails here, not on a user's machine. vet type-checks the services' Windows code.
for target in linux/amd64 linux/arm64 windows/amd64 darwin/arm64; do
  GOOS=${target%/*} GOARCH=${target#*/} go build -o /dev/null ./cmd/patchmesh
done
GOOS=windows go vet ./node/service ./cmd/patchmesh
# The unit tests run under the race detector in place of a plain run. On 2 cores
# shared with other work the 22 packages took 92 s with -race against 55 s plain
# (warm build cache; a cold one also builds the dependencies for -race), which keeps
# CI well under 15 minutes. Two stay plain:
# chunk/delta starts no goroutine (3x slower under -race for nothing to find), and
# integration, whose races would be in the node processes: `go test -race
# ./integration` builds them with -race too, but took 20 minutes on the same cores.
plain=(./chunk/delta ./integration)
race=$(go list ./... | grep -v -x -F "$(go list "${plain[@]}")")
echo "== go test -race (unit tests)"
go test -race -count=1 -timeout 20m "$@" $race
echo "== go test (integration, chunk/delta)"
go test -count=1 -timeout 20m "$@" "${plain[@]}"
