#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# infergw-healthcheck [PATH] [HOST:PORT]: exits 0 when the gateway's admin
# endpoint answers PATH with HTTP 200, 1 otherwise. The image's HEALTHCHECK;
# bash only (/dev/tcp), so the runtime image needs no HTTP client.
#   PATH       /healthz (alive) or /readyz (ready: every pool has a replica)
#   HOST:PORT  default $INFERGW_ADMIN_CHECK, else 127.0.0.1:7190
path=${1:-/healthz}
addr=${2:-${INFERGW_ADMIN_CHECK:-127.0.0.1:7190}}
host=${addr%:*}
port=${addr##*:}
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$addr" >&3
IFS= read -r -t 5 status <&3 || exit 1
[[ $status =~ ^HTTP/1\.[01]\ 200 ]] || { echo "$addr$path: ${status%$'\r'}"; exit 1; }
echo ok
