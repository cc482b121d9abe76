"""HTTP API benchmarks for tests/bench/run (issue 19), each beside its bound:

- reads: `wrk` (Debian's) with 64 connections on one GET of the API, its
  requests a second and p99 latency, against relance-api-bound (built
  beside relance from tests/bench/api_bound.c): the same key check and the
  very statement relance runs for that request, through one libpq
  connection in a tight C loop — the work without HTTP, the loop and
  concurrency.
- bulk writes: POST /v1/contacts/bulk of N contacts in batches of 1,000,
  on BULK_CONNECTIONS kept-alive connections (and, for the record, on
  one), against `relance contacts import` of the same rows as CSV; each
  side starts from an empty contacts table.

tests/bench/run imports it; everything comes from the standard library,
the harness and Debian's packages (wrk: deploy/deps bench)."""
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

# The read measured, and the statement relance runs for it (the bound's:
# the instant and by_account as relance passes them).
GET_PATH = "/v1/enrollments/{id}"
GET_SQL = "SELECT status, body FROM relance_api_enrollment_get($1, now(), true)"
CONNECTIONS = 64
BATCH = 1000
# A CRM's sync job sends its batches on a couple of connections: the
# next batch is read and checked while the last one is in PostgreSQL, as
# the import reads its file while COPY streams. relance's API has as
# many database connections (ready.h: READY_API_DBS).
BULK_CONNECTIONS = 2


def bound_binary():
    path = os.path.join(os.path.dirname(os.path.abspath(harness.RELANCE)), "relance-api-bound")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} not found: build it (cmake --build; it is built beside relance)")
    return path


def config(workdir):
    """A configuration with a rate limit no benchmark reaches."""
    path = os.path.join(workdir, "api-bench.yaml")
    with open(path, "w") as f:
        f.write("http:\n  api_rate_limit: 100000000\n  api_rate_burst: 100000000\n")
    return path


def new_key(env):
    r = harness.relance("api-keys", "create", f"bench-{time.monotonic_ns()}", "--scopes", "*", env=env)
    if r.returncode != 0:
        raise RuntimeError(f"api-keys create failed: {r.stderr}")
    return r.stdout.strip()


def load_rows(db, env, workdir, n):
    """n contacts enrolled in a two-step sequence (the second step a month
    later); returns the id of one enrollment in the middle."""
    seq = harness.sequence(workdir, "two_step", name="bench-api", pool="main", wait="30d")
    r = harness.relance("apply", seq, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"apply failed: {r.stdout + r.stderr}")
    db.psql(f"INSERT INTO contacts (email, first_name, fields) SELECT 'api' || i || '@bench.example', 'First' || i, "
            f"jsonb_build_object('industry', 'SaaS') FROM generate_series(1, {n}) i ON CONFLICT DO NOTHING")
    r = harness.relance("enroll", "--sequence", "bench-api", "--where", "email LIKE 'api%@bench.example'", env=env,
                        timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"enroll failed: {r.stdout + r.stderr}")
    return db.psql(f"SELECT id FROM enrollments ORDER BY id OFFSET {n // 2} LIMIT 1")[0][0]


