"""What the stall tests (tests/integration/test_smtp_stall.py,
test_imap_stall.py) share: the /healthz prober that runs while a server
misbehaves, a prospect's reply to a sent message, and the figures read
from the database (an account's sent messages, an enrollment's state, a
send rate)."""
import os
import threading
import time

import harness


class Prober:
    """GET /healthz every 0.2 s in a thread of its own, each probe's
    status and how long it took, until stop()."""

    def __init__(self, s):
        self.s, self.probes = s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.time()
            status, _ = harness.http_get(self.s.base + "/healthz", timeout=5)
            self.probes.append((status, time.time() - t0))
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return self.probes


def check_probes(check, probes, seconds):
    """Checks that /healthz was probed throughout a stall of `seconds`
    and answered 200 within 1 s every time."""
    slow = [f"{st} in {d:.2f}s" for st, d in probes if st != 200 or d >= 1.0]
    worst = max((d for _, d in probes), default=0.0)
    print(f"/healthz: {len(probes)} probes during the stall, slowest {worst:.2f} s")
    check.ok(len(probes) >= int(seconds / 0.5), "/healthz was probed throughout the stall",
             f"{len(probes)} probes in {seconds:.1f} s")
    check.ok(not slow, "every /healthz probe during the stall answered 200 within 1 s",
             f"{len(slow)} of {len(probes)} did not: {slow[:8]}")


def reply(prospect, to, mid):
    return (f"From: Zoe <{prospect}>\r\nTo: {to}\r\nSubject: Re: Hello\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{os.urandom(6).hex()}@prospects.example>\r\n"
            f"In-Reply-To: {mid}\r\nReferences: {mid}\r\n\r\nYes, let's talk on Thursday.\r\n")


def sent(db, account):
    """How many of the account's messages are 'sent'."""
    return int(db.psql("SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id "
                       f"WHERE a.email = '{account}' AND m.state = 'sent'")[0][0])


def enrollment_state(db, email):
    rows = db.psql("SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                   f"WHERE c.email = '{email}'")
    return rows[0][0] if rows else None


def rate(count, seconds, until=None, cap=None):
    """count()'s growth per second over the next `seconds`, and then until
    until() is true (asked every 0.2 s from the start) or cap seconds
    passed; returns (rate, grown, elapsed)."""
    t0, n0 = time.time(), count()
    while True:
        met = until() if until else True
        elapsed = time.time() - t0
        if elapsed >= seconds and (met or elapsed >= cap):
            break
        time.sleep(0.2)
    n1, elapsed = count(), time.time() - t0
    return (n1 - n0) / elapsed, n1 - n0, elapsed


def reply_to_first_sent(db, ms, account):
    """Delivers into account's mailbox (MailServers ms) a prospect's reply
    to the account's first sent message; returns the prospect's address."""
    mid, prospect = db.psql("SELECT m.message_id, m.recipient FROM messages m JOIN accounts a "
                            f"ON a.id = m.account_id WHERE a.email = '{account}' AND m.state = 'sent' "
                            "ORDER BY m.id LIMIT 1")[0]
    mid = mid if mid.startswith("<") else f"<{mid}>"
    ms.deliver(account, reply(prospect, account, mid))
    return prospect
