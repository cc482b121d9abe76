"""A database that turns read-only under `relance serve` is a lost primary:
/readyz answers 503 saying so, the connection is dropped and made again
with backoff, and once the database takes writes again relance is ready
and sends what came due meanwhile, without a restart.

Three ways in: default_transaction_read_only switched on for every
session by ALTER SYSTEM and a reload (relance's open session then fails
its next write with SQLSTATE 25006); switched on for relance's role with
its backend terminated (the new session is read-only from its start, which
the check at connect sees); and the server restarted as a standby, then
promoted (pg_is_in_recovery(), also checked at connect). The first and
the last change the whole server, so they run on a cluster of their own."""
import glob
import os
import time

import pytest

import harness
from harness import relance


# relance serve's connections: every statement but the points of no
# return, and theirs (service/ready.h: ready_pnr_db). Capture writes no
# point of no return, so only the first meets the read-only session here
# and is replaced; the other would be at its first write (db.c drops a
# connection whose statement fails with 25006).
BACKENDS = 5  # main, points of no return, the API's two, background

class World:
    """Sequence 'ro' applied, three contacts, and `relance serve`
    connected as a role of its own (so that the test's own sessions, the
    harness's psql and relance's commands, stay writable when it is not),
    sending through the capture transport; one step already sent."""

    def __init__(self, db, tmp, serve, check, role):
        self.db, self.tmp, self.check, self.role = db, tmp, check, role
        self.capture = os.path.join(tmp, "capture")
        self.env = {"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": tmp}
        db.psql(f"CREATE ROLE {role} LOGIN SUPERUSER")
        seq = harness.sequence(tmp, "custom_steps", name="ro", pool="founders", steps="""  - id: intro
    subject: "Hello"
    body: "Hi."
""")
        r = relance("apply", seq, env=self.env)
        assert r.returncode == 0 and "ro: created" in r.stdout, f"apply: {r.stdout + r.stderr}"
        db.psql("INSERT INTO contacts (email) VALUES ('a@one.example'), ('b@two.example'), ('c@three.example')")
        app_url = db.url().replace("//relance@", f"//{role}@")
        self.s = serve({"DATABASE_URL": app_url, "RELANCE_STATE_DIR": tmp, "RELANCE_TRANSPORT": "capture",
                        "RELANCE_CAPTURE_DIR": self.capture})
        self.s.wait_status("/readyz", 200)
        self.enroll("a@one.example")
        check.ok(harness.wait_until(lambda: self.captured("a@one.example"), 20),
                 "sends while the database is writable", self.s.output())
        check.eq(len(self.app_pids()), BACKENDS,
                 "relance's backends: the main one, the points of no return's, the API's two and the background's")

    def enroll(self, email, extra=None):
        r = relance("enroll", "--sequence", "ro", "--contact", email, env={**self.env, **(extra or {})})
        self.check.ok(r.returncode == 0 and "enrolled 1" in r.stdout, f"enroll {email}", r.stdout + r.stderr)

    def captured(self, email):
        for path in glob.glob(os.path.join(self.capture, "new", "*")):
            with open(path, "rb") as f:
                if email.encode() in f.read():
                    return True
        return False

    def app_pids(self):
        return {row[0] for row in self.db.psql(f"SELECT pid FROM pg_stat_activity WHERE usename = '{self.role}'")}

    def not_ready(self):
        st, body = self.s.get("/readyz")
        return body if st == 503 and isinstance(body, dict) else None

    def not_ready_saying(self, word):
        return harness.wait_until(lambda: (lambda b: b if b and word in b.get("reason", "") else None)(
            self.not_ready()), 20)

    def stops_cleanly(self):
        self.check.eq(self.s.stop(), 0, "SIGTERM exits 0")
        out = self.s.output()
        self.check.ok("handles left open" not in out and "AddressSanitizer" not in out
                      and "runtime error" not in out, "clean shutdown, sanitizers quiet", out[-2000:])


@pytest.fixture
def own(own_postgres, tmp, serve, check):
    pg = own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0, "migrate"
    return World(pg, tmp, serve, check, "app")


