#!/usr/bin/env bash
# Installs the tools `meshcheck cluster up` needs into a project-local directory
# (.meshcheck/bin by default; `meshcheck cluster up` looks there before PATH):
#
#   kind                 KIND_VERSION                 (default v0.29.0)
#   istioctl             ISTIO_VERSION                (default 1.31.0)
#   cloud-provider-kind  CLOUD_PROVIDER_KIND_VERSION  (default 0.6.0)
#
# Every download is checked against a SHA-256 before it is made executable, and the
# script fails closed: a mismatch, or a download with no checksum to check against,
# stops it and leaves nothing installed.
#
# Where the checksums come from:
# - kind: the SHA-256 values published with the kind release (kind-<os>-<arch>.sha256sum
#   release assets), pinned below for v0.29.0.
# - istioctl: no value is pinned here (we could not obtain the published checksum when
#   writing this script; we do not make one up). Pass it as ISTIOCTL_SHA256=<hex>, or
#   set MESHCHECK_TRUST_PUBLISHED_CHECKSUMS=1 to read the .sha256 file Istio publishes
#   next to each archive. That second mode only guards against a corrupted download,
#   not against a compromised release, since the checksum comes from the same place.
# - cloud-provider-kind: no value is pinned here either (same reason). Pass
#   CLOUD_PROVIDER_KIND_SHA256=<hex> for the release archive, or, when Go is installed,
#   the script builds it with `go install sigs.k8s.io/cloud-provider-kind@v<version>`,
#   which Go verifies against the module checksum database.
#
# Usage: scripts/install-tools.sh [kind] [istioctl] [cloud-provider-kind]   (default: all)
# Env:   MESHCHECK_TOOLS_DIR (default .meshcheck/bin)
set -euo pipefail

KIND_VERSION="${KIND_VERSION:-v0.29.0}"
ISTIO_VERSION="${ISTIO_VERSION:-1.31.0}"
CLOUD_PROVIDER_KIND_VERSION="${CLOUD_PROVIDER_KIND_VERSION:-0.6.0}"
TOOLS_DIR="${MESHCHECK_TOOLS_DIR:-.meshcheck/bin}"

# Published SHA-256 of each pinned download, keyed by "<tool>-<version>-<os>-<arch>".
pinned_sha256() {
  case "$1" in
    kind-v0.29.0-linux-amd64)  echo c72eda46430f065fb45c5f70e7c957cc9209402ef309294821978677c8fb3284 ;;
    kind-v0.29.0-linux-arm64)  echo 03d45095dbd9cc1689f179a3e5e5da24b77c2d1b257d7645abf1b4174bebcf2a ;;
    kind-v0.29.0-darwin-amd64) echo 3eb0d4de25b854f34ea8ce8a3cbe15054fc03bc962b03e96fd10664b829fb6ed ;;
    kind-v0.29.0-darwin-arm64) echo 314d8f1428842fd1ba2110fd0052a0f0b3ab5773ab1bdcdad1ff036e913310c9 ;;
    *) echo "" ;;
  esac
}

die() { echo "install-tools: $*" >&2; exit 1; }

platform() {
  local os arch
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "unsupported OS $(uname -s)" ;;
  esac
  case "$(uname -m)" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) die "unsupported CPU $(uname -m)" ;;
  esac
  echo "$os" "$arch"
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# verify_sha256 FILE EXPECTED: deletes FILE and fails unless its SHA-256 is EXPECTED.
verify_sha256() {
  local file="$1" expected="$2" actual
  [ -n "$expected" ] || { rm -f "$file"; die "no checksum to verify $(basename "$file") against; refusing to install it"; }
  actual="$(sha256_of "$file")"
  if [ "$actual" != "$expected" ]; then
    rm -f "$file"
    die "checksum mismatch for $(basename "$file"): expected $expected, got $actual; deleted it"
  fi
}

download() { curl -fsSL --retry 3 -o "$2" "$1" || die "failed to download $1"; }

