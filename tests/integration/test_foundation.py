"""Issue 2's foundation against a real PostgreSQL: migrate (empty, twice,
concurrently, tampered), serve's readiness across a PostgreSQL restart,
clean shutdown, and the command line's errors and exit codes."""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("foundation")
pg = harness.Postgres()
env = {"DATABASE_URL": pg.url()}

# --- command line -------------------------------------------------------
r = relance("--help")
t.eq(r.returncode, 0, "relance --help exits 0")
for cmd in ("serve", "migrate", "version", "config"):
    t.ok(f"\n  {cmd} " in r.stdout, f"--help lists {cmd}")
    h = relance(cmd, "--help")
    t.ok(h.returncode == 0 and "usage: relance " + cmd in h.stdout, f"relance {cmd} --help")
r = relance("version")
t.ok(r.returncode == 0 and r.stdout.startswith("relance "), "relance version", r.stdout)
r = relance("no-such-command")
t.ok(r.returncode == 2 and "unknown command 'no-such-command'" in r.stderr and r.stderr.count("\n") == 1,
     "unknown subcommand: one line, exit 2", r.stderr)
r = relance("--bogus", "version")
t.eq(r.returncode, 2, "unknown global option exits 2")
r = relance("migrate", "--frobnicate", env=env)
t.eq(r.returncode, 2, "unknown command option exits 2")

# --- configuration errors ----------------------------------------------
tmp = harness.short_tempdir("rcfg")
missing = os.path.join(tmp, "nope.yaml")
r = relance("--config", missing, "config")
t.ok(r.returncode == 1 and missing in r.stderr and r.stderr.count("\n") == 1, "missing config file: one line",
     r.stderr)
bad = os.path.join(tmp, "bad.yaml")
with open(bad, "w") as f:
    f.write("http:\n  listen: 127.0.0.1:9\ndatabse_url: x\n")
r = relance("--config", bad, "config")
t.ok(r.returncode == 1 and f"{bad}:3:1: unknown key 'databse_url' (did you mean 'database_url'?)" in r.stderr,
     "unknown key named with file:line:column and a suggestion", r.stderr)
with open(bad, "w") as f:
    f.write("http: [1, 2\n")
r = relance("--config", bad, "config")
t.ok(r.returncode == 1 and f"{bad}:" in r.stderr and "invalid YAML" in r.stderr, "malformed YAML", r.stderr)
with open(bad, "w") as f:
    f.write("database_url: ${RELANCE_TEST_UNSET_VAR}\n")
r = relance("--config", bad, "config")
t.ok(r.returncode == 1 and "RELANCE_TEST_UNSET_VAR is not set" in r.stderr and f"{bad}:1:15" in r.stderr,
     "unset ${VAR} is an error at its position", r.stderr)
good = os.path.join(tmp, "good.yaml")
with open(good, "w") as f:
    f.write("database_url: postgresql://u:${RELANCE_TEST_PW}@127.0.0.1:1/x\nhttp: {listen: '127.0.0.1:1'}\n")
r = relance("--config", good, "config", env={"RELANCE_TEST_PW": "s3cret-pw", "RELANCE_HTTP_LISTEN": "127.0.0.1:7"})
t.ok(r.returncode == 0 and "http.listen: 127.0.0.1:7" in r.stdout, "environment wins over the file", r.stdout)
t.ok("s3cret-pw" not in r.stdout + r.stderr and "u:***@" in r.stdout, "password redacted", r.stdout)
r = relance("--config", good, "config", env={"RELANCE_TEST_PW": "p"}, cwd=tmp)
t.ok("http.listen: 127.0.0.1:1" in r.stdout, "file wins over defaults", r.stdout)
r = relance("config", env={"RELANCE_CONFIG": good, "RELANCE_TEST_PW": "p"}, cwd=tmp)
t.ok(r.returncode == 0 and good in r.stdout, "RELANCE_CONFIG names the file", r.stdout)
with open(os.path.join(tmp, "relance.yaml"), "w") as f:
    f.write("http: {listen: '127.0.0.1:4'}\n")
r = relance("config", cwd=tmp)
t.ok(r.returncode == 0 and "http.listen: 127.0.0.1:4" in r.stdout, "./relance.yaml is the default file", r.stdout)
r = relance("config", cwd="/")
t.ok(r.returncode == 0 and "127.0.0.1:8080" in r.stdout, "no file: built-in defaults", r.stdout)

example = os.path.join(harness.SOURCE, "deploy", "relance.example.yaml")
r = relance("--config", example, "config", env={"DATABASE_URL": ""})
t.ok(r.returncode == 0 and "pool founders: 1 account" in r.stdout, "the annotated example configuration parses",
     r.stdout + r.stderr)

# --- unreachable database ------------------------------------------------
dead = {"DATABASE_URL": f"postgresql://relance@127.0.0.1:{harness.free_port()}/x?connect_timeout=3"}
start = time.time()
r = relance("migrate", env=dead, timeout=30)
t.ok(r.returncode == 1 and "cannot connect to the database" in r.stderr and time.time() - start < 10,
     "migrate against an unreachable database: clear error, exit 1", r.stderr)

