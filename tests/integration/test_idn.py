"""Internationalised addresses, against a real PostgreSQL,
Postfix and Dovecot.

- One mailbox, one contact: a CSV holding USER@BÜCHER.example,
  user@bücher.example and user@xn--bcher-kva.example makes one contact,
  stored as user@xn--bcher-kva.example (the earlier rows reported as
  duplicates of the last, by line), a bad IDN is refused by line while the
  good rows go in, and `contacts show`, `enroll --contact` and
  `suppress add` take any spelling. The step is delivered once to that
  mailbox (Postfix takes the A-label domain) and is never held.
- A UTF-8 local part (RFC 6531): imported as given; sent through a server
  that offers SMTPUTF8 (Postfix's submission port here), with MAIL FROM
  ... SMTPUTF8 and a raw UTF-8 To: (RFC 6532), and delivered; through a
  server that does not offer it (the smtps port, smtputf8_enable = no)
  the message is refused for good before RCPT TO — bounced with a reason
  that says so, not held, not retried."""
import os
import time

import pytest

import harness
import mailservers
from harness import relance


UTF8_DOMAIN = "utf8.example"
JOSE, JURGEN = f"jos\u00e9@{UTF8_DOMAIN}", "J\u00fcrgen@example.com"


class Utf8MailServers(mailservers.MailServers):
    """Postfix with SMTPUTF8 on (3.7's default, which tests/mailservers.py
    turns off), except on the smtps listener: one server of each kind. Mail
    for UTF8_DOMAIN is delivered by Postfix's own virtual(8) agent into the
    same Maildir tree, since Dovecot 2.3's LMTP does not offer SMTPUTF8 and
    Postfix rightly bounces a UTF-8 envelope it cannot pass on (5.6.7)."""

    def _postfix_main(self):
        return super()._postfix_main().replace("smtputf8_enable = no", "smtputf8_enable = yes") + f"""
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.pf}/vmailbox
virtual_uid_maps = static:{self._mail_uid}
virtual_gid_maps = static:{self._mail_gid}
virtual_minimum_uid = 1
"""

    def _postfix_master(self):
        return super()._postfix_master().replace("  -o syslog_name=postfix/smtps\n",
                                                 "  -o syslog_name=postfix/smtps\n  -o smtputf8_enable=no\n") + \
            "virtual unix - n n - - virtual\n"

    def _write_postfix_maps(self):
        super()._write_postfix_maps()
        with open(os.path.join(self.pf, "transport"), "a") as f:
            f.write(f"{UTF8_DOMAIN} virtual:\n")
        with open(os.path.join(self.pf, "vmailbox"), "w") as f:
            f.write(f"{JOSE} {UTF8_DOMAIN}/jos\u00e9/Maildir/\n")


UTF8_ACCOUNT, PLAIN_ACCOUNT = ("utf8@acme.example", "pw-u"), ("plain@acme.example", "pw-p")
START = "2026-03-02T09:00:00Z"
ROWS = ["email,first_name",
        "USER@B\u00dcCHER.example,Ulla",       # line 2
        "user@b\u00fccher.example,Ulla",       # line 3
        "user@xn--bcher-kva.example,Ulla",     # line 4: the last spelling wins
        "a@-bad-.example,Bad",                 # line 5
        "b@xn--zz.example,Bad",                # line 6
        f"{JOSE},Jos\u00e9",                   # line 7
        f"{JURGEN},J\u00fcrgen"]               # line 8


@pytest.fixture(scope="module")
def mail():
    ms = Utf8MailServers(users=[UTF8_ACCOUNT, PLAIN_ACCOUNT])
    yield ms
    ms.stop()


@pytest.fixture(scope="module")
def world(mail, module_db, module_tmp):
    """Pools utf8 (the SMTPUTF8 server) and plain (the one without), a
    sequence for each, and the CSV imported once: (env, csv, the import)."""
    ms, db, tmp = mail, module_db, module_tmp
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pools:
  utf8:
    accounts:
      - email: {UTF8_ACCOUNT[0]}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        password_env: PW_U
        tls_ca_file: {ms.ca_file}
  plain:
    accounts:
      - email: {PLAIN_ACCOUNT[0]}
        smtp: smtps://127.0.0.1:{ms.smtps_port}/relance.test
        password_env: PW_P
        tls_ca_file: {ms.ca_file}
