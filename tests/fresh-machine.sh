#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2317  # cleanup runs from a trap
# The README's commands on a new Debian 12 machine: builds a minimal Debian 12
# root file system (mmdebstrap --variant=apt bookworm: nothing but apt, from
# the Debian mirror this machine's apt uses), clones this checkout's committed
# HEAD into it (/src/infergw) and runs the command there, chrooted in private
# mount and PID namespaces (unshare: /proc, /sys, /dev and a fresh /tmp
# mounted inside; the host's network, so only loopback and the mirrors are
# reached). Prints the tail of the command's log and exits with its status.
#
# Usage: tests/fresh-machine.sh [--smoke] [--tests] [--image] [--keep-log] [--help]
#   --smoke   run `deploy/run-local.sh --smoke` (the default without flags)
#   --tests   run `tests/run.sh` (about 25 minutes on 2 cores)
#   --image   then (or alone: with the root's packages of group "run" only)
#             build deploy/docker/Dockerfile with podman (base images
#             debian:12 and debian:12-slim imported from the same root),
#             start the image's replica and gateway from its file system as
#             the image's user (podman image mount + chroot) and make one
#             ModelInfer through them with the Python sample client in the
#             fresh root; prints the image's size
#
# Runs as root (mmdebstrap, chroot, mounts); installs what it needs on this
# machine from group "fresh" of deploy/lib/packages.sh. The root tarball is
# cached per ISO week and mirror in $INFERGW_FRESH_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/infergw-fresh); the full log of each run is kept
# there too (last-<command>.log). Everything else (the root, podman's storage,
# mounts, processes) lives in a scratch directory under ${TMPDIR:-/var/tmp} and
# is removed on every exit path. Certificate authorities: the files that
# SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, CURL_CA_BUNDLE, PIP_CERT,
# REQUESTS_CA_BUNDLE, GIT_SSL_CAINFO and the like point at, and
# /usr/local/share/ca-certificates/, are copied into the root and those
# variables (and http(s)_proxy/no_proxy) are passed on, so that npm behind a
# TLS-inspecting proxy trusts what this machine trusts.
# Environment: JOBS (passed on), INFERGW_FRESH_CACHE, IMAGE_PORTS (the image
#   check's replica, gateway and admin ports on 127.0.0.1 [7401,7400,7490]).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '4,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

RUN_SMOKE=0 RUN_TESTS=0 RUN_IMAGE=0
for arg in "$@"; do
  case $arg in
    --smoke) RUN_SMOKE=1 ;;
    --tests) RUN_TESTS=1 ;;
    --image) RUN_IMAGE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fresh-machine.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
((RUN_SMOKE || RUN_TESTS || RUN_IMAGE)) || RUN_SMOKE=1

say() { printf '\n==> fresh-machine: %s\n' "$*"; }
die() { printf 'fresh-machine.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (mmdebstrap, chroot and mounts need it)"
# shellcheck source=../deploy/lib/deps.sh
source "$ROOT/deploy/lib/deps.sh"
infergw_ensure_groups fresh-machine.sh fresh

if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no) ]]; then
  echo "fresh-machine.sh: note: uncommitted changes are not tested (the committed HEAD is cloned)" >&2
fi

CACHE=${INFERGW_FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infergw-fresh}
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/infergw-fresh.XXXXXX")
R=$WORK/root
NS_PID=
IMG_MNT=
PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay)

