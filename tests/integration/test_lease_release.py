"""A clean stop gives the account leases up: replicas share one
PostgreSQL and each sender account is leased by one of them at a time
(renewed every 5 s, valid 30 s). Before, a replica stopped with SIGTERM
kept its leases until they expired, so one restarted right after it sent
nothing for up to 30 s.

Two accounts: one on Postfix (tests/mailservers.py), one on a scripted
plaintext SMTP server in this file that stops reading a body for HOLD
seconds, for the one thing Postfix will not do on demand: keep a body on
the wire while the replica stops. (Its socket takes little at a time and
the body is large, so that the body cannot all sit in kernel buffers:
relance is then still sending it. A held final reply would not do: libcurl
7.88 waits for that reply blocking the loop, so the stop would only begin
after it.)

- replica A holds both leases; SIGTERM: it exits 0 and no lease of it is
  left right after.
- replica B, started at once, takes the leases and sends a due step within
  a few seconds (far below the 30 s expiry; the figure is printed).
- SIGTERM to B while a body of the slow account is being sent:
  that account's lease stays B's while the body drains (another replica
  could otherwise claim from it while a message of it may still go out),
  and is gone once B exits.
- replica C takes the leases; SIGKILL leaves them held (they expire as
  before: nothing can give them up).
- a database that does not answer (the leases table locked) does not hang
  the stop: it ends within shutdown_grace (12 s here) and the leases are
  left to expire; nor does a database that is down.
- a stop while an outcome's write waits on the database (the messages
  table locked) ends as cleanly: what still waits for that answer is kept
  until it comes or the database is closed under it."""
import contextlib
import datetime
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
import pgcluster
from harness import relance

HOLD = 3.0  # seconds the scripted server stops reading a body
CLOSE_S = 12  # shutdown_grace here: how long a stop may wait for the database
FAST = "sender@acme.example"
SLOW = "slow@acme.example"
# ~84 KB of text that goes out quoted-printable (~250 KB): far more than
# the kernel buffers between relance and the slow server
BIG = "".join(f"      {chr(0xe9) * 60}\n" for _ in range(700))
pytestmark = pytest.mark.mail(users=[(FAST, "pw")])


