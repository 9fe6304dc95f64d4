#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# infergw-backup: one backup of the infergw control plane (docs/backup.md).
#
# Runs `infergw-ctl dump` (Redis from $INFERGW_REDIS, read by infergw-ctl
# itself; further infergw-ctl flags, e.g. --redis-prefix, as arguments) and
# keeps the document as $INFERGW_BACKUP_DIR/dump-<UTC timestamp>.json,
# written to a temporary name in the same directory and renamed, so a file
# with that name is always a whole dump. Then it deletes all but the newest
# $INFERGW_BACKUP_KEEP dumps (by name, i.e. by time). A failed dump leaves
# no file and deletes nothing; the exit status is infergw-ctl's.
#
# Environment:
#   INFERGW_BACKUP_DIR   where the dumps go [/var/lib/infergw-backup]
#   INFERGW_BACKUP_KEEP  how many dumps to keep, >= 1 [48]
#   INFERGW_CTL          the infergw-ctl to run [infergw-ctl, from PATH]
# Installed as /usr/local/bin/infergw-backup (deploy/systemd/infergw-backup.*,
# deploy/k8s/60-backup.yaml, the Docker image).
set -eu

dir=${INFERGW_BACKUP_DIR:-/var/lib/infergw-backup}
keep=${INFERGW_BACKUP_KEEP:-48}
ctl=${INFERGW_CTL:-infergw-ctl}

case $keep in
'' | *[!0-9]*) keep=0 ;;
esac
if [ "$keep" -lt 1 ]; then
    echo "infergw-backup: INFERGW_BACKUP_KEEP must be a whole number >= 1" >&2
    exit 2
fi
mkdir -p "$dir"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$dir/dump-$stamp.json"
tmp="$dir/.dump-$stamp.json.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$ctl" "$@" dump --out "$tmp"
mv -f "$tmp" "$final"
echo "infergw-backup: $final"

# Retention: the names sort by time; keep the newest $keep.
d8='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]' d6='[0-9][0-9][0-9][0-9][0-9][0-9]'
for f in "$dir"/dump-*.json; do
    # shellcheck disable=SC2254 # the patterns are globs on purpose
    case ${f##*/} in
    dump-${d8}T${d6}Z.json) printf '%s\n' "$f" ;;
    esac
done | sort -r | tail -n "+$((keep + 1))" | while read -r old; do
    rm -f "$old"
    echo "infergw-backup: deleted $old"
done
