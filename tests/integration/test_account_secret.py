"""One account whose secret cannot be read does not stop relance: serve
starts, pauses that account with the reason (`relance accounts list` and
the event feed say it), and the pool's other account sends. Started again
with the secret, serve resumes the account by itself. `relance config`
lists the same problem and says serve would pause the account. Real
PostgreSQL, Postfix and Dovecot."""
import os
import time

import pytest

import harness
from harness import relance

GOOD, BAD = ("good@acme.example", "pw-good"), ("bad@acme.example", "pw-bad")
START = "2026-03-02T09:00:00Z"
pytestmark = pytest.mark.mail(users=[GOOD, BAD])


def accounts(env):
    r = relance("accounts", "list", env={**env, "RELANCE_TEST_CLOCK": START})
    assert r.returncode == 0, r.stderr
    return {ln.split("\t")[0]: ln for ln in r.stdout.splitlines() if "\t" in ln}


def test_a_missing_secret_pauses_its_account_and_the_others_send(mail, db, tmp):
    config = harness.pool_config(tmp, {"main": [harness.account(mail, GOOD[0], "PW_GOOD"),
                                                harness.account(mail, BAD[0], "PW_BAD")]})
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": config, "PW_GOOD": GOOD[1]}
    seq = harness.sequence(tmp, "one_step", name="s", pool="main")
    assert relance("apply", seq, env=env).returncode == 0
    r = relance("config", env=env)
    assert r.returncode == 1
    assert (f"relance: config error: account {BAD[0]}: environment variable PW_BAD (password_env) is not set "
            "(serve pauses this account until it can be read)") in r.stderr, r.stderr
    assert "serve would start with that account paused" in r.stderr, r.stderr

    db.psql("INSERT INTO contacts (email) VALUES ('p1@prospects.example'), ('p2@prospects.example')")
    r = relance("enroll", "--sequence", "s", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert "enrolled 2" in r.stdout, r.stdout + r.stderr
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
    try:
        s.wait_status("/readyz", 200)
        got = [mail.wait_for(f"p{i}@prospects.example", 1, timeout=30) for i in (1, 2)]
        listed = accounts(env)
    finally:
        s.stop()
    out = s.output()
    assert all(len(g) == 1 for g in got), f"both contacts got their step: {out[-2000:]}"
    assert all(f"From: {GOOD[0]}".encode() in g[0] or f"<{GOOD[0]}>".encode() in g[0] for g in got), \
        "sent by the account that has its secret"
    assert "\tpaused" in listed[BAD[0]] and \
        "missing secret: environment variable PW_BAD (password_env) is not set" in listed[BAD[0]], listed
    assert "\tactive" in listed[GOOD[0]], listed
    assert "account paused: its secret cannot be read" in out and "PW_BAD" in out, out[-2000:]
    assert db.psql("SELECT data->>'reason' FROM events WHERE kind = 'account.paused'") == [
        ["missing secret: environment variable PW_BAD (password_env) is not set"]]

    # with the secret, the next start resumes it (a hand pause would stay)
    s = harness.Serve({**env, "PW_BAD": BAD[1], "RELANCE_TEST_CLOCK": f"{START}*60"})
    try:
        s.wait_status("/readyz", 200)
        ok = harness.wait_until(lambda: "\tactive" in accounts(env)[BAD[0]], 20)
    finally:
        s.stop()
    assert ok, accounts(env)
    assert db.psql("SELECT count(*) FROM events WHERE kind = 'account.resumed'") == [["1"]]
