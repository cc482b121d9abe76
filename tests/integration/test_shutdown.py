"""An orchestrator's stop (issue 22): Kubernetes or podman sends SIGTERM,
waits terminationGracePeriodSeconds and then kills. relance must be gone
before that, cleanly, and its work must move to another replica at once.

One replica, two accounts: one on Postfix and Dovecot (its sender account
lease, and its mailbox watched over IMAP: a 'watch:' lease), one on
tests/badsmtp.py's server that reads a body and never answers its final
dot, so that a body is on the wire for as long as the stop lets it be.
shutdown_grace is 4 s here (20 s by default). Then SIGTERM:

- /readyz answers 503 ("shutting down") from the moment the stop is
  logged until the process is gone (a look already on its way when the
  signal came may still get 200), never 200 and never a refused
  connection while it drains, and /healthz keeps answering 200;
- the process exits 0 within shutdown_grace (plus a second for the
  sanitizer build's exit), after waiting for the stalled body most of
  that time (its drain ends 2 s before the grace, to give the leases up);
- no lease of it is left, neither the accounts' nor the mailbox's, and the
  stalled body was sent once: its message is 'unknown' at once (it may
  have been delivered: never sent again), not left 'sending' for another
  replica to rescue 30 s later."""
import os
import signal
import time

import pytest

import harness
from badsmtp import BadSmtp
from harness import relance

GOOD = "watched@acme.example"
STUCK = "stuck@acme.example"
GRACE = 4
pytestmark = pytest.mark.mail(users=[(GOOD, "pw-watched")])


@pytest.fixture
def bad():
    srv = BadSmtp("silent_after_dot")
    yield srv
    srv.stop()


def config(ms, bad, tmp, grace=GRACE):
    path = os.path.join(tmp, "relance.yaml")
    with open(path, "w") as f:
        f.write(f"""shutdown_grace: {grace}s
tls_ca_file: {ms.ca_file}
pools:
  main:
    accounts:
      - email: {GOOD}
        smtp: smtp://127.0.0.1:{ms.submission_port}
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW
        watch_interval: 1s
  stuck:
    accounts:
      - email: {STUCK}
        smtp: smtp://127.0.0.1:{bad.port}
        tls: none
        auth: none
""")
    return path


def leases_of(db, pid):
    """The unexpired account and mailbox leases (name) whose holder is the
    replica of pid (its own 'replica:' lease is another matter: it says
    the replica's 'sending' rows are not to be rescued yet)."""
    rows = db.psql("SELECT name FROM leases WHERE expires_at > clock_timestamp() "
                   f"AND holder LIKE '%-{pid}-%' AND (name LIKE 'account:%' OR name LIKE 'watch:%') ORDER BY name")
    return [r[0] for r in rows]


def test_sigterm_drains_behind_a_503_and_exits_0_within_the_grace_with_leases_given_up(mail, bad, db, tmp, serve,
                                                                                      check):
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": config(mail, bad, tmp), "PW": "pw-watched"}
    seq = harness.sequence(tmp, "one_step", name="stuck", pool="stuck")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    db.psql("INSERT INTO contacts (email) VALUES ('p@prospects.example')")
    s = serve(env)
    s.wait_status("/readyz", 200)
    pid = s.proc.pid
    want = ["account:", "account:", "watch:"]
    check.ok(harness.wait_until(lambda: [n.split(":")[0] + ":" for n in leases_of(db, pid)] == want, 15),
             "the replica holds both account leases and the mailbox's", str(leases_of(db, pid)))
    r = relance("enroll", "--sequence", "stuck", "--contact", "p@prospects.example", env=env)
    check.ok("enrolled 1" in r.stdout, "one enrollment", r.stdout + r.stderr)
    check.ok(harness.wait_until(lambda: bad.bodies == 1, 20, 0.05),
             "the stuck server has the whole body and answers nothing")

    stop_at = time.time()
    s.proc.send_signal(signal.SIGTERM)
    ready, health, first_503 = [], [], None
    while s.proc.poll() is None:
        logged = "stopping reason=SIGTERM" in s.output()  # the loop has taken the signal
        status, body = s.get("/readyz")
        if logged:
            ready.append((status, body))
        if status == 503 and first_503 is None:
            first_503 = time.time() - stop_at
        health.append(s.get("/healthz")[0])
        time.sleep(0.05)
    rc = s.proc.wait()
    took = time.time() - stop_at
    print(f"     stopped in {took:.2f} s (shutdown_grace {GRACE} s); {len(ready)} looks at /readyz meanwhile")
    check.eq(rc, 0, "serve exits 0 on SIGTERM")
    check.ok(GRACE - 2.5 < took < GRACE + 1, f"it waited for the body on the wire, and no longer than the grace "
             f"({took:.2f} s)")
    answered = [st for st, _ in ready if st]
    check.ok(len(answered) >= 10, f"/readyz answered while draining ({len(answered)} of {len(ready)} looks)")
    check.ok(first_503 is not None and first_503 < 0.5, f"/readyz is 503 within 0.5 s of the signal ({first_503})")
    check.ok(all(st == 503 for st in answered), "/readyz never says ready once the stop is logged",
             str(sorted(set(st for st in answered))))
    check.ok(all(b == {"status": "not ready", "reason": "shutting down"} for st, b in ready if st),
             "/readyz says why: shutting down", str(ready[:1]))
    check.ok(all(h == 200 for h in health if h), "/healthz keeps answering 200 while draining", str(set(health)))
    check.eq(leases_of(db, pid), [], "no lease of the stopped replica is left (accounts and mailbox)")
    out = s.output()
    check.ok("stopping reason=SIGTERM shutdown_grace=4s" in out, "the stop is logged with its grace", out[-2000:])
    check.ok("handles left open" not in out, "every handle closed", out[-2000:])
    check.eq(bad.rcpt_bodies["p@prospects.example"], 1, "the stalled body went once")
    check.eq(db.psql("SELECT state FROM messages WHERE recipient = 'p@prospects.example'"), [["unknown"]],
             "its message is 'unknown' once the replica is gone: nothing is left 'sending'")


def test_shutdown_grace_defaults_to_20_s_and_is_bounded(tmp):
    r = relance("config", env={})
    assert "shutdown_grace: 20s" in r.stdout, r.stdout + r.stderr
    path = os.path.join(tmp, "relance.yaml")
    with open(path, "w") as f:
        f.write("shutdown_grace: 1s\n")
    r = relance("--config", path, "config", env={})
    assert r.returncode == 1 and "shutdown_grace must be between 2s and 1h" in r.stderr, r.stdout + r.stderr
