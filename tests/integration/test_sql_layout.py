"""sql/ keeps its rules (sql/README.md):
  - the previous release's migrations are all in sql/migrations/, byte for
    byte (a database it migrated must find every checksum it recorded);
  - migrations are numbered NNN_name.sql without gap or duplicate;
  - no migration after 016 creates a function, procedure or trigger
    (comments aside): today's definitions live in sql/functions/;
  - the function files define with CREATE OR REPLACE only (they are
    applied again at every change);
  - they hold every function and trigger: a migrated database whose
    functions are all dropped and the files applied (as relance migrate
    does: one transaction, check_function_bodies off, file order) has the
    same definitions as before;
  - the table shapes written at the top of a function file list the
    table's columns, in order."""
import glob
import os
import re
import subprocess

import pytest

import harness
import previous_release
import schema_dump
from harness import relance

# The last migration landed before the rule; from the next one on, no
# function in a numbered migration.
LAST_WITH_FUNCTIONS = 16

SQL = os.path.join(harness.SOURCE, "sql")
MIGRATIONS = sorted(glob.glob(os.path.join(SQL, "migrations", "*.sql")))
FUNCTIONS = sorted(glob.glob(os.path.join(SQL, "functions", "*.sql")))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def without_comments(sql):
    """sql without -- and /* */ comments (a string holding -- loses its
    tail too: at worst the check is stricter)."""
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", "", sql)


DEFINES = re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(CONSTRAINT\s+|EVENT\s+)?(FUNCTION|PROCEDURE|TRIGGER)\b",
                     re.I)


def defines_code(sql):
    return [m.group(0) for m in DEFINES.finditer(without_comments(sql))]


# --- the checker itself catches what it must -------------------------------

def test_the_checker_ignores_comments():
    found = defines_code("ALTER TABLE x ADD y int;\n-- CREATE FUNCTION f() was here\n/* CREATE TRIGGER t */")
    assert found == [], f"the checker ignores comments: found {found}"


def test_the_checker_finds_functions_triggers_and_procedures_in_any_case_and_layout():
    found = defines_code("create or replace function f() returns int language sql as $$ select 1 $$;\n"
                         "CREATE\n  TRIGGER t AFTER INSERT ON x EXECUTE FUNCTION f();\nCREATE PROCEDURE p()")
    assert len(found) == 3, f"the checker finds a function, a trigger and a procedure: found {found}"


# --- migrations ----------------------------------------------------------------

def test_the_previous_releases_migrations_are_unchanged():
    rel = previous_release.PREVIOUS_RELEASE
    listed = subprocess.run(["git", "-C", harness.SOURCE, "ls-tree", "-r", "--name-only", rel, "sql/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert listed.returncode == 0, f"the previous release ({rel}) is in the git history: {listed.stderr}"
    old = [p for p in listed.stdout.split() if re.match(r"^\d{3}_.*\.sql$", os.path.basename(p))]
    here = {os.path.basename(p): p for p in MIGRATIONS}
    changed = []
    for path in old:
        name = os.path.basename(path)
        blob = subprocess.run(["git", "-C", harness.SOURCE, "show", f"{rel}:{path}"], stdout=subprocess.PIPE).stdout
        if name not in here or read(here[name]) != blob:
            changed.append(name)
    assert len(old) >= LAST_WITH_FUNCTIONS and not changed, \
        f"the {len(old)} migrations of the previous release are in sql/migrations/, byte for byte; " \
        f"missing or edited: {changed}: a landed migration is never edited; add a new one"


def test_migrations_are_numbered_from_001_without_gap_or_duplicate():
    names = [os.path.basename(p) for p in MIGRATIONS]
    bad = [n for n in names if not re.match(r"^\d{3}_[a-z0-9_]+\.sql$", n)]
    numbers = [int(n[:3]) for n in names if n not in bad]
    assert not bad and numbers == list(range(1, len(numbers) + 1)), \
        f"migrations are NNN_name.sql, numbered from 001 without gap or duplicate: {names}"


def test_no_new_migration_creates_a_function_procedure_or_trigger():
    offenders = {}
    for path in MIGRATIONS:
        n = os.path.basename(path)
        if n[:3].isdigit() and int(n[:3]) > LAST_WITH_FUNCTIONS:
            found = defines_code(read(path).decode())
            if found:
                offenders[n] = found
    assert not offenders, \
        f"no migration after {LAST_WITH_FUNCTIONS:03d} creates a function, procedure or trigger: {offenders}: " \
        "put today's definition in sql/functions/ (sql/README.md); a migration may only DROP FUNCTION"


# --- the function files ----------------------------------------------------------

def test_function_files_define_with_create_or_replace_only():
    assert FUNCTIONS, "sql/functions/ holds files"
    bare = {}
    for path in FUNCTIONS:
        found = [d for d in defines_code(read(path).decode()) if not re.match(r"CREATE\s+OR\s+REPLACE", d, re.I)]
        if found:
            bare[os.path.basename(path)] = found
    assert not bare, f"function files define with CREATE OR REPLACE only: {bare}"


def test_the_function_files_hold_every_function_and_trigger_of_a_migrated_database(db):
    r = relance("migrate", env={"DATABASE_URL": db.url()})
    assert r.returncode == 0 and "up to date" in r.stdout, f"a migrated database: {r.stdout + r.stderr}"
    before = schema_dump.definitions(db.cluster, db.name)
    db.psql("""DO $$ DECLARE f regprocedure; BEGIN
        FOR f IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
        LOOP EXECUTE 'DROP FUNCTION ' || f || ' CASCADE'; END LOOP; END $$""")
    left = schema_dump.definitions(db.cluster, db.name)
    assert left == {}, f"every function and trigger dropped: {sorted(left)}"
    script = "BEGIN;\nSET LOCAL check_function_bodies = off;\n" \
        + "".join(read(p).decode() + "\n" for p in FUNCTIONS) + "COMMIT;\n"
    try:
        db.psql(script)
    except RuntimeError as e:
        pytest.fail(f"the function files apply on their own: {e}")
    after = schema_dump.definitions(db.cluster, db.name)
    lost = sorted(set(before) - set(after))
    differ = sorted(k for k in before if k in after and before[k] != after[k])
    extra = sorted(set(after) - set(before))
    assert not lost and not differ and not extra, \
        f"sql/functions/ defines the {len(before)} functions and triggers of a migrated database, as they are: " \
        f"only in the migrations: {lost}; defined differently: {differ}; only in sql/functions/: {extra}"


def test_the_table_shapes_in_the_function_files_list_the_columns_in_order(db, check):
    columns = {}
    for table, column in db.psql("SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                                 " JOIN pg_namespace n ON n.oid = c.relnamespace"
                                 " WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0"
                                 " AND NOT a.attisdropped ORDER BY c.relname, a.attnum"):
        columns.setdefault(table, []).append(column)
    shapes = 0
    for path in FUNCTIONS:
        text = read(path).decode()
        for m in re.finditer(r"^-- TABLE (\w+) \(\n((?:--  .*\n)*?)-- \)", text, re.M):
            shapes += 1
            # a column line is indented a few spaces; a longer indent
            # continues the comment of the line above
            listed = [re.match(r"--\s{2,8}(\w+)", line).group(1) for line in m.group(2).splitlines()
                      if re.match(r"--\s{2,8}\w", line)]
            check.eq(listed, columns.get(m.group(1)),
                     f"{os.path.basename(path)}: the shape of table {m.group(1)} lists its columns in order")
    check.ok(shapes >= 8, f"{shapes} table shapes checked (at least 8)")