class SlowSMTP:
    """A plaintext SMTP sink that, after the first bytes of a body, stops
    reading for HOLD seconds; records when each body ended."""

    def __init__(self):
        self.stalled = False   # a body's first bytes came; the rest waits
        self.resumed = False   # set just before the body is read on
        self.bodies = []       # the time each final dot came
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # small windows and segments: what relance's kernel may buffer
        # for us stays far below the body's size
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def close(self):
        self.sock.close()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        with conn:
            try:
                f = conn.makefile("rb")
                conn.sendall(b"220 slow ESMTP\r\n")
                while True:
                    line = f.readline()
                    if not line:
                        return
                    verb = line.decode(errors="replace").strip().split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        conn.sendall(b"250-slow\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
                    elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                        conn.sendall(b"250 2.0.0 Ok\r\n")
                    elif verb == "DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        got = 0
                        while True:
                            chunk = f.readline()
                            if not chunk:
                                return
                            if chunk == b".\r\n":
                                break
                            got += len(chunk)
                            if got > 2048 and not self.stalled:
                                self.stalled = True
                                time.sleep(HOLD)
                                self.resumed = True
                        self.bodies.append(time.time())
                        conn.sendall(b"250 2.0.0 queued\r\n")
                    elif verb == "QUIT":
                        conn.sendall(b"221 2.0.0 Bye\r\n")
                        return
                    else:
                        conn.sendall(b"502 5.5.2 Unknown command\r\n")
            except OSError:
                pass


@pytest.fixture
def slow():
    srv = SlowSMTP()
    yield srv
    srv.close()


class World:
    """Pool main (FAST, on Postfix) and pool slow (SLOW, on the slow
    server), sequences fast and slow, two contacts."""

    def __init__(self, ms, slow, db, tmp, serve):
        self.serve = serve
        cfg = harness.pool_config(tmp, {"main": [harness.account(ms, FAST, "PW")]})
        with open(cfg) as f:
            pools = f.read()
        with open(cfg, "w") as f:
            f.write(f"shutdown_grace: {CLOSE_S}s\n{pools}")
        with open(cfg, "a") as f:
            f.write(f"""  slow:
    accounts:
      - email: {SLOW}
        smtp: smtp://127.0.0.1:{slow.port}
        tls: none
        auth: none
""")
        self.env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW": "pw"}
        for name, pool, body in (("fast", "main", "      Hi.\n"), ("slow", "slow", BIG)):
            seq = harness.sequence(tmp, "custom_steps", name=name, pool=pool,
                                   steps=f"  - id: one\n    subject: Hello\n    body: |\n{body}")
            assert relance("apply", seq, env=self.env).returncode == 0, f"apply {name}"
        db.psql("INSERT INTO contacts (email) VALUES ('b@prospects.example'), ('s@prospects.example')")


@pytest.fixture
def w(mail, slow, db, tmp, serve):
    return World(mail, slow, db, tmp, serve)


def leases(db):
    """{account email: (holder, unexpired)} for the account leases."""
    rows = db.psql("SELECT a.email, l.holder, l.expires_at > clock_timestamp() FROM leases l "
                   "JOIN accounts a ON l.name = 'account:' || a.id ORDER BY a.email")
    return {r[0]: (r[1], r[2] == "t") for r in rows}


def held_by(db, serve):
    """The accounts whose lease serve's replica holds, unexpired (the
    replica's name carries its pid)."""
    return sorted(e for e, (holder, live) in leases(db).items() if live and f"-{serve.proc.pid}-" in holder)


def start(w):
    s = w.serve(w.env)
    s.wait_status("/readyz", 200)
    return s


def quiet(check, s, who):
    out = s.output()
    check.ok("runtime error" not in out and "AddressSanitizer" not in out and "handles left open" not in out,
             f"{who}: sanitizers quiet, no handle left open", out[-2000:])


@contextlib.contextmanager
def locked(db, table):
    """table locked IN EXCLUSIVE MODE by another session (writes wait,
    reads do not) while the block runs; yields whether the lock was seen
    granted within 10 s."""
    locker = subprocess.Popen(["psql", "-X", "-q", db.url() + "?application_name=locker", "-c",
                               f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE; SELECT pg_sleep(60);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=pgcluster.tool_env())
    granted = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation " \
        f"WHERE c.relname = '{table}' AND l.mode = 'ExclusiveLock' AND l.granted " \
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    try:
        yield harness.wait_until(lambda: db.psql(granted) == [["1"]], 10)
    finally:
        db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker' "
                "AND datname = current_database()")
        locker.kill()


def test_the_template_has_the_release_migration(db):
    assert db.psql("SELECT count(*) FROM relance_migrations WHERE name = '015_release_account_leases.sql'") \
        == [["1"]], "relance migrate applied 015_release_account_leases.sql"


def test_a_clean_stop_gives_the_leases_up_and_the_next_replica_sends_at_once(mail, db, w, serve, check):
    ms, env = mail, w.env
    a = start(w)
    check.eq(harness.wait_until(lambda: held_by(db, a) == [FAST, SLOW], 10), True, "replica A holds both account leases")
    stop_at = time.time()
    check.eq(a.stop(), 0, "A exits 0 on SIGTERM")
    left = leases(db)
    print(f"     A stopped in {time.time() - stop_at:.2f} s; account leases left: {left}")
    check.ok(all(not live for _, live in left.values()), "no unexpired account lease is left once A has stopped", str(left))
    quiet(check, a, "A")

    check.ok("enrolled 1" in relance("enroll", "--sequence", "fast", "--contact", "b@prospects.example", env=env).stdout,
             "a step is due for the Postfix account")
    b_start = time.time()
    b = serve(env)
    sent = harness.wait_until(lambda: db.psql("SELECT state FROM messages WHERE recipient = 'b@prospects.example'")
                              == [["sent"]], 10, 0.05)
    took = time.time() - b_start
    print(f"     replica B sent the due step {took:.2f} s after it started (lease TTL 30 s)")
    check.ok(sent and took < 10, f"B took the released lease and sent within 10 s ({took:.2f} s)")
    check.eq(held_by(db, b), [FAST, SLOW], "B holds both account leases")
    check.eq(len(ms.wait_for("b@prospects.example", 1, 5)), 1, "the step arrived at Postfix's mailbox")


def test_a_stop_keeps_the_lease_while_a_body_on_the_wire_drains(slow, db, w, serve, check):
    env = w.env
    b = start(w)
    check.eq(harness.wait_until(lambda: held_by(db, b) == [FAST, SLOW], 10), True, "replica B holds both leases")
    check.ok("enrolled 1" in relance("enroll", "--sequence", "slow", "--contact", "s@prospects.example", env=env).stdout,
             "a step is due for the slow account")
    check.ok(harness.wait_until(lambda: slow.stalled, 10, 0.02), "B is sending a body the slow server does not read")
    time.sleep(0.3)  # relance fills what the kernel buffers, then waits to send the rest
    stop_at = time.time()
    b.proc.send_signal(signal.SIGTERM)
    draining = []  # whether the slow account was still B's, looked at while its body could not end
    while b.proc.poll() is None and time.time() - stop_at < 20:
        held = SLOW in held_by(db, b)
        if not slow.resumed:
            draining.append(held)
        time.sleep(0.1)
    rc = b.proc.wait(timeout=20)
    exited = time.time()
    check.eq(rc, 0, "B exits 0 on SIGTERM")
    check.ok(slow.bodies and slow.bodies[0] <= exited and exited - stop_at > HOLD - 1,
             "B finished sending the body on the wire before exiting", f"{slow.bodies} exited {exited}")
    # The stop began while the body was still going out (the loop was free to
    # take the signal), not after it: else nothing here would be draining.
    began = re.search(r"^(\S+) info serve: stopping reason=SIGTERM", b.output(), re.M)
    began = began and datetime.datetime.fromisoformat(began.group(1).replace("Z", "+00:00")).timestamp()
    check.ok(began and slow.bodies and began < slow.bodies[0] - 1, "B began its stop while the body was still on the wire",
             f"stop logged at {began}, body ended at {slow.bodies}")
    print(f"     B stopped in {exited - stop_at:.2f} s with a body stalled {HOLD} s by the server; "
          f"{len(draining)} looks at the lease meanwhile")
    check.ok(len(draining) >= 3 and all(draining), "the slow account's lease stayed B's while its body drained",
             str(draining))
    left = leases(db)
    check.ok(all(not live for _, live in left.values()), "no unexpired account lease is left once B has stopped", str(left))
    quiet(check, b, "B")


def test_after_sigkill_the_leases_stay_held_until_they_expire(db, w, check):
    c = start(w)
    check.eq(harness.wait_until(lambda: held_by(db, c) == [FAST, SLOW], 10), True, "replica C takes both leases at once")
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait()
    check.eq(held_by(db, c), [FAST, SLOW], "after SIGKILL the leases are still C's until they expire")
    quiet(check, c, "C")


def test_a_database_that_does_not_answer_does_not_hang_the_stop(db, w, check):
    d = start(w)
    check.eq(harness.wait_until(lambda: held_by(db, d) == [FAST, SLOW], 10), True, "replica D takes both leases")
    # EXCLUSIVE: writes to leases wait (renewals, the release), reads do not
    with locked(db, "leases") as held:
        check.ok(held, "the leases table is locked")
        stop_at = time.time()
        rc = d.stop(timeout=CLOSE_S + 10)
        took = time.time() - stop_at
        print(f"     D stopped in {took:.2f} s with the leases table locked (bound {CLOSE_S} s)")
        check.eq(rc, 0, "D exits 0 on SIGTERM with a database that does not answer")
        check.ok(took < CLOSE_S + 3, f"D's stop is bounded ({took:.2f} s)")
        check.ok("account leases not given up" in d.output(), "D says its leases were not given up", d.output()[-2000:])
        check.eq(held_by(db, d), [FAST, SLOW], "D's leases are left to expire")
        quiet(check, d, "D")


def test_a_stop_with_an_outcome_still_unwritten_frees_nothing_its_answer_needs(slow, db, w, check):
    d = start(w)
    check.eq(harness.wait_until(lambda: held_by(db, d) == [FAST, SLOW], 10), True, "replica D holds both leases")
    check.ok("enrolled 1" in relance("enroll", "--sequence", "slow", "--contact", "s@prospects.example",
                                     env=w.env).stdout, "a step is due for the slow account")
    check.ok(harness.wait_until(lambda: slow.stalled, 10, 0.02), "D is sending a body the slow server holds")
    # the point of no return is written; the outcome, once the body ends, will wait
    with locked(db, "messages") as held:
        check.ok(held, "the messages table is locked")
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() " \
            "AND wait_event_type = 'Lock' AND query LIKE '%relance_step_outcomes%'"
        check.ok(harness.wait_until(lambda: db.psql(waiting) == [["1"]], HOLD + 10),
                 "the body ended and its outcome's write waits on the locked table")
        stop_at = time.time()
        rc = d.stop(timeout=CLOSE_S + 10)
        took = time.time() - stop_at
        print(f"     D stopped in {took:.2f} s with its outcome's write unanswered (bound {CLOSE_S} s)")
        check.eq(rc, 0, "D exits 0 on SIGTERM")
        check.ok(took < CLOSE_S + 3, f"D's stop is bounded ({took:.2f} s)")
        quiet(check, d, "D")
    sent = db.psql("SELECT count(*) FROM messages WHERE recipient = 's@prospects.example' AND state <> 'sending'")
    check.ok(sent in ([["0"]], [["1"]]), "the step's one row is recorded or left for a rescue, never doubled", str(sent))


def test_a_database_that_is_down_does_not_hold_the_stop(mail, slow, own_postgres, tmp, serve, check):
    # PostgreSQL is stopped: a cluster of this test's own
    pg = own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0, "migrate"
    w = World(mail, slow, pg, tmp, serve)
    e = start(w)
    pg.stop()
    time.sleep(0.5)
    stop_at = time.time()
    rc = e.stop(timeout=CLOSE_S + 10)
    took = time.time() - stop_at
    print(f"     E stopped in {took:.2f} s with PostgreSQL down")
    check.eq(rc, 0, "E exits 0 on SIGTERM with the database down")
    check.ok(took < 3, f"E's stop does not wait for a database that is down ({took:.2f} s)")
    quiet(check, e, "E")