# --- cleanup, on every exit path ---------------------------------------------------
cleanup() {
  local rc=$?
  set +e
  # unshare --fork --kill-child: when it dies, its child (the PID namespace's
  # first process) is killed, with it every process in the namespace, and
  # the mounts go with the namespace. unshare blocks SIGTERM and SIGINT while
  # it waits for its child, hence SIGKILL.
  if [[ -n $NS_PID ]] && kill -0 "$NS_PID" 2>/dev/null; then
    kill -KILL "$NS_PID"
    wait "$NS_PID" 2>/dev/null
  fi
  [[ -z $IMG_MNT ]] || "${PODMAN[@]}" image unmount --all >/dev/null 2>&1
  if [[ -d $WORK/podman ]]; then
    "${PODMAN[@]}" system reset --force >/dev/null 2>&1
  fi
  # Nothing of the scratch directory may still be mounted here before it goes.
  if grep -q " ${WORK}/" /proc/self/mountinfo; then
    grep " ${WORK}/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r umount -l
  fi
  rm -rf --one-file-system "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the root file system: from the cache, else mmdebstrap ----------------------------
# The Debian mirror(s) this machine's apt uses for bookworm (main archive,
# -updates, -security), so the fresh root reaches the same mirror.
# shellcheck disable=SC2016 # apt's format fields, not shell
mapfile -t MIRRORS < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' 2>/dev/null |
  awk '$3 == "deb" && $2 ~ /^bookworm(-updates|-security)?$/ { print "deb " $1 " " $2 " main" }' |
  sort -u)
# An apt proxy, if this machine's apt has one.
APTOPTS=()
while IFS= read -r line; do
  [[ -n $line ]] && APTOPTS+=("$line")
