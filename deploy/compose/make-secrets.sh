#!/bin/sh
# Make each gateway's TLS certificate and key and its audit key with `gateway init`, for
# deploy/compose.yaml's `secrets` service (which runs it once, before anything else):
#
#   make-secrets.sh OUT NAME[,HOST...]...
#
# For each NAME (with the other host names its replicas are reached by, comma-separated): OUT/NAME/secrets/ holds gateway.crt, gateway.key (0600), ca.crt, audit.key
# (0600) and audit.pub, mounted read-only into that gateway only; OUT/NAME/public/ holds
# gateway.crt, ca.crt and audit.pub, mounted into its peers, which pin the certificate by file.
# The certificate names NAME and each HOST (the compose services peers dial). The CA key and `gateway init`'s
# own gateway.toml and API tokens are not kept: the committed configurations are used, and
# running this again on an empty volume makes new certificates for both sides.
# A NAME that already has its key is left alone, so restarting the stack keeps the identities.
# Files end up owned by GATEWAY_UID (default 10001, the image's user) when run as root.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 OUT NAME[,HOST...]..." >&2
    exit 2
fi
out=$1
shift
uid=${GATEWAY_UID:-10001}

for spec in "$@"; do
    name=${spec%%,*}
    hosts=""
    names=$name
    rest=$spec
    while [ "$rest" != "${rest#*,}" ]; do
        rest=${rest#*,}
        hosts="$hosts --host ${rest%%,*}"
        names="$names ${rest%%,*}"
    done
    secrets=$out/$name/secrets
    public=$out/$name/public
    if [ -s "$secrets/gateway.key" ] && [ -s "$public/gateway.crt" ]; then
        echo "$name: keeping its certificate and keys"
        continue
    fi
    work=$(mktemp -d)
    # The output holds the one-time API tokens of init's own config: not shown, not kept.
    # shellcheck disable=SC2086 # $hosts is a list of words
    gateway init "$work/$name" --name "$name" --listen 0.0.0.0:50051 --host "$name" $hosts >/dev/null
    mkdir -p "$secrets" "$public"
    chmod 0700 "$secrets"
    chmod 0755 "$public"
    for file in gateway.key audit.key; do
        cp "$work/$name/$file" "$secrets/$file"
        chmod 0600 "$secrets/$file"
    done
    for file in gateway.crt ca.crt audit.pub; do
        cp "$work/$name/$file" "$secrets/$file"
        cp "$work/$name/$file" "$public/$file"
        chmod 0644 "$secrets/$file" "$public/$file"
    done
    rm -rf "$work"
    if [ "$(id -u)" = 0 ]; then
        chown -R "$uid:$uid" "$secrets" "$public"
    fi
    echo "$name: made its certificate (for $names), TLS key and audit key"
done
