# SPDX-License-Identifier: Apache-2.0
# Shared by the bench scripts (sourced): a scratch directory and the
# processes started, both cleaned up on exit; loopback port checks.
#
#   BENCH_NAME=...; source bench/lib.sh; bench_setup <mktemp prefix>
#   bench_ports_free PORT...   (exits 1 naming the port and its owner)
#   wait_port PORT             (up to 5 s for something to listen there)
# Processes to stop go in PIDS; scratch files in $WORK.

bench_setup() { # <scratch dir prefix>
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

bench_ports_free() { # <port>...
  local p
  for p in "$@"; do
    if ss -ltnH "sport = :$p" | grep -q .; then
      echo "$BENCH_NAME: port $p is in use: $(ss -ltnpH "sport = :$p")" >&2
      exit 1
    fi
  done
}

wait_port() { # <port>
  for _ in $(seq 100); do ss -ltnH "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "$BENCH_NAME: nothing listens on port $1" >&2
  return 1
}
