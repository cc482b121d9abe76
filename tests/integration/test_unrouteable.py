"""A "no such user" refusal without a precise enhanced status code is
read from its words, the same words the bounce classifier knows
(service/lib/mta_words.c): Exim's "550 Unrouteable address" makes the step
rejected_hard at once (bounced after one attempt, the address
suppressed, no retry), while OpenSMTPD's ambiguous "550 Invalid
recipient" (also its answer to a routing rule's refusal) is a soft
bounce on first sight, retried, and never suppresses on first sight.

Postfix always puts an enhanced status code in front of an access map's
reply (5.7.1 when the map gives none, and smtpd_discard_ehlo_keywords
does not take it away), so the map gives RFC 3463's uninformative 5.0.0
("other undefined status"), which relance reads as no status at all:
only the words decide, as with Exim's bare reply."""
import time

import pytest

import harness
from harness import relance

pytestmark = pytest.mark.mail(users=[("sender@acme.example", "pw-s")],
                              reject_domains={"exim.example": "550 5.0.0 Unrouteable address",
                                              "opensmtpd.example": "550 5.0.0 Invalid recipient"})
START = "2026-03-02T09:00:00Z"


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """Both contacts enrolled and served until the Exim-style refusal is
    settled and the ambiguous one was seen once; returns that first sight
    of it, serve's exit code and log."""
    db, tmp = module_db, module_tmp
    cfg = harness.pool_config(tmp, {"main": [harness.account(mail, "sender@acme.example", "PW_S")]})
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_S": "pw-s"}
    seq = harness.sequence(tmp, "two_step", name="seq", pool="main", wait="1 day")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    db.psql("INSERT INTO contacts (email) VALUES ('u@exim.example'), ('v@opensmtpd.example')")
    r = relance("enroll", "--sequence", "seq", "--contact", "u@exim.example", "--contact", "v@opensmtpd.example",
                env={**env, "RELANCE_TEST_CLOCK": START})
    assert "enrolled 2" in r.stdout, f"enroll both: {r.stdout + r.stderr}"

    # 60x: the 10-minute backoff after a soft bounce passes in 10 s, so the
    # first sight of the ambiguous refusal is read well before any retry.
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
    try:
        s.wait_status("/readyz", 200)
        first_sight = None
        deadline = time.time() + 20
        while time.time() < deadline:
            exim = db.psql("SELECT state FROM messages WHERE recipient = 'u@exim.example'")
            if first_sight is None:
                rows = db.psql("SELECT attempts, soft_bounces, state, (SELECT count(*) FROM suppressions "
                               "WHERE pattern = 'v@opensmtpd.example') FROM messages "
                               "WHERE recipient = 'v@opensmtpd.example' AND attempts >= 1 AND state <> 'sending'")
                if rows:
                    first_sight = rows[0]
            if first_sight is not None and exim and exim[0][0] not in ("queued", "sending"):
                break
            time.sleep(0.2)
        # the checks of the database below read it while serve still runs,
        # as they always did; serve stops at the end of the module
        yield {"db": db, "first_sight": first_sight, "serve": s}
    finally:
        s.kill()


def test_unrouteable_address_is_a_hard_bounce_after_one_attempt(run):
    q = run["db"].psql
    assert q("SELECT state, attempts, soft_bounces, outcome, reply LIKE '550%Unrouteable address%' FROM messages "
             "WHERE recipient = 'u@exim.example'") == [["bounced", "1", "0", "rejected_hard", "t"]], \
        "550 Unrouteable address: rejected_hard after exactly one attempt"
    assert q("SELECT e.state, e.next_send_at IS NULL FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
             "WHERE c.email = 'u@exim.example'") == [["bounced", "t"]], \
        "its enrollment is bounced, nothing more to send"
    assert q("SELECT count(*) FROM suppressions WHERE pattern = 'u@exim.example'")[0][0] == "1", \
        "the unrouteable address is suppressed"


def test_invalid_recipient_is_a_soft_bounce_on_first_sight(run):
    q = run["db"].psql
    assert run["first_sight"] == ["1", "1", "deferred", "0"], \
        "550 Invalid recipient on first sight: one soft bounce, deferred for a retry, not suppressed"
    assert q("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
             "WHERE c.email = 'v@opensmtpd.example'") == [["active"]], "the ambiguous enrollment stays active"
    assert int(q("SELECT count(*) FROM events WHERE kind = 'message.bounced' AND data->'bounce'->>'kind' = 'soft' "
                 "AND data->>'reply' LIKE '%Invalid recipient%'")[0][0]) >= 1, "a soft bounce event is written"


def test_serve_stops_cleanly_with_no_password_in_its_log(run):
    s = run["serve"]
    assert s.stop() == 0, "serve stops cleanly"
    out = s.output()
    assert "pw-s" not in out, "no password in the logs"
    assert "runtime error" not in out and "AddressSanitizer" not in out, f"sanitizers quiet: {out[-2000:]}"
