"""Enrollments against a real PostgreSQL: enroll from --contact, --csv and
--where with the skip reasons, enrollments show (next send time in UTC and
local time, and why not sooner), pause/resume/stop, and a resumed
enrollment whose time passed during the pause is moved to the next window
opening instead of being sent off-hours."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("enrollments")
pg = harness.Postgres()
tmp = harness.short_tempdir("renr")
env = {"DATABASE_URL": pg.url()}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


seq = """name: {name}
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
r = relance("apply", write("a.yaml", seq.format(name="alpha", zone="contact")),
            write("b.yaml", seq.format(name="beta", zone="America/New_York")), env=env)
t.ok(r.returncode == 0 and "alpha: created" in r.stdout and "beta: created" in r.stdout, "apply", r.stdout + r.stderr)
pg.psql("INSERT INTO contacts (email, first_name, timezone) VALUES "
        "('ann@one.example', 'Ann', 'Asia/Kolkata'), ('bob@two.example', 'Bob', NULL), "
        "('cy@three.example', 'Cy', 'America/New_York'), ('dee@four.example', 'Dee', 'Europe/Paris'), "
        "('eve@blocked.example', 'Eve', NULL)")
r = relance("suppress", "add", "@blocked.example", env=env)
t.eq(r.returncode, 0, "suppress a domain")

SAT = {"RELANCE_TEST_CLOCK": "2026-03-07T10:00:00Z"}  # a Saturday
r = relance("enroll", "--sequence", "alpha", "--contact", "ann@one.example", "--contact", "eve@blocked.example",
            "--contact", "zed@nowhere.example", env={**env, **SAT})
t.ok(r.returncode == 0 and "enrolled 1, skipped 2" in r.stdout and "skipped eve@blocked.example: suppressed"
     in r.stdout and "skipped zed@nowhere.example: unknown contact" in r.stdout, "enroll --contact with reasons",
     r.stdout + r.stderr)

# show: Kolkata (+05:30), enrolled on a Saturday: Monday 09:00 local = 03:30Z
r = relance("enrollments", "show", "ann@one.example", env={**env, **SAT})
t.ok("state: active" in r.stdout and "step: intro (1 of 2)" in r.stdout, "show: state and step", r.stdout)
t.ok("next send: 2026-03-09T03:30:00Z (2026-03-09 09:00:00 Asia/Kolkata)" in r.stdout,
     "show: next send in UTC and local time", r.stdout)
t.ok("why not sooner: weekday" in r.stdout, "show: Saturday is not a sending day", r.stdout)

# --csv: header with an email column; other columns ignored
good = write("good.csv", "Name,EMAIL,notes\nBob,bob@two.example,\"x, y\"\nAnn,ann@one.example,z\n")
TUE_EVE = {"RELANCE_TEST_CLOCK": "2026-03-10T18:30:00Z"}  # Tuesday 19:30 in Paris
r = relance("enroll", "--sequence", "alpha", "--csv", good, env={**env, **TUE_EVE})
t.ok(r.returncode == 0 and "enrolled 1, skipped 1" in r.stdout
     and "skipped ann@one.example: already active in this sequence" in r.stdout, "enroll --csv", r.stdout + r.stderr)
r = relance("enrollments", "show", "bob@two.example", env={**env, **TUE_EVE})
t.ok("next send: 2026-03-11T08:00:00Z (2026-03-11 09:00:00 Europe/Paris)" in r.stdout
     and "why not sooner: window" in r.stdout, "no zone: the fallback zone, and the window is the reason", r.stdout)
broken = write("broken.csv", "email,name\ncy@three.example,\"Cy\n\"bad\"quote,x\n")
r = relance("enroll", "--sequence", "alpha", "--csv", broken, env=env)
t.ok(r.returncode == 1 and f"{broken}:3:" in r.stderr, "a CSV that cannot be parsed fails as a whole with FILE:LINE",
     r.stderr)
nocol = write("nocol.csv", "mail\ncy@three.example\n")
r = relance("enroll", "--sequence", "alpha", "--csv", nocol, env=env)
t.ok(r.returncode == 1 and "no 'email' column" in r.stderr, "a CSV without an email column", r.stderr)
t.eq(pg.psql("SELECT count(*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
             "WHERE c.email = 'cy@three.example'")[0][0], "0", "nothing enrolled from the failed files")

