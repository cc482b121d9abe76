"""The foundation against a real PostgreSQL: the command line's errors and
exit codes, configuration errors and precedence, migrate (empty, twice,
concurrently, tampered), serve's readiness on an unmigrated database and
across a PostgreSQL restart, clean shutdown, and JSON logs."""
import json
import os
import signal
import subprocess
import time

import pytest

import harness
from harness import relance


# --- command line -------------------------------------------------------

def test_help_lists_every_command_and_each_has_its_own_help():
    r = relance("--help")
    assert r.returncode == 0, "relance --help exits 0"
    for cmd in ("serve", "migrate", "version", "config"):
        assert f"\n  {cmd} " in r.stdout, f"--help lists {cmd}"
        h = relance(cmd, "--help")
        assert h.returncode == 0 and "usage: relance " + cmd in h.stdout, f"relance {cmd} --help"


def test_version():
    r = relance("version")
    assert r.returncode == 0 and r.stdout.startswith("relance "), f"relance version: {r.stdout}"


def test_unknown_commands_and_options_exit_2(db):
    r = relance("no-such-command")
    assert r.returncode == 2 and "unknown command 'no-such-command'" in r.stderr and r.stderr.count("\n") == 1, \
        f"unknown subcommand: one line, exit 2: {r.stderr}"
    assert relance("--bogus", "version").returncode == 2, "unknown global option exits 2"
    assert relance("migrate", "--frobnicate", env={"DATABASE_URL": db.url()}).returncode == 2, \
        "unknown command option exits 2"


# --- configuration ----------------------------------------------------------

def test_a_missing_config_file_is_one_line(tmp):
    missing = os.path.join(tmp, "nope.yaml")
    r = relance("--config", missing, "config")
    assert r.returncode == 1 and missing in r.stderr and r.stderr.count("\n") == 1, \
        f"missing config file: one line: {r.stderr}"


def test_config_errors_point_at_file_line_and_column(tmp):
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("http:\n  listen: 127.0.0.1:9\ndatabse_url: x\n")
    r = relance("--config", bad, "config")
    assert r.returncode == 1 and \
        f"{bad}:3:1: unknown key 'databse_url' (did you mean 'database_url'?)" in r.stderr, \
        f"unknown key named with file:line:column and a suggestion: {r.stderr}"
    with open(bad, "w") as f:
        f.write("http: [1, 2\n")
    r = relance("--config", bad, "config")
    assert r.returncode == 1 and f"{bad}:" in r.stderr and "invalid YAML" in r.stderr, f"malformed YAML: {r.stderr}"
    with open(bad, "w") as f:
        f.write("database_url: ${RELANCE_TEST_UNSET_VAR}\n")
    r = relance("--config", bad, "config")
    assert r.returncode == 1 and "RELANCE_TEST_UNSET_VAR is not set" in r.stderr and f"{bad}:1:15" in r.stderr, \
        f"unset ${{VAR}} is an error at its position: {r.stderr}"


@pytest.fixture
def good(tmp):
    path = os.path.join(tmp, "good.yaml")
    with open(path, "w") as f:
        f.write("database_url: postgresql://u:${RELANCE_TEST_PW}@127.0.0.1:1/x\nhttp: {listen: '127.0.0.1:1'}\n")
    return path


def test_the_environment_wins_over_the_file_and_the_password_is_redacted(good):
    r = relance("--config", good, "config", env={"RELANCE_TEST_PW": "s3cret-pw", "RELANCE_HTTP_LISTEN": "127.0.0.1:7"})
    assert r.returncode == 0 and "http.listen: 127.0.0.1:7" in r.stdout, f"environment wins over the file: {r.stdout}"
    assert "s3cret-pw" not in r.stdout + r.stderr and "u:***@" in r.stdout, f"password redacted: {r.stdout}"


def test_the_file_wins_over_the_defaults(good, tmp):
    r = relance("--config", good, "config", env={"RELANCE_TEST_PW": "p"}, cwd=tmp)
    assert "http.listen: 127.0.0.1:1" in r.stdout, f"file wins over defaults: {r.stdout}"


def test_relance_config_names_the_file(good, tmp):
    r = relance("config", env={"RELANCE_CONFIG": good, "RELANCE_TEST_PW": "p"}, cwd=tmp)
    assert r.returncode == 0 and good in r.stdout, f"RELANCE_CONFIG names the file: {r.stdout}"


