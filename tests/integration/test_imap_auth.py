"""imap_auth apart from auth, against Postfix + Dovecot and
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
import time

import pytest

import harness
from harness import parsed, relance, wait_until

ALICE = "alice@acme.example"
P1 = "p1@prospects.example"
START = "2026-03-02T09:00:00Z"
SPEED = 600  # the follow-up is due 6 s after step 1
pytestmark = pytest.mark.mail(users=[(ALICE, "pw-alice-1")])
ACCOUNT = """tls_ca_file: {ca}
pools:
  founders:
    accounts:
      - email: %s
        smtp: smtp://127.0.0.1:{smtp}/relance.test
        auth: none
        imap: imap://127.0.0.1:{imap}
        imap_auth: {imap_auth}
        password_env: PW_ALICE
        watch_interval: 1s
""" % ALICE


def config(ms, tmp, imap_auth):
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(ACCOUNT.format(ca=ms.ca_file, smtp=ms.smtp_port, imap=ms.imap_port, imap_auth=imap_auth))
    return cfg


def test_config_shows_both_logins(mail, tmp):
    env = {"RELANCE_CONFIG": config(mail, tmp, "login"), "PW_ALICE": "pw-alice-1"}
    r = relance("config", env=env)
    assert r.returncode == 0 and f"{ALICE} (smtp auth: none, imap auth: password)" in r.stdout, \
        f"relance config shows both logins: {r.stdout + r.stderr}"


def test_a_reply_read_with_the_password_stops_a_sequence_sent_without_auth(mail, db, tmp, serve, check):
    ms = mail
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": config(ms, tmp, "login"), "PW_ALICE": "pw-alice-1"}
    seq = harness.sequence(tmp, "custom_steps", name="two-touch", pool="founders",
                           extra="stop_on: [reply, bounce, unsubscribe]", steps="""  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 1h
    body: "Bumping this."
""")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    db.psql(f"INSERT INTO contacts (email, first_name, company) VALUES ('{P1}', 'Zoé', 'Acme')")
    r = relance("enroll", "--sequence", "two-touch", "--contact", P1, env={**env, "RELANCE_TEST_CLOCK": START})
    assert "enrolled 1" in r.stdout, f"enroll: {r.stdout + r.stderr}"

    def state():
        rows = db.psql(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                       f"WHERE c.email = '{P1}'")
        return rows[0][0] if rows else None

    s = serve({**env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
    s.wait_status("/readyz", 200)
    msgs = ms.wait_for(P1, 1, timeout=20)
    check.eq(len(msgs), 1, "step 1 went out through the relay without AUTH")
    m = parsed(msgs[0]) if msgs else None
    sent_at = time.time()
    if m:
        ms.deliver(ALICE, (f"From: Zoé <{P1}>\r\nTo: {ALICE}\r\nSubject: Re: {m['Subject']}\r\n"
                           f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <r1@prospects.example>\r\n"
                           f"In-Reply-To: {m['Message-ID']}\r\nReferences: {m['Message-ID']}\r\n\r\n"
                           f"Yes, let's talk.\r\n"))
    check.ok(wait_until(lambda: state() == "replied", 15), "the reply, read over IMAP with the password, stops the "
             "enrollment", f"{state()}\n" + s.output()[-3000:])
    check.ok("PLAIN" in ms.imap_login_methods(ALICE), "the mailbox login was a password one",
             str(ms.imap_login_methods(ALICE)))
    time.sleep(max(0.0, sent_at + 8 - time.time()))  # past the follow-up's due time
    check.eq(len(ms.messages(P1)), 1, "the follow-up was never sent")
    check.ok("IMAP needs a login" not in s.output(), "the watcher did not refuse the account", s.output()[-2000:])
    check.eq(s.stop(), 0, "serve stops cleanly")
    out = s.output()
    check.ok("AddressSanitizer" not in out and "runtime error" not in out and "handles left open" not in out,
             "no sanitizer report, no handle left open", out[-3000:])
    check.ok("pw-alice" not in out, "no password in the logs")


def test_imap_auth_none_with_an_imap_url_is_a_config_error_at_its_position(mail, tmp):
    # imap_auth: none cannot watch a mailbox: said at config time, at the key
    cfg = config(mail, tmp, "none")
    r = relance("config", env={"RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1"})
    line = ACCOUNT.splitlines().index("        imap_auth: {imap_auth}") + 1
    assert r.returncode == 1 and f"{cfg}:{line}:20: account {ALICE}: 'imap_auth: none' with an 'imap' URL" \
        in r.stderr and "always needs a login" in r.stderr, \
        f"imap_auth: none with an imap URL is a config error at its position: {r.stdout + r.stderr}"
