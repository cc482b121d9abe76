"""An empty folder's new UIDVALIDITY is accepted silently,
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
import time

import pytest

from harness import wait_until

ALICE = "alice@acme.example"
pytestmark = pytest.mark.mail(users=[(ALICE, "pw-alice-1")])
CONFIG = f"""tls_ca_file: {{ca}}
log_level: debug
pools:
  founders:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{{submission}}/relance.test
        imap: imap://127.0.0.1:{{imap}}
        password_env: PW_ALICE
        watch_interval: 1s
        folders: [INBOX, Junk]
"""


class World:
    """ALICE's INBOX (one message) and Junk watched by `relance serve`."""

    def __init__(self, ms, db, tmp, serve, check):
        self.ms, self.db, self.check = ms, db, check
        cfg = os.path.join(tmp, "relance.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(ca=ms.ca_file, submission=ms.submission_port, imap=ms.imap_port))
        env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1"}
        ms.deliver(ALICE, "From: someone@else.example\r\nTo: alice@acme.example\r\nSubject: hello\r\n"
                          "Message-ID: <inbox-1@else.example>\r\n\r\nNot empty.\r\n")
        self.s = s = serve(env)
        s.wait_status("/readyz", 200)
        check.ok(wait_until(lambda: self.state("INBOX") and self.state("Junk"), 15), "both folders are watched",
                 s.output()[-3000:])
        check.ok(os.path.exists(os.path.join(ms.maildir(ALICE), ".Junk", "dovecot-uidlist")),
                 "Dovecot made Junk's UID list", str(os.listdir(os.path.join(ms.maildir(ALICE), ".Junk"))))

    def state(self, folder):
        """(uidvalidity, last_uid) of a watched folder, or None."""
        rows = self.db.psql(f"SELECT uidvalidity, last_uid FROM mailbox_state ms JOIN accounts a "
                            f"ON a.id = ms.account_id WHERE a.email = '{ALICE}' AND folder = '{folder}'")
        return tuple(rows[0]) if rows else None

    def reset(self, *folders):
        """New UIDVALIDITYs for folders, in one Dovecot restart: their UID
        lists and indexes go (and the mailbox list's index, which caches
        what STATUS says)."""
        ms = self.ms
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

    def events(self):
        return self.db.psql("SELECT data->>'folder' FROM events WHERE kind = 'mailbox.uidvalidity_changed' "
                            "ORDER BY id")

    def stops_cleanly(self):
        s, check = self.s, self.check
        check.eq(s.stop(), 0, "serve stops cleanly")
        out = s.output()
        check.ok("AddressSanitizer" not in out and "runtime error" not in out and "handles left open" not in out,
                 "no sanitizer report, no handle left open", out[-3000:])
        check.ok("pw-alice" not in out, "no password in the logs")


def test_an_empty_folder_takes_a_new_uidvalidity_silently(fresh_mail, db, tmp, serve, check):
    w = World(fresh_mail, db, tmp, serve, check)
    s = w.s
    for n in (1, 2):
        before = w.state("Junk")
        w.reset("Junk")
        check.ok(wait_until(lambda: w.state("Junk")[0] != before[0], 20), f"session {n}: the watcher took Junk's new "
                 f"UIDVALIDITY", f"{before} {w.state('Junk')}\n" + s.output()[-3000:])
        check.eq(w.state("Junk")[1], "0", f"session {n}: Junk is still read from its first UID")
    check.eq(w.events(), [], "no mailbox.uidvalidity_changed event for the empty folder")
    check.ok("reading the folder from its start" not in s.output(), "and no rescan", s.output()[-3000:])
    w.stops_cleanly()


def test_a_non_empty_folder_changing_with_it_gets_one_event_and_a_rescan(fresh_mail, db, tmp, serve, check):
    w = World(fresh_mail, db, tmp, serve, check)
    s = w.s
    inbox_before, junk_before = w.state("INBOX"), w.state("Junk")
    w.reset("INBOX", "Junk")
    check.ok(wait_until(lambda: w.state("INBOX")[0] != inbox_before[0] and w.state("Junk")[0] != junk_before[0], 20),
             "the watcher took both new UIDVALIDITYs", s.output()[-3000:])
    check.ok(wait_until(lambda: "reading the folder from its start" in s.output(), 10), "INBOX is read again",
             s.output()[-3000:])
    check.eq(w.events(), [["INBOX"]], "one event, for the non-empty INBOX only")
    w.stops_cleanly()
