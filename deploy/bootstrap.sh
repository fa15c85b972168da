#!/bin/sh
# Create a local federation's files once (idempotent): operator key and CA, one member per borough
# with its TLS certificate, signing key and data-protection keys, two lead CAF contacts each, and the
# signed metadata. Used by deploy/compose.yaml's `bootstrap` service; runs anywhere `cafx` is on PATH.
#
#   cafx-bootstrap ROOT SHORT:GSS:HOST [SHORT:GSS:HOST ...]
#
# ROOT gets federation/ (the operator's files) and one folder per borough (SHORT) with data-keys.json.
# HOST is the name peers use to reach the node's federation listener (port 8443): it goes into the
# member's certificate and endpoint, so it must match what the nodes call each other by.
set -eu
root=$1
shift
operator="$root/federation"

if [ ! -f "$operator/federation.json" ]; then
  cafx federation init --dir "$operator" --name "London CAF federation (compose)"
fi
for member in "$@"; do
  short=${member%%:*}
  rest=${member#*:}
  gss=${rest%%:*}
  host=${rest#*:}
  if [ ! -d "$operator/members/$gss" ]; then
    cafx federation add-member "$gss" --dir "$operator" --endpoint "https://$host:8443"
    for n in 1 2; do
      cafx federation add-lead-contact "$gss" --dir "$operator" --id "$short-lead-$n" \
        --name "Lead CAF contact $n" --role "Lead CAF contact" \
        --email "lead$n@$short.example" --phone "020 7000 000$n"
    done
  fi
  if [ ! -f "$root/$short/data-keys.json" ]; then
    # Only the data-protection ring is used; the node signs with the key add-member registered.
    cafx keys init --member "$gss" --out "$root/$short/keys" >/dev/null
    mv "$root/$short/keys/data-keys.json" "$root/$short/data-keys.json"
    rm -r "$root/$short/keys"
  fi
done
cafx federation sign --dir "$operator" --validity-days 30
