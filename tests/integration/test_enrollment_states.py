"""Enrollment states against a real PostgreSQL (issue 17):
  - `stopped` is every ending that is not the sequence's natural end:
    `relance stop`, and a suppression, which stops the live enrollments
    it covers at once (the command says how many; the claim's check stays
    the last guard); `relance migrate` moves the rows the previous release
    left ('completed' by a stop, 'failed' by a suppression) to it;
The sending steps run through the scheduler's own SQL functions (claim,
outcome, inbound), as serve calls them, with the times given."""
import os

import pytest

import previous_release as old
from harness import relance

SEQ = """name: {name}
sender_pool: founders
schedule:
  timezone: Europe/Paris
  window: "09:00-17:00"
  days: [mon, tue, wed, thu, fri]
  jitter: 0
steps:
  - id: intro
    subject: "Hi"
    body: "Hello."
  - id: bump
    wait: 2 days
    body: "Again."
"""
# Tuesday 10:00 in Paris (UTC+1 in early March)
TUE = "2026-03-10T09:00:00Z"
ACCOUNT = "a@acme.example"


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class World:
    """Sequences alpha and beta (Paris hours, two steps two days apart),
    a pool 'founders' with one account as serve's sync leaves it, and
    its lease held by replica 't' so the account's claim runs."""

    def __init__(self, db, tmp, min_interval=0):
        self.db, self.tmp = db, tmp
        self.env = {"DATABASE_URL": db.url()}
        r = relance("apply", write(tmp, "a.yaml", SEQ.format(name="alpha")),
                    write(tmp, "b.yaml", SEQ.format(name="beta")), env=self.env)
        assert r.returncode == 0, f"apply: {r.stdout + r.stderr}"
        db.psql("INSERT INTO pools (name) VALUES ('founders'); "
                f"INSERT INTO accounts (email, pool, min_interval_s) VALUES ('{ACCOUNT}', 'founders', {min_interval}); "
                "INSERT INTO leases (name, holder, expires_at) "
                f"SELECT 'account:' || id, 't', now() + interval '1 hour' FROM accounts WHERE email = '{ACCOUNT}'")
        self.account = db.psql(f"SELECT id FROM accounts WHERE email = '{ACCOUNT}'")[0][0]

    def contacts(self, *emails):
        self.db.psql("INSERT INTO contacts (email) VALUES " + ", ".join(f"('{e}')" for e in emails))

    def enroll(self, seq, *emails, at=TUE):
        args = [a for e in emails for a in ("--contact", e)]
        r = relance("enroll", "--sequence", seq, "--allow-parallel", *args,
                    env={**self.env, "RELANCE_TEST_CLOCK": at})
        assert r.returncode == 0 and f"enrolled {len(emails)}" in r.stdout, f"enroll: {r.stdout + r.stderr}"

    def claim(self, at):
        """What the account's claim takes at `at`: [(message_id, email)]."""
        return self.db.psql(f"SELECT message_id, email FROM relance_claim_account('{at}', {self.account}, 10, 't')")

    def sent(self, mid, at):
        self.db.psql(f"SELECT relance_step_done('{mid}', '{at}', 'sent', '250 ok', NULL, NULL, NULL)")

    def show(self, email, at):
        r = relance("enrollments", "show", email, env={**self.env, "RELANCE_TEST_CLOCK": at})
        assert r.returncode == 0, f"show {email}: {r.stdout + r.stderr}"
        return r.stdout

    def states(self, email):
        return self.db.psql("SELECT s.name, e.state, e.state_reason FROM enrollments e "
                            "JOIN contacts c ON c.id = e.contact_id JOIN sequences s ON s.id = e.sequence_id "
                            f"WHERE c.email = '{email}' ORDER BY s.name")


@pytest.fixture
def w(db, tmp):
    return World(db, tmp)


# ---- stopped

def test_stop_leaves_stopped_and_completed_means_the_last_step_went_out(w):
    w.contacts("ann@one.example", "bob@two.example")
    w.enroll("alpha", "ann@one.example", "bob@two.example")
    r = relance("stop", "--contact", "ann@one.example", env=w.env)
    assert r.returncode == 0 and "stopped 1 enrollment" in r.stdout, f"stop: {r.stdout + r.stderr}"
    assert w.states("ann@one.example") == [["alpha", "stopped", "stopped by user"]], "stop: stopped, not completed"
    # bob goes to the end: completed
    for at in ("2026-03-10T09:00:00Z", "2026-03-12T09:00:00Z"):
        for mid, _ in w.claim(at):
            w.sent(mid, at)
    assert w.states("bob@two.example") == [["alpha", "completed", "all steps sent"]], "the last step went out"


