"""Enroll benchmark: `relance enroll --csv` of N contacts into a sequence
against `relance contacts import` of the same CSV into an empty contacts
table, in the same rounds: the issue's yardstick is an enroll within 2x of
the import of the same rows (enroll took 273 s for 200,000 contacts when
it made one call per address; the import took 6.5 s).

As a script it starts its own PostgreSQL and prints both timings:

    RELANCE_BIN=build/relance python3 tests/bench/enroll.py [--rows N] [--rounds R]

tests/bench/run imports it and calls run(pg, env, rows, rounds), which
returns the seconds of each round for both ("enroll", "import"). A round
empties the contacts and enrollments, imports the file (timed: the bound),
then enrolls every row of it (timed): every enrollment is new, the
expensive path. The CSV is tests/bench/import.py's (quoted fields, custom
columns, a mix of time zones), so the next-send time is computed in many
zones."""
import argparse
import importlib.util
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402

# The contact's zone, a business-hours window on weekdays and jitter: the
# next-send computation a real sequence asks for.
SEQUENCE = """name: bench-enroll
sender_pool: bench
schedule:
  timezone: contact
  fallback_timezone: Europe/Paris
  window: "09:00-17:00"
  days: [mon, tue, wed, thu, fri]
  jitter: 15m
steps:
  - {id: intro, subject: "Hello {{first_name}}", body: "Hi."}
  - {id: bump, wait: 3 days, body: "Again."}
"""


def import_module():
    """tests/bench/import.py (its name is a keyword: loaded by path)."""
    spec = importlib.util.spec_from_file_location("bench_import_for_enroll", os.path.join(HERE, "import.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def time_enroll(env, path, rows):
    start = time.monotonic()
    r = harness.relance("enroll", "--sequence", "bench-enroll", "--csv", path, env=env, timeout=1800)
    took = time.monotonic() - start
    if r.returncode != 0 or r.stdout != f"enrolled {rows}, skipped 0\n":
        raise RuntimeError(f"relance enroll failed: {r.stdout[-500:]} {r.stderr[-2000:]}")
    return took


def run(pg, env, rows=200000, rounds=3, workdir=None):
    """Times both over `rounds` rounds; returns {"enroll": [seconds...],
    "import": [seconds...], "rows": rows}."""
    bench_import = import_module()
    workdir = workdir or harness.short_tempdir("rbe")
    path = os.path.join(workdir, f"contacts-{rows}.csv")
    bench_import.generate(path, rows)
    seq = os.path.join(workdir, "bench-enroll.yaml")
    with open(seq, "w") as f:
        f.write(SEQUENCE)
    r = harness.relance("apply", seq, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"relance apply failed: {r.stderr[-2000:]}")
    out = {"enroll": [], "import": [], "rows": rows}
    for _ in range(rounds):
        pg.psql("DELETE FROM enrollments; DELETE FROM contacts")
        pg.psql("VACUUM enrollments")
        pg.psql("VACUUM contacts")
        out["import"].append(bench_import.time_relance(env, path))
        pg.psql("ANALYZE contacts")
        out["enroll"].append(time_enroll(env, path, rows))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pg = harness.Postgres()
    env = {"DATABASE_URL": pg.url()}
    r = harness.relance("migrate", env=env)
    if r.returncode != 0:
        sys.exit(f"migrate failed: {r.stderr}")
    res = run(pg, env, args.rows, args.rounds)
    en, im = statistics.median(res["enroll"]), statistics.median(res["import"])
    print(f"{'figure':<28}{'median':>10}{'min':>10}{'max':>10}")
    for name, v in (("relance enroll --csv", res["enroll"]), ("relance contacts import", res["import"])):
        print(f"{name:<28}{statistics.median(v):>9.3f}s{min(v):>9.3f}s{max(v):>9.3f}s")
    print(f"{args.rows} rows: enroll {args.rows / en:,.0f} rows/s, import {args.rows / im:,.0f} rows/s;"
          f" enroll time / import time {en / im:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
    harness._cleanup()