install_kind() {
  read -r os arch < <(platform)
  local url="https://github.com/kubernetes-sigs/kind/releases/download/${KIND_VERSION}/kind-${os}-${arch}"
  local tmp; tmp="$(mktemp "${TOOLS_DIR}/.kind.XXXXXX")"
  download "$url" "$tmp"
  verify_sha256 "$tmp" "${KIND_SHA256:-$(pinned_sha256 "kind-${KIND_VERSION}-${os}-${arch}")}"
  chmod 0755 "$tmp" && mv "$tmp" "${TOOLS_DIR}/kind"
  echo "installed kind ${KIND_VERSION} into ${TOOLS_DIR}"
}

install_istioctl() {
  read -r os arch < <(platform)
  [ "$os" = darwin ] && os=osx
  local archive="istioctl-${ISTIO_VERSION}-${os}-${arch}.tar.gz"
  local url="https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/${archive}"
  local work; work="$(mktemp -d)"
  download "$url" "$work/$archive"
  local expected="${ISTIOCTL_SHA256:-$(pinned_sha256 "istioctl-${ISTIO_VERSION}-${os}-${arch}")}"
  if [ -z "$expected" ] && [ "${MESHCHECK_TRUST_PUBLISHED_CHECKSUMS:-0}" = 1 ]; then
    download "${url}.sha256" "$work/${archive}.sha256"
    expected="$(cut -d' ' -f1 < "$work/${archive}.sha256")"
  fi
  verify_sha256 "$work/$archive" "$expected"
  tar -xzf "$work/$archive" -C "$work" istioctl
  chmod 0755 "$work/istioctl" && mv "$work/istioctl" "${TOOLS_DIR}/istioctl"
  rm -rf "$work"
  echo "installed istioctl ${ISTIO_VERSION} into ${TOOLS_DIR}"
}

install_cloud_provider_kind() {
  read -r os arch < <(platform)
  local expected="${CLOUD_PROVIDER_KIND_SHA256:-$(pinned_sha256 "cloud-provider-kind-${CLOUD_PROVIDER_KIND_VERSION}-${os}-${arch}")}"
  if [ -n "$expected" ]; then
    local archive="cloud-provider-kind_${CLOUD_PROVIDER_KIND_VERSION}_${os}_${arch}.tar.gz"
    local url="https://github.com/kubernetes-sigs/cloud-provider-kind/releases/download/v${CLOUD_PROVIDER_KIND_VERSION}/${archive}"
    local work; work="$(mktemp -d)"
    download "$url" "$work/$archive"
    verify_sha256 "$work/$archive" "$expected"
    tar -xzf "$work/$archive" -C "$work" cloud-provider-kind
    chmod 0755 "$work/cloud-provider-kind" && mv "$work/cloud-provider-kind" "${TOOLS_DIR}/cloud-provider-kind"
    rm -rf "$work"
  elif command -v go >/dev/null; then
    # Go checks the module against its checksum database: a verified, pinned build.
    GOBIN="$(cd "$TOOLS_DIR" && pwd)" GOFLAGS=-mod=mod go install "sigs.k8s.io/cloud-provider-kind@v${CLOUD_PROVIDER_KIND_VERSION}"
  else
    die "no checksum for cloud-provider-kind ${CLOUD_PROVIDER_KIND_VERSION} (${os}/${arch}) and no Go toolchain to build it: set CLOUD_PROVIDER_KIND_SHA256 to the published SHA-256 of its release archive"
  fi
  echo "installed cloud-provider-kind ${CLOUD_PROVIDER_KIND_VERSION} into ${TOOLS_DIR}"
}

main() {
  mkdir -p "$TOOLS_DIR"
  local tools=("$@")
  [ ${#tools[@]} -gt 0 ] || tools=(kind istioctl cloud-provider-kind)
  for tool in "${tools[@]}"; do
    case "$tool" in
      kind) install_kind ;;
      istioctl) install_istioctl ;;
      cloud-provider-kind) install_cloud_provider_kind ;;
      *) die "unknown tool $tool (kind, istioctl, cloud-provider-kind)" ;;
    esac
  done
}

# Sourcing with MESHCHECK_SOURCE_ONLY=1 defines the functions without running (tests).
if [ "${MESHCHECK_SOURCE_ONLY:-0}" != 1 ]; then
  main "$@"
fi
