"""A body held at its point of no return is never held forever.

After the server's 354, relance records the point of no return in
PostgreSQL before the first body byte goes. If that answer never comes
back (a lost connection, a stuck database), the account's channel must not
stall: after 30 s the held message is given up without sending a byte of
its body (deferred, so retried later) and the account's queue goes on.

Here PostgreSQL itself is made slow, for real: a trigger sleeps 45 s in
the UPDATE that records the point of no return of one contact's first
try. The test checks that the message was given up (logged) and
deferred with no body sent, that it was tried again, that every contact
got exactly one message (the slow one's Message-ID accepted once by
Postfix: the given-up try sent no body) and that every row ended 'sent'.
The database itself is stuck for those 45 s (relance has one connection),
so the others' messages wait too: what this shows is that the held body
ends, not that the queue moves during the stall."""
import collections
import re
import time

import pytest

import harness
from harness import relance

CONTACTS = ["slow@prospects.example"] + [f"c{i}@prospects.example" for i in range(5)]
START = "2026-03-02T09:00:00Z"
pytestmark = pytest.mark.mail(users=[harness.SENDER])


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """Six contacts served until every message is sent, the slow one's
    point of no return stuck 45 s in PostgreSQL; when the body was given
    up (None if never), serve's exit code and log."""
    ms, db = mail, module_db
    env = harness.one_sender(ms, db, module_tmp, "held")
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('{c}')" for c in CONTACTS))
    r = relance("enroll", "--sequence", "held", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {len(CONTACTS)}" in r.stdout, f"enroll: {r.stdout + r.stderr}"
    # The slow contact goes first; its point of no return takes 45 s to record.
    db.psql("UPDATE enrollments SET next_send_at = next_send_at - interval '1 minute' "
            "WHERE contact_id = (SELECT id FROM contacts WHERE email = 'slow@prospects.example')")
    db.psql("""
    CREATE TABLE held_test_slowed (at timestamptz);
    CREATE FUNCTION held_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.body_started AND NOT OLD.body_started AND NEW.recipient = 'slow@prospects.example'
           AND NOT EXISTS (SELECT 1 FROM held_test_slowed) THEN
            INSERT INTO held_test_slowed VALUES (clock_timestamp());
            PERFORM pg_sleep(45);
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER held_test_slow BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION held_test_slow();
    """)

    # 10 min of backoff pass in 10 s
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
    try:
        s.wait_status("/readyz", 200)
        given_up = None
        deadline = time.time() + 150
        while time.time() < deadline:
            if given_up is None and "giving up a body" in s.output():
                given_up = time.time()
            states = db.psql("SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FROM messages")[0]
            if states[0] == str(len(CONTACTS)) and states[1] == str(len(CONTACTS)):
                break
            time.sleep(0.5)
        stopped = s.stop()
    finally:
        s.kill()
    return {"db": db, "ms": ms, "given_up": given_up, "stopped": stopped, "out": s.output()}


def test_the_held_body_is_given_up_and_deferred_with_no_body_sent(run):
    out = run["out"]
    assert run["stopped"] == 0, "relance stops cleanly"
    assert run["given_up"] is not None, f"the body held without an answer was given up: {out[-3000:]}"
    assert re.search(r"deferred account=sender@acme\.example .*not sent", out) is not None, \
        f"the given-up try is deferred, with no body sent: {out[-3000:]}"
    assert "runtime error" not in out and "AddressSanitizer" not in out, f"sanitizers quiet: {out[-2000:]}"


def test_every_message_ends_sent_the_slow_one_after_a_retry(run):
    db = run["db"]
    assert db.psql("SELECT state, count(*) FROM messages GROUP BY 1") == [["sent", str(len(CONTACTS))]], \
        "every message ends sent, the slow one after its retry"
    assert db.psql("SELECT attempts > 1 FROM messages WHERE recipient = 'slow@prospects.example'") == [["t"]], \
        "the slow contact's message was tried again"


def test_every_contact_got_exactly_one_message_accepted_once(run, check):
    ms = run["ms"]
    for c in CONTACTS:
        check.eq(len(ms.messages(c)), 1, f"{c}: exactly one message arrived")
    accepted = collections.Counter(re.findall(r"cleanup\[\d+\]: [0-9A-F]+: message-id=(<[^>]*>)", ms.smtp_log()))
    check.ok(accepted and max(accepted.values()) == 1, "Postfix accepted each Message-ID once", str(accepted))
    check.eq(len(accepted), len(CONTACTS), "Postfix accepted one message per contact")
