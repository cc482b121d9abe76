"""Every SMTP outcome does what DESIGN semantic 6 says, against Postfix
answering chosen replies at RCPT: a 550 5.1.1 recipient is suppressed
after exactly one attempt; a 450 is retried with growing backoff and never
suppressed; 5.7.1 blocks pause the account after max_policy_blocks and
never suppress the address; a wrong password pauses only that account;
`relance accounts resume` brings it back."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("outcomes")
ms = mailservers.MailServers(
    users=[("good@acme.example", "pw-good"), ("blocked@acme.example", "pw-blk"), ("badpw@acme.example", "right")],
    reject_domains={"gone.example": "550 5.1.1 User unknown", "slow.example": "450 4.2.1 Try again later",
                    "strict.example": "554 5.7.1 Rejected for policy reasons"})
pg = harness.Postgres()
tmp = harness.short_tempdir("rout")
cfg = os.path.join(tmp, "relance.yaml")


def account(addr, env_var, extra=""):
    return (f"      - email: {addr}\n        smtp: smtp://127.0.0.1:{ms.submission_port}\n"
            f"        password_env: {env_var}\n        tls_ca_file: {ms.ca_file}\n{extra}")


with open(cfg, "w") as f:
    f.write("pools:\n  main:\n    accounts:\n" + account("good@acme.example", "PW_GOOD")
            + "  strict:\n    accounts:\n" + account("blocked@acme.example", "PW_BLK", "        max_policy_blocks: 2\n")
            + "  wrong:\n    accounts:\n" + account("badpw@acme.example", "PW_BAD"))
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW_GOOD": "pw-good", "PW_BLK": "pw-blk",
       "PW_BAD": "not-the-password"}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
for name, pool in (("main-seq", "main"), ("strict-seq", "strict"), ("wrong-seq", "wrong")):
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""name: {name}
sender_pool: {pool}
schedule: {{timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}}
steps:
  - {{id: one, subject: "Hello", body: "Hi."}}
  - {{id: two, wait: 1 day, body: "Again."}}
""")
    t.eq(relance("apply", path, env=env).returncode, 0, f"apply {name}")
pg.psql("INSERT INTO contacts (email) VALUES ('x@gone.example'), ('y@slow.example'), ('ok@fine.example'), "
        "('a@strict.example'), ('b@strict.example'), ('c@strict.example'), ('w@fine.example'), "
        "('z@fine.example')")
START = "2026-03-02T09:00:00Z"
clock = {"RELANCE_TEST_CLOCK": START}
for seq, who in (("main-seq", ["x@gone.example", "y@slow.example", "ok@fine.example"]),
                 ("strict-seq", ["a@strict.example", "b@strict.example", "c@strict.example"]),
                 ("wrong-seq", ["w@fine.example"])):
    args = ["enroll", "--sequence", seq]
    for w in who:
        args += ["--contact", w]
    r = relance(*args, env={**env, **clock})
    t.ok(f"enrolled {len(who)}" in r.stdout, f"enroll into {seq}", r.stdout + r.stderr)

# 60x: a fake hour passes in a minute; 10-minute backoffs pass in 10 s
s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
s.wait_status("/readyz", 200)


def q(sql):
    return pg.psql(sql)


deadline = time.time() + 90
while time.time() < deadline:
    slow_attempts = int(q("SELECT coalesce(max(attempts), 0) FROM messages WHERE recipient = 'y@slow.example'")[0][0])
    paused = q("SELECT count(*) FROM accounts WHERE state = 'paused'")[0][0]
    if slow_attempts >= 3 and paused == "2":
        break
    time.sleep(1)

t.eq(q("SELECT state, attempts, outcome FROM messages WHERE recipient = 'x@gone.example'"),
     [["bounced", "1", "rejected_hard"]], "550 5.1.1: bounced after exactly one attempt")
