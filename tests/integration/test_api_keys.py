"""`relance api-keys create|list|revoke` against a real PostgreSQL: a key is
printed once in the contract's format and never stored nor shown again
(the database holds its id and the SHA-256 of the whole string, nothing
that contains the secret); scopes are checked before anything is stored;
a revoked key stays listed as revoked and frees its name."""
import hashlib
import os
import re
import subprocess

import pytest

import harness
import pgcluster
from harness import relance

KEY = re.compile(r"^rl_([A-Za-z0-9]{12})_([A-Za-z0-9]{43})$")
T0 = "2026-03-02T09:00:00Z"
T1 = "2026-03-03T10:30:00Z"


@pytest.fixture
def env(db):
    return {"DATABASE_URL": db.url(), "RELANCE_TEST_CLOCK": T0}


def create(env, name, scopes):
    """Creates a key; returns (key, its id, the result)."""
    r = relance("api-keys", "create", name, "--scopes", scopes, env=env)
    assert r.returncode == 0, f"api-keys create {name}: {r.stdout + r.stderr}"
    key = r.stdout.strip()
    m = KEY.match(key)
    assert m and r.stdout == key + "\n", f"stdout is the key alone, in the contract's format: {r.stdout!r}"
    return key, m.group(1), r


def everything_stored(db):
    """Every api_keys row as text, the hash in hex: what a reader of the
    database could see."""
    return "\n".join("|".join(row) for row in db.psql(
        "SELECT id, name, array_to_string(scopes, ','), encode(secret_hash, 'hex'), created_at::text,"
        " coalesce(last_used_at::text, ''), coalesce(revoked_at::text, '') FROM api_keys"))


def test_create_prints_the_key_once_and_stores_only_its_hash(db, env):
    key, kid, r = create(env, "crm-sync", "contacts:read,contacts:write")
    secret = KEY.match(key).group(2)
    assert "shown this once" in r.stderr and kid in r.stderr and secret not in r.stderr, \
        f"stderr says it will not be shown again, names the id, never the secret: {r.stderr}"
    assert r.stderr.count("\n") == 1, f"one line on stderr: {r.stderr}"
    rows = db.psql("SELECT id, name, array_to_string(scopes, ','), encode(secret_hash, 'hex'), created_at = %s,"
                   " last_used_at IS NULL, revoked_at IS NULL FROM api_keys" % f"'{T0}'::timestamptz")
    assert rows == [[kid, "crm-sync", "contacts:read,contacts:write", hashlib.sha256(key.encode()).hexdigest(),
                     "t", "t", "t"]], f"one row: the id, name, scopes, SHA-256 of the whole key, at the clock: {rows}"
    stored = everything_stored(db)
    assert secret not in stored and key not in stored, "the secret is not in api_keys"
    # nor anywhere else: every row of every table, and the server's log
    dump = subprocess.run([os.path.join(db.cluster.bindir, "pg_dump"), "--data-only", db.url()],
                          stdout=subprocess.PIPE, check=True, env=pgcluster.tool_env()).stdout.decode()
    assert kid in dump and secret not in dump, "a dump of the whole database has the id, not the secret"
    assert secret not in db.cluster.log_text(), "the server never saw the secret"


