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
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import schema_dump  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("migrate_functions")
pg = harness.Postgres()
env = {"DATABASE_URL": pg.url()}
files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(harness.SOURCE, "sql", "functions", "*.sql")))

# --- a fresh database --------------------------------------------------------------
r = relance("migrate", env=env)
installed = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("functions:")]
t.ok(r.returncode == 0 and installed == files, "a fresh database gets every function file, in name order",
     r.stdout + r.stderr)
t.eq([row[0] for row in pg.psql("SELECT name FROM relance_functions ORDER BY name")], files,
     "each recorded in relance_functions")
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "functions:" not in r.stdout and "up to date" in r.stdout,
     "a second migrate applies nothing", r.stdout)
want = schema_dump.definitions(pg, "relance")

url = pg.new_database("concurrent")
procs = [subprocess.Popen([harness.RELANCE, "migrate"], env={**harness.base_env(), "DATABASE_URL": url},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
outs = [p.communicate(timeout=120) for p in procs]
t.eq([p.returncode for p in procs], [0] * 4, "four concurrent migrates succeed")
t.eq(sum(o[0].count("functions: ") for o in outs), len(files), "each function file applied once among them")

# --- a stale file --------------------------------------------------------------------
# a function changed behind relance's back, and its file's checksum no
# longer the recorded one (as after an upgrade that changed the file)
pg.psql("CREATE OR REPLACE FUNCTION relance_next_due() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT NULL::timestamptz $$")
pg.psql("UPDATE relance_functions SET checksum = repeat('0', 64) WHERE name = 'claim.sql'")
r = relance("migrate", "--status", env=env)
t.ok(r.returncode == 1 and "claim.sql" in r.stderr and "run 'relance migrate'" in r.stderr,
     "migrate --status: stale, which file, what to do", r.stdout + r.stderr)
r = relance("enrollments", "show", "nobody@example.com", env=env)
t.ok(r.returncode == 1 and "claim.sql" in r.stderr and "relance migrate" in r.stderr,
     "a command refuses the database, saying to migrate", r.stderr)
s = harness.Serve(env)
st, body = harness.wait_until(lambda: (lambda res: res if "claim.sql" in str(res[1]) else None)(s.get("/readyz")),
                              20) or s.get("/readyz")
t.ok(st == 503 and "relance migrate" in body.get("reason", ""), "serve is not ready and says why", str(body))
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "functions: claim.sql updated" in r.stdout and r.stdout.count("functions:") == 1,
     "migrate applies the stale file again, and only it", r.stdout + r.stderr)
t.eq(schema_dump.definitions(pg, "relance"), want, "the function changed by hand is as the file says again")
s.wait_status("/readyz", 200, timeout=20)
t.ok(True, "serve turns ready without a restart")
t.eq(s.stop(), 0, "serve stops cleanly")

# --- a newer release's functions ----------------------------------------------------------
pg.psql("CREATE OR REPLACE FUNCTION relance_next_due() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT NULL::timestamptz $$")
pg.psql("UPDATE relance_functions SET checksum = 'newer', release = '999.0.0' WHERE name = 'claim.sql'")
r = relance("migrate", "--status", env=env)
t.ok(r.returncode == 0 and "up to date" in r.stdout, "functions a newer release applied are accepted",
     r.stdout + r.stderr)
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "left as they are" in r.stdout and "999.0.0" in r.stdout
     and "claim.sql" not in r.stdout, "migrate never puts older functions back, and says why", r.stdout + r.stderr)
t.ok(schema_dump.definitions(pg, "relance") != want, "the newer function is still there")
pg.psql("UPDATE relance_functions SET release = '0.0.1' WHERE name = 'claim.sql'")
pg.psql("INSERT INTO relance_migrations (name, checksum) VALUES ('999_from_the_future.sql', 'x')")
r = relance("migrate", "--status", env=env)
t.ok(r.returncode == 0, "a numbered migration this relance does not know means a newer release too",
     r.stdout + r.stderr)
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "999_from_the_future.sql" in r.stdout and "claim.sql" not in r.stdout,
     "and migrate leaves its functions alone", r.stdout + r.stderr)
pg.psql("DELETE FROM relance_migrations WHERE name = '999_from_the_future.sql'")
r = relance("migrate", env=env)
t.ok(r.returncode == 0 and "functions: claim.sql updated" in r.stdout, "an older release's functions are replaced",
     r.stdout + r.stderr)
t.eq(schema_dump.definitions(pg, "relance"), want, "as the file says")

# --- a file that fails ---------------------------------------------------------------------
# a function whose return type differs: CREATE OR REPLACE cannot change it
pg.psql("DROP FUNCTION relance_next_due(); "
        "CREATE FUNCTION relance_next_due() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
pg.psql("UPDATE relance_functions SET checksum = repeat('0', 64) WHERE name IN ('accounts.sql', 'claim.sql')")
r = relance("migrate", env=env)
t.ok(r.returncode == 1 and "function file claim.sql failed" in r.stderr and "return type" in r.stderr,
     "a failing file: exit 1, naming it and the reason", r.stdout + r.stderr)
t.eq(pg.psql("SELECT count(*) FROM relance_functions WHERE checksum = repeat('0', 64)")[0][0], "2",
     "the whole run rolled back (accounts.sql, applied before it, is not recorded)")

t.done()