t.eq(q("SELECT state, state_reason LIKE 'hard bounce: 550 5.1.1%' FROM enrollments e JOIN contacts c "
       "ON c.id = e.contact_id WHERE c.email = 'x@gone.example'"), [["bounced", "t"]], "the enrollment is bounced")
t.eq(q("SELECT count(*) FROM suppressions WHERE pattern = 'x@gone.example'")[0][0], "1", "the address is suppressed")
r = relance("enroll", "--sequence", "main-seq", "--contact", "x@gone.example", "--allow-parallel", env=env)
t.ok("skipped x@gone.example: suppressed" in r.stdout, "a suppressed address is never enrolled again", r.stdout)

rows = q("SELECT state, attempts::int >= 3, outcome FROM messages WHERE recipient = 'y@slow.example'")
t.eq(rows, [["deferred", "t", "deferred"]], "450: deferred and retried (3 attempts or more)")
t.eq(q("SELECT count(*) FROM suppressions WHERE pattern = 'y@slow.example'")[0][0], "0", "450 never suppresses")
t.eq(q("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE c.email = 'y@slow.example'"),
     [["active"]], "the 450 enrollment stays active")
gaps = [int(x[0]) for x in q("SELECT extract(epoch FROM next_send_at - (SELECT max(occurred_at) FROM events v "
                             "WHERE v.kind = 'message.deferred' AND v.data->>'enrollment_id' = e.id::text))::int "
                             "FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                             "WHERE c.email = 'y@slow.example'")]
t.ok(gaps and gaps[0] >= 1200, f"backoff grows: the next try waits {gaps} s after the last deferral (>= 20 min)")
t.eq(q("SELECT state FROM messages WHERE recipient = 'ok@fine.example'"), [["sent"]], "a good address is sent")

t.eq(q("SELECT state, state_reason LIKE '2 policy blocks within 24 h%' FROM accounts "
       "WHERE email = 'blocked@acme.example'"), [["paused", "t"]], "5.7.1 twice: the account pauses with the reason")
t.eq(q("SELECT count(*) FROM suppressions WHERE pattern LIKE '%strict.example'")[0][0], "0",
     "a block never suppresses the address")
# Messages already claimed in the same batch may still go; nothing is
# retried or claimed after the pause, though backoffs have long passed.
t.eq(q("SELECT sum(m.attempts) = count(*) FROM messages m JOIN accounts a ON a.id = m.account_id "
       "WHERE a.email = 'blocked@acme.example'")[0][0], "t", "nothing retried from the paused account")
t.eq(q("SELECT count(*) FROM events WHERE kind = 'account.paused'")[0][0], "2", "each pause writes an event")

t.eq(q("SELECT state, state_reason LIKE 'authentication failed: 535%' FROM accounts "
       "WHERE email = 'badpw@acme.example'"), [["paused", "t"]], "a wrong password pauses that account")
t.eq(q("SELECT state FROM accounts WHERE email = 'good@acme.example'"), [["active"]], "the other accounts go on")
t.eq(q("SELECT attempts FROM messages WHERE recipient = 'w@fine.example'"), [["1"]], "tried once, then held")
r = relance("accounts", "list", env=env)
t.ok("badpw@acme.example\tpool wrong\tpaused: authentication failed" in r.stdout, "accounts list shows why",
     r.stdout)
r = relance("enrollments", "show", "w@fine.example", env=env)
t.ok("account paused: authentication failed" in r.stdout, "enrollments show: account paused", r.stdout)
r = relance("messages", "list", "--state", "bounced", env=env)
lines = r.stdout.splitlines()
t.ok(r.returncode == 0 and len(lines) == 1 and "\tbounced\tx@gone.example\tmain-seq\tone\t" in lines[0]
     and "550" in lines[0], "messages list --state bounced: one line with the address and the reply", r.stdout)
r = relance("messages", "list", "--state", "nonsense", env=env)
t.eq(r.returncode, 1, "an unknown state is an error")
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("not-the-password" not in out and "pw-good" not in out, "no password in the logs")
t.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
t.done()
