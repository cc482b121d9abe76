"""Replies on a held IMAP connection, against Postfix + Dovecot
and PostgreSQL on 127.0.0.1, with `relance serve` sending for real.

With imap_max_connections at least the number of mailboxes, the watcher
keeps one connection per mailbox and the folder it read last stays
selected on it. A STATUS on the selected mailbox answers from a stale view
in Dovecot (RFC 3501 6.3.10 says never to use it that way), so only the
first new message was ever seen. Here:

- three replies arrive seconds apart in one mailbox, each after the
  watcher has read the mailbox on its held connection; all three stop
  their enrollments within 5 x watch_interval + 5 s, and none of the three
  prospects gets the follow-up, which a fourth (silent) prospect does get;
- the connection is held: Dovecot logs one login for the whole run;
- a message the user's own mail client flagged \\Deleted (Maildir flag T)
  survives every pass: the watcher never sends CLOSE, which would expunge
  it on a mailbox opened with SELECT;
- a backlog: the race check before a follow-up reads all of it, however
  many messages came before the reply.
"""
import os
import time

import pytest

import harness
from harness import parsed, relance, wait_until

ALICE = "alice@acme.example"
INTERVAL = 1  # watch_interval, seconds
BOUND = 5 * INTERVAL + 5
START = "2026-03-02T09:00:00Z"
SPEED = 900  # the 5 h wait passes in 20 s
PROSPECTS = [f"p{i}@prospects.example" for i in range(1, 5)]
pytestmark = pytest.mark.mail(users=[(ALICE, "pw-alice-1")])


class World:
    """ALICE watched every watch_interval on a held connection, sequence
    two-touch applied, the four prospects in the database."""

    def __init__(self, ms, db, tmp, watch_interval):
        self.db = db
        cfg = os.path.join(tmp, "relance.yaml")
        with open(cfg, "w") as f:
            f.write(f"""tls_ca_file: {ms.ca_file}
imap_max_connections: 4
pools:
  founders:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_ALICE
        watch_interval: {watch_interval}
""")
        self.env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1"}
        seq = harness.sequence(tmp, "custom_steps", name="two-touch", pool="founders",
                               extra="stop_on: [reply, bounce, unsubscribe]", steps="""  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 5h
    body: "Bumping this, {{first_name | there}}."
""")
        assert relance("apply", seq, env=self.env).returncode == 0, "apply"

    def q1(self, sql):
        rows = self.db.psql(sql)
        return rows[0][0] if rows else None

    def state(self, addr):
        return self.q1(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                       f"WHERE c.email = '{addr}'")


