"""relance migrate and the function files (sql/functions/), against a real
PostgreSQL:
  - a fresh database gets every file, recorded in relance_functions, once
    even with four migrates at once;
  - a file whose recorded checksum differs is applied again: a function
    changed by hand is put back as the file says;
  - until then the database is not migrated: `migrate --status`, the
    commands and serve's /readyz say to run relance migrate, and /readyz
    turns 200 after it without a restart;
  - functions a newer release applied (a higher release in
    relance_functions, or a numbered migration this relance does not know)
    are accepted and never replaced by older ones;
  - a file that fails rolls the whole run back, naming the file."""
import glob
import os
import subprocess

import pytest

import harness
import schema_dump
from harness import relance

FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(harness.SOURCE, "sql", "functions", "*.sql")))
# relance_next_due() lives in claim.sql; changing it by hand (or giving it
# another return type) stands for a database whose functions are not the
# files'
BY_HAND = ("CREATE OR REPLACE FUNCTION relance_next_due() RETURNS timestamptz LANGUAGE sql STABLE "
           "AS $$ SELECT NULL::timestamptz $$")


def definitions(db):
    return schema_dump.definitions(db.cluster, db.name)


@pytest.fixture
def want(db):
    """The functions and triggers of the test's database as the files
    say, read before the fixtures that change them (they ask for it)."""
    return definitions(db)


# --- a fresh database ------------------------------------------------------------

def test_a_fresh_database_gets_every_function_file_once_in_name_order(empty_db):
    env = {"DATABASE_URL": empty_db.url()}
    r = relance("migrate", env=env)
    installed = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("functions:")]
    assert r.returncode == 0 and installed == FILES, \
        f"a fresh database gets every function file, in name order: {r.stdout + r.stderr}"
    recorded = [row[0] for row in empty_db.psql("SELECT name FROM relance_functions ORDER BY name")]
    assert recorded == FILES, "each recorded in relance_functions"
    r = relance("migrate", env=env)
    assert r.returncode == 0 and "functions:" not in r.stdout and "up to date" in r.stdout, \
        f"a second migrate applies nothing: {r.stdout}"


