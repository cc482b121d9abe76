"""The scheduler end to end against a real PostgreSQL, with the capture
transport and the test clock: 10,000 contacts across 20 time zones in a
3-step sequence, two `relance serve` replicas, time run forward fast.
Every captured message must be inside its contact's window on an allowed
day (checked with Python's zoneinfo, an oracle relance did not write), no
step may arrive twice, an enrollment keeps its version after v2 is
applied, and a held enrollment resumes once its field is filled."""
import email
import email.policy
import email.utils
import glob
import os
import time
from zoneinfo import ZoneInfo

import pytest

import harness
from harness import relance

ZONES = ["America/New_York", "Europe/Paris", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
         "Asia/Tokyo", "America/Los_Angeles", "Europe/London", "America/Sao_Paulo", "Africa/Johannesburg",
         "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin", "Asia/Singapore", "Pacific/Auckland",
         "America/Chicago", "Asia/Dubai", "Europe/Moscow", "UTC", None]  # None: the sequence's fallback
FALLBACK = "Europe/Paris"
WINDOW = (9 * 60, 17 * 60 + 30)  # 09:00-17:30
DAYS = {0, 1, 2, 3, 4}          # Monday to Friday (Python weekday numbers)
N = int(os.environ.get("RELANCE_TEST_CONTACTS", "10000"))
# Thursday 2026-03-05 06:00 UTC: the run crosses a weekend and, for the
# American zones, the 2026-03-08 DST change.
START = "2026-03-05T06:00:00Z"
SPEED = int(os.environ.get("RELANCE_TEST_SPEED", "3000"))

seq_v1 = """name: tz-test
sender_pool: founders
schedule:
  timezone: contact
  fallback_timezone: Europe/Paris
  window: "09:00-17:30"
  days: [mon, tue, wed, thu, fri]
  jitter: 10m
steps:
  - id: intro
    subject: "Hello {{company | there}}"
    body: "Hi {{first_name}}, {a|b|c}."
  - id: bump
    wait: 1 day
    body: "Bumping this, {{first_name}}."
  - id: last
    wait: 2 business days
    subject: "Last one (v1)"
    body: "Bye {{first_name}}."
"""


