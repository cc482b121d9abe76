"""CSV import benchmark: `relance contacts import` of N generated contacts
against `psql \\copy` of the same file into a bare table with the same
columns (the floor: parsing and loading, no checks, no upsert).

As a script it starts its own PostgreSQL and prints both timings:

    RELANCE_BIN=build/relance python3 tests/bench/import.py [--rows N] [--rounds R]

tests/bench/run imports it and calls run(pg, env, rows, rounds), which
returns the seconds of each round for both ("relance", "copy"); rounds are
interleaved so drift in the machine hits both alike. Each relance round
imports into an empty contacts table (inserts: the expensive path)."""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

ZONES = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham", "UTC",
         "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", ""]
DOMAINS = ["acme.example", "beta.example", "gmail.com", "corp.test", "yahoo.fr", "example.org"]
HEADER = "email,first_name,last_name,title,company,timezone,crm_id,industry,notes"
BARE_TABLE = ("CREATE TABLE IF NOT EXISTS bench_import_bare (email text, first_name text, last_name text,"
              " title text, company text, timezone text, crm_id text, industry text, notes text)")


def generate(path, rows, seed=4):
    """Writes a CSV of `rows` contacts with a realistic mix: quoted fields,
    commas and quotes inside them, empty cells, custom columns."""
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "\r\n")
        for i in range(rows):
            domain = DOMAINS[i % len(DOMAINS)]
            notes = '"met at the fair, said ""call in Q3"""' if i % 7 == 0 else ""
            f.write(f"person{i}@{domain},First{i},Last {rnd.randint(1, 9999)},Head of Sales,"
                    f"\"Company {i % 5000}, Inc.\",{ZONES[i % len(ZONES)]},bench-import-{i},SaaS,{notes}\r\n")


def time_relance(env, path):
    start = time.monotonic()
    r = harness.relance("contacts", "import", path, env=env, timeout=900)
    took = time.monotonic() - start
    if r.returncode != 0 or not r.stdout.startswith("inserted"):
        raise RuntimeError(f"relance contacts import failed: {r.stderr[-2000:]}")
    return took


def time_copy(pg, path):
    start = time.monotonic()
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", pg.url(), "-c",
                        f"\\copy bench_import_bare FROM '{path}' WITH (FORMAT csv, HEADER true)"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {r.stderr}")
    return took


def run(pg, env, rows=100000, rounds=3, workdir=None):
    """Times both over `rounds` interleaved rounds; returns
    {"relance": [seconds...], "copy": [seconds...], "rows": rows}."""
    workdir = workdir or harness.short_tempdir("rbi")
    path = os.path.join(workdir, f"contacts-{rows}.csv")
    generate(path, rows)
    pg.psql(BARE_TABLE)
    out = {"relance": [], "copy": [], "rows": rows}
    for _ in range(rounds):
        pg.psql("TRUNCATE bench_import_bare")
        out["copy"].append(time_copy(pg, path))
        pg.psql("DELETE FROM contacts WHERE crm_id LIKE 'bench-import-%'")
        pg.psql("VACUUM contacts")
        out["relance"].append(time_relance(env, path))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pg = harness.Postgres()
    env = {"DATABASE_URL": pg.url()}
    r = harness.relance("migrate", env=env)
    if r.returncode != 0:
        sys.exit(f"migrate failed: {r.stderr}")
    res = run(pg, env, args.rows, args.rounds)
    rel, cp = statistics.median(res["relance"]), statistics.median(res["copy"])
    print(f"{'figure':<28}{'median':>10}{'min':>10}{'max':>10}")
    for name, v in (("relance contacts import", res["relance"]), ("psql \\copy (bare table)", res["copy"])):
        print(f"{name:<28}{statistics.median(v):>9.3f}s{min(v):>9.3f}s{max(v):>9.3f}s")
    print(f"{args.rows} rows: {args.rows / rel:,.0f} rows/s vs {args.rows / cp:,.0f} rows/s;"
          f" ratio (copy time / import time) {cp / rel:.2f}")


if __name__ == "__main__":
    main()
