"""A rolling upgrade from the previous release (tests/previous_release.py
builds it from git once and caches it in the build dir), with the capture
transport and the test clock:
  - a database migrated by the previous release is refused by this
    relance's commands until migrate, with a line saying so;
  - while the previous release's `relance serve` sends from it, this
    relance's migrate upgrades it with no error (the function files
    installed) and the old replica stays ready and keeps claiming and
    sending, including enrollments made by this relance;
  - this relance's `relance serve` then takes over on the same database
    and sends the follow-ups and new enrollments to the end;
  - the previous release's serve also runs on a database this relance
    migrated from scratch, and sends.
Wall time: about 40 s, plus the first build of the previous release
(about 20 s on two cores, then cached)."""
import glob
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import previous_release  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("migrate_upgrade")
old = previous_release
old.binary()  # built first: a failed build is the test's failure
pg = harness.Postgres()
tmp = harness.short_tempdir("rmu")
env = {"DATABASE_URL": pg.url(), "RELANCE_STATE_DIR": tmp}
START = "2026-03-02T09:00:00Z"  # a Monday morning
SPEED = 600                     # the one-hour wait takes 6 s
SEQUENCE = """name: upgrade
sender_pool: founders
schedule:
  timezone: UTC
  window: "08:00-18:00"
  days: [mon, tue, wed, thu, fri]
  jitter: 0s
steps:
  - id: intro
    subject: "Hello {{first_name | there}}"
    body: "Hi."
  - id: bump
    wait: 1 hour
    body: "Bumping this."
"""
seq_file = os.path.join(tmp, "upgrade.yaml")
with open(seq_file, "w") as f:
    f.write(SEQUENCE)


def add_contacts(prefix, n, db="relance"):
    pg.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('{prefix}{i}@prospects.example')" for i in range(n)),
            db=db)


def count(sql, db="relance"):
    return int(pg.psql(sql, db=db)[0][0])


def wait_count(sql, want, timeout=60, db="relance"):
    deadline = time.time() + timeout
    while time.time() < deadline and count(sql, db) < want:
        time.sleep(0.2)
    return count(sql, db)


