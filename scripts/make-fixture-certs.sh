#!/usr/bin/env bash
# Regenerates the test-only TLS material of fixtures/ingress-tls (scripts/make-test-certs.sh
# does the work): a CA ("meshcheck test CA") and a certificate for test.devopscube.com,
# as OUT_DIR/ca.pem and OUT_DIR/secret.yaml, the Secret istio-test/test-devopscube-tls
# the Gateway's https listener names.
#
# Usage: scripts/make-fixture-certs.sh [OUT_DIR]   (default fixtures/ingress-tls)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/scripts/make-test-certs.sh" "${1:-$root/fixtures/ingress-tls}" secret.yaml \
    istio-test/test-devopscube-tls "meshcheck test CA" \
    "So the https listener of gateway.yaml has something to serve." \
    scripts/make-fixture-certs.sh test.devopscube.com