def test_four_concurrent_migrates_apply_each_function_file_once(empty_db):
    env = harness.relance_env({"DATABASE_URL": empty_db.url()})
    procs = [subprocess.Popen([harness.RELANCE, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, f"four concurrent migrates succeed: {outs}"
    assert sum(o[0].count("functions: ") for o in outs) == len(FILES), \
        f"each function file applied once among them: {[o[0] for o in outs]}"


# --- a stale file ------------------------------------------------------------------

@pytest.fixture
def stale(db, want):
    """A migrated database with a function changed behind relance's back
    and its file's checksum no longer the recorded one (as after an
    upgrade that changed the file)."""
    db.psql(f"{BY_HAND}; UPDATE relance_functions SET checksum = repeat('0', 64) WHERE name = 'claim.sql'")
    return db


def test_migrate_status_names_a_stale_function_file_and_what_to_do(stale):
    r = relance("migrate", "--status", env={"DATABASE_URL": stale.url()})
    assert r.returncode == 1 and "claim.sql" in r.stderr and "run 'relance migrate'" in r.stderr, \
        f"migrate --status: stale, which file, what to do: {r.stdout + r.stderr}"


def test_a_command_refuses_a_database_with_a_stale_function_file(stale):
    r = relance("enrollments", "show", "nobody@example.com", env={"DATABASE_URL": stale.url()})
    assert r.returncode == 1 and "claim.sql" in r.stderr and "relance migrate" in r.stderr, \
        f"a command refuses the database, saying to migrate: {r.stderr}"


def test_migrate_applies_the_stale_file_again_and_only_it(stale, want):
    r = relance("migrate", env={"DATABASE_URL": stale.url()})
    assert r.returncode == 0 and "functions: claim.sql updated" in r.stdout and r.stdout.count("functions:") == 1, \
        f"migrate applies the stale file again, and only it: {r.stdout + r.stderr}"
    assert definitions(stale) == want, "the function changed by hand is as the file says again"


def test_serve_is_not_ready_with_a_stale_function_file_until_migrate_without_a_restart(stale, serve):
    env = {"DATABASE_URL": stale.url()}
    s = serve(env)
    st, body = harness.wait_until(lambda: (lambda res: res if "claim.sql" in str(res[1]) else None)(s.get("/readyz")),
                                  20) or s.get("/readyz")
    assert st == 503 and "relance migrate" in body.get("reason", ""), f"serve is not ready and says why: {body}"
    r = relance("migrate", env=env)
    assert r.returncode == 0, f"migrate: {r.stdout + r.stderr}"
    s.wait_status("/readyz", 200, timeout=20)  # serve turns ready without a restart
    assert s.stop() == 0, "serve stops cleanly"


# --- a newer release's functions ---------------------------------------------------------

def test_functions_a_newer_release_applied_are_accepted_and_never_replaced(db, want):
    env = {"DATABASE_URL": db.url()}
    db.psql(f"{BY_HAND}; UPDATE relance_functions SET checksum = 'newer', release = '999.0.0' WHERE name = 'claim.sql'")
    r = relance("migrate", "--status", env=env)
    assert r.returncode == 0 and "up to date" in r.stdout, \
        f"functions a newer release applied are accepted: {r.stdout + r.stderr}"
    r = relance("migrate", env=env)
    assert r.returncode == 0 and "left as they are" in r.stdout and "999.0.0" in r.stdout \
        and "claim.sql" not in r.stdout, f"migrate never puts older functions back, and says why: {r.stdout + r.stderr}"
    assert definitions(db) != want, "the newer function is still there"


@pytest.fixture
def older(db, want):
    """claim.sql as an older release applied it: another checksum, a lower
    release, a function that is not the file's."""
    db.psql(f"{BY_HAND}; UPDATE relance_functions SET checksum = 'newer', release = '0.0.1' WHERE name = 'claim.sql'")
    return db


def test_a_numbered_migration_this_relance_does_not_know_means_a_newer_release(older):
    env = {"DATABASE_URL": older.url()}
    older.psql("INSERT INTO relance_migrations (name, checksum) VALUES ('999_from_the_future.sql', 'x')")
    r = relance("migrate", "--status", env=env)
    assert r.returncode == 0, \
        f"a numbered migration this relance does not know means a newer release too: {r.stdout + r.stderr}"
    r = relance("migrate", env=env)
    assert r.returncode == 0 and "999_from_the_future.sql" in r.stdout and "claim.sql" not in r.stdout, \
        f"and migrate leaves its functions alone: {r.stdout + r.stderr}"


def test_an_older_releases_functions_are_replaced(older, want):
    r = relance("migrate", env={"DATABASE_URL": older.url()})
    assert r.returncode == 0 and "functions: claim.sql updated" in r.stdout, \
        f"an older release's functions are replaced: {r.stdout + r.stderr}"
    assert definitions(older) == want, "as the file says"


# --- a file that fails ----------------------------------------------------------------------

def test_a_failing_function_file_rolls_the_whole_run_back_and_is_named(db):
    # a function whose return type differs: CREATE OR REPLACE cannot change it
    db.psql("DROP FUNCTION relance_next_due(); "
            "CREATE FUNCTION relance_next_due() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
    db.psql("UPDATE relance_functions SET checksum = repeat('0', 64) WHERE name IN ('accounts.sql', 'claim.sql')")
    r = relance("migrate", env={"DATABASE_URL": db.url()})
    assert r.returncode == 1 and "function file claim.sql failed" in r.stderr and "return type" in r.stderr, \
        f"a failing file: exit 1, naming it and the reason: {r.stdout + r.stderr}"
    assert db.psql("SELECT count(*) FROM relance_functions WHERE checksum = repeat('0', 64)")[0][0] == "2", \
        "the whole run rolled back (accounts.sql, applied before it, is not recorded)"