def parse_wrk(out):
    """(requests a second, p99 latency in ms) from wrk --latency's output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not rate or not p99:
        raise RuntimeError(f"wrk's output was not understood: {out[-800:]}")
    if errors:
        raise RuntimeError(f"wrk got {errors.group(1)} error answers: {out[-800:]}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rate.group(1)), float(p99.group(1)) * scale


def wrk(url, key, seconds):
    if not shutil.which("wrk"):
        raise RuntimeError("wrk not found: deploy/deps bench installs it")
    r = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
                        "-H", f"Authorization: Bearer {key}", url], capture_output=True, text=True,
                       timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed: {r.stderr[-800:]}")
    return parse_wrk(r.stdout)


def bound(db, key, param, seconds):
    stored = hashlib.sha256(key.encode()).hexdigest()
    r = subprocess.run([bound_binary(), db.url(), str(seconds), key, stored, GET_SQL, param],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"rate ([\d.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"relance-api-bound failed: {r.stdout + r.stderr}")
    return float(m.group(1))


def run_reads(db, env, workdir, rounds, seconds, rows):
    """Rounds of wrk on GET_PATH and of the bound, interleaved. Returns
    {"relance": [rate], "p99": [ms], "bound": [rate]}."""
    ident = load_rows(db, env, workdir, rows)
    e = dict(env, RELANCE_CONFIG=config(workdir))
    key = new_key(e)
    serve = harness.Serve(e)
    out = {"relance": [], "p99": [], "bound": []}
    try:
        serve.wait_status("/readyz", 200, timeout=30)
        url = serve.base + GET_PATH.format(id=ident)
        wrk(url, key, 1)  # warm: the key cache, the statement's plan
        for _ in range(rounds):
            rate, p99 = wrk(url, key, seconds)
            out["relance"].append(rate)
            out["p99"].append(p99)
            out["bound"].append(bound(db, key, str(ident), seconds))
    finally:
        serve.stop()
    return out


def contacts_rows(n):
    return [{"email": f"bulk{i}@bulk-{i % 50}.example", "first_name": f"First{i}", "last_name": f"Last{i}",
             "company": f"Company {i % 5000}", "external_id": f"bulk-{i}",
             "timezone": ["Europe/Paris", "America/New_York", "UTC", None][i % 4],
             "fields": {"industry": "SaaS"}} for i in range(n)]


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("email,first_name,last_name,company,crm_id,timezone,industry\n")
        for r in rows:
            f.write(f"{r['email']},{r['first_name']},{r['last_name']},{r['company']},{r['external_id']},"
                    f"{r['timezone'] or ''},{r['fields']['industry']}\n")


def post_bulk(base, key, rows, connections=1):
    """Seconds to POST rows in batches of BATCH over `connections` kept-alive
    connections, each sending its next batch once its last is answered."""
    host, port = base.replace("http://", "").split(":")
    bodies = [json.dumps({"contacts": rows[i:i + BATCH]}).encode() for i in range(0, len(rows), BATCH)]
    queue = list(reversed(bodies))
    failed = []
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while not failed:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn.request("POST", "/v1/contacts/bulk", body, {"Authorization": f"Bearer {key}",
                                                              "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or b'"invalid"' in data:
                failed.append(f"bulk answered {resp.status}: {data[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    if failed:
        raise RuntimeError(failed[0])
    return took


def run_bulk(db, env, workdir, rounds, n):
    """Rounds of the API's bulk upsert, on one connection then on
    BULK_CONNECTIONS, and of the CSV import of the same rows, each into
    an empty contacts table. Returns {"api": [s], "api1": [s], "import": [s]}
    (api: on BULK_CONNECTIONS; api1: on one)."""
    rows = contacts_rows(n)
    csv = os.path.join(workdir, "bulk.csv")
    write_csv(csv, rows)
    e = dict(env, RELANCE_CONFIG=config(workdir))
    key = new_key(e)
    serve = harness.Serve(e)
    out = {"api": [], "api1": [], "import": []}
    empty = "TRUNCATE contacts, enrollments, messages, inbound_messages CASCADE"
    try:
        serve.wait_status("/readyz", 200, timeout=30)
        for _ in range(rounds):
            db.psql(empty)
            out["api1"].append(post_bulk(serve.base, key, rows))
            db.psql(empty)
            out["api"].append(post_bulk(serve.base, key, rows, BULK_CONNECTIONS))
            db.psql(empty)
            start = time.monotonic()
            r = harness.relance("contacts", "import", csv, env=e, timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"contacts import failed: {r.stderr[-800:]}")
            out["import"].append(time.monotonic() - start)
    finally:
        serve.stop()
    return out