def test_replies_on_a_held_connection_are_all_seen(fresh_mail, db, tmp, serve, check):
    ms = fresh_mail
    w = World(ms, db, tmp, f"{INTERVAL}s")
    env = w.env
    db.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
            ",".join(f"('{a}', 'Zoé', 'Acme {i}')" for i, a in enumerate(PROSPECTS)))
    args = ["enroll", "--sequence", "two-touch"]
    for a in PROSPECTS:
        args += ["--contact", a]
    r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
    check.ok("enrolled 4" in r.stdout, "enroll four prospects", r.stdout + r.stderr)
    s = serve({**env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
    s.wait_status("/readyz", 200)
    mids = {}
    for a in PROSPECTS:
        msgs = ms.wait_for(a, 1, timeout=20)
        mids[a] = parsed(msgs[0])["Message-ID"] if msgs else None
    check.ok(all(mids.values()), "step 1 reached all four prospects", s.output()[-3000:])

    # a message the user flagged \Deleted in their own client, and never expunged
    md = ms.maildir(ALICE)
    ms.deliver(ALICE, "From: colleague@acme.example\r\nTo: alice@acme.example\r\nSubject: old thread\r\n"
               "Message-ID: <deleted-by-user@acme.example>\r\n\r\nkeep me until I expunge\r\n")
    flagged = None
    for name in os.listdir(os.path.join(md, "new")):
        if open(os.path.join(md, "new", name), "rb").read().find(b"deleted-by-user") >= 0:
            flagged = os.path.join(md, "cur", name + ":2,T")
            os.rename(os.path.join(md, "new", name), flagged)
    check.ok(flagged is not None, "a message flagged \\Deleted by the user's client is in the INBOX")


    # let the watcher read the mailbox (and leave INBOX selected) before each reply
    check.ok(wait_until(lambda: "watching mailbox" in s.output(), 15), "the mailbox is watched", s.output()[-2000:])
    time.sleep(2 * INTERVAL + 0.5)
    latencies = []
    for i, a in enumerate(PROSPECTS[:3]):
        ms.deliver(ALICE, f"From: Zoé <{a}>\r\nTo: {ALICE}\r\nSubject: Re: An idea for Acme {i}\r\n"
                   f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <reply-{i}-{os.urandom(4).hex()}@prospects.example>\r\n"
                   f"In-Reply-To: {mids[a]}\r\nReferences: {mids[a]}\r\n\r\n"
                   f"Not interested, thanks.\r\n")
        t0 = time.time()
        seen = wait_until(lambda: w.state(a) == "replied", BOUND)
        latencies.append(time.time() - t0)
        check.ok(seen, f"reply {i + 1} of 3 on the held connection stops its enrollment within {BOUND}s",
                 f"{w.state(a)}\n" + s.output()[-2500:])
        time.sleep(INTERVAL + 0.5)  # another pass on the same connection before the next reply
    print("     reply latencies: " + ", ".join(f"{x:.1f}s" for x in latencies) + f" (bound {BOUND}s)")

    # the follow-up: due 5 h (20 s) after step 1; the silent prospect gets it
    check.ok(len(ms.wait_for(PROSPECTS[3], 2, timeout=45)) == 2, "the silent prospect got the follow-up",
             s.output()[-2000:])
    for a in PROSPECTS[:3]:
        check.eq(len(ms.messages(a)), 1, f"{a} replied and never got the follow-up")
    check.eq(ms.imap_logins(ALICE), 1, "one IMAP login for the whole run: the connection was held")
    check.ok(os.path.exists(flagged) or any("deleted-by-user" in open(p, "rb").read().decode("latin-1")
                                         for p in ms.folder_files(ALICE)),
             "the message the user flagged \\Deleted is still there (never CLOSE)")
    check.eq(s.stop(), 0, "serve stops cleanly")
    out = s.output()
    check.ok("AddressSanitizer" not in out and "runtime error" not in out, "no sanitizer report", out[-2000:])



def test_the_race_check_reads_a_whole_backlog_before_the_follow_up(fresh_mail, db, tmp, serve, check):
    ms = fresh_mail
    w = World(ms, db, tmp, "1h")
    env = w.env
    # A backlog: the race check before a follow-up reads all of it. The mailbox
    # is read only at start and by that check (watch_interval 1 h); BACKLOG
    # messages and then a reply land in it before the follow-up is due. The
    # reply must stop the follow-up however many messages came before it (the
    # check used to read 200 and let the claim go on), and the whole backlog
    # is recorded, fetched in batches.
    BACKLOG = 1200  # > one pass's 1,000: the check must wait through two passes
    START2 = "2026-03-04T09:00:00Z"
    LATE = ["p5@prospects.example", "p6@prospects.example"]
    db.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
            ",".join(f"('{a}', 'Zoé', 'Acme {i + 5}')" for i, a in enumerate(LATE)))
    r = relance("enroll", "--sequence", "two-touch", "--contact", LATE[0], "--contact", LATE[1],
                env={**env, "RELANCE_TEST_CLOCK": START2})
    check.ok("enrolled 2" in r.stdout, "enroll two more prospects", r.stdout + r.stderr)
    inbound_before = int(w.q1("SELECT count(*) FROM inbound_messages"))
    s = serve({**env, "RELANCE_TEST_CLOCK": f"{START2}*{2 * SPEED}"})  # the follow-up 10 s after step 1
    s.wait_status("/readyz", 200)
    late_mids = {}
    for a in LATE:
        msgs = ms.wait_for(a, 1, timeout=20)
        late_mids[a] = parsed(msgs[0])["Message-ID"] if msgs else None
    check.ok(all(late_mids.values()), "step 1 reached both", s.output()[-2000:])
    t0 = time.time()
    for i in range(BACKLOG):
        ms.deliver(ALICE, f"From: news{i}@letters.example\r\nTo: {ALICE}\r\nSubject: Weekly digest {i}\r\n"
                   f"Message-ID: <digest-{i}@letters.example>\r\n\r\nNothing to see.\r\n")
    ms.deliver(ALICE, f"From: Zoé <{LATE[0]}>\r\nTo: {ALICE}\r\nSubject: Re: An idea for Acme 5\r\n"
               f"Message-ID: <late-reply@prospects.example>\r\nIn-Reply-To: {late_mids[LATE[0]]}\r\n"
               f"References: {late_mids[LATE[0]]}\r\n\r\nNot interested, thanks.\r\n")
    print(f"     {BACKLOG} messages and a reply delivered in {time.time() - t0:.1f}s")
    check.ok(len(ms.wait_for(LATE[1], 2, timeout=45)) == 2, "the silent prospect got the follow-up", s.output()[-2000:])
    check.eq(len(ms.messages(LATE[0])), 1, "the reply behind the backlog stopped the follow-up (race check)")
    check.eq(w.state(LATE[0]), "replied", "and made the enrollment 'replied'")
    check.ok(wait_until(lambda: int(w.q1("SELECT count(*) FROM inbound_messages")) - inbound_before >= BACKLOG + 1, 20),
             f"all {BACKLOG + 1} messages of the backlog are recorded",
             w.q1("SELECT count(*) FROM inbound_messages"))
    check.eq(s.stop(), 0, "serve stops cleanly")
    out = s.output()
    check.ok("AddressSanitizer" not in out and "runtime error" not in out, "no sanitizer report", out[-2000:])