@pytest.fixture(scope="module")
def run(module_db, module_tmp):
    """N contacts enrolled under v1, v2 applied, two replicas sending
    through the capture transport until every step went (the held contact
    filled in once seen held); what was seen on the way, and the captured
    files with the database's view of each."""
    db, tmp = module_db, module_tmp
    capture = os.path.join(tmp, "capture")
    env = {"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": tmp}
    seq_file = os.path.join(tmp, "tz-test.yaml")
    with open(seq_file, "w") as f:
        f.write(seq_v1)
    r = relance("apply", seq_file, env=env)
    assert r.returncode == 0 and "tz-test: created" in r.stdout, f"apply v1: {r.stdout + r.stderr}"

    # Contacts straight through SQL (the CSV importer has its own tests).
    values = []
    for i in range(N):
        z = ZONES[i % len(ZONES)]
        first = "NULL" if i == 7 else f"'First{i}'"   # contact 7 lacks first_name: held
        zone = "NULL" if z is None else f"'{z}'"
        values.append(f"('c{i}@example.com', {first}, 'Co{i % 50}', {zone})")
    db.psql("INSERT INTO contacts (email, first_name, company, timezone) VALUES " + ",".join(values))
    clock_env = dict(env, RELANCE_TEST_CLOCK=START)
    r = relance("enroll", "--sequence", "tz-test", "--where", "true", env=clock_env, timeout=600)
    assert r.returncode == 0 and f"enrolled {N}, skipped 0" in r.stdout, \
        f"enroll {N} contacts: {r.stdout[-300:] + r.stderr}"
    again = relance("enroll", "--sequence", "tz-test", "--contact", "c1@example.com", "--contact",
                    "nobody@example.com", "--verbose", env=clock_env)
    # v2 changes the last step; every enrollment was made under v1.
    with open(seq_file, "w") as f:
        f.write(seq_v1.replace("Last one (v1)", "Last one (v2)"))
    r = relance("apply", seq_file, env=env)
    assert r.returncode == 0 and "tz-test: updated to v2" in r.stdout, f"apply v2: {r.stdout + r.stderr}"

    serve_env = dict(env, RELANCE_TRANSPORT="capture", RELANCE_CAPTURE_DIR=capture,
                     RELANCE_TEST_CLOCK=f"{START}*{SPEED}")
    replicas = [harness.Serve(serve_env), harness.Serve(serve_env)]
    try:
        for s in replicas:
            s.wait_status("/readyz", 200)

        def sent_count():
            return int(db.psql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0])

        # Expect 3 steps for everyone but the held contact (until it is filled).
        target = 3 * (N - 1)
        deadline = time.time() + 600
        held = shown = None
        while time.time() < deadline:
            n = sent_count()
            if held is None:
                rows = db.psql("SELECT state, state_reason FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                               "WHERE c.email = 'c7@example.com'")
                if rows and rows[0][0] == "held":
                    held = rows[0]
                    shown = relance("enrollments", "show", "c7@example.com", env=env).stdout
                    db.psql("UPDATE contacts SET first_name = 'Seven', updated_at = now() "
                            "WHERE email = 'c7@example.com'")
                    target = 3 * N
            if n >= target and held is not None:
                break
            time.sleep(1)
        sent = sent_count()
        stops = [(s.stop(), s.output()) for s in replicas]
    finally:
        for s in replicas:
            s.kill()
    files = glob.glob(os.path.join(capture, "new", "*"))
    rows = db.psql("SELECT m.message_id, c.email, m.position, m.step_id, coalesce(c.timezone, 'Europe/Paris'), "
                   "e.version FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                   "JOIN contacts c ON c.id = e.contact_id")
    return {"db": db, "again": again, "held": held, "shown": shown, "target": target, "sent": sent,
            "stops": stops, "files": files, "info": {r[0]: r for r in rows}}


def test_enroll_is_idempotent_and_says_why(run):
    r = run["again"]
    assert r.returncode == 0 and "skipped c1@example.com: already active in this sequence" in r.stdout \
        and "skipped nobody@example.com: unknown contact" in r.stdout, f"enroll is idempotent and says why: {r.stdout}"


def test_a_contact_lacking_a_field_is_held_then_resumes_once_filled(run):
    assert run["held"] is not None, "the held enrollment was seen"
    assert run["held"][1] == "missing_field:first_name", "a contact lacking a field is held with the reason"
    assert "held: missing_field:first_name" in run["shown"], f"enrollments show says why it is held: {run['shown']}"


def test_every_step_of_every_enrollment_is_sent_once(run):
    assert run["target"] == 3 * N and run["sent"] == run["target"], "every step of every enrollment was sent"
    assert len(run["files"]) == run["target"], "one captured file per sent message"
    assert run["db"].psql("SELECT count(*) FROM enrollments WHERE state = 'completed'")[0][0] == str(N), \
        "all enrollments completed"


def test_both_replicas_work_and_stop_cleanly(run, check):
    for rc, out in run["stops"]:
        check.eq(rc, 0, "replica stops cleanly")
        check.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
    check.eq(run["db"].psql("SELECT count(DISTINCT claimed_by) FROM messages")[0][0], "2", "both replicas did work")


def test_every_message_is_inside_its_window_once_threaded_and_of_its_version(run, check):
    info = run["info"]
    seen = set()
    dup = 0
    outside = []
    v2_leak = 0
    threaded_ok = 0
    for path in run["files"]:
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        mid = msg["Message-ID"].strip("<>")
        row = info.get(mid)
        if not row:
            outside.append(f"unknown message {mid}")
            continue
        key = (row[1], row[2])
        if key in seen:
            dup += 1
        seen.add(key)
        when = email.utils.parsedate_to_datetime(msg["Date"])
        local = when.astimezone(ZoneInfo(row[4]))
        minute = local.hour * 60 + local.minute
        if not (WINDOW[0] <= minute < WINDOW[1]) or local.weekday() not in DAYS:
            outside.append(f"{row[1]} step {row[3]} at {local.isoformat()} ({row[4]})")
        if row[3] == "last" and "(v2)" in str(msg["Subject"]):
            v2_leak += 1
        if row[3] == "bump" and msg["In-Reply-To"] and str(msg["Subject"]).startswith("Re: Hello"):
            threaded_ok += 1
    check.eq(dup, 0, "no step arrived twice")
    check.eq(outside[:5], [], f"every message inside its contact's window on an allowed day ({len(outside)} outside)")
    check.eq(v2_leak, 0, "enrollments made under v1 keep reading v1")
    check.eq(threaded_ok, N, "every bump is threaded as 'Re: <first subject>' with In-Reply-To")


def test_no_follow_up_before_its_wait(run):
    waits = run["db"].psql("SELECT count(*) FROM messages a JOIN messages b ON a.enrollment_id = b.enrollment_id "
                           "AND b.position = a.position + 1 WHERE b.created_at < a.created_at + interval '23 hours'")
    assert waits[0][0] == "0", "no follow-up before its wait"
