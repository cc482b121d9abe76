"""Every SMTP outcome does what DESIGN semantic 6 says, against Postfix
answering chosen replies at RCPT: a 550 5.1.1 recipient is suppressed
after exactly one attempt; a 450 is retried with growing backoff and never
suppressed; 5.7.1 blocks pause the account after max_policy_blocks and
never suppress the address; a wrong password pauses only that account;
`relance accounts resume` brings it back."""
import re
import time

import pytest

import harness
from harness import relance

pytestmark = pytest.mark.mail(
    users=[("good@acme.example", "pw-good"), ("blocked@acme.example", "pw-blk"), ("badpw@acme.example", "right")],
    reject_domains={"gone.example": "550 5.1.1 User unknown", "slow.example": "450 4.2.1 Try again later",
                    "strict.example": "554 5.7.1 Rejected for policy reasons"})
START = "2026-03-02T09:00:00Z"


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """Three pools (main, strict with max_policy_blocks 2, wrong with a
    wrong password), their contacts enrolled and served at 60x until the
    450 was tried three times and two accounts paused. serve goes on
    running while the cases read the database; the last case stops it."""
    ms, db, tmp = mail, module_db, module_tmp
    cfg = harness.pool_config(tmp, {
        "main": [harness.account(ms, "good@acme.example", "PW_GOOD")],
        "strict": [harness.account(ms, "blocked@acme.example", "PW_BLK", max_policy_blocks=2)],
        "wrong": [harness.account(ms, "badpw@acme.example", "PW_BAD")]})
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_GOOD": "pw-good", "PW_BLK": "pw-blk",
           "PW_BAD": "not-the-password"}
    for name, pool in (("main-seq", "main"), ("strict-seq", "strict"), ("wrong-seq", "wrong")):
        path = harness.sequence(tmp, "two_step", name=name, pool=pool, wait="1 day")
        assert relance("apply", path, env=env).returncode == 0, f"apply {name}"
    db.psql("INSERT INTO contacts (email) VALUES ('x@gone.example'), ('y@slow.example'), ('ok@fine.example'), "
            "('a@strict.example'), ('b@strict.example'), ('c@strict.example'), ('w@fine.example'), "
            "('z@fine.example')")
    for seq, who in (("main-seq", ["x@gone.example", "y@slow.example", "ok@fine.example"]),
                     ("strict-seq", ["a@strict.example", "b@strict.example", "c@strict.example"]),
                     ("wrong-seq", ["w@fine.example"])):
        args = ["enroll", "--sequence", seq]
        for w in who:
            args += ["--contact", w]
        r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(who)}" in r.stdout, f"enroll into {seq}: {r.stdout + r.stderr}"

    # 60x: a fake hour passes in a minute; 10-minute backoffs pass in 10 s
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
    try:
        s.wait_status("/readyz", 200)
        deadline = time.time() + 90
        while time.time() < deadline:
            slow_attempts = int(db.psql("SELECT coalesce(max(attempts), 0) FROM messages "
                                        "WHERE recipient = 'y@slow.example'")[0][0])
            paused = db.psql("SELECT count(*) FROM accounts WHERE state = 'paused'")[0][0]
            if slow_attempts >= 3 and paused == "2":
                break
            time.sleep(1)
        yield {"db": db, "env": env, "serve": s}
    finally:
        s.kill()


def test_a_550_5_1_1_bounces_after_one_attempt_and_suppresses(run, check):
    q, env = run["db"].psql, run["env"]
    check.eq(q("SELECT state, attempts, outcome FROM messages WHERE recipient = 'x@gone.example'"),
             [["bounced", "1", "rejected_hard"]], "550 5.1.1: bounced after exactly one attempt")
    check.eq(q("SELECT state, state_reason LIKE 'hard bounce: 550 5.1.1%' FROM enrollments e JOIN contacts c "
               "ON c.id = e.contact_id WHERE c.email = 'x@gone.example'"), [["bounced", "t"]], "the enrollment is bounced")
    check.eq(q("SELECT count(*) FROM suppressions WHERE pattern = 'x@gone.example'")[0][0], "1", "the address is suppressed")
    r = relance("enroll", "--sequence", "main-seq", "--contact", "x@gone.example", "--allow-parallel", "--verbose",
                env=env)
    check.ok("skipped x@gone.example: suppressed" in r.stdout, "a suppressed address is never enrolled again", r.stdout)


