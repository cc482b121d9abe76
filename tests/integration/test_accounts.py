"""Sender accounts against a real PostgreSQL: sync from the configuration,
accounts list, and the account claim's rules — daily caps counted in the
account's day, the warm-up ramp (paused days do not advance it), spacing,
rotation of new enrollments to the account with the most room, sticky
follow-ups, the per-domain hourly cap, and leases that keep an account on
one replica."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("accounts")
pg = harness.Postgres()
tmp = harness.short_tempdir("racc")
cfg = os.path.join(tmp, "relance.yaml")
with open(cfg, "w") as f:
    f.write("""pools:
  founders:
    domain_hourly_limit: 3
    accounts:
      - {email: a@acme.example, daily_limit: 5, timezone: Europe/Paris}
      - {email: b@acme.example, daily_limit: 3, warmup: {start: 1, increase_per_day: 1}}
      - {email: c@acme.example, daily_limit: 10, min_interval: 90s}
  other:
    accounts:
      - {email: x@other.example}
""")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
r = relance("accounts", "sync", env=env)
t.ok(r.returncode == 0 and "synced 4 accounts" in r.stdout, "accounts sync", r.stdout + r.stderr)
r = relance("accounts", "list", env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T10:00:00Z"})
t.ok("a@acme.example\tpool founders\tactive\ttoday 0/5" in r.stdout and "b@acme.example\tpool founders\tactive\t"
     "today 0/1" in r.stdout and "x@other.example\tpool other\tactive\ttoday 0/no limit" in r.stdout,
     "accounts list: state, usage and limit (b warms up from 1)", r.stdout + r.stderr)

seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write("""name: s
sender_pool: founders
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - {id: one, subject: "Hi", body: "Hello."}
  - {id: two, wait: 1h, body: "Again."}
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
doms = ["d1.example"] * 4 + [f"e{i}.example" for i in range(26)]
pg.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('p{i}@{d}')" for i, d in enumerate(doms)))
NOW = "2026-03-02 10:00:00+00"  # a Monday
r = relance("enroll", "--sequence", "s", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T09:00:00Z"})
t.ok("enrolled 30" in r.stdout, "enroll 30", r.stdout + r.stderr)
ids = {row[0]: row[1] for row in pg.psql("SELECT email, id FROM accounts")}
A, B, C = ids["a@acme.example"], ids["b@acme.example"], ids["c@acme.example"]
held = sorted(int(x[0]) for x in pg.psql("SELECT relance_account_leases('r1', 30)"))
t.eq(held, sorted(int(v) for v in ids.values()), "replica r1 takes every free account lease")
t.eq(pg.psql("SELECT count(*) FROM relance_account_leases('r2', 30)")[0][0], "0", "r2 gets none while r1 lives")
t.eq(pg.psql(f"SELECT count(*) FROM relance_claim_account('{NOW}', {A}, 100, 'r2')")[0][0], "0",
     "a replica without the lease claims nothing")


def remaining(acc, now=NOW):
    v = pg.psql(f"SELECT relance_account_remaining({acc}, relance_local_day('{now}', timezone)) FROM accounts "
                f"WHERE id = {acc}")[0][0]
    return int(v) if v else 10**9


def claim(acc, now=NOW, limit=1):
    return pg.psql(f"SELECT message_id, enrollment_id FROM relance_claim_account('{now}', {acc}, {limit}, 'r1')")


# Round robin, one at a time: every new enrollment must go to an account
# with the most room among those available (c is spaced after each send).
trace_ok = True
got = {A: 0, B: 0, C: 0}
for _ in range(40):
    progress = False
    for acc in (A, B, C):
        before = {x: remaining(x) for x in (A, B, C)}
        avail_c = pg.psql(f"SELECT next_send_after IS NULL OR next_send_after <= '{NOW}' FROM accounts "
                          f"WHERE id = {C}")[0][0] == "t"
        rows = claim(acc)
        if rows:
            progress = True
            got[acc] += len(rows)
            others = [before[x] for x in (A, B, C) if x != acc and (x != C or avail_c)]
            if others and before[acc] < max(others):
                trace_ok = False
    if not progress:
        break
t.ok(trace_ok, "each new enrollment went to an available account with the most room today")
t.eq(got, {A: 5, B: 1, C: 1}, "caps exact: a 5 (daily_limit), b 1 (warm-up day 0), c 1 (then spaced 90 s)")
t.eq(pg.psql(f"SELECT sent FROM account_days WHERE account_id = {A}")[0][0], "5", "a's day counts 5")
t.eq(claim(A), [], "a at its cap claims nothing more today")
later = "2026-03-02 10:01:31+00"
t.eq(len(claim(C, later)), 1, "c sends again once min_interval has passed")
t.eq(claim(C, later), [], "...and then waits again")

# The per-domain cap: at most 3 an hour to d1.example across the pool.
d1 = pg.psql("SELECT count(*) FROM messages WHERE recipient LIKE '%@d1.example'")[0][0]
t.ok(int(d1) <= 3, f"at most 3 messages an hour to one domain (got {d1})")

# Follow-ups stick to the first step's account.
for mid, in pg.psql("SELECT message_id FROM messages WHERE state = 'sending'"):
    pg.psql(f"SELECT relance_step_done('{mid}', '{NOW}', 'sent', '250 ok', 'Hi', NULL, NULL)")
next_hour = "2026-03-02 11:30:00+00"
a_enr = set(x[0] for x in pg.psql(f"SELECT id FROM enrollments WHERE account_id = {A}"))
# a is at its cap today in Paris; tomorrow (Paris) it sends its follow-ups first
tomorrow = "2026-03-03 09:00:00+00"
rows = claim(A, tomorrow, 100)
follow = [r for r in rows if r[1] in a_enr]
t.eq(len(follow), 5, "next day: a's five follow-ups come from a, first")
t.eq(pg.psql("SELECT count(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
             "WHERE m.position = 1 AND m.account_id <> e.account_id")[0][0], "0",
     "no follow-up from another account than the first step's")

# Warm-up: b sent on day 0, so day 1 allows 2; a paused day does not advance it.
t.eq(remaining(B, tomorrow), 2, "b's warm-up: 2 on its second sending day")
t.eq(remaining(B, "2026-03-05 09:00:00+00"), 2, "days without sends do not advance the warm-up")

# a paused account claims nothing
pg.psql(f"UPDATE accounts SET state = 'paused', state_reason = 'test' WHERE id = {C}")
t.eq(claim(C, "2026-03-03 12:00:00+00"), [], "a paused account claims nothing")
r = relance("accounts", "resume", "c@acme.example", env=env)
t.ok(r.returncode == 0 and "resumed c@acme.example" in r.stdout, "accounts resume", r.stdout + r.stderr)
r = relance("accounts", "resume", "c@acme.example", env=env)
t.eq(r.returncode, 1, "resuming an active account is an error")

# removing an account from the configuration keeps it, unconfigured
with open(cfg, "w") as f:
    f.write("pools:\n  founders:\n    accounts:\n      - {email: a@acme.example}\n")
r = relance("accounts", "sync", env=env)
t.ok("synced 1 account" in r.stdout, "sync after removing accounts", r.stdout)
r = relance("accounts", "list", env=env)
t.ok("b@acme.example\tpool founders\tnot configured" in r.stdout, "gone from the configuration: listed as such",
     r.stdout)
t.done()
