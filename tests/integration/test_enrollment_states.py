"""Enrollment states against a real PostgreSQL (issue 17):
  - `stopped` is every ending that is not the sequence's natural end:
    `relance stop`, and a suppression, which stops the live enrollments
    it covers at once (the command says how many; the claim's check stays
    the last guard); `relance migrate` moves the rows the previous release
    left ('completed' by a stop, 'failed' by a suppression) to it;
  - `enrollments show` names the real reason a step is not sooner: an
    auto-reply's return date, the server's deferral, the account's pacing
    (min_interval) after a resume, each with the time it ends;
  - `enrollments list` with --sequence, --state and --limit.
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


# ---- why not sooner

def test_show_names_an_auto_replys_return_date(w):
    w.contacts("dee@four.example")
    w.enroll("alpha", "dee@four.example")
    [(mid, _)] = w.claim(TUE)
    w.sent(mid, "2026-03-10T09:00:05Z")
    # "back on 20 March": the first window that day, 09:00 in Paris
    r = w.db.psql(f"SELECT relance_inbound('{ACCOUNT}', 'INBOX', 1, 1, 'away@four.example', ARRAY['{mid}'], "
                  "'dee@four.example', 'auto_reply', 'none', false, '{}', '2026-03-20', '2026-03-10T10:00:00Z')"
                  "->>'effect'")
    assert r == [["auto_reply"]], f"the auto-reply is recorded: {r}"
    out = w.show("dee@four.example", "2026-03-10T10:05:00Z")
    assert "next send: 2026-03-20T08:00:00Z" in out \
        and "why not sooner: auto-reply: away until 2026-03-20, no step before 2026-03-20T08:00:00Z" in out, \
        f"the return date, not the wait: {out}"


def test_show_names_a_deferral_and_its_retry_time(w):
    w.contacts("eve@five.example")
    w.enroll("alpha", "eve@five.example")
    [(mid, _)] = w.claim(TUE)
    w.db.psql(f"SELECT relance_step_deferred('{mid}', '2026-03-10T09:00:05Z', '2026-03-10T09:30:00Z', "
              "'451 4.7.1 greylisted, try again later', false)")
    out = w.show("eve@five.example", "2026-03-10T09:01:00Z")
    assert "why not sooner: deferred: the server answered '451 4.7.1 greylisted, try again later', " \
           "retried at 2026-03-10T09:30:00Z" in out, f"the deferral, not jitter: {out}"


def test_show_names_the_accounts_pacing_after_a_resume(db, tmp):
    w = World(db, tmp, min_interval=600)
    w.contacts("p1@one.example", "p2@two.example")
    w.enroll("alpha", "p1@one.example", "p2@two.example")
    r = relance("accounts", "pause", ACCOUNT, env=w.env)
    assert r.returncode == 0, f"accounts pause: {r.stdout + r.stderr}"
    assert "every account of pool founders is at its limit today or paused" in w.show("p2@two.example", TUE)
    assert relance("accounts", "resume", ACCOUNT, env=w.env).returncode == 0
    # after the resume both are due; min_interval: one now, the next ten minutes later
    [(mid, first)] = w.claim("2026-03-10T09:10:00Z")
    w.sent(mid, "2026-03-10T09:10:00Z")
    other = "p2@two.example" if first == "p1@one.example" else "p1@one.example"
    out = w.show(other, "2026-03-10T09:11:00Z")
    assert "why not sooner: account pacing: every account of pool founders waits for its min_interval, the first " \
           "until 2026-03-10T09:20:00Z" in out, f"pacing, not due now: {out}"
    [(mid, _)] = w.claim("2026-03-10T09:20:00Z")
    w.sent(mid, "2026-03-10T09:20:00Z")
    # both follow-ups due on Thursday from the same account: one goes, the other waits for the interval
    [(mid, first)] = w.claim("2026-03-12T10:00:00Z")
    other = "p2@two.example" if first == "p1@one.example" else "p1@one.example"
    out = w.show(other, "2026-03-12T10:01:00Z")
    assert f"why not sooner: account pacing: {ACCOUNT} sends its next message at 2026-03-12T10:10:00Z " \
           "(min_interval)" in out, f"the account's own pacing: {out}"


# ---- list

def test_enrollments_list_filters_by_sequence_and_state(w):
    w.contacts("ann@one.example", "bob@two.example")
    w.enroll("alpha", "ann@one.example", "bob@two.example", at="2026-03-07T10:00:00Z")  # a Saturday
    w.enroll("beta", "ann@one.example", at="2026-03-07T10:00:00Z")
    assert relance("stop", "--sequence", "beta", env=w.env).returncode == 0
    ids = [row[0] for row in w.db.psql("SELECT id FROM enrollments ORDER BY id")]
    r = relance("enrollments", "list", env=w.env)
    assert r.returncode == 0 and r.stdout.splitlines() == [
        f"{ids[2]}\tann@one.example\tbeta v1\tstopped\tstep 1 of 2\t-",
        f"{ids[1]}\tbob@two.example\talpha v1\tactive\tstep 1 of 2\t2026-03-09T08:00:00Z",
        f"{ids[0]}\tann@one.example\talpha v1\tactive\tstep 1 of 2\t2026-03-09T08:00:00Z",
    ], f"newest first, one a line: {r.stdout + r.stderr}"
    r = relance("enrollments", "list", "--sequence", "alpha", "--state", "active", "--limit", "1", env=w.env)
    assert r.returncode == 0 and r.stdout.splitlines() == [
        f"{ids[1]}\tbob@two.example\talpha v1\tactive\tstep 1 of 2\t2026-03-09T08:00:00Z"], \
        f"--sequence, --state, --limit: {r.stdout + r.stderr}"
    r = relance("enrollments", "list", "--state", "stopped", env=w.env)
    assert [line.split("\t")[2] for line in r.stdout.splitlines()] == ["beta v1"], f"--state stopped: {r.stdout}"
    r = relance("enrollments", "list", "--sequence", "nosuch", env=w.env)
    assert r.returncode == 1 and "no such sequence 'nosuch'" in r.stderr and r.stdout == "", \
        f"an unknown sequence is an error: {r.stdout + r.stderr}"
    r = relance("enrollments", "list", "--state", "done", env=w.env)
    assert r.returncode == 1 and "unknown state 'done'" in r.stderr, f"an unknown state: {r.stderr}"
    r = relance("enrollments", "--help", env=w.env)
    assert "list" in r.stdout and "stopped" in r.stdout, f"enrollments --help: {r.stdout}"
