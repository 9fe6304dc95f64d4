#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that the modules of gateway/src include one another without a cycle.

A module is x.c plus x.h of one folder (engine/call.c + engine/call.h is the
module engine/call). Module X depends on module Y when x.c or x.h has a quoted
include of y.h ("engine/upstream.h"); includes that name no file under the
root (generated protobuf headers, include/infergw/*) are not modules and are
left out. Prints every cycle found (the modules on it, one strongly connected
component per line) and exits 1; else prints a one-line summary and exits 0.

Usage: tests/check-includes.py [--root DIR]   (default: gateway/src of this repo)
"""

import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def module_of(relpath):
    """engine/call.c -> engine/call; None for files that are not .c/.h."""
    base, ext = os.path.splitext(relpath)
    return base.replace(os.sep, "/") if ext in (".c", ".h") else None


def build_graph(root):
    """Returns {module: set(modules it depends on)}."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            mod = module_of(rel)
            if mod is not None:
                files.setdefault(mod, []).append(os.path.join(dirpath, name))
    graph = {mod: set() for mod in files}
    for mod, paths in files.items():
        for path in paths:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for inc in INCLUDE.findall(text):
                dep = module_of(inc)
                if dep is None or dep == mod:
                    continue
                if dep in graph:
                    graph[mod].add(dep)
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def one_cycle(graph, comp):
    """A shortest cycle through the first module of a component, as a path."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for dep in sorted(graph[node]):
            if dep == start:
                path = [node]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if dep in members and dep not in prev:
                prev[dep] = node
                queue.append(dep)
    return comp


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(here, "..", "gateway", "src"),
                        help="source tree to check (default: gateway/src)")
    args = parser.parse_args()
    if not os.path.isdir(args.root):
        print(f"check-includes: {args.root}: not a directory", file=sys.stderr)
        return 2
    graph = build_graph(args.root)
    found = cycles(graph)
    edges = sum(len(d) for d in graph.values())
    if found:
        for comp in found:
            print("cycle: " + " -> ".join(one_cycle(graph, comp))
                  + f"  (modules on it: {', '.join(comp)})")
        print(f"check-includes: {len(found)} cycle(s) among {len(graph)} modules")
        return 1
    print(f"check-includes: {len(graph)} modules, {edges} edges, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
