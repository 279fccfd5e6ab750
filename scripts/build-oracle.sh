#!/usr/bin/env bash
# Builds the Istio oracle (oracle/): Istio's own config generator and traffic simulation,
# at the commit pinned in oracle/go.mod, as one test binary that the differential tests
# run. Modules come from the Go module proxy and are checked against oracle/go.sum; the
# Go build cache makes a rebuild with nothing changed take a second or two.
#
# Usage: scripts/build-oracle.sh [OUTPUT]   (default target/istio-oracle/oracle.test)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/istio-oracle/oracle.test}"
command -v go >/dev/null || {
    echo "build-oracle: go is not installed (the oracle is built from Go modules)" >&2
    exit 1
}
mkdir -p "$(dirname "$out")"
cd "$root/oracle"
# -mod=readonly: go.mod and go.sum are the pin; a build never rewrites them.
# GOTOOLCHAIN=local: build with the installed Go, never fetch another toolchain.
GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -c -o "$out" .
