"""sql/schema.sql: the schema of a freshly migrated database, and how it is
read from a database.

Run as a script, it regenerates sql/schema.sql: it starts a throwaway
PostgreSQL, migrates it with the relance under test (RELANCE_BIN, default
build/relance) and writes the normalised dump:

    RELANCE_BIN=build/relance python3 tests/schema_dump.py

schema() is pg_dump --schema-only without the functions (sql/functions/
is their one place), owners and privileges, then stripped of what changes
with the PostgreSQL version or the session rather than with the schema:
comments, SET lines, the search_path reset, the random \\restrict key of
recent pg_dumps, runs of blank lines.
definitions() lists every function and trigger as PostgreSQL prints them
back, to compare two databases' functions."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SCHEMA_FILE = os.path.join(harness.SOURCE, "sql", "schema.sql")
REGENERATE = "RELANCE_BIN=build/relance python3 tests/schema_dump.py"
HEADER = f"""-- The schema of a freshly migrated database: tables, sequences, indexes,
-- constraints and triggers (the functions are sql/functions/'s). Generated
-- from pg_dump --schema-only, never edited: after a migration, run
--   {REGENERATE}
"""


def _tool(pg, name):
    # the server's own version of the client: pg_dump refuses a newer server
    return os.path.join(pg.bindir, name)


def schema(pg, db):
    """The normalised schema-only dump of database db of pg."""
    dump = subprocess.run([_tool(pg, "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", "-Fc",
                           pg.url(db)], stdout=subprocess.PIPE, check=True).stdout
    toc = subprocess.run([_tool(pg, "pg_restore"), "-l"], input=dump, stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    # TOC lines read "ID; CLASS OID KIND schema name owner"
    keep = "\n".join(line for line in toc.splitlines()
                     if not re.match(r"^\d+; \d+ \d+ (FUNCTION|PROCEDURE|AGGREGATE) ", line))
    listing = os.path.join(harness.short_tempdir("rsd"), "toc")
    with open(listing, "w") as f:
        f.write(keep + "\n")
    text = subprocess.run([_tool(pg, "pg_restore"), "--no-owner", "--no-privileges", "-L", listing, "-f", "-"],
                          input=dump, stdout=subprocess.PIPE, check=True).stdout.decode()
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        # \restrict and \unrestrict (pg_dump since 15.14 and 16.10) carry a
        # random key, different in every dump
        if line.startswith(("--", "SET ", "SELECT pg_catalog.set_config(", "\\restrict ", "\\unrestrict ")):
            continue
        if not line and (not lines or not lines[-1]):
            continue
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return HEADER + "\n" + "\n".join(lines) + "\n"


def definitions(pg, db):
    """Every function (pg_get_functiondef) and trigger (pg_get_triggerdef)
    of db's public schema, sorted: {signature or trigger name: text}."""
    # hex: the definitions hold newlines and tabs, which psql's output would split
    rows = pg.psql("SELECT p.oid::regprocedure::text, encode(convert_to(pg_get_functiondef(p.oid), 'UTF8'), 'hex')"
                   "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
                   " UNION ALL SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text,"
                   "       encode(convert_to(pg_get_triggerdef(t.oid), 'UTF8'), 'hex')"
                   "  FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1", db=db)
    return {r[0]: bytes.fromhex(r[1]).decode() for r in rows}


def main():
    pg = harness.Postgres()
    r = harness.relance("migrate", env={"DATABASE_URL": pg.url()})
    if r.returncode != 0:
        sys.exit(f"relance migrate failed:\n{r.stdout}{r.stderr}")
    with open(SCHEMA_FILE, "w") as f:
        f.write(schema(pg, "relance"))
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()