def serve_env(capture, db_url=None):
    return {**env, "DATABASE_URL": db_url or env["DATABASE_URL"], "RELANCE_TRANSPORT": "capture",
            "RELANCE_CAPTURE_DIR": capture, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"}


def sent(prefix, step, db="relance"):
    return ("SELECT count(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id"
            " JOIN contacts c ON c.id = e.contact_id"
            f" WHERE m.state = 'sent' AND m.step_id = '{step}' AND c.email LIKE '{prefix}%'")


def quiet(s, what):
    out = s.output()
    t.ok("runtime error" not in out and "AddressSanitizer" not in out and "ERROR" not in out,
         f"{what}: no error in its log", out[-2000:])


# --- the previous release's database ------------------------------------------
r = old.relance("migrate", env=env)
t.ok(r.returncode == 0 and "applied 016_" in r.stdout, "the previous release migrates a fresh database",
     r.stdout + r.stderr)
r = relance("apply", seq_file, env=env)
t.ok(r.returncode == 1 and "relance migrate" in r.stderr,
     "this relance's commands refuse it until migrate, saying so", r.stdout + r.stderr)
r = old.relance("apply", seq_file, env=env)
t.ok(r.returncode == 0, "the previous release applies a sequence", r.stdout + r.stderr)
add_contacts("a", 10)
r = old.relance("enroll", "--sequence", "upgrade", "--where", "email LIKE 'a%'", env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(r.returncode == 0 and "enrolled 10" in r.stdout, "the previous release enrolls 10 contacts", r.stdout + r.stderr)

capture_old = os.path.join(tmp, "capture-old")
s1 = old.Serve(serve_env(capture_old))
s1.wait_status("/readyz", 200)
t.eq(wait_count(sent("a", "intro"), 10), 10, "the previous release's serve sends the first steps")

# --- upgrade under the running old replica -----------------------------------------
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "functions: claim.sql installed" in r.stdout and "applied" not in r.stdout,
     "this relance's migrate upgrades it, installing the function files", r.stdout + r.stderr)
files = len(glob.glob(os.path.join(harness.SOURCE, "sql", "functions", "*.sql")))
t.eq(count("SELECT count(*) FROM relance_functions"), files, "every function file recorded")
r = relance("migrate", "--status", env=env)
t.ok(r.returncode == 0 and "up to date" in r.stdout, "this relance finds it up to date", r.stdout + r.stderr)
r = old.relance("migrate", "--status", env=env)
t.ok(r.returncode == 0 and "up to date" in r.stdout, "so does the previous release", r.stdout + r.stderr)

add_contacts("b", 10)
r = relance("enroll", "--sequence", "upgrade", "--where", "email LIKE 'b%'", env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(r.returncode == 0 and "enrolled 10" in r.stdout, "this relance enrolls 10 more", r.stdout + r.stderr)
t.eq(wait_count(sent("b", "intro"), 10), 10, "the previous release's serve keeps claiming and sending after the upgrade")
t.eq(wait_count(sent("a", "bump"), 10), 10, "and its follow-ups")
t.eq(s1.get("/readyz")[0], 200, "it stayed ready")
t.ok("not ready" not in s1.output(), "it never said it was not ready", s1.output()[-2000:])
t.eq(s1.stop(signal.SIGTERM), 0, "the previous release's serve stops cleanly")
quiet(s1, "the previous release's serve")

# --- this relance takes over ------------------------------------------------------------
add_contacts("c", 5)
r = relance("enroll", "--sequence", "upgrade", "--where", "email LIKE 'c%'", env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(r.returncode == 0 and "enrolled 5" in r.stdout, "this relance enrolls 5 more", r.stdout + r.stderr)
capture_new = os.path.join(tmp, "capture-new")
s2 = harness.Serve(serve_env(capture_new))
s2.wait_status("/readyz", 200)
t.eq(wait_count(sent("c", "intro"), 5), 5, "this relance's serve sends on the upgraded database")
t.eq(wait_count("SELECT count(*) FROM enrollments WHERE state = 'completed'", 25), 25,
     "every enrollment, old and new, completed")
t.eq(count("SELECT count(*) FROM messages WHERE state <> 'sent'"), 0, "every message sent, none left behind")
t.eq(s2.stop(signal.SIGTERM), 0, "this relance's serve stops cleanly")
quiet(s2, "this relance's serve")
on_disk = len(glob.glob(os.path.join(capture_old, "new", "*"))) + len(glob.glob(os.path.join(capture_new, "new", "*")))
t.eq(on_disk, 50, "one captured message per step sent, across both releases")

# --- the previous release on a database this relance migrated --------------------------------
url = pg.new_database("fresh")
r = relance("migrate", env={**env, "DATABASE_URL": url})
t.eq(r.returncode, 0, "this relance migrates a fresh database")
fresh_env = {**env, "DATABASE_URL": url}
r = old.relance("migrate", "--status", env=fresh_env)
t.ok(r.returncode == 0 and "up to date" in r.stdout, "the previous release finds it up to date",
     r.stdout + r.stderr)
r = relance("apply", seq_file, env=fresh_env)
t.eq(r.returncode, 0, "apply")
add_contacts("d", 3, db="fresh")
r = relance("enroll", "--sequence", "upgrade", "--where", "true", env={**fresh_env, "RELANCE_TEST_CLOCK": START})
t.ok(r.returncode == 0 and "enrolled 3" in r.stdout, "enroll 3", r.stdout + r.stderr)
s3 = old.Serve(serve_env(os.path.join(tmp, "capture-fresh"), url))
s3.wait_status("/readyz", 200)
t.eq(wait_count(sent("d", "intro"), 3, db="fresh"), 3, "the previous release's serve claims and sends on it")
t.eq(s3.stop(signal.SIGTERM), 0, "and stops cleanly")
quiet(s3, "the previous release's serve on a new database")

t.done()
