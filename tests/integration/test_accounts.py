"""Sender accounts against a real PostgreSQL: sync from the configuration,
accounts list, and the account claim's rules — daily caps counted in the
account's day, the warm-up ramp (paused days do not advance it), spacing,
rotation of new enrollments to the account with the most room, sticky
follow-ups, the per-domain hourly cap, and leases that keep an account on
one replica."""
import os

import pytest

import harness
from harness import relance

CONFIG = """pools:
  founders:
    domain_hourly_limit: 3
    accounts:
      - {email: a@acme.example, daily_limit: 5, timezone: Europe/Paris}
      - {email: b@acme.example, daily_limit: 3, warmup: {start: 1, increase_per_day: 1}}
      - {email: c@acme.example, daily_limit: 10, min_interval: 90s}
  other:
    accounts:
      - {email: x@other.example}
"""
NOW = "2026-03-02 10:00:00+00"  # a Monday


@pytest.fixture
def env(db, tmp):
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg}
    r = relance("accounts", "sync", env=env)
    assert r.returncode == 0 and "synced 4 accounts" in r.stdout, f"accounts sync: {r.stdout + r.stderr}"
    return env


@pytest.fixture
def enrolled(db, tmp, env):
    """30 contacts (four at d1.example) enrolled in a two-step sequence of
    pool founders; the accounts' ids by letter."""
    seq = harness.sequence(tmp, "two_step", name="s", pool="founders", wait="1h")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    doms = ["d1.example"] * 4 + [f"e{i}.example" for i in range(26)]
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('p{i}@{d}')" for i, d in enumerate(doms)))
    r = relance("enroll", "--sequence", "s", "--where", "true",
                env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T09:00:00Z"})
    assert "enrolled 30" in r.stdout, f"enroll 30: {r.stdout + r.stderr}"
    ids = {row[0]: row[1] for row in db.psql("SELECT email, id FROM accounts")}
    return ids


def remaining(db, acc, now=NOW):
    v = db.psql(f"SELECT relance_account_remaining({acc}, relance_local_day('{now}', timezone)) FROM accounts "
                f"WHERE id = {acc}")[0][0]
    return int(v) if v else 10**9


def claim(db, acc, now=NOW, limit=1):
    """relance serve's claim (one cycle's), for account acc alone."""
    return db.psql(f"SELECT message_id, enrollment_id FROM relance_claim_accounts('{now}', ARRAY[{acc}]::bigint[], "
                   f"{limit}, 'r1', false)")


def sent(db, rows, now=NOW):
    """The claimed messages' outcome: sent (they are no longer in flight)."""
    for mid, _ in rows:
        db.psql(f"SELECT relance_step_done('{mid}', '{now}', 'sent', '250 ok', 'Hi', NULL, NULL)")


def test_accounts_list_shows_state_usage_and_limit(env):
    r = relance("accounts", "list", env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T10:00:00Z"})
    assert "a@acme.example\tpool founders\tactive\ttoday 0/5" in r.stdout, r.stdout + r.stderr
    assert "b@acme.example\tpool founders\tactive\ttoday 0/1" in r.stdout, \
        f"b warms up from 1: {r.stdout + r.stderr}"
    assert "x@other.example\tpool other\tactive\ttoday 0/no limit" in r.stdout, r.stdout + r.stderr


def test_a_replica_holds_every_lease_while_it_lives(db, enrolled):
    held = sorted(int(x[0]) for x in db.psql("SELECT relance_account_leases('r1', 30)"))
    assert held == sorted(int(v) for v in enrolled.values()), "replica r1 takes every free account lease"
    assert db.psql("SELECT count(*) FROM relance_account_leases('r2', 30)")[0][0] == "0", \
        "r2 gets none while r1 lives"
    a = enrolled["a@acme.example"]
    assert db.psql(f"SELECT count(*) FROM relance_claim_account('{NOW}', {a}, 100, 'r2')")[0][0] == "0", \
        "a replica without the lease claims nothing"


def test_claims_rotate_to_the_most_room_and_keep_caps_spacing_and_follow_ups(db, enrolled, check):
    ids = enrolled
    A, B, C = ids["a@acme.example"], ids["b@acme.example"], ids["c@acme.example"]
    db.psql("SELECT relance_account_leases('r1', 30)")
    # Round robin, one at a time, each message sent before the next
    # claim: every new enrollment must go to an account with the most room
    # among those available (c is spaced after each send).
    trace_ok = True
    got = {A: 0, B: 0, C: 0}
    for _ in range(40):
        progress = False
        for acc in (A, B, C):
            before = {x: remaining(db, x) for x in (A, B, C)}
            avail_c = db.psql(f"SELECT next_send_after IS NULL OR next_send_after <= '{NOW}' FROM accounts "
                              f"WHERE id = {C}")[0][0] == "t"
            rows = claim(db, acc)
            sent(db, rows)
            if rows:
                progress = True
                got[acc] += len(rows)
                others = [before[x] for x in (A, B, C) if x != acc and (x != C or avail_c)]
                if others and before[acc] < max(others):
                    trace_ok = False
        if not progress:
            break
    check.ok(trace_ok, "each new enrollment went to an available account with the most room today")
    check.eq(got, {A: 5, B: 1, C: 1}, "caps exact: a 5 (daily_limit), b 1 (warm-up day 0), c 1 (then spaced 90 s)")
    check.eq(db.psql(f"SELECT sent FROM account_days WHERE account_id = {A}")[0][0], "5", "a's day counts 5")
    check.eq(claim(db, A), [], "a at its cap claims nothing more today")
    later = "2026-03-02 10:01:31+00"
    check.eq(len(claim(db, C, later)), 1, "c sends again once min_interval has passed")
    check.eq(claim(db, C, later), [], "...and then waits again")

    # The per-domain cap: at most 3 an hour to d1.example across the pool.
    d1 = db.psql("SELECT count(*) FROM messages WHERE recipient LIKE '%@d1.example'")[0][0]
    check.ok(int(d1) <= 3, f"at most 3 messages an hour to one domain (got {d1})")

    # Follow-ups stick to the first step's account.
    for mid, in db.psql("SELECT message_id FROM messages WHERE state = 'sending'"):
        db.psql(f"SELECT relance_step_done('{mid}', '{NOW}', 'sent', '250 ok', 'Hi', NULL, NULL)")
    a_enr = set(x[0] for x in db.psql(f"SELECT id FROM enrollments WHERE account_id = {A}"))
    # a is at its cap today in Paris; tomorrow (Paris) it sends its follow-ups first
    tomorrow = "2026-03-03 09:00:00+00"
    rows = claim(db, A, tomorrow, 100)
    follow = [r for r in rows if r[1] in a_enr]
    check.eq(len(follow), 5, "next day: a's five follow-ups come from a, first")
    check.eq(db.psql("SELECT count(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                     "WHERE m.position = 1 AND m.account_id <> e.account_id")[0][0], "0",
             "no follow-up from another account than the first step's")

    # Warm-up: b sent on day 0, so day 1 allows 2; a paused day does not advance it.
    check.eq(remaining(db, B, tomorrow), 2, "b's warm-up: 2 on its second sending day")
    check.eq(remaining(db, B, "2026-03-05 09:00:00+00"), 2, "days without sends do not advance the warm-up")


def test_an_account_with_a_message_in_flight_does_not_hold_its_pools_new_enrollments(db, enrolled, check):
    ids = enrolled
    A, B, C = ids["a@acme.example"], ids["b@acme.example"], ids["c@acme.example"]
    db.psql("SELECT relance_account_leases('r1', 30)")
    db.psql(f"UPDATE accounts SET state = 'paused', state_reason = 'test' WHERE id = {C}")
    first = claim(db, A)
    check.eq(len(first), 1, "a (the most room: 5 against b's 1) takes the first new enrollment")
    # a's message is still in flight: b is the most available account now
    check.eq(len(claim(db, B)), 1, "b takes a new enrollment while a's message is in flight")
    sent(db, first)
    check.eq(claim(db, B), [], "b at its cap (warm-up day 0) takes no more")
    second = claim(db, A)
    check.eq(len(second), 1, "a, back from sending, takes the next")
    sent(db, second)
    # one cycle for both, as relance serve claims: a's share up to its cap
    both = db.psql(f"SELECT account_id, count(*) FROM relance_claim_accounts('{NOW}', ARRAY[{A}, {B}]::bigint[], "
                   "10, 'r1', false) GROUP BY 1")
    check.eq(both, [[str(A), "3"]], "one cycle: a claims up to its cap (3 of its 5 left), b nothing")


def test_a_paused_account_claims_nothing_until_resumed(db, enrolled, env):
    C = enrolled["c@acme.example"]
    db.psql("SELECT relance_account_leases('r1', 30)")
    db.psql(f"UPDATE accounts SET state = 'paused', state_reason = 'test' WHERE id = {C}")
    assert claim(db, C, "2026-03-03 12:00:00+00") == [], "a paused account claims nothing"
    r = relance("accounts", "resume", "c@acme.example", env=env)
    assert r.returncode == 0 and "resumed c@acme.example" in r.stdout, f"accounts resume: {r.stdout + r.stderr}"
    r = relance("accounts", "resume", "c@acme.example", env=env)
    assert r.returncode == 1, "resuming an active account is an error"


def test_an_account_removed_from_the_configuration_is_kept_unconfigured(env):
    with open(env["RELANCE_CONFIG"], "w") as f:
        f.write("pools:\n  founders:\n    accounts:\n      - {email: a@acme.example}\n")
    r = relance("accounts", "sync", env=env)
    assert "synced 1 account" in r.stdout, f"sync after removing accounts: {r.stdout}"
    r = relance("accounts", "list", env=env)
    assert "b@acme.example\tpool founders\tnot configured" in r.stdout, \
        f"gone from the configuration: listed as such: {r.stdout}"


def test_accounts_pause_holds_an_account_as_an_automatic_pause_does(db, env):
    at = {**env, "RELANCE_TEST_CLOCK": "2026-03-02T10:00:00Z"}
    r = relance("accounts", "pause", "B@acme.example", "--reason", "warming DNS", env=at)
    assert (r.returncode, r.stdout) == (0, "paused B@acme.example\n"), f"accounts pause: {r.stdout + r.stderr}"
    r = relance("accounts", "list", env=at)
    assert "b@acme.example\tpool founders\tpaused: warming DNS\ttoday 0/1" in r.stdout, f"list: {r.stdout}"
    assert db.psql("SELECT state_changed_at = '2026-03-02T10:00:00Z', "
                   "(SELECT count(*) FROM events WHERE kind = 'account.paused' AND data->>'reason' = 'warming DNS') "
                   "FROM accounts WHERE email = 'b@acme.example'") == [["t", "1"]], "the time and the event"
    r = relance("accounts", "pause", "b@acme.example", env=env)
    assert r.returncode == 1 and "already paused" in r.stderr, f"pausing a paused account: {r.stderr}"
    r = relance("accounts", "pause", "nobody@acme.example", env=env)
    assert r.returncode == 1 and "no such account 'nobody@acme.example'" in r.stderr, f"unknown: {r.stderr}"
    r = relance("accounts", "resume", "b@acme.example", env=env)
    assert r.returncode == 0, f"accounts resume undoes it: {r.stdout + r.stderr}"
    r = relance("accounts", "pause", "b@acme.example", env=env)
    assert r.returncode == 0 and "\tpaused: paused by user\t" in relance("accounts", "list", env=env).stdout, \
        "the default reason"


def test_a_deferral_gives_its_count_back_to_the_day_of_its_claim(db, enrolled, check):
    """A message deferred before MAIL FROM gives its cap count back: to
    the day its claim counted it, which for a message taken again after
    an earlier deferral is the later claim's day, not its first one's."""
    A = enrolled["a@acme.example"]
    db.psql("SELECT relance_account_leases('r1', 30)")
    # a alone: new enrollments go to the account with the most room
    db.psql(f"UPDATE accounts SET state = 'paused', state_reason = 'test' WHERE id <> {A}")
    days = lambda: dict(db.psql(f"SELECT day::text, sent FROM account_days WHERE account_id = {A}"))  # noqa: E731
    mon, tue = "2026-03-02 10:00:00+00", "2026-03-03 10:00:00+00"
    (mid, _), = claim(db, A, mon)
    check.eq(days(), {"2026-03-02": "1"}, "Monday's claim counts on Monday")
    # refused after MAIL FROM (counted, stays), due again on Tuesday
    db.psql(f"SELECT relance_step_deferred('{mid}', '{mon}', '{tue}', '451 try later', true)")
    again = claim(db, A, tue)
    check.eq([r[0] for r in again], [mid], "Tuesday's claim takes the deferred message again, same Message-ID")
    check.eq(days(), {"2026-03-02": "1", "2026-03-03": "1"}, "Tuesday's claim counts on Tuesday")
    # refused before MAIL FROM this time: not counted, given back to Tuesday
    db.psql(f"SELECT relance_step_deferred('{mid}', '{tue}', '{tue}', '421 closing', false)")
    check.eq(days(), {"2026-03-02": "1", "2026-03-03": "0"},
             "the count goes back to Tuesday, the day this claim counted, and Monday's stays")