""")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_U": UTF8_ACCOUNT[1], "PW_P": PLAIN_ACCOUNT[1]}
    for name, pool in (("idn", "utf8"), ("plain-server", "plain")):
        seq = harness.sequence(tmp, "custom_steps", name=name, pool=pool,
                               steps="  - id: intro\n    subject: \"Bonjour {{first_name}}\"\n    body: \"Une idée.\"\n")
        assert relance("apply", seq, env=env).returncode == 0, f"apply {name}"
    csv = os.path.join(tmp, "c.csv")
    with open(csv, "w", encoding="utf-8") as f:
        f.write("\n".join(ROWS) + "\n")
    return {"env": env, "db": db, "ms": ms, "csv": csv, "import": relance("contacts", "import", csv, env=env)}


def test_three_spellings_of_one_mailbox_make_one_contact(world, check):
    r, csv, env = world["import"], world["csv"], world["env"]
    check.eq(r.returncode, 0, "import exits 0 with rejected rows")
    check.ok("inserted 3, updated 0, rejected 4" in r.stdout, "3 contacts: the three spellings are one",
             r.stdout + r.stderr)
    err = r.stderr
    check.ok(f"{csv}:2: duplicate email USER@xn--bcher-kva.example: line 4 has the same address and wins" in err and
             f"{csv}:3: duplicate email user@xn--bcher-kva.example: line 4 has the same address and wins" in err,
             "USER@BÜCHER.example and user@bücher.example are reported as the same address as line 4", err)
    check.ok(f"{csv}:5: invalid email address 'a@-bad-.example': a domain label starts or ends with '-'" in err,
             "an invalid domain is refused with its line and reason", err)
    check.ok(f"{csv}:6: invalid email address 'b@xn--zz.example': not a valid internationalised domain name" in err,
             "an invalid A-label is refused with its line and reason", err)
    stored = world["db"].psql("SELECT email FROM contacts ORDER BY id")
    check.eq(sorted(x[0] for x in stored), sorted(["user@xn--bcher-kva.example", JOSE, JURGEN]),
             "stored as user@xn--bcher-kva.example; UTF-8 local parts as given")
    r = relance("contacts", "import", csv, env=env)
    check.ok("inserted 0, updated 3, rejected 4" in r.stdout, "a re-import matches the same contacts", r.stdout)
    r = relance("contacts", "show", "user@B\u00fccher.EXAMPLE", env=env)
    check.ok(r.returncode == 0 and "email: user@xn--bcher-kva.example" in r.stdout,
             "contacts show takes the U-label", r.stdout + r.stderr)


def test_suppressions_take_any_spelling_and_are_stored_as_a_labels(world):
    env = world["env"]
    r = relance("suppress", "add", "someone@B\u00dcCHER.example", "@M\u00fcnchen.example", env=env)
    assert r.returncode == 0, "suppress add takes IDNs"
    r = relance("suppress", "list", env=env)
    assert r.stdout.split() == ["@xn--mnchen-3ya.example", "someone@xn--bcher-kva.example"], \
        "suppressions are stored as A-labels"
    r = relance("suppress", "add", "x@-bad-.example", env=env)
    assert r.returncode == 1 and "a domain label starts or ends with '-'" in r.stderr, \
        f"suppress refuses a bad IDN: {r.stderr}"


@pytest.fixture(scope="module")
def sent(world):
    """The IDN contact and José enrolled on the SMTPUTF8 server, Jürgen on
    the other, served until Jürgen's enrollment ends."""
    env, ms, db = world["env"], world["ms"], world["db"]
    clock = {**env, "RELANCE_TEST_CLOCK": START}
    enrolled = [relance("enroll", "--sequence", "idn", "--contact", "User@B\u00dccher.example", "--contact", JOSE,
                        env=clock),
                relance("enroll", "--sequence", "plain-server", "--contact", JURGEN, env=clock)]
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*60"})
    try:
        s.wait_status("/readyz", 200)
        user_msgs = ms.wait_for("user@xn--bcher-kva.example", 1, timeout=20)
        jose_msgs = ms.wait_for(JOSE, 1, timeout=20)
        bounced = harness.wait_until(lambda: db.psql(
            "SELECT e.state, e.state_reason FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
            f"WHERE c.email = '{JURGEN}' AND e.state <> 'active'"), 20)
        time.sleep(1)  # anything sent twice would have arrived by now
        stopped = s.stop()
    finally:
        s.kill()
    return {**world, "enrolled": enrolled, "user_msgs": user_msgs, "jose_msgs": jose_msgs, "bounced": bounced,
            "stopped": stopped, "out": s.output()}