def test_suppressing_a_domain_stops_its_live_enrollments_at_once(w):
    w.contacts("ann@one.example", "al@one.example", "bob@two.example")
    w.enroll("alpha", "ann@one.example", "al@one.example", "bob@two.example")
    w.enroll("beta", "ann@one.example")
    assert relance("pause", "--contact", "al@one.example", env=w.env).returncode == 0
    r = relance("suppress", "add", "@One.example", "ann@one.example", env={**w.env, "RELANCE_TEST_CLOCK": TUE})
    assert r.returncode == 0 and r.stdout == "added 2, already suppressed 0, stopped 3 enrollments\n", \
        f"suppress add says how many it stopped: {r.stdout + r.stderr}"
    # the address's own suppression is the one named, before its domain's
    assert w.states("ann@one.example") == [["alpha", "stopped", "suppressed: ann@one.example"],
                                           ["beta", "stopped", "suppressed: ann@one.example"]], "ann stopped"
    assert w.states("al@one.example") == [["alpha", "stopped", "suppressed: @one.example"]], "a paused one too"
    assert w.states("bob@two.example") == [["alpha", "active", "enrolled"]], "another domain goes on"
    assert w.db.psql("SELECT count(*) FROM events WHERE kind = 'enrollment.stopped' "
                     "AND data->>'reason' LIKE 'suppressed: %' AND data->>'state' = 'stopped'") == [["3"]], \
        "each stop is an event for the CRM"
    assert "state: stopped (suppressed: @one.example, since 2026-03-10T09:00:00Z)" in w.show("al@one.example", TUE), \
        "show says why"
    r = relance("suppress", "add", "@one.example", env=w.env)
    assert r.stdout == "added 0, already suppressed 1, stopped 0 enrollments\n", f"again: nothing to stop: {r.stdout}"


def test_the_claim_still_stops_a_contact_suppressed_another_way(w):
    w.contacts("cy@three.example")
    w.enroll("alpha", "cy@three.example")
    # a suppression written without the command (an older replica, a script)
    w.db.psql("INSERT INTO suppressions (pattern) VALUES ('@three.example')")
    assert w.claim(TUE) == [], "nothing is sent to a suppressed address"
    assert w.states("cy@three.example") == [["alpha", "stopped", "suppressed: @three.example"]], \
        "the claim's last guard stops it, not failed"


def test_migrate_moves_what_the_previous_release_left_to_stopped(empty_db, tmp):
    env = {"DATABASE_URL": empty_db.url(), "RELANCE_TEST_CLOCK": TUE, "RELANCE_TRANSPORT": "capture"}
    r = old.relance("migrate", env=env)
    assert r.returncode == 0, f"the previous release migrates: {r.stderr}"
    assert old.relance("apply", write(tmp, "a.yaml", SEQ.format(name="alpha")), env=env).returncode == 0
    empty_db.psql("INSERT INTO contacts (email) VALUES ('ann@one.example'), ('bob@two.example'), ('cy@three.example')")
    r = old.relance("enroll", "--sequence", "alpha", "--where", "true", env=env)
    assert r.returncode == 0 and "enrolled 3" in r.stdout, f"the previous release enrolls: {r.stdout + r.stderr}"
    assert old.relance("stop", "--contact", "ann@one.example", env=env).returncode == 0
    assert old.relance("suppress", "add", "@two.example", env=env).returncode == 0
    empty_db.psql(f"SELECT relance_claim_due('{TUE}', 100, 'x.example', 't')")
    before = empty_db.psql("SELECT c.email, e.state, e.state_reason FROM enrollments e "
                           "JOIN contacts c ON c.id = e.contact_id ORDER BY c.email")
    assert before[:2] == [["ann@one.example", "completed", "stopped by user"],
                          ["bob@two.example", "failed", "suppressed"]], f"the previous release's endings: {before}"
    r = relance("migrate", env=env)
    assert r.returncode == 0, f"migrate: {r.stdout + r.stderr}"
    after = empty_db.psql("SELECT c.email, e.state, e.state_reason FROM enrollments e "
                          "JOIN contacts c ON c.id = e.contact_id ORDER BY c.email")
    assert after == [["ann@one.example", "stopped", "stopped by user"], ["bob@two.example", "stopped", "suppressed"],
                     before[2]], f"moved to stopped, reasons kept, the rest untouched: {after}"
