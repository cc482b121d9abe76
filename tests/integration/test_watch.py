"""The mailbox watcher end to end, against Postfix + Dovecot and
PostgreSQL on 127.0.0.1, with `relance serve` sending for real and
watching the sender accounts' mailboxes over IMAP (STARTTLS for one
account, implicit TLS for the other):

- step 1 goes out; a reply written as the prospect (In-Reply-To: our
  Message-ID) lands in the sender's INBOX; the enrollment becomes
  'replied', the follow-up due right after is never sent, and the reply is
  still unread (no S flag on its Maildir file);
- an auto-reply does not stop the sequence;
- a real DSN (Postfix bouncing a recipient at gone.example to the
  envelope sender) suppresses the address;
- a copy of our own step in the mailbox is not a reply;
- a UIDVALIDITY change rescans without counting anything twice;
- the IMAP server going away and coming back: the watcher says so once,
  keeps its lease, and reads what arrived meanwhile;
- two replicas never watch the same mailbox at once (leases, and Dovecot's
  log of logins), and the survivor takes a dead replica's mailboxes over.
"""
import os
import signal
import time

import pytest

import harness
from harness import parsed, relance, wait_until

ALICE, BOB = "alice@acme.example", "bob@acme.example"
START = "2026-03-02T09:00:00Z"
SPEED = 600  # 3 hours of the sequence pass in 18 s
CLOCK = {"RELANCE_TEST_CLOCK": f"{START}*{SPEED}"}
pytestmark = pytest.mark.mail(users=[(ALICE, "pw-alice-1"), (BOB, "pw-bob-2")], bounce_domains=["gone.example"])


def reply(sender, to, mid, subject, body, extra=""):
    return (f"From: Zoé <{sender}>\r\nTo: {to}\r\nSubject: Re: {subject}\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{os.urandom(6).hex()}@prospects.example>\r\n"
            f"In-Reply-To: {mid}\r\nReferences: {mid}\r\n{extra}\r\n{body}\r\n")