def test_enroll_takes_any_spelling_and_serve_stops_cleanly(sent, check):
    first, second = sent["enrolled"]
    check.ok("enrolled 2, skipped 0" in first.stdout, "enroll --contact takes the U-label", first.stdout + first.stderr)
    check.ok("enrolled 1, skipped 0" in second.stdout, "enroll the UTF-8 local part on the other server",
             second.stdout + second.stderr)
    check.eq(sent["stopped"], 0, "serve stops cleanly")
    out = sent["out"]
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "no sanitizer report", out[-2000:])


def test_the_idn_and_the_utf8_local_part_get_their_step_once(sent, check):
    ms, out, db = sent["ms"], sent["out"], sent["db"]
    n_user, n_jose = len(ms.messages("user@xn--bcher-kva.example")), len(ms.messages(JOSE))
    check.ok(n_user == 1, f"the IDN contact got its step, once ({n_user})", out[-3000:])
    check.ok(n_jose == 1, f"the UTF-8 local part got its step, once through the SMTPUTF8 server ({n_jose})",
             out[-3000:])
    if sent["user_msgs"]:
        msg = harness.parsed(sent["user_msgs"][0])
        check.eq(msg["To"], "user@xn--bcher-kva.example", "To: holds the A-label")
    if sent["jose_msgs"]:
        raw = sent["jose_msgs"][0]
        check.ok(f"\nTo: {JOSE}".encode() in raw.replace(b"\r\n", b"\n"), "To: holds the UTF-8 local part (RFC 6532)",
                 raw[:800].decode("utf-8", "replace"))
        # RFC 6531 3.7.3: Postfix names an SMTPUTF8 transaction in Received
        check.ok(b"with UTF8SMTPSA" in raw, "it came over SMTPUTF8 (MAIL FROM ... SMTPUTF8)",
                 raw[:800].decode("utf-8", "replace"))
    rows = db.psql("SELECT c.email, m.state, m.outcome, m.reply FROM messages m"
                   " JOIN enrollments e ON e.id = m.enrollment_id JOIN contacts c ON c.id = e.contact_id "
                   "ORDER BY c.email")
    by = {x[0]: x[1:] for x in rows}
    check.eq(len(rows), 3, "one message row per enrollment")
    check.eq(by.get("user@xn--bcher-kva.example", [None])[0], "sent", "the IDN message is recorded sent")
    check.eq(by.get(JOSE, [None])[0], "sent", "the UTF-8 local part's message is recorded sent")


def test_without_smtputf8_the_utf8_local_part_bounces_before_rcpt(sent, check):
    ms, db = sent["ms"], sent["db"]
    rows = db.psql("SELECT m.state, m.outcome, m.reply FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                   f"JOIN contacts c ON c.id = e.contact_id WHERE c.email = '{JURGEN}'")
    jm = rows[0] if rows else [None, None, ""]
    check.ok(jm[0] == "bounced" and jm[1] == "rejected_hard" and "553 5.6.7" in jm[2] and "SMTPUTF8" in jm[2],
             "without SMTPUTF8 the message is refused for good, with the reason", jm)
    bounced = sent["bounced"]
    check.ok(bool(bounced) and bounced[0][0] == "bounced" and "SMTPUTF8" in bounced[0][1],
             "the enrollment ends bounced (not held, not retried) and says why", bounced)
    smtps = [ln for ln in ms.smtp_log().splitlines() if "postfix/smtps/smtpd" in ln and "disconnect from" in ln]
    check.ok(len(smtps) == 1 and " mail=1" in smtps[0] and "rcpt=" not in smtps[0] and "data=" not in smtps[0],
             "on the server without SMTPUTF8, MAIL FROM went and RCPT TO never did", "\n".join(smtps))
    check.eq(ms.messages(JURGEN), [], "nothing delivered to the UTF-8 local part through that server")
    check.eq(db.psql("SELECT count(*) FROM enrollments WHERE state = 'held'"), [["0"]], "no enrollment is held")


def test_preview_contact_takes_the_u_label_spelling(sent):
    r = relance("preview", "idn", "--step", "intro", "--contact", "User@B\u00fccher.example", env=sent["env"])
    assert r.returncode == 0 and "xn--bcher-kva.example" in r.stdout, \
        f"preview --contact takes the U-label spelling: {r.stdout + r.stderr}"
