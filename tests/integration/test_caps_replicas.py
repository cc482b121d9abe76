"""Caps hold exactly end to end with two `relance serve` replicas sending
through one SMTP server: an account with daily_limit 5 sends exactly 5
messages on its day however many are due, the other replica never sends
from it (leases), enrollments show says 'account capacity' for the rest,
and a paused account holds its enrollments ('account paused') without
re-routing them to another account."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("caps_replicas")
ms = mailservers.MailServers(users=[("capped@acme.example", "pw1"), ("spare@acme.example", "pw2")])
pg = harness.Postgres()
tmp = harness.short_tempdir("rcap")
cfg = os.path.join(tmp, "relance.yaml")
with open(cfg, "w") as f:
    f.write(f"""pools:
  capped:
    accounts:
      - email: capped@acme.example
        smtp: smtp://127.0.0.1:{ms.submission_port}
        password_env: PW1
        tls_ca_file: {ms.ca_file}
        daily_limit: 5
        timezone: America/New_York
  spare:
    accounts:
      - email: spare@acme.example
        smtp: smtp://127.0.0.1:{ms.submission_port}
        password_env: PW2
        tls_ca_file: {ms.ca_file}
""")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW1": "pw1", "PW2": "pw2"}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write("""name: capped
sender_pool: capped
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - {id: one, subject: "Hello", body: "Hi."}
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
N = 12
pg.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('q{i}@prospects.example')" for i in range(N)))
# 2026-03-02 16:00 UTC is 11:00 in New York: the account's day lasts 13 more hours
START = "2026-03-02T16:00:00Z"
r = relance("enroll", "--sequence", "capped", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(f"enrolled {N}" in r.stdout, "enroll", r.stdout + r.stderr)

replicas = [harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*10"}) for _ in range(2)]
for s in replicas:
    s.wait_status("/readyz", 200)
deadline = time.time() + 60
while time.time() < deadline and int(pg.psql("SELECT count(*) FROM messages WHERE state = 'sent'")[0][0]) < 5:
    time.sleep(0.5)
time.sleep(8)  # 80 more seconds of relance's clock: nothing more may go out today
delivered = sum(len(ms.messages(f"q{i}@prospects.example")) for i in range(N))
t.eq(delivered, 5, "exactly daily_limit messages arrived with two replicas running")
t.eq(pg.psql("SELECT sent FROM account_days")[0][0], "5", "the account's day counts 5")
t.eq(pg.psql("SELECT count(DISTINCT claimed_by) FROM messages")[0][0], "1", "one replica sent from the account")
t.eq(pg.psql("SELECT count(*) FROM enrollments WHERE account_id = (SELECT id FROM accounts "
             "WHERE email = 'spare@acme.example')")[0][0], "0", "nothing re-routed to another pool's account")
waiting = pg.psql("SELECT c.email FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                  "WHERE e.position = 0 ORDER BY c.id LIMIT 1")[0][0]
r = relance("enrollments", "show", waiting, env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T17:00:00Z"})
t.ok("why not sooner: account capacity" in r.stdout, "a waiting enrollment says 'account capacity'", r.stdout)
r = relance("accounts", "list", env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T17:00:00Z"})
t.ok("capped@acme.example\tpool capped\tactive\ttoday 5/5" in r.stdout, "accounts list shows 5/5", r.stdout)

# a paused account holds its enrollments
sent_one = pg.psql("SELECT c.email FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                   "JOIN contacts c ON c.id = e.contact_id LIMIT 1")[0][0]
pg.psql("UPDATE accounts SET state = 'paused', state_reason = 'paused for the test' "
        "WHERE email = 'capped@acme.example'")
pg.psql("UPDATE enrollments SET next_send_at = '2026-03-02T16:00:00Z', position = 0, state = 'active' "
        "WHERE id = (SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
        f"WHERE c.email = '{sent_one}')")
r = relance("enrollments", "show", sent_one, env={**env, "RELANCE_TEST_CLOCK": "2026-03-02T17:00:00Z"})
t.ok("why not sooner: account paused: paused for the test" in r.stdout, "'account paused' is the reason", r.stdout)
for s in replicas:
    t.eq(s.stop(), 0, "replica stops cleanly")
    t.ok("runtime error" not in s.output() and "AddressSanitizer" not in s.output(), "sanitizers quiet")
t.done()
