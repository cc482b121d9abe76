#!/usr/bin/python3
"""Runs `relance classify` over the labelled fixtures in tests/fixtures/classify.

The fixtures are messages the classifier's rules were not fitted on, one
set per language (en fr de es it pt nl): a person's reply, a short
negative reply, an out-of-office with Auto-Submitted, a vacation-program
out-of-office without it, and a removal request. manifest.tsv gives each
file's kind and why it is labelled so. Every fixture must agree: a reply
called automatic loses a prospect, an auto-reply called a reply stops a
sequence on a reply that never happened. The fixtures live in the
repository, so this test never skips.

Environment: RELANCE_BIN (the binary), RELANCE_SOURCE_DIR (the checkout).
Standard library only.
"""
import os
import subprocess
import sys


def main():
    binary = os.environ.get("RELANCE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("RELANCE_BIN is not set to an executable relance binary")
        return 1
    src = os.environ.get("RELANCE_SOURCE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    folder = os.path.normpath(os.path.join(src, "tests", "fixtures", "classify"))
    rows = []
    with open(os.path.join(folder, "manifest.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    if not rows:
        print("no fixtures listed in %s/manifest.tsv" % folder)
        return 1
    proc = subprocess.run([binary, "classify"] + [r["file"] for r in rows], cwd=folder,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        print("relance classify exited with %d" % proc.returncode)
        return 1
    got = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        cols = line.split("\t")
        if len(cols) >= 2:
            got[cols[0]] = cols[1]
    by_lang = {}
    misses = []
    for r in rows:
        lang = r["file"].split("-", 1)[0]
        kind = got.get(r["file"], "missing")
        ok, n = by_lang.get(lang, (0, 0))
        by_lang[lang] = (ok + (kind == r["kind"]), n + 1)
        if kind != r["kind"]:
            misses.append("  %s: expected %s, got %s (%s)" % (r["file"], r["kind"], kind,
                                                              r.get("why", "")))
    for lang in sorted(by_lang):
        ok, n = by_lang[lang]
        print("%s %2d/%2d" % (lang, ok, n))
    agree = len(rows) - len(misses)
    print("fixture agreement: %d/%d (needs all)" % (agree, len(rows)))
    if misses:
        print("disagreements:")
        print("\n".join(misses))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
