"""The database password never reaches relance's output, whatever way the
connection string spells it (issue 14): `relance config`, `relance
migrate`'s connection error and `relance serve`'s log show the host, port
and database but never the password, for URLs, for every libpq
keyword/value spelling (spaces around '=', quotes, backslash escapes) and
for strings libpq cannot parse at all (whose parse errors quote the text).

The role's password is really checked: a scram-sha-256 line in pg_hba.conf
for it, so the right spelling connects and serves, and a wrong one fails
with PostgreSQL's own authentication error."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("db_secrets")
pg = harness.Postgres()
HOST, PORT, DB, ROLE = "127.0.0.1", str(pg.port), "relance", "secretive"

# The role must give its password: scram over TCP, before initdb's trust lines.
pg.psql(f"CREATE ROLE {ROLE} LOGIN; GRANT ALL ON DATABASE {DB} TO {ROLE}; "
        f"GRANT ALL ON SCHEMA public TO {ROLE}")
hba = os.path.join(pg.data, "pg_hba.conf")
with open(hba) as f:
    lines = f.read()
with open(hba, "w") as f:
    f.write(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + lines)
pg.psql("SELECT pg_reload_conf()")


def set_password(pw):
    q = pw.replace("'", "''")
    pg.psql(f"SET password_encryption = 'scram-sha-256'; ALTER ROLE {ROLE} PASSWORD '{q}'")


# (name, password, the connection string that gives it). Every word and
# piece of every password holds "Sekr1t": one look finds any part of any.
base = f"host={HOST} port={PORT} dbname={DB} user={ROLE}"
CASES = [
    ("url", "Sekr1t-url", f"postgresql://{ROLE}:Sekr1t-url@{HOST}:{PORT}/{DB}"),
    ("url query", "Sekr1t-query", f"postgresql://{ROLE}@{HOST}:{PORT}/{DB}?password=Sekr1t-query"),
    ("key=value", "Sekr1t-kv", f"{base} password=Sekr1t-kv"),
    ("spaces around =", "Sekr1t-sp", f"{base} password = Sekr1t-sp"),
    ("space after =", "Sekr1t-after", f"host={HOST} password= Sekr1t-after port={PORT} dbname={DB} user={ROLE}"),
    ("quoted with spaces", "Sekr1t-a Sekr1t-b", f"{base} password='Sekr1t-a Sekr1t-b'"),
    ("quote and backslash", "Sekr1t'Sekr1t\\Sekr1t", f"{base} password='Sekr1t\\'Sekr1t\\\\Sekr1t'"),
    ("escaped space", "Sekr1t-e Sekr1t-f", f"{base} password=Sekr1t-e\\ Sekr1t-f"),
]
# libpq cannot parse these; its own message would quote the secret's
# second word, or the whole badly encoded password.
UNPARSEABLE = [
    ("unquoted space", f"{base} password=Sekr1t-one Sekr1t-two"),
    ("bad percent-encoding", f"postgresql://{ROLE}:Sekr1t%zz@{HOST}:{PORT}/{DB}"),
]


def clean(what, text, where=True):
    """text has no piece of a secret and, when where, names host, port and database."""
    t.ok("Sekr1t" not in text, f"{what}: no password", text)
    if where:
        t.ok(HOST in text and PORT in text and DB in text, f"{what}: host, port and database shown", text)


def serve_until(env, line):
    """A short `relance serve`: until its log has line, then SIGTERM. Returns the log."""
    s = harness.Serve(env)
    harness.wait_until(lambda: line in s.output() or s.proc.poll() is not None, 20)
    s.stop(signal.SIGTERM)
    return s.output()


migrated = False
for name, pw, conninfo in CASES:
    env = {"DATABASE_URL": conninfo}
    set_password(pw)
    r = relance("config", env=env)
    t.eq(r.returncode, 0, f"{name}: config")
    clean(f"{name}: config", r.stdout + r.stderr)
    t.ok("***" in r.stdout, f"{name}: config shows the password as ***", r.stdout)

    r = relance("migrate", env=env)
    t.ok(r.returncode == 0, f"{name}: migrate connects with the password", r.stdout + r.stderr)
    clean(f"{name}: migrate", r.stdout + r.stderr, where=False)
    migrated = migrated or r.returncode == 0

    # the same spelling with a wrong password: PostgreSQL refuses it
    set_password("Not the one given")
    r = relance("migrate", env=env)
    t.ok(r.returncode == 1 and "password authentication failed" in r.stderr, f"{name}: wrong password refused",
         r.stderr)
    clean(f"{name}: migrate's connection error", r.stderr)

    set_password(pw)
    if migrated:
        out = serve_until(env, "serve: ready")
        t.ok("serve: ready" in out, f"{name}: serve connects and is ready", out)
        started = [ln for ln in out.splitlines() if "serve: started" in ln]
        t.ok(len(started) == 1, f"{name}: serve logs its start", out)
        clean(f"{name}: serve's log", out, where=False)
        clean(f"{name}: serve's start line", "".join(started))

set_password("Not the one given")
out = serve_until({"DATABASE_URL": CASES[2][2]}, "cannot connect")
t.ok("password authentication failed" in out, "serve with a wrong password says why", out)
clean("serve with a wrong password", out, where=False)

for name, conninfo in UNPARSEABLE:
    env = {"DATABASE_URL": conninfo}
    r = relance("config", env=env)
    clean(f"{name}: config", r.stdout + r.stderr, where=False)
    t.ok("unparseable" in r.stdout + r.stderr, f"{name}: config says the string cannot be parsed",
         r.stdout + r.stderr)
    r = relance("migrate", env=env)
    t.ok(r.returncode == 1 and "cannot connect" in r.stderr, f"{name}: migrate fails", r.stderr)
    clean(f"{name}: migrate", r.stdout + r.stderr, where=False)
    out = serve_until(env, "cannot connect")
    t.ok("cannot connect" in out and "serve: started" in out, f"{name}: serve runs and says it cannot connect",
         out)
    clean(f"{name}: serve's log", out, where=False)

t.done()
