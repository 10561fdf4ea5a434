#!/usr/bin/env bash
# Development certificates for a skiff mesh: a CA and, per service, an X509-SVID (EC P-256 key,
# exactly one URI SAN spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE, leaf CA:FALSE, serverAuth +
# clientAuth). For demos and tests only; production certificates come from cert-manager or
# SPIRE (README.md, "Certificates").
#
#   certs/gen-dev-certs.sh [DIR] [SERVICE...]     default: certs/dev  frontend users
#
# Writes DIR/ca.crt, DIR/ca.key and DIR/SERVICE.crt, DIR/SERVICE.key. An existing DIR/ca.{crt,key}
# is reused, so running it again re-issues service certificates under the same CA: every file
# is written to a temporary name and renamed into place, which a running skiff picks up as a
# certificate rotation.
#
# Environment: TRUST_DOMAIN (mesh.local), NAMESPACE (default), DAYS (leaf validity, 30),
#              CA_DAYS (365), OPENSSL (openssl).
set -euo pipefail

DIR=${1:-"$(dirname "$0")/dev"}
shift || true
SERVICES=("$@")
if ((${#SERVICES[@]} == 0)); then SERVICES=(frontend users); fi
TRUST_DOMAIN=${TRUST_DOMAIN:-mesh.local}
NAMESPACE=${NAMESPACE:-default}
DAYS=${DAYS:-30}
CA_DAYS=${CA_DAYS:-365}
OPENSSL=${OPENSSL:-openssl}

command -v "$OPENSSL" >/dev/null || { echo "gen-dev-certs: $OPENSSL not found" >&2; exit 1; }
mkdir -p "$DIR"
TMP=$(mktemp -d "$DIR/.gen.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
umask 077

# Moves $TMP/NAME to $DIR/NAME atomically (same file system).
publish() { mv -f "$TMP/$1" "$DIR/$1"; }

if [[ ! -s $DIR/ca.crt || ! -s $DIR/ca.key ]]; then
  "$OPENSSL" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/ca.key" -out "$TMP/ca.crt" -days "$CA_DAYS" \
    -subj "/O=skiff dev/CN=skiff dev CA ($TRUST_DOMAIN)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  chmod 644 "$TMP/ca.crt"
  publish ca.key
  publish ca.crt
  echo "gen-dev-certs: created CA $DIR/ca.crt" >&2
fi

for svc in "${SERVICES[@]}"; do
  if [[ ! $svc =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "gen-dev-certs: invalid service name '$svc' (use A-Z a-z 0-9 . _ -)" >&2
    exit 2
  fi
  id="spiffe://$TRUST_DOMAIN/ns/$NAMESPACE/sa/$svc"
  cat >"$TMP/$svc.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:$id,DNS:$svc,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
  "$OPENSSL" req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/$svc.key" -out "$TMP/$svc.csr" -subj "/O=skiff dev/CN=$svc" 2>/dev/null
  "$OPENSSL" x509 -req -in "$TMP/$svc.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
    -set_serial "0x$("$OPENSSL" rand -hex 8)" -days "$DAYS" -extfile "$TMP/$svc.ext" \
    -out "$TMP/$svc.crt" 2>/dev/null
  chmod 644 "$TMP/$svc.crt"
  publish "$svc.key"
  publish "$svc.crt"
  echo "gen-dev-certs: $DIR/$svc.crt ($id)" >&2
done
