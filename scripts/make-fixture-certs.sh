#!/usr/bin/env bash
# Regenerates the test-only TLS material of fixtures/ingress-tls: a CA ("meshcheck test
# CA") and a server certificate for test.devopscube.com signed by it, both ECDSA P-256
# and valid for 100 years so the committed fixtures never expire under the tests.
#
# Writes OUT_DIR/ca.pem (the CA certificate clients trust) and OUT_DIR/secret.yaml (the
# Kubernetes TLS Secret istio-test/test-devopscube-tls the Gateway's https listener
# names). The keys are throwaway: the CA key is deleted, the server key lives only in
# the Secret. Nothing here may ever protect real traffic.
#
# Usage: scripts/make-fixture-certs.sh [OUT_DIR]   (default fixtures/ingress-tls)
set -euo pipefail

out="${1:-$(cd "$(dirname "$0")/.." && pwd)/fixtures/ingress-tls}"
host="test.devopscube.com"
days=36500
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$days" \
    -subj "/CN=meshcheck test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$work/ca.pem"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/tls.key"
openssl req -new -key "$work/tls.key" -subj "/CN=$host" -out "$work/tls.csr"
cat >"$work/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$host
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -sha256 -days "$days" -extfile "$work/server.ext" -out "$work/tls.crt"
openssl verify -CAfile "$work/ca.pem" "$work/tls.crt" >/dev/null

cp "$work/ca.pem" "$out/ca.pem"
{
    echo "# TEST-ONLY KEY, COMMITTED ON PURPOSE. A throwaway certificate and private key for"
    echo "# $host, signed by the \"meshcheck test CA\" in ca.pem next to this file, so"
    echo "# the https listener of gateway.yaml has something to serve. It protects nothing and"
    echo "# must never be used outside meshcheck's tests. Regenerate with"
    echo "# scripts/make-fixture-certs.sh."
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata:"
    echo "  name: test-devopscube-tls"
    echo "  namespace: istio-test"
    echo "type: kubernetes.io/tls"
    echo "data:"
    echo "  tls.crt: $(base64 -w0 "$work/tls.crt")"
    echo "  tls.key: $(base64 -w0 "$work/tls.key")"
} >"$out/secret.yaml"
echo "wrote $out/ca.pem and $out/secret.yaml"
