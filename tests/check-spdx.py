#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every tracked source, script, build and deployment file names its license.

Checks that each such file (by name: C, headers, Python, shell, CMake, Lua,
proto, JS, CSS, YAML, systemd units, Dockerfile) carries an
`SPDX-License-Identifier: Apache-2.0` line within its first five lines (after a
`#!` line or a Dockerfile `# syntax=` directive). Data files (JSON, fuzz
corpora, .env) and Markdown are not checked. Prints each file that lacks the
line and exits 1; else prints a one-line summary and exits 0.

Usage: tests/check-spdx.py [--root DIR]   (DIR: a git checkout, default: this one)
"""
import argparse
import os
import subprocess
import sys

LINE = "SPDX-License-Identifier: Apache-2.0"
EXTS = {".c", ".h", ".py", ".sh", ".cmake", ".lua", ".proto", ".js", ".css", ".yaml", ".yml",
        ".service", ".timer"}
NAMES = {"CMakeLists.txt", "Dockerfile", "run"}


def wanted(path):
    parts = path.split("/")
    if "corpus" in parts or "node_modules" in parts:
        return False
    base = parts[-1]
    return base in NAMES or os.path.splitext(base)[1] in EXTS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args = ap.parse_args()
    files = subprocess.run(["git", "-C", args.root, "ls-files"], check=True, capture_output=True,
                           text=True).stdout.split()
    missing, checked = [], 0
    for f in files:
        if not wanted(f):
            continue
        checked += 1
        with open(os.path.join(args.root, f), encoding="utf-8", errors="replace") as fh:
            head = [fh.readline() for _ in range(5)]
        if not any(LINE in line for line in head):
            missing.append(f)
    for f in missing:
        print("%s: no '%s' line in its first five lines" % (f, LINE))
    if missing:
        print("check-spdx: %d of %d files lack the license line" % (len(missing), checked))
        return 1
    print("check-spdx: %d files, each names its license" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