def test_list_shows_every_key_without_its_secret(db, env):
    key_a, id_a, _ = create(env, "crm-sync", "contacts:read")
    key_b, id_b, _ = create({**env, "RELANCE_TEST_CLOCK": T1}, "dashboard", "*")
    db.psql(f"UPDATE api_keys SET last_used_at = '2026-03-04T08:00:00Z' WHERE id = '{id_b}'")
    r = relance("api-keys", "list", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == (f"{id_a}\tcrm-sync\tcontacts:read\tcreated {T0}\tlast used never\n"
                        f"{id_b}\tdashboard\t*\tcreated {T1}\tlast used 2026-03-04T08:00:00Z\n"), \
        f"one line a key, oldest first: {r.stdout}"
    for key in (key_a, key_b):
        secret = KEY.match(key).group(2)
        assert secret not in r.stdout + r.stderr, "list never shows a secret"
        assert hashlib.sha256(key.encode()).hexdigest() not in r.stdout, "nor a hash"


def test_two_keys_differ_in_id_and_secret(db, env):
    keys = [create(env, f"k{i}", "stats:read")[0] for i in range(3)]
    ids = {KEY.match(k).group(1) for k in keys}
    secrets = {KEY.match(k).group(2) for k in keys}
    assert len(ids) == 3 and len(secrets) == 3, f"every key its own id and secret: {keys}"


def test_scopes_are_deduplicated_and_trimmed(db, env):
    _, kid, _ = create(env, "ops", "events:read, webhooks:write,events:read")
    rows = db.psql(f"SELECT array_to_string(scopes, ',') FROM api_keys WHERE id = '{kid}'")
    assert rows == [["events:read,webhooks:write"]], f"the scopes, once each, in order: {rows}"


BAD = [
    (("--scopes", "contacts:read,contacts:delete"), "unknown scope 'contacts:delete'"),
    (("--scopes", "stats:write"), "unknown scope 'stats:write'"),
    (("--scopes", ""), "empty scope"),
    (("--scopes", "contacts:read,"), "empty scope"),
    ((), "--scopes is required"),
]


@pytest.mark.parametrize("args, text", BAD, ids=[a[1] if a else "none" for a, _ in BAD])
def test_a_bad_scope_is_a_usage_error_and_stores_nothing(db, env, args, text):
    r = relance("api-keys", "create", "crm", *args, env=env)
    assert r.returncode == 2 and text in r.stderr and r.stdout == "", \
        f"exit 2, says why, prints no key: {r.returncode} {r.stdout + r.stderr}"
    assert db.psql("SELECT count(*) FROM api_keys") == [["0"]], "nothing stored"


def test_a_name_is_unique_among_live_keys(db, env):
    _, first, _ = create(env, "crm", "contacts:read")
    r = relance("api-keys", "create", "crm", "--scopes", "contacts:read", env=env)
    assert r.returncode == 1 and first in r.stderr and r.stdout == "", \
        f"a second live 'crm' is refused, naming the first, and no key printed: {r.stdout + r.stderr}"
    assert db.psql("SELECT count(*) FROM api_keys") == [["1"]], "nothing more stored"
    assert relance("api-keys", "revoke", first, env=env).returncode == 0
    create(env, "crm", "contacts:read")


def test_revoke_ends_a_key_and_list_shows_it_revoked(db, env):
    key, kid, _ = create(env, "crm", "contacts:read")
    _, other, _ = create(env, "dashboard", "stats:read")
    r = relance("api-keys", "revoke", kid, env={**env, "RELANCE_TEST_CLOCK": T1})
    assert r.returncode == 0 and kid in r.stdout, r.stdout + r.stderr
    rows = db.psql("SELECT id, revoked_at = '%s'::timestamptz FROM api_keys WHERE revoked_at IS NOT NULL" % T1)
    assert rows == [[kid, "t"]], f"only that key revoked, at the clock: {rows}"
    r = relance("api-keys", "list", env=env)
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert lines[kid].endswith(f"\trevoked {T1}") and "revoked" not in lines[other], \
        f"list shows the revoked key as such, the other not: {r.stdout}"
    # again: it stays revoked from the first time
    r = relance("api-keys", "revoke", kid, env=env)
    assert r.returncode == 0 and f"already revoked at {T1}" in r.stdout, r.stdout + r.stderr


def test_revoke_takes_the_whole_key_too(db, env):
    key, kid, _ = create(env, "crm", "contacts:read")
    r = relance("api-keys", "revoke", key, env=env)
    assert r.returncode == 0 and KEY.match(key).group(2) not in r.stdout + r.stderr, r.stdout + r.stderr
    assert db.psql(f"SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = '{kid}'") == [["t"]]


@pytest.mark.parametrize("given", ["AAAAAAAAAAAA", "nope", "rl_AAAAAAAAAAAA_short"])
def test_revoking_an_unknown_key_exits_1(db, env, given):
    create(env, "crm", "contacts:read")
    r = relance("api-keys", "revoke", given, env=env)
    assert r.returncode == 1 and "no API key" in r.stderr, f"{given}: exit 1, says so: {r.stdout + r.stderr}"
    assert "short" not in r.stderr, "what follows an id-length prefix is not echoed (it may be a secret)"
    assert db.psql("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL") == [["0"]]


def test_a_name_with_a_line_break_is_refused(db, env):
    r = relance("api-keys", "create", "crm\nx", "--scopes", "contacts:read", env=env)
    assert r.returncode == 2 and "control characters" in r.stderr and r.stdout == "", r.stdout + r.stderr


def test_a_key_that_cannot_be_printed_is_not_stored(db, env):
    with open("/dev/full", "w") as full:
        r = subprocess.run([harness.RELANCE, "api-keys", "create", "crm", "--scopes", "*"],
                           env=harness.relance_env(env), stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 1 and "nothing was stored" in r.stderr, r.stderr
    assert db.psql("SELECT count(*) FROM api_keys") == [["0"]], "a key nobody saw is not left working"
