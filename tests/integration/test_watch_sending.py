"""Two things between sending and watching, against
Postfix + Dovecot and PostgreSQL on 127.0.0.1:

- save_sent: every message an account with `save_sent: true` sends is
  appended once to its \\Sent folder, flagged \\Seen, byte for byte what
  the prospect received; an account without it keeps no copy;
- winning the race: with an hour between mailbox passes, a reply that
  lands after step 1 is still read before the follow-up is claimed (the
  scheduler reads a mailbox last read more than a few seconds ago before
  claiming its follow-ups), so the follow-up is never sent — while a
  contact who did not reply gets it;
- a colleague's reply stops the company when the sequence has
  `company_reply` in `stop_on`: a contact at the same company domain
  never gets the follow-up either.
"""
import os
import time

import pytest

import harness
from harness import parsed, relance, wait_until

ALICE, BOB = "alice@acme.example", "bob@acme.example"
START = "2026-03-02T09:00:00Z"
SPEED = 600  # the 3 h wait passes in 18 s
SAVING = ["r1@prospects.example", "r2@prospects.example", "r3@prospects.example"]
PLAIN = ["n1@other.example", "c1@corp.example", "c2@corp.example"]
pytestmark = pytest.mark.mail(users=[(ALICE, "pw-alice-1"), (BOB, "pw-bob-2")])


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """Both sequences sent; r1 answers alice and c1 answers bob right after
    step 1; served until the follow-ups of the others went (and 3 s more).
    serve goes on running while the cases read what happened."""
    ms, db, tmp = mail, module_db, module_tmp
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(f"""tls_ca_file: {ms.ca_file}
pools:
  saving:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_ALICE
        watch_interval: 1h
        save_sent: true
  plain:
    accounts:
      - email: {BOB}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_BOB
        watch_interval: 1h
""")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1", "PW_BOB": "pw-bob-2"}
    for name, pool, stop in (("saving", "saving", "[reply]"), ("plain", "plain", "[reply, company_reply]")):
        seq = harness.sequence(tmp, "custom_steps", name=name, pool=pool, extra=f"stop_on: {stop}", steps="""  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 3h
    body: "Bumping this."
""")
        assert relance("apply", seq, env=env).returncode == 0, f"apply {name}"
    db.psql("INSERT INTO contacts (email, first_name, company, company_domain) VALUES " +
            ",".join(f"('{a}', 'Zoé', 'Acme {i}', '{a.split('@')[1]}')" for i, a in enumerate(SAVING + PLAIN)))
    for name, addrs in (("saving", SAVING), ("plain", PLAIN)):
        args = ["enroll", "--sequence", name]
        for a in addrs:
            args += ["--contact", a]
        r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(addrs)}" in r.stdout, f"enroll {name}: {r.stdout + r.stderr}"

    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
    try:
        s.wait_status("/readyz", 200)
        firsts = {a: ms.wait_for(a, 1, timeout=30) for a in SAVING + PLAIN}
        assert all(firsts.values()), f"step 1 reached every contact: {s.output()[-3000:]}"
        # r1 answers at once: the next regular pass of alice's mailbox is an hour away
        r1 = parsed(firsts["r1@prospects.example"][0])
        ms.deliver(ALICE, f"From: Zoé <r1@prospects.example>\r\nTo: {ALICE}\r\nSubject: Re: {r1['Subject']}\r\n"
                          f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <answer-r1@prospects.example>\r\n"
                          f"In-Reply-To: {r1['Message-ID']}\r\nReferences: {r1['Message-ID']}\r\n\r\n"
                          "Sounds interesting, call me.\r\n")
        # c1 answers bob: its colleague c2 (same company domain) stops too
        c1 = parsed(firsts["c1@corp.example"][0])
        ms.deliver(BOB, f"From: c1@corp.example\r\nTo: {BOB}\r\nSubject: Re: {c1['Subject']}\r\n"
                        f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <answer-c1@corp.example>\r\n"
                        f"In-Reply-To: {c1['Message-ID']}\r\n\r\nLet me loop in my colleague.\r\n")
        # the follow-ups fall due 18 s after step 1
        got_bump = wait_until(lambda: all(len(ms.messages(a)) >= 2 for a in (
            "r2@prospects.example", "r3@prospects.example", "n1@other.example")), 60)
        time.sleep(3)
        yield {"db": db, "ms": ms, "serve": s, "got_bump": got_bump}
    finally:
        s.kill()


