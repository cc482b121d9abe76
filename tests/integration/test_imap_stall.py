"""No IMAP server can stall relance (issue 18, the IMAP half): a mailbox
server that goes silent only ever delays its own account.

libcurl 7.88 waits synchronously in two places of IMAP: for the tagged
answer after an APPEND's upload (save_sent's copies), and for LOGOUT's
answer whenever it closes a connection it does not know dead. One
`relance serve` with imap_max_connections: 2 and three watched
mailboxes:

- ann (pool "a") sends through tests/badsmtp.py (a well-behaved server
  here) and saves a copy of each message (save_sent) into its mailbox on
  tests/badimap.py, which reads the APPEND's literal and never answers:
  ann's channel stays busy, holding one of the two connections;
- abe (pool "c", nothing to send) is watched on the same badimap server,
  which never answers LOGOUT either: with one connection left for abe and
  bob, each turn of bob closes abe's idle channel (LOGOUT, unanswered);
- bob (pool "b") sends through Postfix, paced by min_interval, and
  watches its mailbox on Dovecot.

First bob's send rate alone (badimap answering LOGOUT), then the stall
(ann's copy unanswered, every LOGOUT unanswered), while:

- GET /healthz answers 200 within 1 s to every probe;
- bob keeps sending at no less than half its rate alone;
- a prospect's reply to one of bob's messages, delivered during the
  stall, makes its enrollment 'replied' within five watch intervals;
- ann's message itself was sent (the SMTP side does not wait for IMAP).

Then relance stops cleanly and promptly (the APPEND in flight is ended,
the unanswered LOGOUTs are given up after a short wait on their threads).

Time: RELANCE_TEST_CLOCK runs 120 times faster (bob's min_interval of
60 s is 0.5 s); watch intervals are real time. relance's IMAP timeout
(120 s) is never waited for."""
import subprocess
import time

import pytest

import harness
import stall
from badimap import BadImap
from badsmtp import BadSmtp
from harness import relance, wait_until
from stall import Prober

ANN, ABE, BOB = "ann@acme.example", "abe@acme.example", "bob@acme.example"
BOB_PASSWORD = "pw-bob-18i"
START = "2026-03-02T09:00:00Z"
SPEED = 120
WATCH_INTERVAL = 2  # seconds
N_ANN, N_BOB = 2, 60
pytestmark = pytest.mark.mail(users=[(BOB, BOB_PASSWORD)])


def bad_account(email, smtp, imap, extra=""):
    return (f"- email: {email}\n  smtp: smtp://127.0.0.1:{smtp.port}\n  tls: none\n  auth: none\n"
            f"  imap: imap://127.0.0.1:{imap.port}\n  imap_auth: password\n  password_env: PW_BAD\n"
            f"  watch_interval: {WATCH_INTERVAL}s\n{extra}")


# What makes each mode's stall begin, from what the server saw since.
STALL_BEGUN = {
    "silent_after_append": lambda imap, logouts_before: imap.silent >= 1,
    "silent_at_logout": lambda imap, logouts_before: imap.logouts > logouts_before,
}