def test_relance_yaml_in_the_working_directory_is_the_default_file(tmp):
    with open(os.path.join(tmp, "relance.yaml"), "w") as f:
        f.write("http: {listen: '127.0.0.1:4'}\n")
    r = relance("config", cwd=tmp)
    assert r.returncode == 0 and "http.listen: 127.0.0.1:4" in r.stdout, \
        f"./relance.yaml is the default file: {r.stdout}"


def test_no_file_gives_the_built_in_defaults():
    r = relance("config", cwd="/")
    assert r.returncode == 0 and "127.0.0.1:8080" in r.stdout, f"no file: built-in defaults: {r.stdout}"


def test_what_the_caller_exported_never_reaches_relance(monkeypatch, tmp):
    # the harness's rule: relance under test gets only what the test sets
    for k, v in (("RELANCE_HTTP_LISTEN", "1.2.3.4:5"), ("DATABASE_URL", "postgresql://nobody@nowhere/x"),
                 ("PGHOST", "nowhere"), ("RELANCE_LOG_LEVEL", "debug"), ("RELANCE_CONFIG", "/nonexistent.yaml")):
        monkeypatch.setenv(k, v)
    env = harness.relance_env()
    assert not [k for k in env if k.startswith(("RELANCE_", "PG")) or k == "DATABASE_URL"], \
        f"relance's environment holds none of the caller's settings: {sorted(env)}"
    r = relance("config", cwd=tmp)
    assert r.returncode == 0 and "127.0.0.1:8080" in r.stdout and "nowhere" not in r.stdout, \
        f"relance config shows the built-in defaults, not what the caller exported: {r.stdout + r.stderr}"