# --- migrate ----------------------------------------------------------------
r = relance("migrate", "--status", env=env)
t.ok(r.returncode == 1 and "not migrated" in r.stdout, "status of an empty database", r.stdout + r.stderr)
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "applied 001_init.sql" in r.stdout, "migrate on an empty database", r.stdout + r.stderr)
applied = pg.psql("SELECT count(*) FROM relance_migrations")[0][0]
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "up to date" in r.stdout and "applied" not in r.stdout, "migrate twice is a no-op",
     r.stdout)
t.eq(pg.psql("SELECT count(*) FROM relance_migrations")[0][0], applied, "second run recorded nothing")
t.ok(int(applied) >= 1 and pg.psql("SELECT to_regclass('events') IS NOT NULL")[0][0] == "t", "schema exists")

# concurrent: four processes on a fresh database at once
url2 = pg.new_database("concurrent")
procs = [subprocess.Popen([harness.RELANCE, "migrate"], env={**harness.base_env(), "DATABASE_URL": url2},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
outs = [p.communicate(timeout=60) for p in procs]
codes = [p.returncode for p in procs]
t.eq(codes, [0, 0, 0, 0], "four concurrent migrates all succeed")
applied_lines = sum(o[0].count("applied ") for o in outs)
t.eq(applied_lines, int(applied), "each migration applied exactly once across concurrent runs")
t.eq(pg.psql("SELECT count(*) FROM relance_migrations", db="concurrent")[0][0], applied,
     "concurrent runs recorded each migration once")

# tampered: the recorded checksum no longer matches the embedded file
url3 = pg.new_database("tampered")
relance("migrate", env={"DATABASE_URL": url3})
pg.psql("UPDATE relance_migrations SET checksum = repeat('0', 64) WHERE name = '001_init.sql'", db="tampered")
r = relance("migrate", env={"DATABASE_URL": url3})
t.ok(r.returncode == 1 and "001_init.sql changed after it was applied" in r.stderr, "tampered migration refused",
     r.stderr)
r = relance("migrate", "--status", env={"DATABASE_URL": url3})
t.eq(r.returncode, 1, "status reports the tampered migration")

# --- serve ----------------------------------------------------------------
unmigrated = pg.new_database("unmigrated")
s = harness.Serve({"DATABASE_URL": unmigrated})
st, body = s.wait_status("/healthz", 200)
t.ok(True, "healthz answers 200")
# the first answers may say the database is not connected yet (a loaded
# machine): wait for the verdict on the schema itself
st, body = harness.wait_until(lambda: (lambda r: r if "connected" not in r[1].get("reason", "") else None)(
    s.get("/readyz")), 10) or s.get("/readyz")
t.ok(st == 503 and "migrate" in body.get("reason", ""), "readyz 503 with a reason on an unmigrated database",
     str(body))
relance("migrate", env={"DATABASE_URL": unmigrated})
s.wait_status("/readyz", 200, timeout=10)
t.ok(True, "readyz turns 200 after migrate, without a restart")
st, body = s.get("/nope")
t.ok(st == 404 and "error" in body, "unknown path: 404 with a JSON reason", str(body))
t.eq(s.stop(signal.SIGINT), 0, "SIGINT exits 0")
t.ok("handles left open" not in s.output() and "ERROR" not in s.output(), "clean loop shutdown", s.output())

s = harness.Serve(env)
s.wait_status("/readyz", 200)
t.ok(True, "serve reports ready")
pg.stop()
st, body = s.wait_status("/readyz", 503, timeout=10)
t.ok("unreachable" in body.get("reason", ""), "not ready while PostgreSQL is stopped", str(body))
t.eq(s.get("/healthz")[0], 200, "still alive while PostgreSQL is stopped")
time.sleep(2)  # let it back off a few times
pg.start()
restarted = time.time()
s.wait_status("/readyz", 200, timeout=10)
t.ok(time.time() - restarted < 10, f"ready again {time.time() - restarted:.1f}s after PostgreSQL restarted")
t.eq(s.stop(signal.SIGTERM), 0, "SIGTERM exits 0")
out = s.output()
t.ok("stopped" in out and "handles left open" not in out, "loop closed with no live handles", out)
t.ok("ERROR: AddressSanitizer" not in out and "runtime error" not in out, "sanitizers quiet", out)

# serve with PostgreSQL down from the start, then up
pg.stop()
s = harness.Serve(env)
s.wait_status("/healthz", 200)
st, body = s.get("/readyz")
t.eq(st, 503, "unreachable at start: not ready, still running")
pg.start()
s.wait_status("/readyz", 200, timeout=10)
t.ok(True, "connects once PostgreSQL comes up")
t.eq(s.stop(), 0, "SIGTERM exits 0")

# serve on a port that is taken: one clear line, exit 1
s1 = harness.Serve(env)
s1.wait_status("/healthz", 200)
r = relance("serve", env={**env, "RELANCE_HTTP_LISTEN": f"127.0.0.1:{s1.port}"}, timeout=20)
t.ok(r.returncode == 1 and "cannot listen" in r.stderr, "port in use: clear error, exit 1", r.stderr)
s1.stop()

# json logs
s = harness.Serve(env, args=("--log-format", "json"))
s.wait_status("/readyz", 200)
s.stop()
lines = [ln for ln in s.output().splitlines() if ln.strip()]
import json  # noqa: E402
try:
    parsed = [json.loads(ln) for ln in lines]
    t.ok(all("event" in p and "ts" in p for p in parsed), "--log-format json: every line is a JSON object")
except ValueError as e:
    t.ok(False, "--log-format json: every line is a JSON object", f"{e}: {lines}")

t.done()
