"""sql/schema.sql is the schema relance migrate gives, whichever way a
database got there:
  - a fresh database migrated by this relance (a copy of the run's
    template, which `relance migrate` made from an empty database);
  - a database migrated by the previous release (built from git, cached
    in the build dir: tests/previous_release.py), then upgraded by this
    relance's migrate.
Both must dump (tests/schema_dump.py) to exactly sql/schema.sql, and the
upgraded one's functions and triggers must be the fresh one's: every
function body replaced by sql/functions/'s. A failure says how to
regenerate the file."""
import difflib

import pytest

import harness
import previous_release
import schema_dump
from harness import relance


def assert_schema_is_the_file(db, what):
    with open(schema_dump.SCHEMA_FILE) as f:
        want = f.read()
    got = schema_dump.schema(db.cluster, db.name)
    diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "sql/schema.sql",
                                             f"{what}'s dump"))[:80])
    assert got == want, \
        f"{what}: its schema is sql/schema.sql. sql/schema.sql is stale (after a new migration?): " \
        f"regenerate it with\n    {schema_dump.REGENERATE}\nand commit it. The difference:\n{diff}"


@pytest.fixture(scope="module")
def upgraded(cluster):
    """An empty database migrated by the previous release, then by this
    relance."""
    previous_release.binary()  # built first: a failed build is the failure
    db = harness.Database(cluster, migrated=False)
    try:
        env = {"DATABASE_URL": db.url()}
        r = previous_release.relance("migrate", env=env)
        assert r.returncode == 0, \
            f"migrated by the previous release ({previous_release.PREVIOUS_RELEASE}): {r.stdout + r.stderr}"
        r = relance("migrate", env=env)
        assert r.returncode == 0 and "functions:" in r.stdout, \
            f"upgraded by this relance's migrate: {r.stdout + r.stderr}"
        yield db
    finally:
        db.drop()


def test_a_fresh_database_has_the_schema_of_schema_sql(db):
    r = relance("migrate", env={"DATABASE_URL": db.url()})
    assert r.returncode == 0 and "up to date" in r.stdout, f"a freshly migrated database: {r.stdout + r.stderr}"
    assert_schema_is_the_file(db, "a fresh database")


def test_a_database_the_previous_release_migrated_has_it_once_upgraded(upgraded):
    assert_schema_is_the_file(upgraded, "the previous release's database, upgraded")


def test_an_upgraded_databases_functions_and_triggers_are_a_fresh_ones(upgraded, db):
    fresh = schema_dump.definitions(db.cluster, db.name)
    got = schema_dump.definitions(upgraded.cluster, upgraded.name)
    differ = sorted(k for k in set(fresh) | set(got) if fresh.get(k) != got.get(k))
    assert not differ, \
        f"its {len(got)} functions and triggers are a fresh database's (sql/functions/): differ: {differ}"
