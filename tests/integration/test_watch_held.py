"""Replies on a held IMAP connection (issue 14), against Postfix + Dovecot
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
  it on a mailbox opened with SELECT.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance, wait_until, parsed  # noqa: E402

t = harness.Check("watch_held")
ALICE = "alice@acme.example"
INTERVAL = 1  # watch_interval, seconds
BOUND = 5 * INTERVAL + 5
ms = mailservers.MailServers(users=[(ALICE, "pw-alice-1")])
pg = harness.Postgres()
tmp = harness.short_tempdir("rwhl")
cfg = os.path.join(tmp, "relance.yaml")


def write_config(watch_interval):
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


write_config(f"{INTERVAL}s")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1"}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write("""name: two-touch
sender_pool: founders
stop_on: [reply, bounce, unsubscribe]
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 5h
    body: "Bumping this, {{first_name | there}}."
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
START = "2026-03-02T09:00:00Z"
SPEED = 900  # the 5 h wait passes in 20 s
PROSPECTS = [f"p{i}@prospects.example" for i in range(1, 5)]


def q1(sql):
    rows = pg.psql(sql)
    return rows[0][0] if rows else None


def state(addr):
    return q1(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE c.email = '{addr}'")


pg.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
        ",".join(f"('{a}', 'Zoé', 'Acme {i}')" for i, a in enumerate(PROSPECTS)))
args = ["enroll", "--sequence", "two-touch"]
for a in PROSPECTS:
    args += ["--contact", a]
r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
t.ok("enrolled 4" in r.stdout, "enroll four prospects", r.stdout + r.stderr)

s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
s.wait_status("/readyz", 200)
mids = {}
for a in PROSPECTS:
    msgs = ms.wait_for(a, 1, timeout=20)
    mids[a] = parsed(msgs[0])["Message-ID"] if msgs else None
t.ok(all(mids.values()), "step 1 reached all four prospects", s.output()[-3000:])

# a message the user flagged \Deleted in their own client, and never expunged
md = ms.maildir(ALICE)
ms.deliver(ALICE, "From: colleague@acme.example\r\nTo: alice@acme.example\r\nSubject: old thread\r\n"
           "Message-ID: <deleted-by-user@acme.example>\r\n\r\nkeep me until I expunge\r\n")
flagged = None
for name in os.listdir(os.path.join(md, "new")):
    if open(os.path.join(md, "new", name), "rb").read().find(b"deleted-by-user") >= 0:
        flagged = os.path.join(md, "cur", name + ":2,T")
        os.rename(os.path.join(md, "new", name), flagged)
t.ok(flagged is not None, "a message flagged \\Deleted by the user's client is in the INBOX")


def logins():
    return ms.imap_logins(ALICE)


# let the watcher read the mailbox (and leave INBOX selected) before each reply
t.ok(wait_until(lambda: "watching mailbox" in s.output(), 15), "the mailbox is watched", s.output()[-2000:])
time.sleep(2 * INTERVAL + 0.5)
latencies = []
for i, a in enumerate(PROSPECTS[:3]):
    ms.deliver(ALICE, f"From: Zoé <{a}>\r\nTo: {ALICE}\r\nSubject: Re: An idea for Acme {i}\r\n"
               f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <reply-{i}-{os.urandom(4).hex()}@prospects.example>\r\n"
               f"In-Reply-To: {mids[a]}\r\nReferences: {mids[a]}\r\n\r\n"
               f"Not interested, thanks.\r\n")
    t0 = time.time()
    seen = wait_until(lambda: state(a) == "replied", BOUND)
    latencies.append(time.time() - t0)
    t.ok(seen, f"reply {i + 1} of 3 on the held connection stops its enrollment within {BOUND}s",
         f"{state(a)}\n" + s.output()[-2500:])
    time.sleep(INTERVAL + 0.5)  # another pass on the same connection before the next reply
print("     reply latencies: " + ", ".join(f"{x:.1f}s" for x in latencies) + f" (bound {BOUND}s)")

