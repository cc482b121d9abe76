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
The upgrade is one story told by module fixtures, one a stage (the
previous release's database, its serve running, the upgrade under it,
this relance taking over); each stage records what it saw and the cases
check it. Wall time: about 15 s, plus the first build of the previous
release (about 20 s on two cores, then cached)."""
import glob
import os
import re
import signal
import subprocess
import time

import pytest

import harness
import previous_release as old
from harness import relance

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


def add_contacts(db, prefix, n):
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('{prefix}{i}@prospects.example')" for i in range(n)))


def count(db, sql):
    return int(db.psql(sql)[0][0])


def wait_count(db, sql, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and count(db, sql) < want:
        time.sleep(0.2)
    return count(db, sql)


def sent(prefix, step):
    return ("SELECT count(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id"
            " JOIN contacts c ON c.id = e.contact_id"
            f" WHERE m.state = 'sent' AND m.step_id = '{step}' AND c.email LIKE '{prefix}%'")


def serve_env(env, capture):
    return {**env, "RELANCE_TRANSPORT": "capture", "RELANCE_CAPTURE_DIR": capture,
            "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"}


def enroll(binary, env, prefix, n):
    r = binary("enroll", "--sequence", "upgrade", "--where", f"email LIKE '{prefix}%'",
               env={**env, "RELANCE_TEST_CLOCK": START})
    assert r.returncode == 0 and f"enrolled {n}" in r.stdout, f"enroll {n} contacts: {r.stdout + r.stderr}"


def assert_quiet(out, what):
    assert "runtime error" not in out and "AddressSanitizer" not in out and "ERROR" not in out, \
        f"{what}: no error in its log:\n{out[-2000:]}"


@pytest.fixture(scope="module")
def previous():
    """The previous release's binary, built first: a failed build is the
    failure of every case that needs it."""
    return old.binary()


@pytest.fixture(scope="module")
def seq_file(module_tmp):
    path = os.path.join(module_tmp, "upgrade.yaml")
    with open(path, "w") as f:
        f.write(SEQUENCE)
    return path


# --- the stages of the rolling upgrade ----------------------------------------------

@pytest.fixture(scope="module")
def old_db(previous, cluster, module_tmp, seq_file):
    """An empty database the previous release migrated, applied the
    sequence to and enrolled 10 contacts (a...) into; `refused` is what
    this relance's apply said of it before the upgrade."""
    db = harness.Database(cluster, migrated=False)
    try:
        env = {"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": module_tmp}
        r = old.relance("migrate", env=env)
        assert r.returncode == 0 and "applied 016_" in r.stdout, \
            f"the previous release migrates a fresh database: {r.stdout + r.stderr}"
        refused = relance("apply", seq_file, env=env)
        r = old.relance("apply", seq_file, env=env)
        assert r.returncode == 0, f"the previous release applies a sequence: {r.stdout + r.stderr}"
        add_contacts(db, "a", 10)
        enroll(old.relance, env, "a", 10)
        yield {"db": db, "env": env, "refused": refused}
    finally:
        db.drop()


@pytest.fixture(scope="module")
def old_serve(old_db, module_tmp):
    """The previous release's serve sending from old_db; `first` is how
    many first steps it had sent before the upgrade."""
    s = old.Serve(serve_env(old_db["env"], os.path.join(module_tmp, "capture-old")))
    try:
        s.wait_status("/readyz", 200)
        first = wait_count(old_db["db"], sent("a", "intro"), 10)
        yield {"serve": s, "first": first}
    finally:
        s.kill()


@pytest.fixture(scope="module")
def upgrade(old_db, old_serve):
    """This relance's migrate under the running previous release, what
    both releases then say of the database, and the old replica's work
    after it (10 more contacts, b..., enrolled by this relance)."""
    db, env, s = old_db["db"], old_db["env"], old_serve["serve"]
    seen = {"migrate": relance("migrate", env=env),
            # not count(): a failed upgrade may leave no relance_functions
            "recorded": db.psql("SELECT count(*) FROM relance_functions", check=False),
            "status": relance("migrate", "--status", env=env),
            "old_status": old.relance("migrate", "--status", env=env)}
    add_contacts(db, "b", 10)
    enroll(relance, env, "b", 10)
    seen["b_intro"] = wait_count(db, sent("b", "intro"), 10)
    seen["a_bump"] = wait_count(db, sent("a", "bump"), 10)
    seen["readyz"] = s.get("/readyz")[0]
    seen["log"] = s.output()
    return seen


@pytest.fixture(scope="module")
def takeover(old_db, old_serve, upgrade, module_tmp):
    """The previous release's serve stopped, 5 more contacts (c...)
    enrolled, and this relance's serve sending on the upgraded database
    until every enrollment completed; then stopped."""
    db, env, s1 = old_db["db"], old_db["env"], old_serve["serve"]
    seen = {"old_stop": s1.stop(signal.SIGTERM), "old_log": s1.output()}
    add_contacts(db, "c", 5)
    enroll(relance, env, "c", 5)
    capture_new = os.path.join(module_tmp, "capture-new")
    s2 = harness.Serve(serve_env(env, capture_new))
    try:
        s2.wait_status("/readyz", 200)
        seen["c_intro"] = wait_count(db, sent("c", "intro"), 5)
        seen["completed"] = wait_count(db, "SELECT count(*) FROM enrollments WHERE state = 'completed'", 25)
        seen["unsent"] = count(db, "SELECT count(*) FROM messages WHERE state <> 'sent'")
        seen["new_stop"] = s2.stop(signal.SIGTERM)
        seen["new_log"] = s2.output()
    finally:
        s2.kill()
    seen["captured"] = sum(len(glob.glob(os.path.join(module_tmp, d, "new", "*")))
                           for d in ("capture-old", "capture-new"))
    return seen


