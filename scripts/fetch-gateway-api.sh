#!/usr/bin/env bash
# Fetches a Gateway API release's install manifest into crds/ for
# `meshcheck cluster up --gateway-api-version VERSION --gateway-api-channel CHANNEL`.
#
# v1.3.0 standard is vendored already (crds/gateway-api-v1.3.0-standard-install.yaml);
# its SHA-256 is pinned below. For any other release pass the expected checksum as
# GATEWAY_API_SHA256=<hex>: the script fails closed without one.
#
# Usage: scripts/fetch-gateway-api.sh VERSION [standard|experimental]
set -euo pipefail

version="${1:?usage: fetch-gateway-api.sh VERSION [standard|experimental]}"
channel="${2:-standard}"
case "$channel" in standard|experimental) ;; *) echo "fetch-gateway-api: unknown channel $channel" >&2; exit 1 ;; esac

pinned() {
  case "$1" in
    v1.3.0-standard) echo 5a1cbbf9805f5962f5a8337b7127c7749abefc552754e93d4a9c8d63aeaef295 ;;
    *) echo "" ;;
  esac
}

expected="${GATEWAY_API_SHA256:-$(pinned "${version}-${channel}")}"
[ -n "$expected" ] || { echo "fetch-gateway-api: no checksum for ${version} ${channel}; set GATEWAY_API_SHA256" >&2; exit 1; }

dest="crds/gateway-api-${version}-${channel}-install.yaml"
tmp="$(mktemp)"
curl -fsSL --retry 3 -o "$tmp" "https://github.com/kubernetes-sigs/gateway-api/releases/download/${version}/${channel}-install.yaml"
actual="$(sha256sum "$tmp" | cut -d' ' -f1)"
if [ "$actual" != "$expected" ]; then
  rm -f "$tmp"
  echo "fetch-gateway-api: checksum mismatch: expected $expected, got $actual" >&2
  exit 1
fi
mv "$tmp" "$dest"
echo "wrote $dest"