# the follow-up: due 5 h (20 s) after step 1; the silent prospect gets it
t.ok(len(ms.wait_for(PROSPECTS[3], 2, timeout=45)) == 2, "the silent prospect got the follow-up",
     s.output()[-2000:])
for a in PROSPECTS[:3]:
    t.eq(len(ms.messages(a)), 1, f"{a} replied and never got the follow-up")
t.eq(logins(), 1, "one IMAP login for the whole run: the connection was held")
t.ok(os.path.exists(flagged) or any("deleted-by-user" in open(p, "rb").read().decode("latin-1")
                                     for p in ms.folder_files(ALICE)),
     "the message the user flagged \\Deleted is still there (never CLOSE)")
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("AddressSanitizer" not in out and "runtime error" not in out, "no sanitizer report", out[-2000:])

# ---------------------------------------------------------------------------
# A backlog: the race check before a follow-up reads all of it. The mailbox
# is read only at start and by that check (watch_interval 1 h); BACKLOG
# messages and then a reply land in it before the follow-up is due. The
# reply must stop the follow-up however many messages came before it (the
# check used to read 200 and let the claim go on), and the whole backlog
# is recorded, fetched in batches.
BACKLOG = 1200  # > one pass's 1,000: the check must wait through two passes
write_config("1h")
START2 = "2026-03-04T09:00:00Z"
LATE = ["p5@prospects.example", "p6@prospects.example"]
pg.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
        ",".join(f"('{a}', 'Zoé', 'Acme {i + 5}')" for i, a in enumerate(LATE)))
r = relance("enroll", "--sequence", "two-touch", "--contact", LATE[0], "--contact", LATE[1],
            env={**env, "RELANCE_TEST_CLOCK": START2})
t.ok("enrolled 2" in r.stdout, "enroll two more prospects", r.stdout + r.stderr)
inbound_before = int(q1("SELECT count(*) FROM inbound_messages"))
s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START2}*{2 * SPEED}"})  # the follow-up 10 s after step 1
s.wait_status("/readyz", 200)
late_mids = {}
for a in LATE:
    msgs = ms.wait_for(a, 1, timeout=20)
    late_mids[a] = parsed(msgs[0])["Message-ID"] if msgs else None
t.ok(all(late_mids.values()), "step 1 reached both", s.output()[-2000:])
t0 = time.time()
for i in range(BACKLOG):
    ms.deliver(ALICE, f"From: news{i}@letters.example\r\nTo: {ALICE}\r\nSubject: Weekly digest {i}\r\n"
               f"Message-ID: <digest-{i}@letters.example>\r\n\r\nNothing to see.\r\n")
ms.deliver(ALICE, f"From: Zoé <{LATE[0]}>\r\nTo: {ALICE}\r\nSubject: Re: An idea for Acme 5\r\n"
           f"Message-ID: <late-reply@prospects.example>\r\nIn-Reply-To: {late_mids[LATE[0]]}\r\n"
           f"References: {late_mids[LATE[0]]}\r\n\r\nNot interested, thanks.\r\n")
print(f"     {BACKLOG} messages and a reply delivered in {time.time() - t0:.1f}s")
t.ok(len(ms.wait_for(LATE[1], 2, timeout=45)) == 2, "the silent prospect got the follow-up", s.output()[-2000:])
t.eq(len(ms.messages(LATE[0])), 1, "the reply behind the backlog stopped the follow-up (race check)")
t.eq(state(LATE[0]), "replied", "and made the enrollment 'replied'")
t.ok(wait_until(lambda: int(q1("SELECT count(*) FROM inbound_messages")) - inbound_before >= BACKLOG + 1, 20),
     f"all {BACKLOG + 1} messages of the backlog are recorded",
     q1("SELECT count(*) FROM inbound_messages"))
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("AddressSanitizer" not in out and "runtime error" not in out, "no sanitizer report", out[-2000:])
t.done()
