"""Sender protection against a real Postfix answering chosen replies at
RCPT: a 550 5.7.515 (the receiver refuses the sending domain as
unauthenticated) pauses the account at the first refusal with the code and
the server's words, never suppresses the recipient, and leaves its
enrollment alive, its first step taken over by the pool's other account;
three 451 4.7.x of one code within an hour pause an account, two do not,
nor does greylisting; a DSN carrying 5.7.515 that lands in a watched
mailbox pauses its account as well. `relance accounts list`, the API and
the event feed show each pause."""
import pytest

import apiclient
import harness
from harness import relance

OUTLOOK = "550 5.7.515 Access denied, sending domain acme.example doesn't meet the required authentication level."
THROTTLE = "451 4.7.26 This mail has been rate limited because it is unauthenticated"
# The reasons as Postfix words them at RCPT: the server's words, the
# address it quotes left out (it must not outlive the messages' retention)
OUTLOOK_RCPT = "550 5.7.515 <address>: Recipient address rejected: " + OUTLOOK[12:]
THROTTLE_RCPT = "451 4.7.26 <address>: Recipient address rejected: " + THROTTLE[11:]
USERS = [("auth1@acme.example", "pw"), ("auth2@acme.example", "pw"), ("thr@acme.example", "pw"),
         ("two@acme.example", "pw"), ("grey@acme.example", "pw"), ("dsn@acme.example", "pw")]

pytestmark = pytest.mark.mail(
    users=USERS,
    reject_domains={"outlook.example": OUTLOOK, "throttle.example": THROTTLE, "twice.example": THROTTLE,
                    "grey.example": "451 4.7.1 <x@grey.example>: Recipient address rejected: Greylisted"})
# Real time from a Monday morning: no 10-minute backoff passes during the
# test, so each refusal below is one first attempt.
START = "2026-03-02T09:00:00Z"


def dsn(original_id, rcpt):
    """A Postfix-style delivery report returning our message: its relay's
    next hop refused it with Outlook.com's 5.7.515."""
    return ("From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n"
            "To: dsn@acme.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "Date: Mon, 02 Mar 2026 09:00:30 +0000\r\nMessage-ID: <dsn-1@mx.acme.example>\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\n"
            f"<{rcpt}>: host mx.prospect.example said: {OUTLOOK} (in reply to RCPT TO command)\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.7.515\r\n"
            f"Diagnostic-Code: smtp; {OUTLOOK}\r\n\r\n"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_id}\r\nTo: {rcpt}\r\n"
            "--B--\r\n")


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """Five pools, each enrolled and served until every first attempt was
    answered; the DSN is delivered to the watched account once its step
    went out. serve goes on running while the cases read the database."""
    ms, db, tmp = mail, module_db, module_tmp
    cfg = harness.pool_config(tmp, {
        "auth": [harness.account(ms, "auth1@acme.example"), harness.account(ms, "auth2@acme.example")],
        "thr": [harness.account(ms, "thr@acme.example")],
        "two": [harness.account(ms, "two@acme.example")],
        "grey": [harness.account(ms, "grey@acme.example")],
        "dsn": [harness.account(ms, "dsn@acme.example", imap=f"imap://127.0.0.1:{ms.imap_port}",
                                watch_interval="1s")]})
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW": "pw"}
    contacts = {"auth": ["p@outlook.example"],
                "thr": ["t1@throttle.example", "t2@throttle.example", "t3@throttle.example"],
                "two": ["u1@twice.example", "u2@twice.example"],
                "grey": ["g1@grey.example", "g2@grey.example", "g3@grey.example"],
                "dsn": ["d@fine.example"]}
    db.psql("INSERT INTO contacts (email) VALUES " +
            ", ".join(f"('{c}')" for cs in contacts.values() for c in cs))
    for pool, who in contacts.items():
        path = harness.sequence(tmp, "two_step", name=f"{pool}-seq", pool=pool, wait="1 day")
        assert relance("apply", path, env=env).returncode == 0, f"apply {pool}"
        args = ["enroll", "--sequence", f"{pool}-seq"]
        for w in who:
            args += ["--contact", w]
        r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(who)}" in r.stdout, f"enroll into {pool}: {r.stdout + r.stderr}"

    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": START})
    try:
        s.wait_status("/readyz", 200)

        def q1(sql):
            return db.psql(sql)[0][0]

        def settled():
            return (q1("SELECT count(*) FROM accounts WHERE state = 'paused' AND email LIKE 'auth%'") == "2"
                    and q1("SELECT count(*) FROM messages WHERE outcome = 'deferred_policy'") == "5"
                    and q1("SELECT count(*) FROM messages WHERE recipient LIKE 'g_@grey.example' "
                           "AND state = 'deferred'") == "3")
        harness.wait_until(settled, 20)
        sent = ms.wait_for("d@fine.example", 1, timeout=10)
        assert sent, "the dsn account's step went out"
        mid = harness.parsed(sent[0])["Message-ID"]
        ms.deliver("dsn@acme.example", dsn(mid, "d@fine.example"))
        harness.wait_until(lambda: q1("SELECT state FROM accounts WHERE email = 'dsn@acme.example'") == "paused", 10)
        api = apiclient.Api(s.base, apiclient.new_key(env, "crm", "accounts:read"))
        status, _, data, _ = api.call("GET", "/v1/accounts?limit=100")
        yield {"db": db, "env": env, "api": (status, data)}
    finally:
        s.kill()


