"""The scheduler end to end against a real PostgreSQL, with the capture
transport and the test clock: 10,000 contacts across 20 time zones in a
3-step sequence, two `relance serve` replicas, time run forward fast.
Every captured message must be inside its contact's window on an allowed
day (checked with Python's zoneinfo, an oracle relance did not write), no
step may arrive twice, an enrollment keeps its version after v2 is
applied, and a held enrollment resumes once its field is filled."""
import datetime as dt
import email
import email.policy
import glob
import os
import sys
import time
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("scheduler")
pg = harness.Postgres()
tmp = harness.short_tempdir("rsch")
capture = os.path.join(tmp, "capture")
env = {"DATABASE_URL": pg.url(), "RELANCE_STATE_DIR": tmp}
r = relance("migrate", env=env)
t.eq(r.returncode, 0, "migrate")

ZONES = ["America/New_York", "Europe/Paris", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
         "Asia/Tokyo", "America/Los_Angeles", "Europe/London", "America/Sao_Paulo", "Africa/Johannesburg",
         "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin", "Asia/Singapore", "Pacific/Auckland",
         "America/Chicago", "Asia/Dubai", "Europe/Moscow", "UTC", None]  # None: the sequence's fallback
FALLBACK = "Europe/Paris"
WINDOW = (9 * 60, 17 * 60 + 30)  # 09:00-17:30
DAYS = {0, 1, 2, 3, 4}          # Monday to Friday (Python weekday numbers)
N = int(os.environ.get("RELANCE_TEST_CONTACTS", "10000"))

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
seq_file = os.path.join(tmp, "tz-test.yaml")
with open(seq_file, "w") as f:
    f.write(seq_v1)
r = relance("apply", seq_file, env=env)
t.ok(r.returncode == 0 and "tz-test: created" in r.stdout, "apply v1", r.stdout + r.stderr)

# Contacts straight through SQL (the CSV importer has its own tests).
values = []
for i in range(N):
    z = ZONES[i % len(ZONES)]
    first = "NULL" if i == 7 else f"'First{i}'"   # contact 7 lacks first_name: held
    zone = "NULL" if z is None else f"'{z}'"
    values.append(f"('c{i}@example.com', {first}, 'Co{i % 50}', {zone})")
pg.psql("INSERT INTO contacts (email, first_name, company, timezone) VALUES " + ",".join(values))

# Thursday 2026-03-05 06:00 UTC: the run crosses a weekend and, for the
# American zones, the 2026-03-08 DST change.
START = "2026-03-05T06:00:00Z"
SPEED = int(os.environ.get("RELANCE_TEST_SPEED", "3000"))
clock_env = dict(env, RELANCE_TEST_CLOCK=START)
r = relance("enroll", "--sequence", "tz-test", "--where", "true", env=clock_env, timeout=600)
t.ok(r.returncode == 0 and f"enrolled {N}, skipped 0" in r.stdout, f"enroll {N} contacts", r.stdout[-300:] + r.stderr)
r = relance("enroll", "--sequence", "tz-test", "--contact", "c1@example.com", "--contact", "nobody@example.com",
            env=clock_env)
t.ok(r.returncode == 0 and "skipped c1@example.com: already active in this sequence" in r.stdout
     and "skipped nobody@example.com: unknown contact" in r.stdout, "enroll is idempotent and says why", r.stdout)

# v2 changes the last step; every enrollment was made under v1.
with open(seq_file, "w") as f:
    f.write(seq_v1.replace("Last one (v1)", "Last one (v2)"))
r = relance("apply", seq_file, env=env)
t.ok(r.returncode == 0 and "tz-test: updated to v2" in r.stdout, "apply v2", r.stdout + r.stderr)

serve_env = dict(env, RELANCE_TRANSPORT="capture", RELANCE_CAPTURE_DIR=capture,
                 RELANCE_TEST_CLOCK=f"{START}*{SPEED}")
replicas = [harness.Serve(serve_env), harness.Serve(serve_env)]
for s in replicas:
    s.wait_status("/readyz", 200)


def sent_count():
    return int(pg.psql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0])


# Expect 3 steps for everyone but the held contact (until it is filled).
target = 3 * (N - 1)
deadline = time.time() + 600
filled = False
while time.time() < deadline:
    n = sent_count()
    if not filled:
        held = pg.psql("SELECT state, state_reason FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                       "WHERE c.email = 'c7@example.com'")
        if held and held[0][0] == "held":
            t.eq(held[0][1], "missing_field:first_name", "a contact lacking a field is held with the reason")
            out = relance("enrollments", "show", "c7@example.com", env=env).stdout
            t.ok("held: missing_field:first_name" in out, "enrollments show says why it is held", out)
            pg.psql("UPDATE contacts SET first_name = 'Seven', updated_at = now() WHERE email = 'c7@example.com'")
            filled = True
            target = 3 * N
    if n >= target and filled:
        break
    time.sleep(1)
t.ok(filled, "the held enrollment was seen")
t.eq(sent_count(), target, "every step of every enrollment was sent")
for s in replicas:
    t.eq(s.stop(), 0, "replica stops cleanly")
    out = s.output()
    t.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])

# What arrived.
files = glob.glob(os.path.join(capture, "new", "*"))
t.eq(len(files), target, "one captured file per sent message")
rows = pg.psql("SELECT m.message_id, c.email, m.position, m.step_id, coalesce(c.timezone, 'Europe/Paris'), e.version "
               "FROM messages m JOIN enrollments e ON e.id = m.enrollment_id JOIN contacts c ON c.id = e.contact_id")
info = {r[0]: r for r in rows}
seen = set()
dup = 0
outside = []
v2_leak = 0
threaded_ok = 0
for path in files:
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
t.eq(dup, 0, "no step arrived twice")
t.eq(outside[:5], [], f"every message inside its contact's window on an allowed day ({len(outside)} outside)")
t.eq(v2_leak, 0, "enrollments made under v1 keep reading v1")
t.eq(threaded_ok, N, "every bump is threaded as 'Re: <first subject>' with In-Reply-To")
t.eq(pg.psql("SELECT count(*) FROM enrollments WHERE state = 'completed'")[0][0], str(N), "all enrollments completed")
t.eq(pg.psql("SELECT count(DISTINCT claimed_by) FROM messages")[0][0], "2", "both replicas did work")
waits = pg.psql("SELECT count(*) FROM messages a JOIN messages b ON a.enrollment_id = b.enrollment_id "
                "AND b.position = a.position + 1 WHERE b.created_at < a.created_at + interval '23 hours'")
t.eq(waits[0][0], "0", "no follow-up before its wait")
t.done()