def test_the_annotated_example_configuration_parses():
    example = os.path.join(harness.SOURCE, "deploy", "relance.example.yaml")
    r = relance("--config", example, "config", env={"DATABASE_URL": "", "ALICE_MAIL_PASSWORD": "x",
                                                    "CRM_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                                    "RELANCE_LINK_SECRET": "0123456789abcdef" * 2})
    assert "pool founders: 1 account" in r.stdout, f"the annotated example configuration parses: {r.stdout + r.stderr}"
    assert "webhook crm: https://crm.acme.example/hooks/relance" in r.stdout, f"its webhook: {r.stdout}"
    # with its secrets set, what is left is the DKIM key this machine lacks
    problems = [line for line in r.stderr.splitlines() if "config error" in line]
    assert r.returncode == 1 and len(problems) == 1 and "/run/secrets/dkim-acme.pem" in problems[0], \
        f"the example's only start-up problem here is its absent DKIM key: {r.stderr}"


# --- migrate ----------------------------------------------------------------

def test_migrate_against_an_unreachable_database_fails_fast_and_clearly():
    dead = {"DATABASE_URL": f"postgresql://relance@127.0.0.1:{harness.free_port()}/x?connect_timeout=3"}
    start = time.time()
    r = relance("migrate", env=dead, timeout=30)
    assert r.returncode == 1 and "cannot connect to the database" in r.stderr and time.time() - start < 10, \
        f"migrate against an unreachable database: clear error, exit 1: {r.stderr}"


def migrations_count(db):
    return db.psql("SELECT count(*) FROM relance_migrations")[0][0]


def test_migrate_applies_every_migration_once_and_then_does_nothing(empty_db, db):
    env = {"DATABASE_URL": empty_db.url()}
    r = relance("migrate", "--status", env=env)
    assert r.returncode == 1 and "not migrated" in r.stdout, f"status of an empty database: {r.stdout + r.stderr}"
    r = relance("migrate", env=env)
    assert r.returncode == 0 and "applied 001_init.sql" in r.stdout, \
        f"migrate on an empty database: {r.stdout + r.stderr}"
    applied = migrations_count(empty_db)
    assert applied == migrations_count(db), "as many migrations as the template has"
    r = relance("migrate", env=env)
    assert r.returncode == 0 and "up to date" in r.stdout and "applied" not in r.stdout, \
        f"migrate twice is a no-op: {r.stdout}"
    assert migrations_count(empty_db) == applied, "second run recorded nothing"
    assert int(applied) >= 1 and empty_db.psql("SELECT to_regclass('events') IS NOT NULL")[0][0] == "t", \
        "schema exists"


def test_four_concurrent_migrates_apply_each_migration_once(empty_db, db):
    applied = migrations_count(db)
    env = harness.relance_env({"DATABASE_URL": empty_db.url()})
    procs = [subprocess.Popen([harness.RELANCE, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], f"four concurrent migrates all succeed: {outs}"
    assert sum(o[0].count("applied ") for o in outs) == int(applied), \
        "each migration applied exactly once across concurrent runs"
    assert migrations_count(empty_db) == applied, "concurrent runs recorded each migration once"


def test_a_tampered_migration_is_refused(db):
    env = {"DATABASE_URL": db.url()}
    db.psql("UPDATE relance_migrations SET checksum = repeat('0', 64) WHERE name = '001_init.sql'")
    r = relance("migrate", env=env)
    assert r.returncode == 1 and "001_init.sql changed after it was applied" in r.stderr, \
        f"tampered migration refused: {r.stderr}"
    r = relance("migrate", "--status", env=env)
    assert r.returncode == 1, "status reports the tampered migration"


# --- serve ----------------------------------------------------------------

def test_serve_is_not_ready_until_migrated_then_ready_without_a_restart(empty_db, serve):
    s = serve({"DATABASE_URL": empty_db.url()})
    s.wait_status("/healthz", 200)
    # the first answers may say the database is not connected yet (a loaded
    # machine): wait for the verdict on the schema itself
    st, body = harness.wait_until(lambda: (lambda r: r if "connected" not in r[1].get("reason", "") else None)(
        s.get("/readyz")), 10) or s.get("/readyz")
    assert st == 503 and "migrate" in body.get("reason", ""), \
        f"readyz 503 with a reason on an unmigrated database: {body}"
    relance("migrate", env={"DATABASE_URL": empty_db.url()})
    s.wait_status("/readyz", 200, timeout=10)
    st, body = s.get("/nope")
    assert st == 404 and body.get("type") == "urn:relance:problem:not-found", f"unknown path: 404 problem: {body}"
    assert s.stop(signal.SIGINT) == 0, "SIGINT exits 0"
    assert "handles left open" not in s.output() and "ERROR" not in s.output(), \
        f"clean loop shutdown: {s.output()}"


@pytest.fixture
def own_env(own_postgres):
    env = {"DATABASE_URL": own_postgres.url()}
    assert relance("migrate", env=env).returncode == 0, "migrate the private cluster's database"
    return env


def test_serve_is_not_ready_while_postgresql_is_stopped_and_recovers(own_postgres, own_env, serve):
    pg = own_postgres
    s = serve(own_env)
    s.wait_status("/readyz", 200)
    pg.stop()
    st, body = s.wait_status("/readyz", 503, timeout=10)
    assert "unreachable" in body.get("reason", ""), f"not ready while PostgreSQL is stopped: {body}"
    assert s.get("/healthz")[0] == 200, "still alive while PostgreSQL is stopped"
    time.sleep(2)  # let it back off a few times
    pg.start()
    restarted = time.time()
    s.wait_status("/readyz", 200, timeout=10)
    assert time.time() - restarted < 10, f"ready again {time.time() - restarted:.1f}s after PostgreSQL restarted"
    assert s.stop(signal.SIGTERM) == 0, "SIGTERM exits 0"
    out = s.output()
    assert "stopped" in out and "handles left open" not in out, f"loop closed with no live handles: {out}"
    assert "ERROR: AddressSanitizer" not in out and "runtime error" not in out, f"sanitizers quiet: {out}"


def test_serve_started_while_postgresql_is_down_connects_once_it_is_up(own_postgres, own_env, serve):
    own_postgres.stop()
    s = serve(own_env)
    s.wait_status("/healthz", 200)
    st, body = s.get("/readyz")
    assert st == 503, "unreachable at start: not ready, still running"
    own_postgres.start()
    s.wait_status("/readyz", 200, timeout=10)
    assert s.stop() == 0, "SIGTERM exits 0"


def test_serve_on_a_port_in_use_says_so_and_exits_1(db, serve):
    env = {"DATABASE_URL": db.url()}
    s1 = serve(env)
    s1.wait_status("/healthz", 200)
    r = relance("serve", env={**env, "RELANCE_HTTP_LISTEN": f"127.0.0.1:{s1.port}"}, timeout=20)
    assert r.returncode == 1 and "cannot listen" in r.stderr, f"port in use: clear error, exit 1: {r.stderr}"
    s1.stop()


def test_log_format_json_writes_one_json_object_a_line(db, serve):
    s = serve({"DATABASE_URL": db.url()}, args=("--log-format", "json"))
    s.wait_status("/readyz", 200)
    s.stop()
    lines = [ln for ln in s.output().splitlines() if ln.strip()]
    try:
        parsed = [json.loads(ln) for ln in lines]
    except ValueError as e:
        pytest.fail(f"--log-format json: every line is a JSON object: {e}: {lines}")
    assert all("event" in p and "ts" in p for p in parsed), "--log-format json: every line is a JSON object"