def account(db, email):
    return db.psql(f"SELECT state, state_reason FROM accounts WHERE email = '{email}'")[0]


def test_a_550_5_7_515_pauses_the_account_and_never_suppresses(run, check):
    q = run["db"].psql
    for a in ("auth1@acme.example", "auth2@acme.example"):
        check.eq(account(run["db"], a), ["paused", "sender refused: " + OUTLOOK_RCPT],
                 f"{a}: paused at its first 5.7.515, the code and the server's words as the reason")
    check.eq(q("SELECT count(*) FROM suppressions")[0][0], "0", "the recipient is not suppressed")
    # The first step never went out, so the enrollment is bound to no
    # account: the pool's other account took the step over, and was
    # refused in turn. It waits, alive, for an account to be resumed.
    check.eq(q("SELECT e.state, e.account_id IS NULL, m.state, m.attempts, m.outcome FROM enrollments e "
               "JOIN contacts c ON c.id = e.contact_id JOIN messages m ON m.enrollment_id = e.id "
               "WHERE c.email = 'p@outlook.example'"),
             [["active", "t", "deferred", "2", "rejected_unauthenticated"]],
             "the enrollment stays active, its step deferred after one attempt from each account")
    check.eq(q("SELECT count(*) FROM events WHERE kind = 'account.paused' AND data->>'account' LIKE 'auth_@%' "
               "AND data->>'reason' = 'sender refused: " + OUTLOOK_RCPT.replace("'", "''") + "'")[0][0], "2",
             "each pause writes account.paused with the reason")
    r = relance("accounts", "list", env=run["env"])
    check.ok(f"auth1@acme.example\tpool auth\tpaused: sender refused: {OUTLOOK_RCPT}\t" in r.stdout,
             "accounts list shows the pause and why", r.stdout)


def test_the_enrollment_is_sent_again_once_an_account_is_resumed(run, check):
    q, env = run["db"].psql, run["env"]
    r = relance("accounts", "resume", "auth2@acme.example", env=env)
    check.ok(r.returncode == 0, "resume", r.stdout + r.stderr)

    def attempts():
        return q("SELECT attempts FROM messages WHERE recipient = 'p@outlook.example'")[0][0]
    # serve still runs: the resumed account takes the due step again (and,
    # refused again by this receiver, pauses again)
    check.eq(harness.wait_until(lambda: attempts() == "3" and attempts(), 10), "3",
             "the step is tried again once an account of the pool is resumed")
    check.eq(account(run["db"], "auth2@acme.example")[0], "paused", "refused again: paused again")
    check.eq(q("SELECT count(*) FROM suppressions")[0][0], "0", "still nothing suppressed")


def test_three_4_7_x_of_one_code_within_an_hour_pause(run, check):
    state, reason = account(run["db"], "thr@acme.example")
    check.eq(state, "paused", "three 451 4.7.26 within an hour: paused")
    check.eq(reason, "sender refused 3 times within an hour (4.7.26): " + THROTTLE_RCPT, "with the code and the words")
    q = run["db"].psql
    check.eq(q("SELECT count(*) FROM messages WHERE recipient LIKE '%@throttle.example' AND state = 'deferred'")[0][0],
             "3", "each message is deferred, to be retried")
    check.eq(q("SELECT count(*) FROM suppressions")[0][0], "0", "nothing is suppressed")


