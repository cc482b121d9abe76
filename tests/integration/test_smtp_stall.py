"""No mail server can stall relance (issue 18): a server that misbehaves
only ever delays its own account.

One `relance serve`, two pools. Pool "a" is one account pointed at
tests/badsmtp.py (plaintext, no AUTH) with a few enrollments; pool "b" is
one account sending through Postfix (STARTTLS and AUTH on submission),
paced by min_interval so that its send rate is a known, measurable figure,
and watching its own mailbox over IMAP. Each test first measures b's rate
alone (the baseline), then lets a's enrollments become due, and once a's
server misbehaves (the stall) measures it again while:

- GET /healthz is probed every 0.2 s: every probe must answer 200 within
  1 s (a liveness probe must never restart a healthy pod because one
  remote server hangs);
- b keeps sending at no less than half its baseline rate;
- (silent after the final dot) a prospect's reply to one of b's messages,
  delivered into b's mailbox during the stall, makes its enrollment
  'replied' within five watch intervals: the watcher keeps reading.

Then the server is replaced (it answers normally from now on, and the
connections it held are cut off, as a restart would) and a's other
messages must go out. At most once is checked against what the server
itself saw, per recipient: no body accepted twice, no complete body seen
twice, a message 'sent' exactly when the server answered 250 to it, and
'unknown' only for one whose body began and was never accepted (never
tried again); b's recipients each got their one message from Postfix.

The stall modes: silent after the final dot (the body went: the message
is 'unknown'), silent at DATA (no 354: deferred, then sent on a fresh
connection), a server dripping one byte a second, and one that resets the
connection mid-body (its first connection only: 'unknown', the others
sent). These tests never wait for relance's SMTP response timeout (60 s
by default): replacing the server ends the stall, so their length does
not depend on it. One more case sets smtp_timeout to 3 s and replaces
nothing: past it, the message whose body went unanswered is 'unknown', its
connection is dropped without QUIT and the account's other messages go
out over a new connection.

Time: RELANCE_TEST_CLOCK runs 120 times faster, so b's min_interval of
60 s is 0.5 s of real time and a deferred message's first retry (10 min)
comes 5 s later."""
import time

import pytest

import harness
import stall
from badsmtp import BadSmtp
from harness import relance, wait_until
from stall import Prober

A, B = "alice@acme.example", "bob@acme.example"
B_PASSWORD = "pw-bob-18"
START = "2026-03-02T09:00:00Z"
SPEED = 120
B_MIN_INTERVAL = 60  # relance seconds: 0.5 s of real time at SPEED
WATCH_INTERVAL = 2  # seconds (the watcher's period is real time)
N_A, N_B = 4, 80
pytestmark = pytest.mark.mail(users=[(B, B_PASSWORD)])


class World:
    """The configuration, sequences and contacts of one test: a's account
    at bad, b's at Postfix; contacts are tagged so that the module's
    mailboxes never mix two tests' recipients."""

    def __init__(self, ms, db, tmp, bad, tag, top=""):
        self.ms, self.db, self.bad, self.tag = ms, db, bad, tag
        a = f"- email: {A}\n  smtp: smtp://127.0.0.1:{bad.port}\n  tls: none\n  auth: none\n"
        b = harness.account(ms, B, "PW_B", min_interval=f"{B_MIN_INTERVAL}s",
                            imap=f"imap://127.0.0.1:{ms.imap_port}", watch_interval=f"{WATCH_INTERVAL}s")
        cfg = harness.pool_config(tmp, {"a": [a], "b": [b]})
        with open(cfg, "a") as f:
            f.write(top)  # top-level settings (smtp_timeout)
        self.env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_B": B_PASSWORD}
        # a follow-up a month later: only first steps go out during the test
        for pool in ("a", "b"):
            seq = harness.sequence(tmp, "two_step", name=f"s{pool}", pool=pool, wait="30d")
            r = relance("apply", seq, env=self.env)
            assert r.returncode == 0, f"apply {seq}: {r.stdout + r.stderr}"
        self.a_contacts = [f"{tag}-a{i}@prospects.example" for i in range(N_A)]
        self.b_contacts = [f"{tag}-b{i}@prospects.example" for i in range(N_B)]
        db.psql("INSERT INTO contacts (email) VALUES " +
                ",".join(f"('{c}')" for c in self.a_contacts + self.b_contacts))

    def enroll(self, pool):
        r = relance("enroll", "--sequence", f"s{pool}", "--where", f"email LIKE '{self.tag}-{pool}%'",
                    env={**self.env, "RELANCE_TEST_CLOCK": START})
        n = N_A if pool == "a" else N_B
        assert f"enrolled {n}" in r.stdout, f"enroll {pool}: {r.stdout + r.stderr}"

    def sent(self, account):
        return stall.sent(self.db, account)

    def states(self, account):
        """{recipient: state} of the account's messages."""
        rows = self.db.psql("SELECT m.recipient, m.state FROM messages m JOIN accounts a ON a.id = m.account_id "
                            f"WHERE a.email = '{account}'")
        return {r[0].lower(): r[1] for r in rows}

    def enrollment_state(self, email):
        return stall.enrollment_state(self.db, email)

    def rate(self, seconds, until=None, cap=None):
        """b's messages sent per second (stall.rate)."""
        return stall.rate(lambda: self.sent(B), seconds, until, cap)


