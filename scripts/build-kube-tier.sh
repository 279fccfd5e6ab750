#!/usr/bin/env bash
# Builds the kube tier's control plane (kube-tier/): etcd and kube-apiserver from their
# Go modules (go.etcd.io/etcd/server/v3, k8s.io/kubernetes at the release pinned in
# kube-tier/go.mod) with kube-controller-manager's controllers, as one test binary.
# Modules come from the Go module proxy and are checked against kube-tier/go.sum; the
# Go build cache makes a rebuild with nothing changed take seconds.
#
# Usage: scripts/build-kube-tier.sh [OUTPUT]   (default target/kube-tier/controlplane.test)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/kube-tier/controlplane.test}"
command -v go >/dev/null || {
    echo "build-kube-tier: go is not installed (the control plane is built from Go modules)" >&2
    exit 1
}
mkdir -p "$(dirname "$out")"
cd "$root/kube-tier"
# -mod=readonly: go.mod and go.sum are the pin; a build never rewrites them.
# GOTOOLCHAIN=local: build with the installed Go, never fetch another toolchain.
# The version the API server reports at /version is the pinned release's.
version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' go.mod)"
minor="$(cut -d. -f2 <<<"$version")"
GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -c -o "$out" \
    -ldflags "-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" .
