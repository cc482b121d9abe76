#!/usr/bin/python3
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

# Figure names start with the scenario's own name; each scenario of
# tests/bench/run adds its prefix here, with how many figures --quick
# gives (send_throughput: no DKIM, RSA-2048, Ed25519; the nodemailer
# rows need npm and are left out of --quick; watch: reply-to-stop p50,
# p95 and max, IMAP connections held, CPU per mailbox pass; watch_held:
# replies detected, reply-to-stop p95 and max; watch_backlog: messages
# recorded a second, the reply behind the backlog).
EXPECTED = {"claim_rate": 1, "idle tick": 1, "import": 1, "send_throughput": 3, "memory": 1, "watch ": 5,
            "watch_held ": 3, "watch_backlog ": 2}
KEYS = {"name": str, "unit": str, "median": (int, float), "min": (int, float), "max": (int, float),
        "bound_name": str, "bound_median": (int, float), "ratio": (int, float), "target": (int, float)}

t = harness.Check("bench_quick")
run = os.path.join(harness.SOURCE, "tests", "bench", "run")
out = os.path.join(harness.short_tempdir("rbq"), "bench.json")
env = dict(os.environ, RELANCE_BIN=harness.RELANCE)
start = time.monotonic()
p = subprocess.run([sys.executable, run, "--quick", "--json", out], env=env, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True, timeout=600)
took = time.monotonic() - start
print(p.stdout)
t.eq(p.returncode, 0, "tests/bench/run --quick exits 0 (every scenario ran)")
if p.returncode != 0:
    print(p.stderr[-4000:])
# tests never fail on timing: the duration is reported, not judged
print(f"     --quick took {took:.0f}s (its budget is 2 minutes on a quiet machine; sanitizers slow it)")
t.ok("figure" in p.stdout and "ratio" in p.stdout and "met?" in p.stdout, "the table is printed")

try:
    with open(out) as f:
        doc = json.load(f)
except (OSError, ValueError) as e:
    doc = {}
    t.ok(False, "--json wrote a JSON file", str(e))
figures = doc.get("figures", [])
t.ok(isinstance(figures, list) and figures, "the JSON has a non-empty figures list")
for prefix, count in EXPECTED.items():
    rows = [f for f in figures if isinstance(f, dict) and str(f.get("name", "")).startswith(prefix)]
    t.eq(len(rows), count, f"{count} figure(s) for {prefix}")
t.ok(any("nodemailer" in n for n in doc.get("notes", [])), "--quick says it left the nodemailer rows out",
     str(doc.get("notes")))
for f in figures:
    name = f.get("name", "?") if isinstance(f, dict) else "?"
    bad = [k for k, typ in KEYS.items() if not isinstance(f.get(k), typ) or isinstance(f.get(k), bool)]
    t.ok(not bad, f"{name}: row has every key with the right type", f"bad or missing: {bad}")
    if bad:
        continue
    nums = [f[k] for k in ("median", "min", "max", "bound_median", "ratio", "target")]
    t.ok(all(math.isfinite(x) for x in nums), f"{name}: numbers are finite")
    t.ok(f["median"] > 0 and f["bound_median"] > 0, f"{name}: positive medians",
         f"median {f['median']}, bound median {f['bound_median']}")
    t.ok(f["min"] <= f["median"] <= f["max"], f"{name}: min <= median <= max")
    t.ok(abs(f["ratio"] - f["median"] / f["bound_median"]) <= 1e-9 * max(1.0, f["ratio"]),
         f"{name}: ratio = median / bound median")
    t.ok(f["unit"] != "" and f["bound_name"] != "", f"{name}: unit and bound are named")
t.done()
