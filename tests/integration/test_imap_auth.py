"""imap_auth apart from auth (issue 15), against Postfix + Dovecot and
PostgreSQL on 127.0.0.1: an account that sends through an IP-allow-listed
relay (`auth: none`, here Postfix's MX-style port, which offers no AUTH at
all) still has its mailbox watched with `imap_auth: login` (the password
from password_env):

- `relance config` shows both sides' login;
- step 1 goes out without AUTH; Dovecot sees a password (PLAIN) login;
- a reply in the sender's INBOX makes the enrollment 'replied' and the
  follow-up is never sent;
- `imap_auth: none` with an imap URL is refused at config time with the
  file:line:column of the key.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance, wait_until, parsed  # noqa: E402

t = harness.Check("imap_auth")
ALICE = "alice@acme.example"
ms = mailservers.MailServers(users=[(ALICE, "pw-alice-1")])
pg = harness.Postgres()
tmp = harness.short_tempdir("ria")
cfg = os.path.join(tmp, "relance.yaml")
ACCOUNT = f"""tls_ca_file: {ms.ca_file}
pools:
  founders:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.smtp_port}/relance.test
        auth: none
        imap: imap://127.0.0.1:{ms.imap_port}
        imap_auth: {{imap_auth}}
        password_env: PW_ALICE
        watch_interval: 1s
"""
with open(cfg, "w") as f:
    f.write(ACCOUNT.replace("{imap_auth}", "login"))
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1"}

r = relance("config", env=env)
t.ok(r.returncode == 0 and f"{ALICE} (smtp auth: none, imap auth: password)" in r.stdout,
     "relance config shows both logins", r.stdout + r.stderr)
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write(f"""name: two-touch
sender_pool: founders
stop_on: [reply, bounce, unsubscribe]
{mailservers.ALL_WEEK}
steps:
  - id: intro
    subject: "An idea for {{{{company}}}}"
    body: "Hello {{{{first_name | there}}}}, an idea."
  - id: bump
    wait: 1h
    body: "Bumping this."
""")
r = relance("apply", seq, env=env)
t.eq(r.returncode, 0, "apply")
START = "2026-03-02T09:00:00Z"
SPEED = 600  # the follow-up is due 6 s after step 1
clock = {"RELANCE_TEST_CLOCK": f"{START}*{SPEED}"}
P1 = "p1@prospects.example"
pg.psql(f"INSERT INTO contacts (email, first_name, company) VALUES ('{P1}', 'Zoé', 'Acme')")
r = relance("enroll", "--sequence", "two-touch", "--contact", P1, env={**env, "RELANCE_TEST_CLOCK": START})
t.ok("enrolled 1" in r.stdout, "enroll", r.stdout + r.stderr)


def state():
    rows = pg.psql(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                   f"WHERE c.email = '{P1}'")
    return rows[0][0] if rows else None


s = harness.Serve({**env, **clock})
s.wait_status("/readyz", 200)
msgs = ms.wait_for(P1, 1, timeout=20)
t.eq(len(msgs), 1, "step 1 went out through the relay without AUTH")
m = parsed(msgs[0]) if msgs else None
sent_at = time.time()
if m:
    ms.deliver(ALICE, (f"From: Zoé <{P1}>\r\nTo: {ALICE}\r\nSubject: Re: {m['Subject']}\r\n"
                       f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <r1@prospects.example>\r\n"
                       f"In-Reply-To: {m['Message-ID']}\r\nReferences: {m['Message-ID']}\r\n\r\n"
                       f"Yes, let's talk.\r\n"))
t.ok(wait_until(lambda: state() == "replied", 15), "the reply, read over IMAP with the password, stops the "
     "enrollment", f"{state()}\n" + s.output()[-3000:])
t.ok("PLAIN" in ms.imap_login_methods(ALICE), "the mailbox login was a password one",
     str(ms.imap_login_methods(ALICE)))
time.sleep(max(0.0, sent_at + 8 - time.time()))  # past the follow-up's due time
t.eq(len(ms.messages(P1)), 1, "the follow-up was never sent")
t.ok("IMAP needs a login" not in s.output(), "the watcher did not refuse the account", s.output()[-2000:])
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("AddressSanitizer" not in out and "runtime error" not in out and "handles left open" not in out,
     "no sanitizer report, no handle left open", out[-3000:])
t.ok("pw-alice" not in out, "no password in the logs")

# imap_auth: none cannot watch a mailbox: said at config time, at the key
with open(cfg, "w") as f:
    f.write(ACCOUNT.replace("{imap_auth}", "none"))
r = relance("config", env=env)
line = ACCOUNT.splitlines().index("        imap_auth: {imap_auth}") + 1
t.ok(r.returncode == 1 and f"{cfg}:{line}:20: account {ALICE}: 'imap_auth: none' with an 'imap' URL" in r.stderr
     and "always needs a login" in r.stderr, "imap_auth: none with an imap URL is a config error at its position",
     r.stdout + r.stderr)
t.done()
