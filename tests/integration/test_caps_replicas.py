"""Caps hold exactly end to end with two `relance serve` replicas sending
through one SMTP server: an account with daily_limit 5 sends exactly 5
messages on its day however many are due, the other replica never sends
from it (leases), enrollments show says 'account capacity' for the rest,
and a paused account holds its enrollments ('account paused') without
re-routing them to another account."""
import time

import pytest

import harness
from harness import relance

N = 12
# 2026-03-02 16:00 UTC is 11:00 in New York: the account's day lasts 13 more hours
START = "2026-03-02T16:00:00Z"
LATER = {"RELANCE_TEST_CLOCK": "2026-03-02T17:00:00Z"}
pytestmark = pytest.mark.mail(users=[("capped@acme.example", "pw1"), ("spare@acme.example", "pw2")])


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """Twelve contacts due at once for an account capped at 5 a day, two
    replicas serving until 5 went and 80 s more of relance's clock; the
    replicas still run while the cases read the outcome."""
    ms, db, tmp = mail, module_db, module_tmp
    cfg = harness.pool_config(tmp, {
        "capped": [harness.account(ms, "capped@acme.example", "PW1", daily_limit=5, timezone="America/New_York")],
        "spare": [harness.account(ms, "spare@acme.example", "PW2")]})
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW1": "pw1", "PW2": "pw2"}
    seq = harness.sequence(tmp, "one_step", name="capped", pool="capped")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('q{i}@prospects.example')" for i in range(N)))
    r = relance("enroll", "--sequence", "capped", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {N}" in r.stdout, f"enroll: {r.stdout + r.stderr}"

    replicas = [harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*10"}) for _ in range(2)]
    try:
        for s in replicas:
            s.wait_status("/readyz", 200)
        deadline = time.time() + 60
        while time.time() < deadline and \
                int(db.psql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]) < 5:
            time.sleep(0.5)
        time.sleep(8)  # 80 more seconds of relance's clock: nothing more may go out today
        yield {"db": db, "ms": ms, "env": env, "replicas": replicas}
    finally:
        for s in replicas:
            s.kill()


def test_exactly_daily_limit_messages_go_out_from_one_replica(run):
    db, ms = run["db"], run["ms"]
    delivered = sum(len(ms.messages(f"q{i}@prospects.example")) for i in range(N))
    assert delivered == 5, "exactly daily_limit messages arrived with two replicas running"
    assert db.psql("SELECT sent FROM account_days")[0][0] == "5", "the account's day counts 5"
    assert db.psql("SELECT count(DISTINCT claimed_by) FROM messages")[0][0] == "1", \
        "one replica sent from the account"
    assert db.psql("SELECT count(*) FROM enrollments WHERE account_id = (SELECT id FROM accounts "
                   "WHERE email = 'spare@acme.example')")[0][0] == "0", "nothing re-routed to another pool's account"


def test_the_others_wait_for_account_capacity(run):
    db, env = run["db"], run["env"]
    waiting = db.psql("SELECT c.email FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                      "WHERE e.position = 0 ORDER BY c.id LIMIT 1")[0][0]
    r = relance("enrollments", "show", waiting, env={**env, **LATER})
    assert "why not sooner: account capacity" in r.stdout, f"a waiting enrollment says 'account capacity': {r.stdout}"
    r = relance("accounts", "list", env={**env, **LATER})
    assert "capped@acme.example\tpool capped\tactive\ttoday 5/5" in r.stdout, f"accounts list shows 5/5: {r.stdout}"


def test_a_paused_account_holds_its_enrollments(run):
    db, env = run["db"], run["env"]
    sent_one = db.psql("SELECT c.email FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                       "JOIN contacts c ON c.id = e.contact_id LIMIT 1")[0][0]
    db.psql("UPDATE accounts SET state = 'paused', state_reason = 'paused for the test' "
            "WHERE email = 'capped@acme.example'")
    db.psql("UPDATE enrollments SET next_send_at = '2026-03-02T16:00:00Z', position = 0, state = 'active' "
            "WHERE id = (SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
            f"WHERE c.email = '{sent_one}')")
    r = relance("enrollments", "show", sent_one, env={**env, **LATER})
    assert "why not sooner: account paused: paused for the test" in r.stdout, \
        f"'account paused' is the reason: {r.stdout}"


def test_the_replicas_stop_cleanly(run, check):
    for s in run["replicas"]:
        check.eq(s.stop(), 0, "replica stops cleanly")
        check.ok("runtime error" not in s.output() and "AddressSanitizer" not in s.output(), "sanitizers quiet")
