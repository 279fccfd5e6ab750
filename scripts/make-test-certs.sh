#!/usr/bin/env bash
# Test-only TLS material for fixtures: a CA and a server certificate signed by it for the
# given hostnames, ECDSA P-256, valid for 100 years so committed fixtures never expire
# under the tests. Writes OUT_DIR/ca.pem (what clients trust) and OUT_DIR/SECRET_FILE, the
# Kubernetes TLS Secret NAMESPACE/NAME with a header saying why it is committed and
# which wrapper script regenerates it. The keys are throwaway: the CA key is deleted, the
# server key lives only in the Secret. Nothing here may ever protect real traffic.
#
# Called by scripts/make-fixture-certs.sh and scripts/make-conformance-certs.sh:
#   make-test-certs.sh OUT_DIR SECRET_FILE NAMESPACE/NAME "CA NAME" "PURPOSE" REGENERATE_WITH HOST...
set -euo pipefail

out="$1" secret_file="$2" secret="$3" ca_name="$4" purpose="$5" regenerate="$6"
shift 6
hosts=("$@")
days=36500
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$days" \
    -subj "/CN=$ca_name" \
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
    echo "# ${hosts[*]}, signed by the \"$ca_name\" in ca.pem next to this file."
    fold -s -w 84 <<<"$purpose" | sed 's/ *$//; s/^/# /'
    echo "# It protects nothing and must never be used outside meshcheck's tests."
    echo "# Regenerate with $regenerate."
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata:"
    echo "  name: ${secret#*/}"
    echo "  namespace: ${secret%%/*}"
    echo "type: kubernetes.io/tls"
    echo "data:"
    echo "  tls.crt: $(base64 -w0 "$work/tls.crt")"
    echo "  tls.key: $(base64 -w0 "$work/tls.key")"
} >"$out/$secret_file"
echo "wrote $out/ca.pem and $out/$secret_file"