# another sequence: skipped unless --allow-parallel
r = relance("enroll", "--sequence", "beta", "--contact", "ann@one.example", env=env)
t.ok("skipped ann@one.example: active in another sequence: alpha" in r.stdout, "active elsewhere is skipped",
     r.stdout)
r = relance("enroll", "--sequence", "beta", "--contact", "ann@one.example", "--allow-parallel", env=env)
t.ok("enrolled 1, skipped 0" in r.stdout, "--allow-parallel enrolls anyway", r.stdout)
r = relance("enroll", "--sequence", "nope", "--contact", "ann@one.example", env=env)
t.ok(r.returncode == 1 and "no sequence named nope" in r.stderr, "unknown sequence: clear error", r.stderr)

# --where: a condition on contacts; read-only
r = relance("enroll", "--sequence", "beta", "--where", "timezone = 'America/New_York'", env=env)
t.ok(r.returncode == 0 and "enrolled 1, skipped 0" in r.stdout, "--where", r.stdout + r.stderr)
r = relance("enroll", "--sequence", "beta", "--where", "(SELECT count(*) FROM contacts) > 0 AND "
            "relance_enroll('alpha', 'dee@four.example', now(), true) IS NOT NULL", env=env)
t.ok(r.returncode == 1 and "read-only" in r.stderr, "--where cannot write", r.stderr)
t.eq(pg.psql("SELECT count(*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
             "WHERE c.email = 'dee@four.example'")[0][0], "0", "nothing written by the --where attempt")
r = relance("enroll", "--sequence", "beta", "--where", "no_such_column = 1", env=env)
t.ok(r.returncode == 1 and "no_such_column" in r.stderr, "--where with an error: clear message", r.stderr)

# pause / resume / stop
r = relance("pause", "--contact", "ann@one.example", env=env)
t.ok(r.returncode == 0 and "paused 2 enrollments" in r.stdout, "pause a contact (both sequences)", r.stdout)
t.eq(pg.psql("SELECT count(*) FROM enrollments WHERE state = 'paused'")[0][0], "2", "both paused")
# while paused, the claim never takes it
rows = pg.psql("SELECT count(*) FROM relance_claim_due('2026-03-09T05:00:00Z', 100, 'x.example', 't')")
t.eq(rows[0][0], "0", "a paused enrollment is never claimed")
r = relance("resume", "--contact", "ann@one.example", env=env)
t.ok(r.returncode == 0 and "resumed 2 enrollments" in r.stdout, "resume", r.stdout)
# Resumed long after its time, on a Saturday: the claim moves it to Monday's opening.
ann = pg.psql("SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s "
              "ON s.id = e.sequence_id WHERE c.email = 'ann@one.example' AND s.name = 'alpha'")[0][0]
rows = pg.psql("SELECT count(*) FROM relance_claim_due('2026-03-14T12:00:00Z', 100, 'x.example', 't') "
               f"WHERE enrollment_id = {ann}")
t.eq(rows[0][0], "0", "resumed on a Saturday: not sent")
t.eq(pg.psql(f"SELECT next_send_at AT TIME ZONE 'UTC' FROM enrollments WHERE id = {ann}")[0][0],
     "2026-03-16 03:30:00", "moved to Monday 09:00 in the contact's zone")
rows = pg.psql("SELECT step_id FROM relance_claim_due('2026-03-16T03:30:00Z', 100, 'x.example', 't') "
               f"WHERE enrollment_id = {ann}")
t.eq(rows, [["intro"]], "claimed once the window opens")
r = relance("stop", "--sequence", "beta", env=env)
t.ok(r.returncode == 0 and "stopped 2 enrollments" in r.stdout, "stop a sequence", r.stdout)
r = relance("enrollments", "show", "cy@three.example", env=env)
t.ok("state: completed (stopped by user" in r.stdout, "show after stop", r.stdout)
r = relance("pause", "--enrollment", "abc", env=env)
t.eq(r.returncode, 1, "a bad enrollment id is an error")
r = relance("enrollments", "show", "nobody@example.com", env=env)
t.ok(r.returncode == 1 and "no enrollment" in r.stderr, "show of a contact without enrollments", r.stderr)
t.done()