def test_a_reply_is_read_before_the_follow_up_is_claimed(run, check):
    db, ms, s = run["db"], run["ms"], run["serve"]
    check.ok(run["got_bump"], "the contacts who did not reply got the follow-up", s.output()[-3000:])
    check.eq(len(ms.messages("r1@prospects.example")), 1, "the contact who replied never got the follow-up")
    check.eq(db.psql("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                     "WHERE c.email = 'r1@prospects.example'")[0][0], "replied", "r1's enrollment is replied")
    check.eq(db.psql("SELECT count(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                     "JOIN contacts c ON c.id = e.contact_id WHERE c.email = 'r1@prospects.example'")[0][0], "1",
             "no follow-up was even claimed for r1")
    check.ok(s.output().count("watching mailbox") >= 1, "mailboxes are watched", s.output()[-2000:])


def test_a_colleagues_reply_stops_the_company(run, check):
    db, ms = run["db"], run["ms"]
    check.eq([len(ms.messages(a)) for a in ("c1@corp.example", "c2@corp.example")], [1, 1],
             "neither the colleague who replied nor the other one at corp.example got the follow-up")
    check.eq(db.psql("SELECT c.email, e.state, e.state_reason FROM enrollments e JOIN contacts c "
                     "ON c.id = e.contact_id WHERE c.email LIKE '%@corp.example' ORDER BY 1"),
             [["c1@corp.example", "replied", "reply"], ["c2@corp.example", "replied", "company reply"]],
             "c1 replied, c2 stopped as a company reply")


def test_save_sent_keeps_one_seen_copy_of_each_message_sent(run, check):
    ms, s = run["ms"], run["serve"]
    # alice's 5 messages (3 intros, 2 follow-ups) are in her Sent folder, once each
    check.ok(wait_until(lambda: len(ms.folder_files(ALICE, "Sent")) >= 5, 20), "alice's Sent folder filled",
             s.output()[-3000:])
    time.sleep(1)
    copies = {}
    for p in ms.folder_files(ALICE, "Sent"):
        with open(p, "rb") as f:
            raw = f.read()
        copies.setdefault(str(parsed(raw)["Message-ID"]), []).append((p, raw))
    delivered = {}
    for a in SAVING:
        for raw in ms.messages(a):
            delivered[str(parsed(raw)["Message-ID"])] = raw
    check.eq(sorted(copies), sorted(delivered), "one copy in Sent per message alice sent, and nothing else")
    check.eq([m for m, c in copies.items() if len(c) != 1], [], "no message was copied twice")
    check.ok(all("S" in ms.flags(c[0][0]) for c in copies.values()), "the copies are flagged \\Seen")
    check.ok(all(c[0][1].replace(b"\r\n", b"\n") in delivered[m].replace(b"\r\n", b"\n")
                 for m, c in copies.items()),
             "each copy is byte for byte the message the prospect received (the server only prepends its trace)")
    check.eq(ms.folder_files(BOB, "Sent"), [], "bob (no save_sent) keeps no copy")


def test_serve_stops_cleanly_with_no_password_in_its_output(run, check):
    s = run["serve"]
    check.eq(s.stop(), 0, "relance stops cleanly")
    out = s.output()
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
    check.ok("pw-alice-1" not in out and "pw-bob-2" not in out, "no password in the output")