def test_this_relance_refuses_the_previous_releases_database_until_migrate(old_db):
    r = old_db["refused"]
    assert r.returncode == 1 and "relance migrate" in r.stderr, \
        f"this relance's commands refuse it until migrate, saying so: {r.stdout + r.stderr}"


def test_the_previous_releases_serve_sends_the_first_steps(old_serve):
    assert old_serve["first"] == 10, \
        f"the previous release's serve sends the first steps: {old_serve['first']} of 10\n" \
        f"{old_serve['serve'].output()[-2000:]}"


def migrations_since_the_previous_release():
    """The numbered migrations this tree has and the previous release had
    not (wherever under sql/ it kept them)."""
    had = subprocess.run(["git", "-C", harness.SOURCE, "ls-tree", "-r", "--name-only", old.PREVIOUS_RELEASE, "sql/"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    had = {os.path.basename(p) for p in had if re.fullmatch(r"[0-9]{3}_.*\.sql", os.path.basename(p))}
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(harness.SOURCE, "sql", "migrations", "*.sql"))
                  if os.path.basename(p) not in had)


def test_migrate_upgrades_the_database_under_the_running_previous_release(upgrade, check):
    r = upgrade["migrate"]
    applied = re.findall(r"^\s*applied (\S+)$", r.stdout, re.M)
    # installed over a release that predates function files, updated over one that has them
    check.ok(r.returncode == 0 and re.search(r"^functions: claim\.sql (installed|updated)$", r.stdout, re.M)
             and applied == migrations_since_the_previous_release(),
             "this relance's migrate upgrades it: the migrations since the previous release, then the function files",
             r.stdout + r.stderr)
    files = len(glob.glob(os.path.join(harness.SOURCE, "sql", "functions", "*.sql")))
    check.eq(upgrade["recorded"], [[str(files)]], "every function file recorded")
    r = upgrade["status"]
    check.ok(r.returncode == 0 and "up to date" in r.stdout, "this relance finds it up to date", r.stdout + r.stderr)
    r = upgrade["old_status"]
    check.ok(r.returncode == 0 and "up to date" in r.stdout, "so does the previous release", r.stdout + r.stderr)


def test_the_previous_releases_serve_keeps_claiming_and_sending_after_the_upgrade(upgrade, check):
    check.eq(upgrade["b_intro"], 10, "the previous release's serve sends the enrollments this relance made")
    check.eq(upgrade["a_bump"], 10, "and its follow-ups")
    check.eq(upgrade["readyz"], 200, "it stayed ready")
    check.ok("not ready" not in upgrade["log"], "it never said it was not ready", upgrade["log"][-2000:])


def test_the_previous_releases_serve_stops_cleanly(takeover):
    assert takeover["old_stop"] == 0, f"the previous release's serve stops cleanly:\n{takeover['old_log'][-2000:]}"
    assert_quiet(takeover["old_log"], "the previous release's serve")


def test_this_relances_serve_takes_over_and_sends_everything_to_the_end(takeover, check):
    check.eq(takeover["c_intro"], 5, "this relance's serve sends on the upgraded database")
    check.eq(takeover["completed"], 25, "every enrollment, old and new, completed")
    check.eq(takeover["unsent"], 0, "every message sent, none left behind")
    check.eq(takeover["new_stop"], 0, "this relance's serve stops cleanly")
    log = takeover["new_log"]
    check.ok("runtime error" not in log and "AddressSanitizer" not in log and "ERROR" not in log,
             "this relance's serve: no error in its log", log[-2000:])
    check.eq(takeover["captured"], 50, "one captured message per step sent, across both releases")


# --- the previous release on a database this relance migrated ---------------------------------

def test_the_previous_releases_serve_sends_on_a_database_this_relance_migrated(previous, db, tmp, seq_file):
    env = {"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": tmp}
    r = relance("migrate", env=env)
    assert r.returncode == 0 and "up to date" in r.stdout, \
        f"a database this relance migrated from scratch: {r.stdout + r.stderr}"
    r = old.relance("migrate", "--status", env=env)
    assert r.returncode == 0 and "up to date" in r.stdout, \
        f"the previous release finds it up to date: {r.stdout + r.stderr}"
    r = relance("apply", seq_file, env=env)
    assert r.returncode == 0, f"apply: {r.stdout + r.stderr}"
    add_contacts(db, "d", 3)
    r = relance("enroll", "--sequence", "upgrade", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert r.returncode == 0 and "enrolled 3" in r.stdout, f"enroll 3: {r.stdout + r.stderr}"
    s = old.Serve(serve_env(env, os.path.join(tmp, "capture")))
    try:
        s.wait_status("/readyz", 200)
        n = wait_count(db, sent("d", "intro"), 3)
        assert n == 3, f"the previous release's serve claims and sends on it: {n} of 3\n{s.output()[-2000:]}"
        assert s.stop(signal.SIGTERM) == 0, f"and stops cleanly:\n{s.output()[-2000:]}"
        assert_quiet(s.output(), "the previous release's serve on a new database")
    finally:
        s.kill()
