"""The database password never reaches relance's output, whatever way the
connection string spells it: `relance config`, `relance
migrate`'s connection error and `relance serve`'s log show the host, port
and database but never the password, for URLs, for every libpq
keyword/value spelling (spaces around '=', quotes, backslash escapes) and
for strings libpq cannot parse at all (whose parse errors quote the text).

The role's password is really checked: the cluster's pg_hba.conf asks the
members of pgcluster.PASSWORD_ROLES for scram-sha-256 over TCP, the test's
role is one, so the right spelling connects and serves, and a wrong one
fails with PostgreSQL's own authentication error."""
import signal

import pytest

import harness
import pgcluster
from harness import relance

HOST = "127.0.0.1"
# (name, password, the connection string that gives it, from the port,
# database and role). Every word and piece of every password holds
# "Sekr1t": one look finds any part of any.
CASES = [
    ("url", "Sekr1t-url", "postgresql://{r}:Sekr1t-url@{h}:{p}/{d}"),
    ("url query", "Sekr1t-query", "postgresql://{r}@{h}:{p}/{d}?password=Sekr1t-query"),
    ("key=value", "Sekr1t-kv", "{base} password=Sekr1t-kv"),
    ("spaces around =", "Sekr1t-sp", "{base} password = Sekr1t-sp"),
    ("space after =", "Sekr1t-after", "host={h} password= Sekr1t-after port={p} dbname={d} user={r}"),
    ("quoted with spaces", "Sekr1t-a Sekr1t-b", "{base} password='Sekr1t-a Sekr1t-b'"),
    ("quote and backslash", "Sekr1t'Sekr1t\\Sekr1t", "{base} password='Sekr1t\\'Sekr1t\\\\Sekr1t'"),
    ("escaped space", "Sekr1t-e Sekr1t-f", "{base} password=Sekr1t-e\\ Sekr1t-f"),
]
# libpq cannot parse these; its own message would quote the secret's
# second word, or the whole badly encoded password.
UNPARSEABLE = [
    ("unquoted space", "{base} password=Sekr1t-one Sekr1t-two"),
    ("bad percent-encoding", "postgresql://{r}:Sekr1t%zz@{h}:{p}/{d}"),
]


class Role:
    """A role of the test's own that must give its password, in the
    test's database."""

    def __init__(self, db):
        self.db = db
        self.name = f"secretive_{db.name}"
        self.port, self.dbname = str(db.port), db.name
        db.psql(f"CREATE ROLE {self.name} LOGIN SUPERUSER IN ROLE {pgcluster.PASSWORD_ROLES}")

    def conninfo(self, spelling):
        base = f"host={HOST} port={self.port} dbname={self.dbname} user={self.name}"
        return spelling.format(r=self.name, h=HOST, p=self.port, d=self.dbname, base=base)

    def set_password(self, pw):
        q = pw.replace("'", "''")
        self.db.psql(f"SET password_encryption = 'scram-sha-256'; ALTER ROLE {self.name} PASSWORD '{q}'")

    def clean(self, check, what, text, where=True):
        """text has no piece of a secret and, when where, names host, port and database."""
        check.ok("Sekr1t" not in text, f"{what}: no password", text)
        if where:
            check.ok(HOST in text and self.port in text and self.dbname in text,
                     f"{what}: host, port and database shown", text)


@pytest.fixture
def role(db):
    r = Role(db)
    yield r
    db.drop()
    db.psql(f"DROP ROLE IF EXISTS {r.name}", db="postgres")


def serve_until(serve, env, line):
    """A short `relance serve`: until its log has line, then SIGTERM. Returns the log."""
    s = serve(env)
    harness.wait_until(lambda: line in s.output() or s.proc.poll() is not None, 20)
    s.stop(signal.SIGTERM)
    return s.output()


@pytest.mark.parametrize("name, pw, spelling", CASES, ids=[c[0] for c in CASES])
def test_the_password_never_shows_however_the_connection_string_spells_it(role, serve, check, name, pw, spelling):
    env = {"DATABASE_URL": role.conninfo(spelling)}
    role.set_password(pw)
    r = relance("config", env=env)
    check.eq(r.returncode, 0, f"{name}: config")
    role.clean(check, f"{name}: config", r.stdout + r.stderr)
    check.ok("***" in r.stdout, f"{name}: config shows the password as ***", r.stdout)

    r = relance("migrate", env=env)
    check.ok(r.returncode == 0, f"{name}: migrate connects with the password", r.stdout + r.stderr)
    role.clean(check, f"{name}: migrate", r.stdout + r.stderr, where=False)

    # the same spelling with a wrong password: PostgreSQL refuses it
    role.set_password("Not the one given")
    r = relance("migrate", env=env)
    check.ok(r.returncode == 1 and "password authentication failed" in r.stderr, f"{name}: wrong password refused",
             r.stderr)
    role.clean(check, f"{name}: migrate's connection error", r.stderr)

    role.set_password(pw)
    out = serve_until(serve, env, "serve: ready")
    check.ok("serve: ready" in out, f"{name}: serve connects and is ready", out)
    started = [ln for ln in out.splitlines() if "serve: started" in ln]
    check.ok(len(started) == 1, f"{name}: serve logs its start", out)
    role.clean(check, f"{name}: serve's log", out, where=False)
    role.clean(check, f"{name}: serve's start line", "".join(started))


def test_serve_with_a_wrong_password_says_why(role, serve, check):
    role.set_password("Not the one given")
    out = serve_until(serve, {"DATABASE_URL": role.conninfo(CASES[2][2])}, "cannot connect")
    check.ok("password authentication failed" in out, "serve with a wrong password says why", out)
    role.clean(check, "serve with a wrong password", out, where=False)


@pytest.mark.parametrize("name, spelling", UNPARSEABLE, ids=[c[0] for c in UNPARSEABLE])
def test_a_string_libpq_cannot_parse_is_never_quoted(role, serve, check, name, spelling):
    env = {"DATABASE_URL": role.conninfo(spelling)}
    r = relance("config", env=env)
    role.clean(check, f"{name}: config", r.stdout + r.stderr, where=False)
    check.ok("unparseable" in r.stdout + r.stderr, f"{name}: config says the string cannot be parsed",
             r.stdout + r.stderr)
    r = relance("migrate", env=env)
    check.ok(r.returncode == 1 and "cannot connect" in r.stderr, f"{name}: migrate fails", r.stderr)
    role.clean(check, f"{name}: migrate", r.stdout + r.stderr, where=False)
    out = serve_until(serve, env, "cannot connect")
    check.ok("cannot connect" in out and "serve: started" in out, f"{name}: serve runs and says it cannot connect",
             out)
    role.clean(check, f"{name}: serve's log", out, where=False)
