"""Runs `relance classify` over the labelled fixtures in tests/fixtures/classify.

The fixtures are messages the classifier's rules were not fitted on, one
set per language (en fr de es it pt nl): a person's reply, a short
negative reply, an out-of-office with Auto-Submitted, a vacation-program
out-of-office without it, and a removal request. manifest.tsv gives each
file's kind and why it is labelled so. Every fixture must agree: a reply
called automatic loses a prospect, an auto-reply called a reply stops a
sequence on a reply that never happened. The fixtures live in the
repository, so this test never skips; each fixture is its own case.
"""
import os
import subprocess

import pytest

import harness

FOLDER = os.path.join(harness.FIXTURES, "classify")


def manifest():
    with open(os.path.join(FOLDER, "manifest.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


ROWS = manifest()


@pytest.fixture(scope="module")
def classified():
    """{file: kind} from one `relance classify` of every fixture."""
    proc = subprocess.run([harness.RELANCE, "classify"] + [r["file"] for r in ROWS], cwd=FOLDER,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, env=harness.relance_env())
    assert proc.returncode in (0, 1), \
        f"relance classify exited with {proc.returncode}: {proc.stderr.decode('utf-8', 'replace')}"
    got = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        cols = line.split("\t")
        if len(cols) >= 2:
            got[cols[0]] = cols[1]
    return got


def test_the_manifest_lists_fixtures():
    assert ROWS, f"no fixtures listed in {FOLDER}/manifest.tsv"


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_each_fixture_gets_its_labelled_kind(classified, row):
    kind = classified.get(row["file"], "missing")
    assert kind == row["kind"], f"{row['file']}: expected {row['kind']}, got {kind} ({row.get('why', '')})"