@pytest.mark.parametrize("mode", ["silent_after_append", "silent_at_logout"])
def test_a_silent_imap_server_delays_only_its_own_account(mode, mail, db, tmp, serve, check):
    t_test = time.time()
    smtp = BadSmtp("ok")
    imap = BadImap()
    harness.at_exit(smtp.stop)
    harness.at_exit(imap.stop)
    ann = bad_account(ANN, smtp, imap, "  save_sent: true\n")
    abe = bad_account(ABE, smtp, imap)
    bob = harness.account(mail, BOB, "PW_B", min_interval="60s", imap=f"imap://127.0.0.1:{mail.imap_port}",
                          watch_interval=f"{WATCH_INTERVAL}s")
    cfg = harness.pool_config(tmp, {"a": [ann], "b": [bob], "c": [abe]})
    with open(cfg, "a") as f:
        f.write("imap_max_connections: 2\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_B": BOB_PASSWORD, "PW_BAD": "pw-bad"}
    for pool in ("a", "b"):
        seq = harness.sequence(tmp, "two_step", name=f"s{pool}", pool=pool, wait="30d")
        r = relance("apply", seq, env=env)
        assert r.returncode == 0, f"apply {seq}: {r.stdout + r.stderr}"
    tag = mode.replace("_", "")
    contacts = {"a": [f"{tag}-a{i}@prospects.example" for i in range(N_ANN)],
                "b": [f"{tag}-b{i}@prospects.example" for i in range(N_BOB)]}
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('{c}')" for c in contacts["a"] + contacts["b"]))

    def enroll(pool):
        r = relance("enroll", "--sequence", f"s{pool}", "--where", f"email LIKE '{tag}-{pool}%'",
                    env={**env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(contacts[pool])}" in r.stdout, f"enroll {pool}: {r.stdout + r.stderr}"

    enroll("b")
    s = serve({**env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
    s.wait_status("/readyz", 200)
    assert wait_until(lambda: stall.sent(db, BOB) >= 2, 20), f"bob sends: {s.output()[-3000:]}"
    base, base_n, base_t = stall.rate(lambda: stall.sent(db, BOB), 4)
    print(f"baseline: bob sent {base_n} in {base_t:.1f} s: {base:.2f}/s")

    # the stall: from now on the server leaves APPEND (ann's copies) or
    # LOGOUT (ann's and abe's idle channels closed to make room) unanswered
    logouts_before = imap.logouts
    imap.silent_append = mode == "silent_after_append"
    imap.silent_logout = mode == "silent_at_logout"
    enroll("a")
    t_stall = time.time()
    prober = Prober(s)
    begun = wait_until(lambda: STALL_BEGUN[mode](imap, logouts_before), 10, step=0.05)
    check.ok(begun, f"the stall began ({mode})",
             f"badimap: {len(imap.appended)} APPEND(s), {imap.logouts - logouts_before} LOGOUT(s)")
    prospect = stall.reply_to_first_sent(db, mail, BOB)
    t_reply = time.time()
    seen = {}

    def replied():
        if stall.enrollment_state(db, prospect) == "replied":
            seen.setdefault("after", time.time() - t_reply)
            return True
        return False
    rate, n, t = stall.rate(lambda: stall.sent(db, BOB), 8, until=replied, cap=5 * WATCH_INTERVAL)
    probes = prober.stop()
    silent_logouts = imap.logouts - logouts_before if mode == "silent_at_logout" else 0
    print(f"stall ({mode}): bob sent {n} in {t:.1f} s: {rate:.2f}/s against {base:.2f}/s alone; "
          f"badimap: {len(imap.appended)} APPEND(s), {imap.silent} connection(s) left unanswered")
    stall.check_probes(check, probes, time.time() - t_stall)
    check.ok(rate >= base / 2, "bob keeps sending during the stall, at least half its rate alone",
             f"{rate:.2f}/s during the stall, {base:.2f}/s alone")
    after = seen.get("after")
    print(f"reply read {after:.1f} s after it was delivered" if after else "reply never read during the stall")
    check.ok(after is not None and after <= 5 * WATCH_INTERVAL,
             f"the reply delivered during the stall made the enrollment 'replied' within {5 * WATCH_INTERVAL} s",
             f"its state now: {stall.enrollment_state(db, prospect)}")
    if mode == "silent_at_logout":
        check.ok(silent_logouts >= 2, "idle channels were closed during the stall, LOGOUT unanswered, and the "
                 "watcher went on", f"{silent_logouts} LOGOUT(s) seen")
    check.ok(stall.sent(db, ANN) >= 1, "ann's messages go out whatever its IMAP server does",
             f"{stall.sent(db, ANN)} sent")

    t_stop = time.time()
    try:
        code = s.stop(timeout=30)
    except subprocess.TimeoutExpired:
        code = "still running after 30 s"
    took = time.time() - t_stop
    print(f"stopped in {took:.1f} s")
    check.eq(code, 0, "relance stops cleanly")
    check.ok(took < 10, "relance stops promptly: a command in flight is ended, an unanswered LOGOUT given up",
             f"{took:.1f} s")
    print(f"wall time: {time.time() - t_test:.1f} s")
