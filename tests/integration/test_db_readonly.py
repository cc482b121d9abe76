"""A database that turns read-only under `relance serve` is a lost primary
(issue 14): /readyz answers 503 saying so, the connection is dropped and
made again with backoff, and once the database takes writes again relance
is ready and sends what came due meanwhile, without a restart.

Three ways in: default_transaction_read_only switched on for every
session by ALTER SYSTEM and a reload (relance's open session then fails
its next write with SQLSTATE 25006); switched on for relance's role with
its backend terminated (the new session is read-only from its start, which
the check at connect sees); and the server restarted as a standby, then
promoted (pg_is_in_recovery(), also checked at connect)."""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("db_readonly")
pg = harness.Postgres()
tmp = harness.short_tempdir("rro")
capture = os.path.join(tmp, "capture")
env = {"DATABASE_URL": pg.url(), "RELANCE_STATE_DIR": tmp}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")

# relance serve connects as its own role, so that the test's own sessions
# (the harness's psql, relance's commands) stay writable when it is not.
pg.psql("CREATE ROLE app LOGIN SUPERUSER")
app_url = f"postgresql://app@127.0.0.1:{pg.port}/relance"

seq = os.path.join(tmp, "ro.yaml")
with open(seq, "w") as f:
    f.write("""name: ro
sender_pool: founders
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - id: intro
    subject: "Hello"
    body: "Hi."
""")
r = relance("apply", seq, env=env)
t.ok(r.returncode == 0 and "ro: created" in r.stdout, "apply", r.stdout + r.stderr)
pg.psql("INSERT INTO contacts (email) VALUES ('a@one.example'), ('b@two.example'), ('c@three.example')")


def enroll(email, extra=None):
    r = relance("enroll", "--sequence", "ro", "--contact", email, env={**env, **(extra or {})})
    t.ok(r.returncode == 0 and "enrolled 1" in r.stdout, f"enroll {email}", r.stdout + r.stderr)


def captured(email):
    for path in glob.glob(os.path.join(capture, "new", "*")):
        with open(path, "rb") as f:
            if email.encode() in f.read():
                return True
    return False


def app_pids():
    return {row[0] for row in pg.psql("SELECT pid FROM pg_stat_activity WHERE usename = 'app'")}


def not_ready(s):
    st, body = s.get("/readyz")
    return body if st == 503 and isinstance(body, dict) else None


s = harness.Serve({"DATABASE_URL": app_url, "RELANCE_STATE_DIR": tmp, "RELANCE_TRANSPORT": "capture",
                   "RELANCE_CAPTURE_DIR": capture})
s.wait_status("/readyz", 200)
enroll("a@one.example")
t.ok(harness.wait_until(lambda: captured("a@one.example"), 20), "sends while the database is writable", s.output())
before = app_pids()
t.eq(len(before), 1, "one backend for relance")

# --- 1. every session turns read-only: the next write fails with 25006 ---
mark = len(s.output())
pg.psql("ALTER SYSTEM SET default_transaction_read_only = on")
pg.psql("SELECT pg_reload_conf()")
started = time.time()
body = harness.wait_until(lambda: not_ready(s), 20)
t.ok(body and "read-only" in body.get("reason", ""), f"readyz 503 saying the database is read-only "
     f"({time.time() - started:.1f}s)", f"{body}\n{s.output()[mark:]}")
log = s.output()[mark:]
t.ok("read-only" in log and "connection dropped" in log, "the log says the connection was dropped and why", log)
# due while read-only (relance's command gets a writable session of its own)
enroll("b@two.example", {"PGOPTIONS": "-c default_transaction_read_only=off"})
time.sleep(1)
t.ok(not_ready(s) is not None, "still not ready while the database is read-only")
t.ok(not captured("b@two.example"), "nothing is sent while the database is read-only")

pg.psql("SET default_transaction_read_only = off; ALTER SYSTEM RESET default_transaction_read_only")
pg.psql("SELECT pg_reload_conf()")
started = time.time()
s.wait_status("/readyz", 200, timeout=20)
t.ok(True, f"ready again {time.time() - started:.1f}s after the database took writes again")
t.ok(harness.wait_until(lambda: captured("b@two.example"), 20), "the step that came due meanwhile is sent",
     s.output()[mark:])
after = app_pids()
t.ok(len(after) == 1 and after != before, f"relance's backend was replaced ({before} -> {after})")

# --- 2. relance's new sessions start read-only: the check at connect -----
mark = len(s.output())
before = app_pids()
pg.psql("ALTER ROLE app SET default_transaction_read_only = on")
pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'")
body = harness.wait_until(lambda: (lambda b: b if b and "read-only" in b.get("reason", "") else None)(not_ready(s)),
                          20)
t.ok(body is not None, "a session that starts read-only is not ready, and says why", f"{body}\n{s.output()[mark:]}")
enroll("c@three.example")
time.sleep(1)
t.ok(not_ready(s) is not None and not captured("c@three.example"), "still not ready, nothing sent")
pg.psql("ALTER ROLE app RESET default_transaction_read_only")
s.wait_status("/readyz", 200, timeout=20)
t.ok(harness.wait_until(lambda: captured("c@three.example"), 20), "ready and sending once the role is writable",
     s.output()[mark:])
after = app_pids()
t.ok(len(after) == 1 and after != before, f"relance's backend was replaced ({before} -> {after})")

# --- 3. a failover's other half: the server comes back as a standby -------
# (standby.signal: it restarts in recovery, a hot standby with no primary,
# until pg_ctl promote makes it a primary again)
mark = len(s.output())
pg.stop()
with open(os.path.join(pg.data, "standby.signal"), "w"):
    pass
pg.start()
t.eq(pg.psql("SELECT pg_is_in_recovery()")[0][0], "t", "the server is a standby")
body = harness.wait_until(lambda: (lambda b: b if b and "standby" in b.get("reason", "") else None)(not_ready(s)),
                          20)
t.ok(body is not None and "read-only" in body["reason"], "a standby is not ready, and says why",
     f"{body}\n{s.output()[mark:]}")
pg._run(["pg_ctl", "-D", pg.data, "-w", "-t", "30", "promote"])
s.wait_status("/readyz", 200, timeout=20)
t.ok(True, "ready once the standby is promoted")
pg.psql("INSERT INTO contacts (email) VALUES ('d@four.example')")
enroll("d@four.example")
t.ok(harness.wait_until(lambda: captured("d@four.example"), 20), "and sending", s.output()[mark:])

t.eq(s.stop(), 0, "SIGTERM exits 0")
out = s.output()
t.ok("handles left open" not in out and "AddressSanitizer" not in out and "runtime error" not in out,
     "clean shutdown, sanitizers quiet", out[-2000:])
t.done()
