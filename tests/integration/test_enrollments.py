"""Enrollments against a real PostgreSQL: enroll from --contact, --csv and
--where with the skip reasons, enrollments show (next send time in UTC and
local time, and why not sooner, a pool with no account included), pause/resume/stop, and a resumed
enrollment whose time passed during the pause is moved to the next window
opening instead of being sent off-hours. Enroll is set-based
(relance_enroll_many, in chunks): the same outcomes as one by one, a
repeat within the input included, and a progress bar on a terminal only."""
import os
import pty
import subprocess

import pytest

import harness
from harness import relance

SEQ = """name: {name}
sender_pool: founders
schedule:
  timezone: {zone}
  fallback_timezone: Europe/Paris
  window: "09:00-17:00"
  days: [mon, tue, wed, thu, fri]
  jitter: 0
steps:
  - id: intro
    subject: "Hi {{{{company | there}}}}"
    body: "Hello."
  - id: bump
    wait: 2 days
    body: "Again."
"""
SAT = {"RELANCE_TEST_CLOCK": "2026-03-07T10:00:00Z"}  # a Saturday
TUE_EVE = {"RELANCE_TEST_CLOCK": "2026-03-10T18:30:00Z"}  # Tuesday 19:30 in Paris


class World:
    """Sequences alpha (the contact's zone) and beta (New York), five
    contacts, @blocked.example suppressed."""

    def __init__(self, db, tmp):
        self.db, self.tmp = db, tmp
        self.env = {"DATABASE_URL": db.url()}
        r = relance("apply", self.write("a.yaml", SEQ.format(name="alpha", zone="contact")),
                    self.write("b.yaml", SEQ.format(name="beta", zone="America/New_York")), env=self.env)
        assert r.returncode == 0 and "alpha: created" in r.stdout and "beta: created" in r.stdout, \
            f"apply: {r.stdout + r.stderr}"
        db.psql("INSERT INTO contacts (email, first_name, timezone) VALUES "
                "('ann@one.example', 'Ann', 'Asia/Kolkata'), ('bob@two.example', 'Bob', NULL), "
                "('cy@three.example', 'Cy', 'America/New_York'), ('dee@four.example', 'Dee', 'Europe/Paris'), "
                "('eve@blocked.example', 'Eve', NULL)")
        assert relance("suppress", "add", "@blocked.example", env=self.env).returncode == 0, "suppress a domain"

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def enroll(self, *args, clock=None):
        return relance("enroll", *args, env={**self.env, **(clock or {})})

    def enrolled_count(self, email):
        return self.db.psql("SELECT count(*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                            f"WHERE c.email = '{email}'")[0][0]


@pytest.fixture
def w(db, tmp):
    return World(db, tmp)


def test_enroll_contact_reports_skips_and_show_explains_the_next_send(w):
    r = w.enroll("--sequence", "alpha", "--contact", "ann@one.example", "--contact", "eve@blocked.example",
                 "--contact", "zed@nowhere.example", "--verbose", clock=SAT)
    assert r.returncode == 0 and "enrolled 1, skipped 2" in r.stdout \
        and "skipped eve@blocked.example: suppressed" in r.stdout \
        and "skipped zed@nowhere.example: unknown contact" in r.stdout, \
        f"enroll --contact with reasons: {r.stdout + r.stderr}"
    # Kolkata (+05:30), enrolled on a Saturday: Monday 09:00 local = 03:30Z
    r = relance("enrollments", "show", "ann@one.example", env={**w.env, **SAT})
    assert "state: active" in r.stdout and "step: intro (1 of 2)" in r.stdout, f"show: state and step: {r.stdout}"
    assert "next send: 2026-03-09T03:30:00Z (2026-03-09 09:00:00 Asia/Kolkata)" in r.stdout, \
        f"show: next send in UTC and local time: {r.stdout}"
    assert "why not sooner: weekday" in r.stdout, f"show: Saturday is not a sending day: {r.stdout}"


def test_enroll_csv_reads_the_email_column_and_uses_the_fallback_zone(w):
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example", clock=SAT)
    good = w.write("good.csv", "Name,EMAIL,notes\nBob,bob@two.example,\"x, y\"\nAnn,ann@one.example,z\n")
    r = w.enroll("--sequence", "alpha", "--csv", good, "--verbose", clock=TUE_EVE)
    assert r.returncode == 0 and "enrolled 1, skipped 1" in r.stdout \
        and "skipped ann@one.example: already active in this sequence" in r.stdout, \
        f"enroll --csv: {r.stdout + r.stderr}"
    r = relance("enrollments", "show", "bob@two.example", env={**w.env, **TUE_EVE})
    assert "next send: 2026-03-11T08:00:00Z (2026-03-11 09:00:00 Europe/Paris)" in r.stdout \
        and "why not sooner: window" in r.stdout, \
        f"no zone: the fallback zone, and the window is the reason: {r.stdout}"


def test_enroll_csv_guesses_the_delimiter_as_contacts_import_does(w):
    fr = os.path.join(w.tmp, "fr.csv")
    with open(fr, "wb") as f:
        f.write("\ufeffNom;email;Soci\u00e9t\u00e9\r\nAnn;ann@one.example;Un, Deux\r\n".encode())
    r = w.enroll("--sequence", "alpha", "--csv", fr, clock=SAT)
    assert r.returncode == 0 and w.enrolled_count("ann@one.example") == "1", \
        f"a ';' file with a BOM: {r.stdout + r.stderr}"
    tabs = w.write("tabs.csv", "email\tName;Surname;Town\nbob@two.example\tBob;B;Paris\n")
    r = w.enroll("--sequence", "alpha", "--csv", tabs, clock=SAT)
    assert r.returncode == 1 and "no 'email' column" in r.stderr, f"guessed ';': no email column: {r.stderr}"
    r = w.enroll("--sequence", "alpha", "--csv", tabs, "--delimiter", "tab", clock=SAT)
    assert r.returncode == 0 and w.enrolled_count("bob@two.example") == "1", \
        f"--delimiter tab: {r.stdout + r.stderr}"
    r = w.enroll("--sequence", "alpha", "--csv", tabs, "--delimiter", "|", clock=SAT)
    assert r.returncode == 2 and "--delimiter takes" in r.stderr, f"a bad --delimiter: {r.stderr}"


def test_a_csv_that_cannot_be_used_enrolls_nothing(w):
    nocol = w.write("nocol.csv", "mail\ncy@three.example\n")
    r = w.enroll("--sequence", "alpha", "--csv", nocol)
    assert r.returncode == 1 and "no 'email' column" in r.stderr, f"a CSV without an email column: {r.stderr}"
    assert w.enrolled_count("cy@three.example") == "0", "nothing enrolled from the failed file"


def test_enroll_csv_reports_and_skips_bad_rows_and_enrolls_the_rest(w):
    mixed = w.write("mixed.csv", "email,name\nbob@two.example,Bob\n\"cy@three.example\"x,Cy\n,Nobody\n"
                    "not-an-address,X\ndee@four.example,Dee\n")
    r = w.enroll("--sequence", "alpha", "--csv", mixed)
    assert r.returncode == 0 and "enrolled 2, skipped 3: bad row 3" in r.stdout, \
        f"the good rows are enrolled despite the bad ones: {r.stdout + r.stderr}"
    bad = [line for line in r.stderr.splitlines() if line.startswith(mixed + ":")]
    assert [b.split(":")[1] for b in bad] == ["3", "4", "5"] and "missing email" in bad[1], \
        f"each bad row reported as FILE:LINE: reason, as contacts import does: {r.stderr}"
    assert [w.enrolled_count(e) for e in ("bob@two.example", "dee@four.example", "cy@three.example")] == \
        ["1", "1", "0"], "good rows enrolled, the bad row not"


def test_a_rerun_prints_a_summary_by_reason_and_each_contact_only_with_verbose(w):
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example", "--contact", "bob@two.example")
    w.enroll("--sequence", "beta", "--contact", "cy@three.example")
    every = ["--contact", "ann@one.example", "--contact", "bob@two.example", "--contact", "cy@three.example",
             "--contact", "dee@four.example", "--contact", "eve@blocked.example"]
    r = w.enroll("--sequence", "alpha", *every)
    assert r.returncode == 0 and r.stdout == "enrolled 1, skipped 4: already active in this sequence 2, " \
        "active in another sequence 1, suppressed 1\n", f"one summary line, counts by reason: {r.stdout}"
    r = w.enroll("--sequence", "alpha", "--verbose", *every)
    assert r.stdout.splitlines() == [
        "skipped ann@one.example: already active in this sequence",
        "skipped bob@two.example: already active in this sequence",
        "skipped cy@three.example: active in another sequence: beta",
        "skipped dee@four.example: already active in this sequence",
        "skipped eve@blocked.example: suppressed",
        "enrolled 0, skipped 5: already active in this sequence 3, active in another sequence 1, suppressed 1"], \
        f"--verbose: each skipped contact, then the summary: {r.stdout}"


def test_a_contact_active_in_another_sequence_needs_allow_parallel(w):
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example", clock=SAT)
    r = w.enroll("--sequence", "beta", "--contact", "ann@one.example", "--verbose")
    assert "skipped ann@one.example: active in another sequence: alpha" in r.stdout, \
        f"active elsewhere is skipped: {r.stdout}"
    r = w.enroll("--sequence", "beta", "--contact", "ann@one.example", "--allow-parallel")
    assert "enrolled 1, skipped 0" in r.stdout, f"--allow-parallel enrolls anyway: {r.stdout}"
    r = w.enroll("--sequence", "nope", "--contact", "ann@one.example")
    assert r.returncode == 1 and "no sequence named nope" in r.stderr, f"unknown sequence: clear error: {r.stderr}"


def test_enroll_where_selects_contacts_and_cannot_write(w):
    r = w.enroll("--sequence", "beta", "--where", "timezone = 'America/New_York'")
    assert r.returncode == 0 and "enrolled 1, skipped 0" in r.stdout, f"--where: {r.stdout + r.stderr}"
    r = w.enroll("--sequence", "beta", "--where", "(SELECT count(*) FROM contacts) > 0 AND "
                 "relance_enroll('alpha', 'dee@four.example', now(), true) IS NOT NULL")
    assert r.returncode == 1 and "read-only" in r.stderr, f"--where cannot write: {r.stderr}"
    assert w.enrolled_count("dee@four.example") == "0", "nothing written by the --where attempt"
    r = w.enroll("--sequence", "beta", "--where", "no_such_column = 1")
    assert r.returncode == 1 and "no_such_column" in r.stderr, f"--where with an error: clear message: {r.stderr}"


def test_a_resumed_enrollment_past_its_time_waits_for_the_next_window(w):
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example", clock=SAT)
    w.enroll("--sequence", "beta", "--contact", "ann@one.example", "--allow-parallel")
    db, env = w.db, w.env
    r = relance("pause", "--contact", "ann@one.example", env=env)
    assert r.returncode == 0 and "paused 2 enrollments" in r.stdout, f"pause a contact (both sequences): {r.stdout}"
    assert db.psql("SELECT count(*) FROM enrollments WHERE state = 'paused'")[0][0] == "2", "both paused"
    rows = db.psql("SELECT count(*) FROM relance_claim_due('2026-03-09T05:00:00Z', 100, 'x.example', 't')")
    assert rows[0][0] == "0", "a paused enrollment is never claimed"
    r = relance("resume", "--contact", "ann@one.example", env=env)
    assert r.returncode == 0 and "resumed 2 enrollments" in r.stdout, f"resume: {r.stdout}"
    # Resumed long after its time, on a Saturday: the claim moves it to Monday's opening.
    ann = db.psql("SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s "
                  "ON s.id = e.sequence_id WHERE c.email = 'ann@one.example' AND s.name = 'alpha'")[0][0]
    rows = db.psql("SELECT count(*) FROM relance_claim_due('2026-03-14T12:00:00Z', 100, 'x.example', 't') "
                   f"WHERE enrollment_id = {ann}")
    assert rows[0][0] == "0", "resumed on a Saturday: not sent"
    assert db.psql(f"SELECT next_send_at AT TIME ZONE 'UTC' FROM enrollments WHERE id = {ann}")[0][0] == \
        "2026-03-16 03:30:00", "moved to Monday 09:00 in the contact's zone"
    rows = db.psql("SELECT step_id FROM relance_claim_due('2026-03-16T03:30:00Z', 100, 'x.example', 't') "
                   f"WHERE enrollment_id = {ann}")
    assert rows == [["intro"]], "claimed once the window opens"


def test_stop_ends_every_enrollment_of_a_sequence(w):
    w.enroll("--sequence", "beta", "--contact", "ann@one.example")
    w.enroll("--sequence", "beta", "--where", "timezone = 'America/New_York'")
    r = relance("stop", "--sequence", "beta", env=w.env)
    assert r.returncode == 0 and "stopped 2 enrollments" in r.stdout, f"stop a sequence: {r.stdout}"
    r = relance("enrollments", "show", "cy@three.example", env=w.env)
    assert "state: stopped (stopped by user" in r.stdout, f"show after stop: {r.stdout}"


def test_show_of_a_completed_enrollment_says_done_with_the_last_step(w):
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example", clock=SAT)
    # Both steps claimed and sent through the scheduler's own SQL: Monday
    # 09:00 in Kolkata, then two days later.
    for when in ("2026-03-09T05:00:00Z", "2026-03-11T05:00:00Z"):
        mid = w.db.psql(f"SELECT message_id FROM relance_claim_due('{when}', 100, 'x.example', 't')")[0][0]
        w.db.psql(f"SELECT relance_step_done('{mid}', '{when}', 'sent', '250 ok', NULL, NULL, NULL)")
    r = relance("enrollments", "show", "ann@one.example", env=w.env)
    assert "state: completed (all steps sent" in r.stdout and "step: done (2 of 2)" in r.stdout, \
        f"a completed enrollment: done, 2 of 2: {r.stdout}"


def test_a_bad_enrollment_id_and_an_unknown_contact_are_errors(w):
    r = relance("pause", "--enrollment", "abc", env=w.env)
    assert r.returncode == 1, "a bad enrollment id is an error"
    r = relance("enrollments", "show", "nobody@example.com", env=w.env)
    assert r.returncode == 1 and "no enrollment" in r.stderr, f"show of a contact without enrollments: {r.stderr}"


def test_pause_resume_stop_of_an_unknown_target_is_an_error_and_a_known_idle_one_is_not(w):
    for verb in ("pause", "resume", "stop"):
        for by, value in (("--sequence", "nosuch"), ("--enrollment", "999999"), ("--contact", "zed@nowhere.example")):
            r = relance(verb, by, value, env=w.env)
            noun = by[2:]
            assert r.returncode == 1 and f"no such {noun} '{value}'" in r.stderr and r.stdout == "", \
                f"{verb} {by} {value}: an error, not a count of 0: {r.stdout + r.stderr}"
    # known, with nothing to change: the count, exit 0
    r = relance("resume", "--sequence", "alpha", env=w.env)
    assert r.returncode == 0 and "resumed 0 enrollments" in r.stdout, f"a known idle sequence: {r.stdout + r.stderr}"
    r = relance("pause", "--contact", "BOB@two.example ", env=w.env)
    assert r.returncode == 0 and "paused 0 enrollments" in r.stdout, f"a known contact, spelled loosely: {r.stderr}"
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example")
    eid = w.db.psql("SELECT id FROM enrollments")[0][0]
    r = relance("resume", "--enrollment", eid, env=w.env)
    assert r.returncode == 0 and "resumed 0 enrollments" in r.stdout, f"a known active enrollment: {r.stderr}"


def test_show_says_no_such_pool_once_accounts_are_known_and_none_is_in_the_pool(w):
    assert w.enroll("--sequence", "alpha", "--contact", "dee@four.example", clock=TUE_EVE).returncode == 0
    # what serve's accounts sync leaves: a configured account, in another pool
    w.db.psql("INSERT INTO pools (name) VALUES ('other'); "
              "INSERT INTO accounts (email, pool) VALUES ('a@acme.example', 'other')")
    r = relance("enrollments", "show", "dee@four.example", env={**w.env, **TUE_EVE})
    assert "why not sooner: no such pool 'founders'" in r.stdout, f"show: the pool has no account: {r.stdout}"
    r = relance("enrollments", "show", "dee@four.example", env={**w.env, **TUE_EVE, "RELANCE_TRANSPORT": "capture"})
    assert "why not sooner: window" in r.stdout, f"show: capture ignores pools: {r.stdout}"


def test_enroll_many_judges_a_batch_in_input_order_as_one_by_one_would(w):
    w.enroll("--sequence", "beta", "--contact", "cy@three.example")
    rows = w.db.psql("SELECT email, outcome FROM relance_enroll_many('alpha', ARRAY['ann@one.example', "
                     "'zed@nowhere.example', 'eve@blocked.example', 'cy@three.example', ' ANN@one.example ', "
                     "'bob@two.example', 'bob@two.example'], '2026-03-07T10:00:00Z', false)")
    assert rows == [["ann@one.example", "enrolled"], ["zed@nowhere.example", "unknown contact"],
                    ["eve@blocked.example", "suppressed"], ["cy@three.example", "active in another sequence: beta"],
                    [" ANN@one.example ", "already active in this sequence"], ["bob@two.example", "enrolled"],
                    ["bob@two.example", "already active in this sequence"]], \
        f"one row per address, in order; a repeat of an address enrolled earlier in the batch: {rows}"
    bad = w.db.psql("SELECT count(*) FROM enrollments WHERE next_send_at IS DISTINCT FROM "
                    "relance_step_due(id, 0, created_at, jitter_r)")
    assert bad == [["0"]], "every enrollment's first step is due at relance_step_due"
    assert w.db.psql("SELECT relance_enroll('alpha', 'dee@four.example', '2026-03-07T10:00:00Z', false), "
                     "relance_enroll('alpha', 'dee@four.example', '2026-03-07T10:00:00Z', false)") == \
        [["enrolled", "already active in this sequence"]], "relance_enroll, one address, still answers"


def test_an_enrollment_can_only_point_at_a_sequence_version_that_exists(w):
    # the foreign key enrollments -> sequence_versions, held by triggers
    # checked once per statement (migration 020)
    w.enroll("--sequence", "alpha", "--contact", "ann@one.example")
    seq, ver = w.db.psql("SELECT sequence_id, version FROM enrollments")[0]
    refused = [
        # a copy of the enrollment, done, naming a version that does not exist
        ("CREATE TEMP TABLE x AS SELECT * FROM enrollments; "
         f"UPDATE x SET id = id + 1000, state = 'completed', version = {int(ver) + 7}; "
         "INSERT INTO enrollments SELECT * FROM x", "does not exist"),
        (f"UPDATE enrollments SET version = {int(ver) + 7}", "does not exist"),
        (f"DELETE FROM sequence_versions WHERE sequence_id = {seq}", "never deleted"),
        (f"UPDATE sequence_versions SET version = version + 7 WHERE sequence_id = {seq}", "never changed"),
    ]
    for sql, why in refused:
        with pytest.raises(RuntimeError, match=why):
            w.db.psql(sql)
    assert w.db.psql("SELECT count(*), min(version) FROM enrollments") == [["1", ver]], "nothing was changed"
    # an update that leaves the version alone is not checked, and works
    w.db.psql("UPDATE enrollments SET state_reason = 'checked'")


def test_each_enrollment_of_a_batch_draws_its_own_jitter(w):
    r = relance("apply", w.write("g.yaml", SEQ.format(name="gamma", zone="UTC").replace("jitter: 0", "jitter: 2h")),
                env=w.env)
    assert r.returncode == 0, f"apply gamma: {r.stdout + r.stderr}"
    r = w.enroll("--sequence", "gamma", *[a for e in ("ann@one.example", "bob@two.example", "cy@three.example",
                                                      "dee@four.example") for a in ("--contact", e)], clock=SAT)
    assert "enrolled 4, skipped 0" in r.stdout, f"enroll four: {r.stdout + r.stderr}"
    got = w.db.psql("SELECT count(DISTINCT jitter_r), count(DISTINCT next_send_at) FROM enrollments")
    assert got == [["4", "4"]], f"four draws, four due times in the same window: {got}"
    bad = w.db.psql("SELECT count(*) FROM enrollments WHERE next_send_at IS DISTINCT FROM "
                    "relance_step_due(id, 0, created_at, jitter_r)")
    assert bad == [["0"]], "each due time is relance_step_due's, jitter included"


def test_an_enroll_larger_than_one_chunk_is_one_transaction_that_sees_its_own_rows(w):
    # 10,001 addresses: two relance_enroll_many calls of up to 10,000; the
    # second's ann is the first's, so it is already active.
    path = w.write("many.csv", "email\nann@one.example\n" + "".join(f"nobody{i}@nowhere.example\n"
                                                                   for i in range(9999)) + "ann@one.example\n")
    r = w.enroll("--sequence", "alpha", "--csv", path)
    assert r.returncode == 0 and r.stdout == "enrolled 1, skipped 10000: unknown contact 9999, " \
        "already active in this sequence 1\n", f"across chunks as one by one: {r.stdout + r.stderr}"
    assert w.enrolled_count("ann@one.example") == "1", "enrolled once"


def run_on_terminal(args, env):
    """Runs relance with stderr on a pseudo-terminal (stdout a pipe):
    (exit status, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([harness.RELANCE, *args], env=harness.relance_env(env), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal's last handle
            break
        if not data:
            break
        seen += data
    out = p.stdout.read()
    p.wait(timeout=120)
    os.close(master)
    return p.returncode, out.decode(), seen.decode("utf-8", "replace")


def test_import_and_enroll_draw_a_progress_bar_on_a_terminal_and_none_elsewhere(w):
    # 5,000 rows of about 250 bytes: over contacts import's 1 MiB and
    # enroll's 5,000 addresses, the sizes from which a bar is drawn.
    notes = "n" * 200
    path = w.write("big.csv", "email,first_name,notes\n" + "".join(f"p{i}@bar{i % 50}.example,P{i},{notes}\n"
                                                                   for i in range(5000)))
    code, out, term = run_on_terminal(["contacts", "import", path], w.env)
    assert code == 0 and out == "inserted 5000, updated 0, rejected 0\n", f"import on a terminal: {out}{term}"
    assert "importing " in term and "] 100% 5000 rows" in term and "rows/s" in term and term.endswith("\n"), \
        f"import: a bar with rows, percent and rate, ended by a newline: {term!r}"
    code, out, term = run_on_terminal(["enroll", "--sequence", "alpha", "--csv", path], {**w.env, **SAT})
    assert code == 0 and out == "enrolled 5000, skipped 0\n", f"enroll on a terminal: {out}{term}"
    assert "enrolling [" in term and "] 100% 5000/5000 rows" in term and "rows/s" in term and term.endswith("\n"), \
        f"enroll: a bar with rows done of the total, percent and rate, ended by a newline: {term!r}"
    r = relance("contacts", "import", path, env=w.env)
    assert r.returncode == 0 and r.stderr == "", f"import, stderr not a terminal: no bar: {r.stderr!r}"
    r = w.enroll("--sequence", "alpha", "--csv", path)
    assert r.returncode == 0 and r.stderr == "" and "skipped 5000" in r.stdout, \
        f"enroll, stderr not a terminal: no bar: {r.stderr!r}"
