#!/usr/bin/env bash
# Regenerates the test-only TLS material of fixtures/conformance/base: a CA
# ("meshcheck conformance test CA") and a server certificate signed by it for the
# hostnames the conformance suites send over TLS to the Gateway
# same-namespace-with-https-listener (example.org, second-example.org,
# unknown-example.org), ECDSA P-256, valid for 100 years so the committed fixtures never
# expire under the tests.
#
# The upstream conformance suite generates the Secret
# gateway-conformance-infra/tls-validity-checks-certificate at run time (a self-signed
# certificate); meshcheck commits one instead, signed by a CA the suites trust through
# request.tls.caFile, so the client verifies the gateway's certificate for the URL's host.
#
# Writes OUT_DIR/ca.pem and OUT_DIR/tls-validity-checks-certificate.yaml. The keys are
# throwaway: the CA key is deleted, the server key lives only in the Secret. Nothing here
# may ever protect real traffic.
#
# Usage: scripts/make-conformance-certs.sh [OUT_DIR]   (default fixtures/conformance/base)
set -euo pipefail

out="${1:-$(cd "$(dirname "$0")/.." && pwd)/fixtures/conformance/base}"
hosts=(example.org second-example.org unknown-example.org)
days=36500
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$days" \
    -subj "/CN=meshcheck conformance test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$work/ca.pem"

san="$(printf 'DNS:%s,' "${hosts[@]}")"
san="${san%,}"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/tls.key"
openssl req -new -key "$work/tls.key" -subj "/CN=${hosts[0]}" -out "$work/tls.csr"
cat >"$work/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -sha256 -days "$days" -extfile "$work/server.ext" -out "$work/tls.crt"
for host in "${hosts[@]}"; do
    openssl verify -CAfile "$work/ca.pem" -verify_hostname "$host" "$work/tls.crt" >/dev/null
done

cp "$work/ca.pem" "$out/ca.pem"
{
    echo "# TEST-ONLY KEY, COMMITTED ON PURPOSE. A throwaway certificate and private key for"
    echo "# ${hosts[*]},"
    echo "# signed by the \"meshcheck conformance test CA\" in ca.pem next to this file, for the"
    echo "# HTTPS listeners of the Gateway same-namespace-with-https-listener (gateways.yaml)."
    echo "# The upstream conformance suite (kubernetes-sigs/gateway-api v1.3.0) creates this"
    echo "# Secret at run time with a self-signed certificate; meshcheck commits one so its"
    echo "# suites can verify the gateway's certificate (request.tls.caFile: ca.pem). It"
    echo "# protects nothing and must never be used outside meshcheck's tests. Regenerate with"
    echo "# scripts/make-conformance-certs.sh."
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata:"
    echo "  name: tls-validity-checks-certificate"
    echo "  namespace: gateway-conformance-infra"
    echo "type: kubernetes.io/tls"
    echo "data:"
    echo "  tls.crt: $(base64 -w0 "$work/tls.crt")"
    echo "  tls.key: $(base64 -w0 "$work/tls.key")"
} >"$out/tls-validity-checks-certificate.yaml"
echo "wrote $out/ca.pem and $out/tls-validity-checks-certificate.yaml"