def test_a_450_is_retried_with_growing_backoff_and_never_suppresses(run, check):
    q = run["db"].psql
    rows = q("SELECT state, attempts::int >= 3, outcome FROM messages WHERE recipient = 'y@slow.example'")
    check.eq(rows, [["deferred", "t", "deferred"]], "450: deferred and retried (3 attempts or more)")
    check.eq(q("SELECT count(*) FROM suppressions WHERE pattern = 'y@slow.example'")[0][0], "0", "450 never suppresses")
    check.eq(q("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE c.email = 'y@slow.example'"),
             [["active"]], "the 450 enrollment stays active")
    gaps = [int(x[0]) for x in q("SELECT extract(epoch FROM next_send_at - (SELECT max(occurred_at) FROM events v "
                                 "WHERE v.kind = 'message.deferred' AND v.data->>'enrollment_id' = e.id::text))::int "
                                 "FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                                 "WHERE c.email = 'y@slow.example'")]
    check.ok(gaps and gaps[0] >= 1200, f"backoff grows: the next try waits {gaps} s after the last deferral (>= 20 min)")
    check.eq(q("SELECT state FROM messages WHERE recipient = 'ok@fine.example'"), [["sent"]], "a good address is sent")


def test_policy_blocks_pause_the_account_and_never_suppress(run, check):
    q = run["db"].psql
    check.eq(q("SELECT state, state_reason LIKE '2 policy blocks within 24 h%' FROM accounts "
               "WHERE email = 'blocked@acme.example'"), [["paused", "t"]], "5.7.1 twice: the account pauses with the reason")
    check.eq(q("SELECT count(*) FROM suppressions WHERE pattern LIKE '%strict.example'")[0][0], "0",
             "a block never suppresses the address")
    # Messages already claimed in the same batch may still go; nothing is
    # retried or claimed after the pause, though backoffs have long passed.
    check.eq(q("SELECT sum(m.attempts) = count(*) FROM messages m JOIN accounts a ON a.id = m.account_id "
               "WHERE a.email = 'blocked@acme.example'")[0][0], "t", "nothing retried from the paused account")
    check.eq(q("SELECT count(*) FROM events WHERE kind = 'account.paused'")[0][0], "2", "each pause writes an event")


def test_a_wrong_password_pauses_only_that_account(run, check):
    q, env = run["db"].psql, run["env"]
    check.eq(q("SELECT state, state_reason LIKE 'authentication failed: 535%' FROM accounts "
               "WHERE email = 'badpw@acme.example'"), [["paused", "t"]], "a wrong password pauses that account")
    check.eq(q("SELECT state FROM accounts WHERE email = 'good@acme.example'"), [["active"]], "the other accounts go on")
    check.eq(q("SELECT attempts FROM messages WHERE recipient = 'w@fine.example'"), [["1"]], "tried once, then held")
    r = relance("accounts", "list", env=env)
    check.ok("badpw@acme.example\tpool wrong\tpaused: authentication failed" in r.stdout, "accounts list shows why",
             r.stdout)
    r = relance("enrollments", "show", "w@fine.example", env=env)
    check.ok("account paused: authentication failed" in r.stdout, "enrollments show: account paused", r.stdout)


def test_messages_list_by_state(run, check):
    env = run["env"]
    r = relance("messages", "list", "--state", "bounced", env=env)
    lines = r.stdout.splitlines()
    check.ok(r.returncode == 0 and len(lines) == 1 and "\tbounced\tx@gone.example\tmain-seq\tone\t" in lines[0]
             and "550" in lines[0], "messages list --state bounced: one line with the address and the reply", r.stdout)
    reply = run["db"].psql("SELECT reply FROM messages WHERE recipient = 'x@gone.example'")[0][0]
    check.ok(re.match(r"550 5\.\d+\.\d+ ", reply) and not re.match(r"550 (5\.\d+\.\d+) \1", reply),
             "the stored reply has its enhanced status once", reply)
    r = relance("messages", "list", "--state", "nonsense", env=env)
    check.eq(r.returncode, 1, "an unknown state is an error")


def test_serve_stops_cleanly_with_no_password_in_its_log(run):
    s = run["serve"]
    assert s.stop() == 0, "serve stops cleanly"
    out = s.output()
    assert "not-the-password" not in out and "pw-good" not in out, "no password in the logs"
    assert "runtime error" not in out and "AddressSanitizer" not in out, f"sanitizers quiet: {out[-2000:]}"


def test_messages_list_is_in_time_order(run, check):
    """After serve stopped: the first message claimed is made the last
    sent, so the list's order is the time's, not the claim's (the id's)."""
    q, env = run["db"].psql, run["env"]
    q("UPDATE messages SET sent_at = now() + interval '1 hour' "
      "WHERE id = (SELECT min(id) FROM messages WHERE sent_at IS NOT NULL)")
    r = relance("messages", "list", env=env)
    times = [line.split("\t")[0] for line in r.stdout.splitlines()]
    check.ok(r.returncode == 0 and len(times) > 2 and times == sorted(times),
             "messages list: in the order they were sent or attempted", r.stdout)
