#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Check the documentation's links (ctest: unit_doc_links).

For README.md, CONTRIBUTING.md and docs/*.md of the repository:
  - every relative link [text](path), [text](path#anchor), [text](#anchor)
    and reference definition [name]: path must name a file or directory that
    exists, and an anchor in a Markdown file must name one of its headings
    (GitHub's slugs: lower case, punctuation other than '-' and '_' dropped,
    spaces to '-', a repeated heading gets -1, -2, ...);
  - every inline code span that reads like a repository path (its first
    component is a top-level file or folder of the repository, as in
    `gateway/src/engine/call.c` or `deploy/run-local.sh`) must exist;
  - README.md must stay under 250 lines (the rest belongs in docs/).
Links to other sites (http:, https:, mailto:) are not fetched. Text in
fenced code blocks is skipped.

Usage: tests/check-links.py [--root DIR]   (default: the repository holding
this script). Prints one line per problem, "file:line: ...", and exits 1 if
there is any, 0 otherwise. Python 3 standard library only.
"""

import argparse
import os
import re
import sys
import unicodedata

README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target ends at the first space or ')'.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
PATH_LIKE = re.compile(r"^\.?[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_.+@-]+)*/?$")


def slug(text):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"`([^`]*)`", r"\1", text)  # code spans keep their text
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep theirs
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML goes
    out = []
    for ch in text.strip().lower():
        cat = unicodedata.category(ch)
        if ch in "-_" or cat[0] in "LN" or cat == "Mn":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def strip_code_spans(line):
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def markdown_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    fence = None
    for no, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield no, line


_anchor_cache = {}


def anchors(path):
    path = os.path.realpath(path)
    if path not in _anchor_cache:
        seen = {}
        found = set()
        for _, line in markdown_lines(path):
            for name in HTML_ANCHOR.findall(line):
                found.add(name)
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else "%s-%d" % (base, n))
        _anchor_cache[path] = found
    return _anchor_cache[path]


def top_level_names(root):
    names = set()
    for name in os.listdir(root):
        if name == ".git" or name.startswith("build"):
            continue
        names.add(name)
    return names


def check_link(root, doc, target):
    """None when the link resolves, else why not."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
        return None
    path, _, anchor = target.partition("#")
    if path:
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path))
        if not full.startswith(os.path.realpath(root)) and not full.startswith(root):
            return "points outside the repository"
        if not os.path.exists(full):
            return "no such file: %s" % os.path.relpath(full, root)
    else:
        full = doc
    if anchor and full.endswith(".md"):
        if anchor not in anchors(full):
            return "no heading #%s in %s" % (anchor, os.path.relpath(full, root))
    return None


def check_doc(root, doc, tops, problems):
    rel = os.path.relpath(doc, root)
    for no, line in markdown_lines(doc):
        for span in CODE_SPAN.finditer(line):
            text = span.group(2).strip()
            if not PATH_LIKE.match(text) or "/" not in text.rstrip("/"):
                continue
            if text.split("/", 1)[0] not in tops:
                continue
            if not os.path.exists(os.path.join(root, text)):
                problems.append("%s:%d: `%s` names no file of the repository" % (rel, no, text))
        bare = strip_code_spans(line)
        targets = [m.group(1) for m in INLINE_LINK.finditer(bare)]
        m = REF_DEF.match(bare)
        if m:
            targets.append(m.group(1))
        for target in targets:
            if not target:
                problems.append("%s:%d: empty link" % (rel, no))
                continue
            why = check_link(root, doc, target)
            if why:
                problems.append("%s:%d: broken link (%s): %s" % (rel, no, target, why))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(here), help="repository root")
    args = ap.parse_args()
    root = os.path.abspath(args.root)

    docs = [os.path.join(root, "README.md"), os.path.join(root, "CONTRIBUTING.md")]
    docs_dir = os.path.join(root, "docs")
    if os.path.isdir(docs_dir):
        docs += sorted(os.path.join(docs_dir, n) for n in os.listdir(docs_dir) if n.endswith(".md"))

    problems = []
    tops = top_level_names(root)
    for doc in docs:
        if not os.path.exists(doc):
            problems.append("%s: missing" % os.path.relpath(doc, root))
            continue
        check_doc(root, doc, tops, problems)

    readme = os.path.join(root, "README.md")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            count = len(f.read().splitlines())
        if count >= README_MAX_LINES:
            problems.append("README.md:%d: %d lines; keep it under %d (move detail to docs/)"
                            % (count, count, README_MAX_LINES))

    for p in problems:
        print(p)
    if problems:
        print("check-links: %d problem(s) in %d file(s) checked" % (len(problems), len(docs)),
              file=sys.stderr)
        return 1
    print("check-links: %d files, every link, anchor and repository path resolves" % len(docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