# When each mode's stall has begun, from what the server saw.
STALL_BEGUN = {
    "silent_after_dot": lambda bad: bad.bodies >= 1,
    "silent_at_data": lambda bad: sum(bad.data.values()) >= 1,
    "drip": lambda bad: bad.connections >= 1,
    "reset_mid_body": lambda bad: sum(bad.started.values()) >= 1,
}


def run_stall(w, serve, check, mode, stall_s, baseline_s, on_stall=None):
    """Serves w: b alone for baseline_s, then a's enrollments, the stall,
    then the server replaced; checks everything the module says but the
    reply. The stall lasts stall_s, or longer (at most five watch
    intervals) until the function on_stall(start) returned says enough
    was seen."""
    t_test = time.time()
    w.enroll("b")
    s = serve({**w.env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
    s.wait_status("/readyz", 200)
    assert wait_until(lambda: w.sent(B) >= 2, 20), f"b sends: {s.output()[-3000:]}"
    base, base_n, base_t = w.rate(baseline_s)
    print(f"baseline: b sent {base_n} in {base_t:.1f} s: {base:.2f}/s")

    w.enroll("a")
    begun = wait_until(lambda: STALL_BEGUN[mode](w.bad), 20, step=0.05)
    assert begun, f"a's server saw no {mode} stall begin: {w.bad.__dict__}\n{s.output()[-3000:]}"
    prober = Prober(s)
    enough = on_stall(time.time()) if on_stall else None
    rate, n, t = w.rate(stall_s, until=enough, cap=5 * WATCH_INTERVAL)
    probes = prober.stop()
    print(f"stall ({mode}): b sent {n} in {t:.1f} s: {rate:.2f}/s against {base:.2f}/s alone")

    check.ok(base_n >= 3, "b sends alone (the baseline is a rate)", f"{base_n} in {base_t:.1f} s")
    stall.check_probes(check, probes, t)
    check.ok(rate >= base / 2, "b keeps sending during the stall, at least half its rate alone",
             f"{rate:.2f}/s during the stall, {base:.2f}/s alone")

    # the server is replaced: it answers from now on, and what it held is cut off
    w.bad.set_mode("ok")
    w.bad.drop()
    def a_done():
        st = w.states(A)
        return len(st) == N_A and all(v in ("sent", "unknown") for v in st.values())
    done = wait_until(a_done, 30)
    check.ok(done, "a's messages all went out (or are 'unknown') once its server was replaced",
             f"{w.states(A)}\n{s.output()[-3000:]}")
    check.eq(s.stop(), 0, "relance stops cleanly")

    check_at_most_once(w, check, mode)
    print(f"wall time: {time.time() - t_test:.1f} s")


def check_at_most_once(w, check, mode):
    bad, states = w.bad, w.states(A)
    for r, st in sorted(states.items()):
        check.ok(bad.rcpt_accepted[r] <= 1 and bad.rcpt_bodies[r] <= 1,
                 f"{r}: the server accepted it at most once and saw its body at most once",
                 f"accepted {bad.rcpt_accepted[r]}, bodies {bad.rcpt_bodies[r]}")
        check.eq(st == "sent", bad.rcpt_accepted[r] == 1, f"{r} is 'sent' exactly when the server accepted it ({st})")
        if st == "unknown":
            check.ok(bad.started[r] == 1 and bad.rcpt_accepted[r] == 0,
                     f"{r} is 'unknown': its body began once, was never accepted, never tried again",
                     f"bodies begun {bad.started[r]}, accepted {bad.rcpt_accepted[r]}")
    unknown = sorted(r for r, st in states.items() if st == "unknown")
    want = 1 if mode in ("silent_after_dot", "reset_mid_body") else 0
    check.eq(len(unknown), want, f"{want} of a's messages 'unknown' (the one whose body went)")
    check.eq(sum(1 for st in states.values() if st == "sent"), N_A - want, "a's other messages were sent")
    if mode == "silent_after_dot" and unknown:
        check.eq(bad.rcpt_bodies[unknown[0]], 1, "the body left unanswered reached the server exactly once")

    # b: Postfix delivered each of b's sent messages exactly once
    b_states = w.states(B)
    check.ok(all(st == "sent" for st in b_states.values()), "b's messages are all 'sent'",
             str({r: st for r, st in b_states.items() if st != "sent"}))
    twice = [r for r in b_states if len(w.ms.wait_for(r, 1, timeout=5)) != 1]
    check.ok(not twice, "each of b's recipients got exactly one message from Postfix", str(twice[:8]))


def test_a_server_silent_after_the_final_dot_delays_only_its_own_account(mail, db, tmp, serve, check):
    bad = BadSmtp("silent_after_dot")
    harness.at_exit(bad.stop)
    w = World(mail, db, tmp, bad, "dot")
    seen = {}

    def on_stall(t0):
        # a prospect answers one of b's messages while a's server holds the stall
        prospect = stall.reply_to_first_sent(db, mail, B)
        seen["prospect"], seen["t0"] = prospect, t0

        def replied():
            if w.enrollment_state(prospect) == "replied":
                seen.setdefault("after", time.time() - t0)
                return True
            return False
        return replied

    run_stall(w, serve, check, "silent_after_dot", stall_s=8, baseline_s=5, on_stall=on_stall)
    after = seen.get("after")
    print(f"reply read {after:.1f} s after it was delivered" if after else "reply never read during the stall")
    check.ok(after is not None and after <= 5 * WATCH_INTERVAL,
             f"the reply delivered during the stall made the enrollment 'replied' within {5 * WATCH_INTERVAL} s",
             f"not within the bound; its state now: {w.enrollment_state(seen.get('prospect', ''))}")


@pytest.mark.parametrize("mode", ["silent_at_data", "drip", "reset_mid_body"])
def test_a_misbehaving_server_delays_only_its_own_account_and_sends_at_most_once(mode, mail, db, tmp, serve, check):
    # a reset ends the connection at once: only the first connection resets,
    # so that a's other messages show the account goes on
    bad = BadSmtp(mode, then="ok" if mode == "reset_mid_body" else None)
    harness.at_exit(bad.stop)
    w = World(mail, db, tmp, bad, mode.replace("_", ""))
    run_stall(w, serve, check, mode, stall_s=5, baseline_s=5)


def test_past_smtp_timeout_the_message_is_unknown_and_the_queue_goes_on_over_a_new_connection(mail, db, tmp, check):
    # the first connection is silent after the dot; a new one answers
    bad = BadSmtp("silent_after_dot", then="ok")
    harness.at_exit(bad.stop)
    w = World(mail, db, tmp, bad, "timeout", top="smtp_timeout: 3s\n")
    w.enroll("a")
    s = harness.Serve({**w.env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
    try:
        s.wait_status("/readyz", 200)
        assert wait_until(lambda: bad.bodies >= 1, 20, step=0.05), f"the stall began: {s.output()[-3000:]}"
        t0 = time.time()

        def settled():
            st = w.states(A)
            return len(st) == N_A and sorted(st.values()) == ["sent"] * (N_A - 1) + ["unknown"]
        # 3 s of timeout, bounded at 5x (15 s) plus the claim of the rest
        done = wait_until(settled, 20)
        took = time.time() - t0
        check.ok(done, "past smtp_timeout the silent message is 'unknown' and the other three are sent",
                 f"{w.states(A)}\n{s.output()[-3000:]}")
        print(f"the stall ended {took:.1f} s after the body (smtp_timeout 3 s)")
        check.ok(bad.connections >= 2, "the queue went on over a new connection",
                 f"{bad.connections} connection(s)")
        check.eq(bad.quits_while_silent, 0, "the silent connection was dropped without QUIT")
        check.eq(s.stop(), 0, "relance stops cleanly")
    finally:
        s.kill()
    check_at_most_once(w, check, "silent_after_dot")