def test_every_session_turning_read_only_drops_the_connection_until_writes_return(own_postgres, own, check):
    pg, w, s = own_postgres, own, own.s
    before = w.app_pids()
    mark = len(s.output())
    pg.psql("ALTER SYSTEM SET default_transaction_read_only = on")
    pg.psql("SELECT pg_reload_conf()")
    started = time.time()
    body = harness.wait_until(w.not_ready, 20)
    check.ok(body and "read-only" in body.get("reason", ""), f"readyz 503 saying the database is read-only "
             f"({time.time() - started:.1f}s)", f"{body}\n{s.output()[mark:]}")
    log = s.output()[mark:]
    check.ok("read-only" in log and "connection dropped" in log, "the log says the connection was dropped and why",
             log)
    # due while read-only (relance's command gets a writable session of its own)
    w.enroll("b@two.example", {"PGOPTIONS": "-c default_transaction_read_only=off"})
    time.sleep(1)
    check.ok(w.not_ready() is not None, "still not ready while the database is read-only")
    check.ok(not w.captured("b@two.example"), "nothing is sent while the database is read-only")

    pg.psql("SET default_transaction_read_only = off; ALTER SYSTEM RESET default_transaction_read_only")
    pg.psql("SELECT pg_reload_conf()")
    s.wait_status("/readyz", 200, timeout=20)
    check.ok(harness.wait_until(lambda: w.captured("b@two.example"), 20), "the step that came due meanwhile is sent",
             s.output()[mark:])
    after = w.app_pids()
    # the connections that wrote were replaced; the API's, which only read
    # meanwhile, may still be the one it had (it is dropped at its first write)
    check.ok(len(after) <= BACKENDS and after - before, f"relance's backends were replaced ({before} -> {after})")
    w.stops_cleanly()


def test_a_session_that_starts_read_only_is_not_ready_until_the_role_is_writable(db, tmp, serve, check):
    # a role of this test's own: the run's shared cluster serves the others
    role = f"ro_{db.name}"
    w = World(db, tmp, serve, check, role)
    s = w.s
    mark = len(s.output())
    before = w.app_pids()
    db.psql(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    db.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
    try:
        body = w.not_ready_saying("read-only")
        check.ok(body is not None, "a session that starts read-only is not ready, and says why",
                 f"{body}\n{s.output()[mark:]}")
        w.enroll("c@three.example")
        time.sleep(1)
        check.ok(w.not_ready() is not None and not w.captured("c@three.example"), "still not ready, nothing sent")
    finally:
        db.psql(f"ALTER ROLE {role} RESET default_transaction_read_only")
    s.wait_status("/readyz", 200, timeout=20)
    check.ok(harness.wait_until(lambda: w.captured("c@three.example"), 20), "ready and sending once the role is writable",
             s.output()[mark:])
    after = w.app_pids()
    # the connections that wrote were replaced; the API's, which only read
    # meanwhile, may still be the one it had (it is dropped at its first write)
    check.ok(len(after) <= BACKENDS and after - before, f"relance's backends were replaced ({before} -> {after})")
    w.stops_cleanly()
    s.kill()
    db.drop()
    db.psql(f"DROP ROLE IF EXISTS {role}", db="postgres")


def test_a_standby_is_not_ready_until_promoted(own_postgres, own, check):
    # a failover's other half: the server comes back as a standby
    # (standby.signal: it restarts in recovery, a hot standby with no
    # primary, until pg_ctl promote makes it a primary again)
    pg, w, s = own_postgres, own, own.s
    mark = len(s.output())
    pg.stop()
    with open(os.path.join(pg.data, "standby.signal"), "w"):
        pass
    pg.start()
    check.eq(pg.psql("SELECT pg_is_in_recovery()")[0][0], "t", "the server is a standby")
    body = w.not_ready_saying("standby")
    check.ok(body is not None and "read-only" in body["reason"], "a standby is not ready, and says why",
             f"{body}\n{s.output()[mark:]}")
    pg.run(["pg_ctl", "-D", pg.data, "-w", "-t", "30", "promote"])
    s.wait_status("/readyz", 200, timeout=20)
    pg.psql("INSERT INTO contacts (email) VALUES ('d@four.example')")
    w.enroll("d@four.example")
    check.ok(harness.wait_until(lambda: w.captured("d@four.example"), 20), "and sending", s.output()[mark:])
    w.stops_cleanly()