class World:
    """Both accounts watched every second by one `relance serve`; four
    prospects sent step 1: p1 replies, p2 auto-replies, p3's domain
    bounces, p4's step is copied back into the mailbox. The cases read
    what that did, then change the world in order (a UIDVALIDITY reset,
    an IMAP outage, a second replica)."""

    def __init__(self, ms, db, tmp):
        self.ms, self.db = ms, db
        cfg = os.path.join(tmp, "relance.yaml")
        with open(cfg, "w") as f:
            f.write(f"""tls_ca_file: {ms.ca_file}
pools:
  founders:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_ALICE
        watch_interval: 1s
      - email: {BOB}
        smtp: smtps://127.0.0.1:{ms.smtps_port}/relance.test
        imap: imaps://127.0.0.1:{ms.imaps_port}
        password_env: PW_BOB
        watch_interval: 1s
""")
        self.env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1", "PW_BOB": "pw-bob-2"}
        seq = harness.sequence(tmp, "custom_steps", name="two-touch", pool="founders",
                               extra="stop_on: [reply, bounce, unsubscribe]", steps="""  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 3h
    body: "Bumping this, {{first_name | there}}."
""")
        assert relance("apply", seq, env=self.env).returncode == 0, "apply"

    def q(self, sql):
        return self.db.psql(sql)

    def q1(self, sql):
        rows = self.q(sql)
        return rows[0][0] if rows else None

    def enroll(self, *addrs):
        self.db.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
                     ",".join(f"('{a}', 'Zoé', 'Acme {i}')" for i, a in enumerate(addrs)))
        args = ["enroll", "--sequence", "two-touch"]
        for a in addrs:
            args += ["--contact", a]
        r = relance(*args, env={**self.env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(addrs)}" in r.stdout, f"enroll {' '.join(addrs)}: {r.stdout + r.stderr}"

    def first_step(self, addr, timeout=30):
        """Waits for step 1 to reach addr; returns (sender, Message-ID, raw)."""
        msgs = self.ms.wait_for(addr, 1, timeout=timeout)
        if not msgs:
            return None, None, None
        m = parsed(msgs[0])
        return m["From"].addresses[0].addr_spec, m["Message-ID"], msgs[0]


    def enrollment_state(self, addr):
        return self.q1(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE c.email = '{addr}'")


@pytest.fixture(scope="module")
def w(mail, module_db, module_tmp):
    w = World(mail, module_db, module_tmp)
    ms = mail
    w.enroll("p1@prospects.example", "p2@prospects.example", "p3@gone.example", "p4@prospects.example")
    w.s = s = harness.Serve({**w.env, **CLOCK})
    try:
        s.wait_status("/readyz", 200)
        w.both_watched = wait_until(lambda: "watching mailbox" in s.output()
                                    and s.output().count("watching mailbox") >= 2, 15)
        p1_from, p1_mid, p1_raw = w.first_step("p1@prospects.example")
        p2_from, p2_mid, _ = w.first_step("p2@prospects.example")
        p4_from, p4_mid, p4_raw = w.first_step("p4@prospects.example")
        w.step1 = p1_mid and p2_mid and p4_mid
        assert w.step1, f"step 1 went out: {s.output()[-3000:]}"
        w.p1_from = p1_from
        sent_at = time.time()
        reply_path = ms.deliver(p1_from, reply("p1@prospects.example", p1_from, p1_mid, "An idea for Acme 0",
                                               "Yes, let's talk on Thursday."))
        w.reply_marker = open(reply_path, "rb").read().split(b"Message-ID: ")[1].split(b"\r\n")[0]
        ms.deliver(p2_from, reply("p2@prospects.example", p2_from, p2_mid, "An idea for Acme 1",
                                  "I am out of the office and will reply when I am back.",
                                  "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n"))
        # our own step copied into the mailbox (as a client that files sent mail in INBOX does)
        ms.deliver(p4_from, p4_raw)
        w.replied = wait_until(lambda: w.enrollment_state("p1@prospects.example") == "replied", 15)
        w.latency = time.time() - sent_at
        w.bounced = wait_until(lambda: w.enrollment_state("p3@gone.example") in ("bounced", "stopped"), 20)
        yield w
    finally:
        w.s.kill()
        if getattr(w, "s2", None):
            w.s2.kill()


def test_a_reply_stops_the_sequence_an_auto_reply_does_not_a_dsn_suppresses(w, check):
    check.ok(w.both_watched, "both mailboxes are watched", w.s.output()[-3000:])
    check.ok(w.replied, "the reply made the enrollment 'replied'",
             f"{w.enrollment_state('p1@prospects.example')}\n" + w.s.output()[-3000:])
    check.ok(w.bounced, "Postfix's DSN for p3@gone.example bounced the enrollment",
             f"{w.enrollment_state('p3@gone.example')}\n" + w.s.output()[-3000:])
    check.ok(w.q1("SELECT count(*) FROM suppressions WHERE relance_suppressed('p3@gone.example') "
                  "AND pattern LIKE '%gone.example'") not in (None, "0"),
             "the bounced address is suppressed", str(w.q("SELECT * FROM suppressions")))
    p1_from, reply_marker = w.p1_from, w.reply_marker
    # the follow-ups: due 3 h (18 s) after step 1
    w.ms.wait_for("p2@prospects.example", 2, timeout=40)
    w.ms.wait_for("p4@prospects.example", 2, timeout=10)
    check.eq(len(w.ms.messages("p1@prospects.example")), 1, "the replied contact never got the follow-up")
    check.eq(len(w.ms.messages("p2@prospects.example")), 2, "the auto-replied contact got the follow-up")
    check.eq(len(w.ms.messages("p4@prospects.example")), 2, "our own copy in the mailbox is not a reply: follow-up sent")
    # the three copies are read in the watcher's own time: wait for all of
    # them before judging (and before the rescan below counts rows)
    wait_until(lambda: len(w.q("SELECT 1 FROM inbound_messages")) >= 4, 15)
    rows = w.q("SELECT kind, effect FROM inbound_messages ORDER BY id")
    check.ok(["human_reply", "replied"] in rows, "inbound: the reply is recorded as replied", str(rows))
    check.ok(["auto_reply", "auto_reply"] in rows, "inbound: the auto-reply is recorded, not a reply", str(rows))
    check.ok(any(r[1] == "ignored" for r in rows), "inbound: our own copy is ignored", str(rows))
    check.ok(any(r[0] == "hard_bounce" for r in rows), "inbound: the DSN is a hard bounce", str(rows))

    now_path = w.ms.find_file(p1_from, reply_marker)
    check.ok(now_path is not None and "S" not in w.ms.flags(now_path), "the reply is still unread (no \\Seen)",
             str(now_path))
    check.ok(all("S" not in w.ms.flags(p) for a in (ALICE, BOB) for p in w.ms.folder_files(a)),
             "no message in the watched mailboxes was flagged \\Seen",
             str([p for a in (ALICE, BOB) for p in w.ms.folder_files(a)]))
    out = w.s.output()
    check.ok("inbound message" in out and "effect=replied" in out, "each detection is logged", out[-2000:])
    check.ok("pw-alice" not in out and "pw-bob" not in out, "no password in the logs")
    print(f"     reply detected {w.latency:.1f}s after step 1 went out")


def test_a_uidvalidity_change_rescans_without_counting_twice(w, check):
    p1_from = w.p1_from
    before_inbound = w.q1("SELECT count(*) FROM inbound_messages")
    before_events = w.q1("SELECT count(*) FROM events WHERE kind LIKE 'inbound.%' OR kind LIKE 'enrollment.%'")
    old_validity = w.q1(f"SELECT uidvalidity FROM mailbox_state ms JOIN accounts a ON a.id = ms.account_id "
                      f"WHERE a.email = '{p1_from}' AND folder = 'INBOX'")
    w.ms.reset_uidvalidity(p1_from)
    check.ok(wait_until(lambda: w.q1(f"SELECT uidvalidity FROM mailbox_state ms JOIN accounts a ON a.id = ms.account_id "
                               f"WHERE a.email = '{p1_from}' AND folder = 'INBOX'") != old_validity, 20),
             "the watcher saw the new UIDVALIDITY", w.s.output()[-2000:])
    check.ok(wait_until(lambda: "reading the folder from its start" in w.s.output(), 10), "and read the folder again",
             w.s.output()[-2000:])
    time.sleep(3)
    check.eq(w.q1("SELECT count(*) FROM inbound_messages"), before_inbound, "the rescan recorded nothing twice")
    check.eq(w.q1("SELECT count(*) FROM events WHERE kind LIKE 'inbound.%' OR kind LIKE 'enrollment.%'"), before_events,
             "and wrote no second event")
    check.eq(w.q1("SELECT count(*) FROM events WHERE kind = 'mailbox.uidvalidity_changed'"), "1",
             "the UIDVALIDITY change is an event")


def test_an_imap_outage_is_logged_once_and_what_came_meanwhile_is_read(w, check):
    w.enroll("p5@prospects.example")
    p5_from, p5_mid, _ = w.first_step("p5@prospects.example")
    holder = w.q1(f"SELECT holder FROM leases WHERE name = 'watch:{p5_from}'")
    log_mark = len(w.s.output())  # the UIDVALIDITY reset above restarted Dovecot too
    w.ms.stop_imap()
    check.ok(wait_until(lambda: "mailbox unreachable" in w.s.output()[log_mark:], 10), "the outage is logged",
             w.s.output()[-2000:])
    time.sleep(4)
    outage_lines = [ln for ln in w.s.output()[log_mark:].splitlines() if "mailbox unreachable" in ln and p5_from in ln]
    check.eq(len([ln for ln in outage_lines if " warn " in ln]), 1, "once, not at every retry (later ones at debug)")
    if len([ln for ln in outage_lines if " warn " in ln]) != 1:
        print("\n".join(outage_lines))
    check.eq(w.q1(f"SELECT holder FROM leases WHERE name = 'watch:{p5_from}' AND expires_at > clock_timestamp()"), holder,
             "the lease is kept through the outage")
    w.ms.deliver(p5_from, reply("p5@prospects.example", p5_from, p5_mid, "An idea for Acme 0", "Call me."))
    w.ms.start_imap()
    check.ok(wait_until(lambda: w.enrollment_state("p5@prospects.example") == "replied", 90),
             "after the outage the reply that came meanwhile is read", w.s.output()[-3000:])
    check.ok("mailbox reachable again" in w.s.output()[log_mark:], "the recovery is logged")


def test_two_replicas_never_watch_one_mailbox_and_the_survivor_takes_over(w, serve, check):
    # both mailboxes read again after the outage (a mailbox still in its
    # backoff would log in again later and be counted against the replica)
    mark = len(w.s.output())
    w.s.proc.send_signal(signal.SIGUSR1)
    check.ok(wait_until(lambda: w.s.output()[mark:].count("mailbox checked on request") >= 2, 30),
             "both mailboxes are read again after the outage", w.s.output()[-2000:])
    logins_before = {a: w.ms.imap_logins(a) for a in (ALICE, BOB)}
    s2 = serve({**w.env, **CLOCK})
    s2.wait_status("/readyz", 200)
    time.sleep(8)
    holders = w.q("SELECT name, holder FROM leases WHERE name LIKE 'watch:%' ORDER BY name")
    check.eq(len(holders), 2, "one lease per mailbox")
    check.eq(len({h for _, h in holders}), 1, "the first replica keeps both mailboxes")
    check.ok("watching mailbox" not in s2.output(), "the second replica watches nothing meanwhile", s2.output()[-2000:])
    logins_after = {a: w.ms.imap_logins(a) for a in (ALICE, BOB)}
    check.eq(logins_after, logins_before, "no new IMAP login: the first replica's connections are reused, the second "
             "replica never logs in")

    w.s.proc.send_signal(signal.SIGKILL)
    w.s.proc.wait()
    w.enroll("p6@prospects.example")
    p6_from, p6_mid, _ = w.first_step("p6@prospects.example", timeout=60)
    check.ok(wait_until(lambda: s2.output().count("watching mailbox") >= 2, 45), "the survivor takes both mailboxes over "
             "when the dead replica's leases expire", s2.output()[-2000:])
    w.ms.deliver(p6_from, reply("p6@prospects.example", p6_from, p6_mid, "An idea for Acme 0", "Interested."))
    check.ok(wait_until(lambda: w.enrollment_state("p6@prospects.example") == "replied", 15),
             "and reads their replies", s2.output()[-3000:])
    check.eq(s2.stop(), 0, "serve stops cleanly (uv_loop_close == 0)")
    check.eq(w.q1("SELECT count(*) FROM leases WHERE name LIKE 'watch:%'"), "0",
             "a clean stop gives the mailbox leases up (another replica need not wait for the expiry)")
    out2 = s2.output()
    check.ok("AddressSanitizer" not in out2 and "runtime error" not in out2 and "handles left open" not in out2,
             "no sanitizer report, no handle left open", out2[-3000:])
