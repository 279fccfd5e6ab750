#!/usr/bin/env bash
# Regenerates the test-only TLS material of fixtures/conformance/base
# (scripts/make-test-certs.sh does the work): a CA ("meshcheck conformance test CA") and
# a certificate for the hostnames the conformance suites send over TLS to the Gateway
# same-namespace-with-https-listener.
#
# The upstream conformance suite generates the Secret
# gateway-conformance-infra/tls-validity-checks-certificate at run time (a self-signed
# certificate); meshcheck commits one instead, signed by a CA the suites trust through
# request.tls.caFile, so the client verifies the gateway's certificate for the URL's host.
#
# It also makes the Secret gateway-conformance-web-backend/certificate, which the upstream
# suite creates at run time too, for the Gateway Secret ReferenceGrant tests (only its
# status is asserted: no client trusts its CA, which goes to its own folder).
#
# Usage: scripts/make-conformance-certs.sh [OUT_DIR]   (default fixtures/conformance/base)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/fixtures/conformance/base}"
"$root/scripts/make-test-certs.sh" "$out/web-backend-certificate" certificate.yaml \
    gateway-conformance-web-backend/certificate "meshcheck conformance web-backend test CA" \
    "For the Gateways of the conformance tests GatewaySecret*ReferenceGrant*, which reference it across namespaces. The upstream conformance suite (kubernetes-sigs/gateway-api v1.3.0, conformance/utils/suite/suite.go Setup) creates this Secret at run time with a self-signed certificate; meshcheck commits one." \
    scripts/make-conformance-certs.sh web-backend.example.com
exec "$root/scripts/make-test-certs.sh" "$out" \
    tls-validity-checks-certificate.yaml \
    gateway-conformance-infra/tls-validity-checks-certificate "meshcheck conformance test CA" \
    "For the HTTPS listeners of the Gateway same-namespace-with-https-listener (gateways.yaml). The upstream conformance suite (kubernetes-sigs/gateway-api v1.3.0) creates this Secret at run time with a self-signed certificate; meshcheck commits one so its suites can verify the gateway's certificate (request.tls.caFile: ca.pem)." \
    scripts/make-conformance-certs.sh example.org second-example.org unknown-example.org
