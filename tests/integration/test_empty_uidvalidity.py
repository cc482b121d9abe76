"""An empty folder's new UIDVALIDITY is accepted silently (issue 15),
against Dovecot and PostgreSQL on 127.0.0.1 with `relance serve` watching
`folders: [INBOX, Junk]`:

- Courier gives an empty folder a new UIDVALIDITY at every session; here
  the empty Junk's `dovecot-uidlist` goes while Dovecot is down, twice
  (each restart is a new session too). The watcher takes each new value
  with no `mailbox.uidvalidity_changed` event and no rescan: an empty
  folder has nothing to read again;
- the same restart changing the non-empty INBOX's UIDVALIDITY as well
  still writes exactly one event, for INBOX, and reads INBOX again (the
  full case is test_watch.py's).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance, wait_until  # noqa: E402

t = harness.Check("empty_uidvalidity")
ALICE = "alice@acme.example"
ms = mailservers.MailServers(users=[(ALICE, "pw-alice-1")])
pg = harness.Postgres()
tmp = harness.short_tempdir("reuv")
cfg = os.path.join(tmp, "relance.yaml")
with open(cfg, "w") as f:
    f.write(f"""tls_ca_file: {ms.ca_file}
log_level: debug
pools:
  founders:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_ALICE
        watch_interval: 1s
        folders: [INBOX, Junk]
""")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1"}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")


def q1(sql):
    rows = pg.psql(sql)
    return rows[0][0] if rows else None


def state(folder):
    """(uidvalidity, last_uid) of a watched folder, or None."""
    rows = pg.psql(f"SELECT uidvalidity, last_uid FROM mailbox_state ms JOIN accounts a ON a.id = ms.account_id "
                   f"WHERE a.email = '{ALICE}' AND folder = '{folder}'")
    return tuple(rows[0]) if rows else None


def reset(*folders):
    """New UIDVALIDITYs for folders, in one Dovecot restart: their UID
    lists and indexes go (and the mailbox list's index, which caches what
    STATUS says)."""
    ms.stop_imap()
    root = ms.maildir(ALICE)
    for folder in folders:
        md = root if folder == "INBOX" else os.path.join(root, "." + folder)
        for n in os.listdir(md):
            if n == "dovecot-uidlist" or n.startswith("dovecot.index"):
                os.unlink(os.path.join(md, n))
    for n in os.listdir(root):
        if n.startswith("dovecot.list.index"):
            os.unlink(os.path.join(root, n))
    time.sleep(1.1)  # UIDVALIDITY is a time in seconds: make it differ
    ms.start_imap()


def events():
    return pg.psql("SELECT data->>'folder' FROM events WHERE kind = 'mailbox.uidvalidity_changed' ORDER BY id")


ms.deliver(ALICE, "From: someone@else.example\r\nTo: alice@acme.example\r\nSubject: hello\r\n"
                  "Message-ID: <inbox-1@else.example>\r\n\r\nNot empty.\r\n")
s = harness.Serve(env)
s.wait_status("/readyz", 200)
t.ok(wait_until(lambda: state("INBOX") and state("Junk"), 15), "both folders are watched", s.output()[-3000:])
t.ok(os.path.exists(os.path.join(ms.maildir(ALICE), ".Junk", "dovecot-uidlist")), "Dovecot made Junk's UID list",
     str(os.listdir(os.path.join(ms.maildir(ALICE), ".Junk"))))

# ---------------------------------------------------------------------------
# the empty Junk: a new UIDVALIDITY at two sessions, nothing recorded

for n in (1, 2):
    before = state("Junk")
    reset("Junk")
    t.ok(wait_until(lambda: state("Junk")[0] != before[0], 20), f"session {n}: the watcher took Junk's new "
         f"UIDVALIDITY", f"{before} {state('Junk')}\n" + s.output()[-3000:])
    t.eq(state("Junk")[1], "0", f"session {n}: Junk is still read from its first UID")
t.eq(events(), [], "no mailbox.uidvalidity_changed event for the empty folder")
t.ok("reading the folder from its start" not in s.output(), "and no rescan", s.output()[-3000:])

# ---------------------------------------------------------------------------
# INBOX (one message) changes in the same session as Junk: one event, for
# INBOX, and a rescan

inbox_before, junk_before = state("INBOX"), state("Junk")
reset("INBOX", "Junk")
t.ok(wait_until(lambda: state("INBOX")[0] != inbox_before[0] and state("Junk")[0] != junk_before[0], 20),
     "the watcher took both new UIDVALIDITYs", s.output()[-3000:])
t.ok(wait_until(lambda: "reading the folder from its start" in s.output(), 10), "INBOX is read again",
     s.output()[-3000:])
t.eq(events(), [["INBOX"]], "one event, for the non-empty INBOX only")
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("AddressSanitizer" not in out and "runtime error" not in out and "handles left open" not in out,
     "no sanitizer report, no handle left open", out[-3000:])
t.ok("pw-alice" not in out, "no password in the logs")
t.done()
