"""tests/bench/run --quick keeps working: it runs the benchmark harness in
its quick mode (small sizes, 2 interleaved rounds, its own PostgreSQL)
against $RELANCE_BIN and checks that every expected figure was produced,
with a positive median and a well-formed JSON row, and that the table was
printed. It never checks a ratio against its target, nor how long the run
took (it prints that): figures and times on a shared machine under
sanitizers say nothing about speed; they only prove that the harness and
each scenario still run. A run that hangs is cut by the timeout."""
import json
import math
import os
import subprocess
import sys
import time

import pytest

import harness

# Figure names start with the scenario's own name; each scenario of
# tests/bench/run adds its prefix here, with how many figures --quick
# gives (send_throughput: no DKIM, RSA-2048, Ed25519; the nodemailer
# rows need npm and are left out of --quick; watch: reply-to-stop p50,
# p95 and max, IMAP connections held, CPU per mailbox pass; watch_held:
# replies detected, reply-to-stop p95 and max; watch_backlog: messages
# recorded a second, the reply behind the backlog; enroll: contacts
# enrolled a second beside the import of the same rows; webhooks: events
# delivered a second, the outbox lag p95).
EXPECTED = {"claim_rate": 1, "idle tick": 1, "import": 1, "enroll": 1, "send_throughput": 3, "memory": 1,
            "watch ": 5,
            "watch_held ": 3, "watch_backlog ": 2, "webhook ": 2}
KEYS = {"name": str, "unit": str, "median": (int, float), "min": (int, float), "max": (int, float),
        "bound_name": str, "bound_median": (int, float), "ratio": (int, float), "target": (int, float)}



@pytest.fixture(scope="module")
def bench(module_tmp):
    """One `tests/bench/run --quick --json` run: (process, the JSON or None)."""
    run = os.path.join(harness.SOURCE, "tests", "bench", "run")
    out = os.path.join(module_tmp, "bench.json")
    env = harness.relance_env({"RELANCE_BIN": harness.RELANCE})
    start = time.monotonic()
    p = subprocess.run([sys.executable, run, "--quick", "--json", out], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=600)
    took = time.monotonic() - start
    print(p.stdout)
    # tests never fail on timing: the duration is reported, not judged
    print(f"     --quick took {took:.0f}s (its budget is 2 minutes on a quiet machine; sanitizers slow it)")
    try:
        with open(out) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = None
    return p, doc


def test_every_scenario_runs_and_the_table_is_printed(bench):
    p, _ = bench
    assert p.returncode == 0, f"tests/bench/run --quick exits 0 (every scenario ran):\n{p.stderr[-4000:]}"
    assert "figure" in p.stdout and "ratio" in p.stdout and "met?" in p.stdout, "the table is printed"


def test_the_json_has_figures_and_says_nodemailer_was_left_out(bench):
    _, doc = bench
    assert doc is not None, "--json wrote a JSON file"
    figures = doc.get("figures", [])
    assert isinstance(figures, list) and figures, "the JSON has a non-empty figures list"
    assert any("nodemailer" in n for n in doc.get("notes", [])), \
        f"--quick says it left the nodemailer rows out: {doc.get('notes')}"


@pytest.mark.parametrize("prefix, count", list(EXPECTED.items()))
def test_each_scenario_gives_its_figures(bench, prefix, count):
    figures = (bench[1] or {}).get("figures", [])
    rows = [f for f in figures if isinstance(f, dict) and str(f.get("name", "")).startswith(prefix)]
    assert len(rows) == count, f"{count} figure(s) for {prefix}"


def test_every_row_is_well_formed(bench, check):
    figures = (bench[1] or {}).get("figures", [])
    assert figures, "figures to check"
    for f in figures:
        name = f.get("name", "?") if isinstance(f, dict) else "?"
        bad = [k for k, typ in KEYS.items() if not isinstance(f.get(k), typ) or isinstance(f.get(k), bool)]
        check.ok(not bad, f"{name}: row has every key with the right type", f"bad or missing: {bad}")
        if bad:
            continue
        nums = [f[k] for k in ("median", "min", "max", "bound_median", "ratio", "target")]
        check.ok(all(math.isfinite(x) for x in nums), f"{name}: numbers are finite")
        check.ok(f["median"] > 0 and f["bound_median"] > 0, f"{name}: positive medians",
                 f"median {f['median']}, bound median {f['bound_median']}")
        check.ok(f["min"] <= f["median"] <= f["max"], f"{name}: min <= median <= max")
        check.ok(abs(f["ratio"] - f["median"] / f["bound_median"]) <= 1e-9 * max(1.0, f["ratio"]),
                 f"{name}: ratio = median / bound median")
        check.ok(f["unit"] != "" and f["bound_name"] != "", f"{name}: unit and bound are named")
