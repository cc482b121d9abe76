"""A busy account never waits for a claim's round trip: relance claims
for an account again once at most half of its last claim is still in
flight (its low mark), so the next claim is composed while the rest of
the last one goes out (service/scheduler.c says how).

One account sends 300 one-step messages to tests/badsmtp.py, answering
at once: relance claims at most 200 a cycle, so they go out in two
claims or more. The second claim must be taken before the first claim's
last message was sent: with a claim only once everything is back, the
account would stand idle for the claim's round trip after every batch,
which cost about a third of the send rate in tests/bench's
send_throughput. And at most once still holds: every recipient got one
body, accepted once."""
import harness
from badsmtp import BadSmtp
from harness import relance, wait_until

N = 300
START = "2026-03-02T09:00:00Z"


def test_an_account_is_claimed_for_again_while_its_last_claim_still_goes_out(db, tmp, check):
    bad = BadSmtp("ok")
    try:
        acct = f"- email: solo@acme.example\n  smtp: smtp://127.0.0.1:{bad.port}\n  tls: none\n  auth: none\n"
        cfg = harness.pool_config(tmp, {"main": [acct]})
        env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "RELANCE_TEST_CLOCK": START}
        r = relance("apply", harness.sequence(tmp, "one_step", name="ahead", pool="main"), env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        db.psql(f"INSERT INTO contacts (email) SELECT 'p' || i || '@prospects.example' FROM generate_series(1, {N}) i")
        r = relance("enroll", "--sequence", "ahead", "--where", "true", env=env)
        assert f"enrolled {N}" in r.stdout, r.stdout + r.stderr
        serve = harness.Serve(env)
        try:
            wait_until(lambda: int(db.psql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]) == N, 60)
        finally:
            serve.stop()
        claims = db.psql("SELECT created_at, count(*), max(sent_at) FROM messages GROUP BY 1 ORDER BY 1")
        check.eq(len(claims) >= 2, True, f"{N} messages take more than one claim: {claims}")
        if len(claims) >= 2:
            first_done, second_claimed = claims[0][2], claims[1][0]
            ahead = db.psql(f"SELECT '{second_claimed}'::timestamptz < '{first_done}'::timestamptz")[0][0]
            check.eq(ahead, "t", f"the second claim ({second_claimed}) came before the first claim's "
                                 f"{claims[0][1]} messages were all sent ({first_done})")
        check.eq(sorted(set(bad.rcpt_accepted.values())), [1], "every recipient's body accepted exactly once")
        check.eq(len(bad.rcpt_accepted), N, "every recipient got its message")
        check.eq(sorted(set(bad.rcpt_bodies.values())), [1], "no body went twice")
    finally:
        bad.stop()