def test_two_4_7_x_or_greylisting_do_not_pause(run, check):
    check.eq(account(run["db"], "two@acme.example"), ["active", ""], "two 451 4.7.26: still active")
    check.eq(account(run["db"], "grey@acme.example"), ["active", ""], "three greylistings (451 4.7.1): still active")
    check.eq(run["db"].psql("SELECT count(*) FROM account_refusals a JOIN accounts x ON x.id = a.account_id "
                            "WHERE x.email = 'grey@acme.example'")[0][0], "0", "greylisting is not counted")


def test_a_dsn_with_5_7_515_pauses_the_account(run, check):
    q = run["db"].psql
    check.eq(account(run["db"], "dsn@acme.example"), ["paused", "sender refused: " + OUTLOOK],
             "a returned 5.7.515 pauses the watched account with the server's words")
    check.eq(q("SELECT kind, effect FROM inbound_messages"), [["soft_bounce", "blocked"]],
             "the DSN is recorded as a block")
    check.eq(q("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
               "WHERE c.email = 'd@fine.example'"), [["active"]], "its enrollment stays active")
    check.eq(q("SELECT count(*) FROM suppressions")[0][0], "0", "the recipient is not suppressed")


def test_the_api_shows_the_pause(run, check):
    status, data = run["api"]
    check.eq(status, 200, "GET /v1/accounts")
    items = {a["email"]: a for a in data["data"]} if status == 200 else {}
    a = items.get("auth1@acme.example", {})
    check.eq((a.get("state"), a.get("state_reason")), ("paused", "sender refused: " + OUTLOOK_RCPT),
             "the API shows the pause and its reason")


def test_a_refusal_after_a_step_went_out_keeps_the_enrollment_on_its_account(db, tmp, check):
    """Through the scheduler's own SQL, times given: once a step went out,
    the next ones thread on it, so a refused follow-up waits for its own
    account's resume; the pool's other account does not take it."""
    env = {"DATABASE_URL": db.url()}
    assert relance("apply", harness.sequence(tmp, "two_step", name="seq", pool="p", wait="1h"),
                   env=env).returncode == 0, "apply"
    db.psql("INSERT INTO pools (name) VALUES ('p'); "
            "INSERT INTO accounts (email, pool) VALUES ('a@acme.example', 'p'), ('b@acme.example', 'p'); "
            "INSERT INTO leases (name, holder, expires_at) "
            "SELECT 'account:' || id, 't', now() + interval '1 hour' FROM accounts; "
            "INSERT INTO contacts (email) VALUES ('p@outlook.example')")
    r = relance("enroll", "--sequence", "seq", "--contact", "p@outlook.example",
                env={**env, "RELANCE_TEST_CLOCK": START})
    assert "enrolled 1" in r.stdout, r.stdout + r.stderr
    ids = dict(db.psql("SELECT email, id FROM accounts"))

    def claim(who, at):
        return db.psql(f"SELECT message_id FROM relance_claim_account('{at}', {ids[who]}, 10, 't')")
    [[first]] = claim("a@acme.example", START)
    db.psql(f"SELECT relance_step_outcome('{first}', '{START}', 'sent', '250 ok', true, 'Hello', "
            "'a@acme.example', NULL)")
    later = "2026-03-02T10:30:00Z"
    [[second]] = claim("a@acme.example", later)
    db.psql(f"SELECT relance_step_outcome('{second}', '{later}', 'rejected_unauthenticated', "
            f"'{OUTLOOK.replace(chr(39), chr(39) * 2)}', true, NULL, NULL, NULL)")
    check.eq(account(db, "a@acme.example"), ["paused", "sender refused: " + OUTLOOK],
             "the follow-up's refusal pauses the account")
    check.eq(db.psql("SELECT e.state, a.email FROM enrollments e JOIN accounts a ON a.id = e.account_id"),
             [["active", "a@acme.example"]], "the enrollment stays active on its account")
    check.eq(db.psql("SELECT count(*) FROM suppressions")[0][0], "0", "nothing is suppressed")
    check.eq(claim("b@acme.example", "2026-03-02T10:31:00Z"), [], "the pool's other account does not take it")
    assert relance("accounts", "resume", "a@acme.example", env=env).returncode == 0, "resume"
    check.eq(claim("a@acme.example", "2026-03-02T10:32:00Z"), [[second]],
             "once resumed, its account sends the same step again")
