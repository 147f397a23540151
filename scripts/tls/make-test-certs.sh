#!/usr/bin/env bash
# Makes the throwaway TLS material the gRPC TLS/mTLS tests use (tests/data/tls/): a CA, a server
# certificate for localhost / 127.0.0.1 and a client certificate (CN ranker-a), all signed by the
# CA and valid for 100 years, so the committed copies do not expire under the tests. Never use
# these keys for anything real: they are public.
#
#   bash scripts/tls/make-test-certs.sh [OUT_DIR]     # default: tests/data/tls
set -euo pipefail
out="${1:-$(cd "$(dirname "$0")/../.." && pwd)/tests/data/tls}"
mkdir -p "$out"
cd "$out"
days=36500

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=Tessera test CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() { # name cn extensions
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
issue client ranker-a "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
rm -f ca.srl ca.key
echo "test TLS material written to $out (ca.pem, server.pem/.key, client.pem/.key)"