done < <(apt-config dump 2>/dev/null | grep -i '^Acquire::[a-z]*::Proxy' || true)
KEY=$(printf '%s\n' "${MIRRORS[@]}" "${APTOPTS[@]}" | sha256sum | cut -c1-10)
TARBALL=$CACHE/bookworm-apt-$(date -u +%G-w%V)-$KEY.tar
if [[ ! -s $TARBALL ]]; then
  say "mmdebstrap --variant=apt bookworm -> ${TARBALL} (${MIRRORS[*]:-the default mirror})"
  rm -f "$CACHE"/bookworm-apt-*.tar "$CACHE"/*.partial.tar # older weeks, failed attempts
  aopt=()
  for a in "${APTOPTS[@]}"; do aopt+=(--aptopt="$a"); done
  t0=$SECONDS
  mmdebstrap --variant=apt --quiet "${aopt[@]}" bookworm "$CACHE/root.partial.tar" "${MIRRORS[@]}"
  mv "$CACHE/root.partial.tar" "$TARBALL"
  echo "root tarball: $(du -h "$TARBALL" | cut -f1) in $((SECONDS - t0)) s"
else
  say "root tarball from the cache: $TARBALL"
fi
mkdir -p "$R"
tar -C "$R" --numeric-owner -xf "$TARBALL"

# --- what a new machine here has as well: the CAs it trusts, proxy settings ------------
CA_VARS=(SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE PIP_CERT REQUESTS_CA_BUNDLE
         GIT_SSL_CAINFO AWS_CA_BUNDLE HTTPLIB2_CA_CERTS GRPC_DEFAULT_SSL_ROOTS_FILE_PATH
         NIX_SSL_CERT_FILE CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE)
ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
     DEBIAN_FRONTEND=noninteractive)
[[ -z ${JOBS:-} ]] || ENV+=("JOBS=$JOBS")
for v in "${CA_VARS[@]}" http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [[ -n ${!v:-} ]] || continue
  ENV+=("$v=${!v}")
  # A file is copied to the same path in the root; a directory (SSL_CERT_DIR,
  # /etc/ssl/certs) is filled by the root's own ca-certificates, from
  # /usr/local/share/ca-certificates below.
  if [[ -f ${!v} ]]; then
    mkdir -p "$R$(dirname "${!v}")"
    cp -L "${!v}" "$R${!v}"
  fi
done
if [[ -d /usr/local/share/ca-certificates ]]; then
  mkdir -p "$R/usr/local/share/ca-certificates"
  cp -rL /usr/local/share/ca-certificates/. "$R/usr/local/share/ca-certificates/"
fi
if ((${#APTOPTS[@]})); then
  printf '%s;\n' "${APTOPTS[@]}" >"$R/etc/apt/apt.conf.d/99proxy"
fi

# --- the checkout: its committed HEAD ---------------------------------------------------
mkdir -p "$R/src"
git clone --quiet --no-hardlinks "$ROOT" "$R/src/infergw"
say "cloned $(git -C "$R/src/infergw" log -1 --format='%h %s' | cut -c1-80) into the root (/src/infergw)"

# in_root <log file> <shell command>: runs the command in the root, chrooted in
# private mount and PID namespaces, output to the log; returns its status.
in_root() {
  local log=$1 cmd=$2 rc=0
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --propagation private --pid --fork --kill-child -- bash -c '
    set -e
    R=$1; shift
    mount -t proc proc "$R/proc"
    mount -t sysfs sysfs "$R/sys"
    mount --rbind /dev "$R/dev"
    mount --make-rslave "$R/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
    exec chroot "$R" /usr/bin/env -i "$@"' in_root "$R" "${ENV[@]}" \
    /bin/bash -c "$cmd" >"$log" 2>&1 </dev/null &
  NS_PID=$!
  wait "$NS_PID" || rc=$?
  NS_PID=
  return "$rc"
}

report() { # <label> <log> <status> <seconds>
  local keep=$CACHE/last-$1.log
  cp "$2" "$keep"
  echo "---- the last 40 lines of its log (all of it: $keep) ----"
  tail -n 40 "$2"
  echo "----"
  say "$1: $( (($3 == 0)) && echo PASS || echo "FAIL (exit $3)") in $(($4 / 60)) min $(($4 % 60)) s"
}

STATUS=0
run_cmd() { # <label> <command run in /src/infergw>
  local t0=$SECONDS rc=0
  say "running \`$2\` in the fresh root (log: $CACHE/last-$1.log)"
  in_root "$WORK/$1.log" "cd /src/infergw && $2" || rc=$?
  report "$1" "$WORK/$1.log" "$rc" $((SECONDS - t0))
  ((rc == 0)) || STATUS=$rc
  return 0
}

if ((RUN_SMOKE)); then run_cmd run-local "deploy/run-local.sh --smoke"; fi
if ((RUN_TESTS)); then run_cmd tests "tests/run.sh"; fi

# --- the container image ----------------------------------------------------------------
image_check() {
  local t0=$SECONDS ports rport gport aport nofile nproc pid_max mnt size p
  IFS=', ' read -r -a ports <<<"${IMAGE_PORTS:-7401,7400,7490}"
  rport=${ports[0]} gport=${ports[1]} aport=${ports[2]}
  for p in "$rport" "$gport" "$aport"; do
    [[ -z $(ss -ltnH "sport = :$p") ]] || { echo "port $p is in use (set IMAGE_PORTS)"; return 1; }
  done
  if ((!RUN_SMOKE && !RUN_TESTS)); then
    say "installing group \"run\" in the root (the Python client; log: $CACHE/last-image.log)"
    in_root "$WORK/image-root.log" \
      "cd /src/infergw && source deploy/lib/deps.sh && infergw_ensure_groups fresh-machine.sh run" ||
      { tail -n 20 "$WORK/image-root.log"; cp "$WORK/image-root.log" "$CACHE/last-image.log"; return 1; }
  fi
  say "podman: importing the root as debian:12 and debian:12-slim"
  "${PODMAN[@]}" import --quiet "$TARBALL" localhost/debian:12 >/dev/null
  "${PODMAN[@]}" tag localhost/debian:12 localhost/debian:12-slim
  # podman's default ulimits exceed this machine's hard limits: ask for those.
  # nproc: podman runs with no more than pid_max processes.
  nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
  [[ $nofile != unlimited ]] || nofile=1048576
  pid_max=$(cat /proc/sys/kernel/pid_max)
  [[ $nproc != unlimited ]] && ((nproc < pid_max)) || nproc=$pid_max
  git clone --quiet --no-hardlinks "$ROOT" "$WORK/image-src"
  say "podman build --isolation chroot -f deploy/docker/Dockerfile (log: $CACHE/last-image.log)"
  if ! "${PODMAN[@]}" build --isolation chroot --ulimit "nofile=$nofile:$nofile" \
         --ulimit "nproc=$nproc:$nproc" \
         -f deploy/docker/Dockerfile -t localhost/infergw:fresh "$WORK/image-src" \
         >"$WORK/image.log" 2>&1; then
    tail -n 30 "$WORK/image.log"
    echo "podman build failed"
    return 1
  fi
  size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' localhost/infergw:fresh)
  echo "image localhost/infergw:fresh built in $((SECONDS - t0)) s: $((size / 1000000)) MB" \
       "($size bytes), user $("${PODMAN[@]}" image inspect --format '{{.Config.User}}' localhost/infergw:fresh)"
  mnt=$("${PODMAN[@]}" image mount localhost/infergw:fresh)
  IMG_MNT=$mnt
  # The image's replica and gateway, from its file system, as its user (10001),
  # in private namespaces; the call comes from the fresh root (Debian's
  # python3-grpcio and the stubs generated from proto/), over loopback.
  say "starting the image's infergw-replica (127.0.0.1:$rport) and infergw (127.0.0.1:$gport) as uid 10001"
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --propagation private --pid --fork --kill-child -- bash -c '
    M=$1 R=$2 rport=$3 gport=$4 aport=$5 plog=$6
    mount -t proc proc "$M/proc"
    mount --rbind /dev "$M/dev"
    mount --make-rslave "$M/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$M/tmp"
    mount -t proc proc "$R/proc"
    mount --rbind /dev "$R/dev"
    mount --make-rslave "$R/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
    chroot --userspec=10001:10001 "$M" /usr/local/bin/infergw-replica \
      --listen "127.0.0.1:$rport" --id image-replica --model demo >>"$plog" 2>&1 &
    chroot --userspec=10001:10001 "$M" /usr/local/bin/infergw --listen "127.0.0.1:$gport" \
      --admin "127.0.0.1:$aport" --auth=none --pool "demo=127.0.0.1:$rport" >>"$plog" 2>&1 &
    for i in $(seq 100); do
      chroot --userspec=10001:10001 "$M" /usr/local/bin/infergw-healthcheck /readyz \
        "127.0.0.1:$aport" >/dev/null 2>&1 && break
      sleep 0.2
    done
    echo "processes (uid, command):"
    ps -eo uid=,args= | grep "/usr/local/bin/infergw" | grep -v grep
    echo "admin /readyz: $(chroot --userspec=10001:10001 "$M" /usr/local/bin/infergw-healthcheck /readyz "127.0.0.1:$aport")"
    shift 6
    echo "\$ python3 deploy/sample_client.py --target 127.0.0.1:$gport infer 1 2 3 --key user-7"
    chroot "$R" /usr/bin/env -i "$@" /bin/bash -c "cd /src/infergw && mkdir -p /tmp/pygen &&
      protoc -I proto --python_out=/tmp/pygen --grpc_out=/tmp/pygen \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin proto/grpc_predict_v2.proto &&
      INFERGW_PYGEN=/tmp/pygen /usr/bin/python3 deploy/sample_client.py --target 127.0.0.1:$gport \
        infer 1 2 3 --key user-7"' image "$mnt" "$R" "$rport" "$gport" "$aport" \
    "$WORK/image-procs.log" "${ENV[@]}" \
    >"$WORK/image-call.log" 2>&1 </dev/null &
  NS_PID=$!
  local rc=0
  wait "$NS_PID" || rc=$?
  NS_PID=
  cat "$WORK/image-call.log"
  echo "the image's gateway and replica logged:"
  sed 's/^/   /' "$WORK/image-procs.log"
  cat "$WORK/image.log" "$WORK/image-call.log" "$WORK/image-procs.log" >"$CACHE/last-image.log"
  say "image: $( ((rc == 0)) && echo PASS || echo "FAIL (exit $rc)") in $((SECONDS - t0)) s," \
      "image size $((size / 1000000)) MB"
  return "$rc"
}
if ((RUN_IMAGE)); then
  if ((STATUS != 0)); then
    say "image: skipped (the command above failed)"
  else
    image_check || STATUS=1
  fi
fi
exit "$STATUS"
