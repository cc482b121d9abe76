"""sql/schema.sql is the schema relance migrate gives, whichever way a
database got there:
  (a) a fresh database migrated by this relance;
  (b) a database migrated by the previous release (built from git, cached
      in the build dir: tests/previous_release.py), then upgraded by this
      relance's migrate.
Both must dump (tests/schema_dump.py) to exactly sql/schema.sql, and (b)'s
functions and triggers must be (a)'s: every function body replaced by
sql/functions/'s. A failure says how to regenerate the file."""
import difflib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import previous_release  # noqa: E402
import schema_dump  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("schema")
previous_release.binary()  # built first: a failed build is the test's failure
pg = harness.Postgres()
with open(schema_dump.SCHEMA_FILE) as f:
    want = f.read()


def compare(db, what):
    got = schema_dump.schema(pg, db)
    diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "sql/schema.sql",
                                             f"{what}'s dump"))[:80])
    t.ok(got == want, f"{what}: its schema is sql/schema.sql",
         f"sql/schema.sql is stale (after a new migration?): regenerate it with\n"
         f"       {schema_dump.REGENERATE}\n     and commit it. The difference:\n{diff}")


# (a) fresh
r = relance("migrate", env={"DATABASE_URL": pg.url()})
t.ok(r.returncode == 0, "a fresh database migrated", r.stdout + r.stderr)
compare("relance", "a fresh database")
fresh = schema_dump.definitions(pg, "relance")

# (b) the previous release's, upgraded
url = pg.new_database("upgraded")
r = previous_release.relance("migrate", env={"DATABASE_URL": url})
t.ok(r.returncode == 0, f"migrated by the previous release ({previous_release.PREVIOUS_RELEASE})",
     r.stdout + r.stderr)
r = relance("migrate", env={"DATABASE_URL": url})
t.ok(r.returncode == 0 and "functions:" in r.stdout, "upgraded by this relance's migrate", r.stdout + r.stderr)
compare("upgraded", "the previous release's database, upgraded")
upgraded = schema_dump.definitions(pg, "upgraded")
differ = sorted(k for k in set(fresh) | set(upgraded) if fresh.get(k) != upgraded.get(k))
t.ok(not differ, f"its {len(upgraded)} functions and triggers are a fresh database's (sql/functions/)",
     f"differ: {differ}")

t.done()
