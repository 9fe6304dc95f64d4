#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks that every tracked C source and header is formatted as the
# repository's .clang-format says (ctest: unit_format, registered when
# clang-format is installed; it is in group "test" of deploy/lib/packages.sh).
# Runs clang-format --dry-run --Werror over `git ls-files '*.c' '*.h'`
# (nothing in the tree is generated or vendored: generated code lives in the
# build tree), prints each file that differs and the command that fixes it,
# and exits 1 if any differs, 0 if none, 2 if it cannot run.
#
# Usage: tests/check-format.sh [-v]     (-v: also print clang-format's diagnostics)
# Environment: CLANG_FORMAT (default: clang-format)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
VERBOSE=0
case ${1:-} in
  -v) VERBOSE=1 ;;
  -h | --help) sed -n '3,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "check-format.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
  echo "check-format.sh: $CLANG_FORMAT not found (apt-get install clang-format)" >&2
  exit 2
fi
if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  echo "check-format.sh: $ROOT is not a git checkout (the files checked are git ls-files')" >&2
  exit 2
fi

cd "$ROOT"
mapfile -t files < <(git ls-files '*.c' '*.h')
differ=()
for f in "${files[@]}"; do
  [[ -f $f ]] || continue  # deleted in the work tree, not yet committed
  if ! out=$("$CLANG_FORMAT" --style=file --dry-run --Werror "$f" 2>&1); then
    differ+=("$f")
    ((VERBOSE)) && printf '%s\n' "$out"
  fi
done

if ((${#differ[@]} == 0)); then
  echo "check-format.sh: ${#files[@]} files, all formatted ($("$CLANG_FORMAT" --version))"
  exit 0
fi
printf '%s\n' "${differ[@]}"
echo "check-format.sh: ${#differ[@]} of ${#files[@]} files differ from .clang-format" \
  "($("$CLANG_FORMAT" --version)). Fix them with:" >&2
echo "  clang-format -i <file>...      # or, for all: git ls-files '*.c' '*.h' | xargs clang-format -i" >&2
echo "  (tests/check-format.sh -v shows what differs)" >&2
exit 1
