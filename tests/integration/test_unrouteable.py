"""A "no such user" refusal without a precise enhanced status code is
read from its words, the same words the bounce classifier knows
(service/mta_words.c): Exim's "550 Unrouteable address" makes the step
rejected_hard at once (bounced after one attempt, the address
suppressed, no retry), while OpenSMTPD's ambiguous "550 Invalid
recipient" (also its answer to a routing rule's refusal) is a soft
bounce on first sight, retried, and never suppresses on first sight.

Postfix always puts an enhanced status code in front of an access map's
reply (5.7.1 when the map gives none, and smtpd_discard_ehlo_keywords
does not take it away), so the map gives RFC 3463's uninformative 5.0.0
("other undefined status"), which relance reads as no status at all:
only the words decide, as with Exim's bare reply."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("unrouteable")
ms = mailservers.MailServers(
    users=[("sender@acme.example", "pw-s")],
    reject_domains={"exim.example": "550 5.0.0 Unrouteable address",
                    "opensmtpd.example": "550 5.0.0 Invalid recipient"})
pg = harness.Postgres()
tmp = harness.short_tempdir("runr")
cfg = os.path.join(tmp, "relance.yaml")
with open(cfg, "w") as f:
    f.write(f"pools:\n  main:\n    accounts:\n      - email: sender@acme.example\n"
            f"        smtp: smtp://127.0.0.1:{ms.submission_port}\n        password_env: PW_S\n"
            f"        tls_ca_file: {ms.ca_file}\n")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW_S": "pw-s"}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
seq = os.path.join(tmp, "seq.yaml")
with open(seq, "w") as f:
    f.write("""name: seq
sender_pool: main
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - {id: one, subject: "Hello", body: "Hi."}
  - {id: two, wait: 1 day, body: "Again."}
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
pg.psql("INSERT INTO contacts (email) VALUES ('u@exim.example'), ('v@opensmtpd.example')")
START = "2026-03-02T09:00:00Z"
r = relance("enroll", "--sequence", "seq", "--contact", "u@exim.example", "--contact", "v@opensmtpd.example",
            env={**env, "RELANCE_TEST_CLOCK": START})
t.ok("enrolled 2" in r.stdout, "enroll both", r.stdout + r.stderr)


def q(sql):
    return pg.psql(sql)


# 60x: the 10-minute backoff after a soft bounce passes in 10 s, so the
# first sight of the ambiguous refusal is read well before any retry.
s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
s.wait_status("/readyz", 200)
first_sight = None
deadline = time.time() + 20
while time.time() < deadline:
    exim = q("SELECT state FROM messages WHERE recipient = 'u@exim.example'")
    if first_sight is None:
        rows = q("SELECT attempts, soft_bounces, state, (SELECT count(*) FROM suppressions "
                 "WHERE pattern = 'v@opensmtpd.example') FROM messages WHERE recipient = 'v@opensmtpd.example' "
                 "AND attempts >= 1 AND state <> 'sending'")
        if rows:
            first_sight = rows[0]
    if first_sight is not None and exim and exim[0][0] not in ("queued", "sending"):
        break
    time.sleep(0.2)

t.eq(q("SELECT state, attempts, soft_bounces, outcome, reply LIKE '550%Unrouteable address%' FROM messages "
       "WHERE recipient = 'u@exim.example'"), [["bounced", "1", "0", "rejected_hard", "t"]],
     "550 Unrouteable address: rejected_hard after exactly one attempt")
t.eq(q("SELECT e.state, e.next_send_at IS NULL FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
       "WHERE c.email = 'u@exim.example'"), [["bounced", "t"]], "its enrollment is bounced, nothing more to send")
t.eq(q("SELECT count(*) FROM suppressions WHERE pattern = 'u@exim.example'")[0][0], "1",
     "the unrouteable address is suppressed")

t.eq(first_sight, ["1", "1", "deferred", "0"],
     "550 Invalid recipient on first sight: one soft bounce, deferred for a retry, not suppressed")
t.eq(q("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
       "WHERE c.email = 'v@opensmtpd.example'"), [["active"]], "the ambiguous enrollment stays active")
t.ok(int(q("SELECT count(*) FROM events WHERE kind = 'message.soft_bounce' "
           "AND data->>'reply' LIKE '%Invalid recipient%'")[0][0]) >= 1, "a soft bounce event is written")

t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("pw-s" not in out, "no password in the logs")
t.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
t.done()
