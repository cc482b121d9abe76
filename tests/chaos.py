#!/usr/bin/python3
"""Chaos, end to end (issue 22): three `relance serve` replicas on one
PostgreSQL send a two-step sequence to N enrollments over 20 accounts into
the local Postfix + Dovecot under the test clock, while a third of the
prospects reply to the first step. Mid-run one replica is killed with
SIGKILL, another is stopped with SIGTERM and started again, and
PostgreSQL is restarted once. Then:

- no (contact, step) arrived twice: counted in the mailboxes, and in
  Postfix's log (each of relance's Message-IDs accepted once);
- each account's daily cap is exact: never exceeded, and reached on every
  day when demand was left over and nothing disturbed that account;
- every message was delivered, or is `unknown` and listed as such;
- no follow-up was claimed after its enrollment's reply was recorded;
- each mailbox (and each account) had one holder at a time, from the
  lease history (lease_history, migration 030), with no gap but the
  killed replica's leases running out;
- nothing is left `sending`, and a replica stopped with SIGTERM leaves
  none of its messages `sending` when it exits (what went out is `sent`,
  the rest deferred for another replica at once).

The schedule of faults is fixed in days of the test clock, so that the
caps' days are known, and each fault falls just after a day opens, while
the accounts' new allowance is going out: day 1 runs undisturbed; on day
2 the sending replica (the first to start takes every free lease) is
stopped with SIGTERM and started again, on day 3 PostgreSQL restarts, on
day 4 the sending replica is killed with SIGKILL (its leases run out 30 s
later and the survivors take its accounts and mailboxes over).

tests/integration/test_chaos.py runs it at CI size (about 300
enrollments); the 2,000-enrollment run is this file alone:

    RELANCE_BIN=build/relance python3 tests/chaos.py [--enrollments 2000]

It needs root (Postfix) and Debian's PostgreSQL, Postfix and Dovecot, as
the integration tests do; exit 0 when every check held, 1 otherwise."""
import argparse
import collections
import datetime
import email
import email.utils
import os
import re
import signal
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import relance  # noqa: E402

ACCOUNTS = [(f"sdr{i:02d}@acme.example", f"pw-sdr-{i:02d}") for i in range(20)]
REPLICAS = 3
START = datetime.datetime(2026, 3, 2, tzinfo=datetime.timezone.utc)  # a Monday, 00:00 UTC
LEASE_TTL_S = 30        # service/leases.h
LEASE_EVERY_S = 5
PROSPECTS = "prospects.example"


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def contact(i):
    return f"p{i}@{PROSPECTS}"


def replies_to(i):
    """A third of the prospects answer the first step."""
    return i % 3 == 0


class Chaos:
    """One run: n enrollments, pg a PostgreSQL the run may restart (an
    empty database, migrated here), ms MailServers knowing ACCOUNTS,
    start_serve(env) starting a `relance serve` (harness.Serve or the
    serve fixture), check a harness.Checks. run() then verify()."""

    def __init__(self, n, pg, ms, workdir, start_serve, check, log=print):
        self.n, self.pg, self.ms, self.dir = n, pg, ms, workdir
        self.start_serve, self.check, self.log = start_serve, check, log
        # Each account can send a third of its share of first steps a day,
        # so the caps bind on the first days; a day lasts long enough for
        # a sanitizer build to send a day's allowance in a fraction of it.
        self.cap = max(2, n // (3 * len(ACCOUNTS)))
        self.day_s = max(5.0, n * 0.015)
        self.speed = 86400 / self.day_s
        self.t0 = None               # the real time relance's clock reads START
        self.replicas = []           # every Serve started, in order
        self.killed = None           # the SIGKILLed one
        self.faults = {}             # fault name -> (real start, real end)
        self.stopped = {}            # fault name -> pid of a replica it stopped, until its rows are settled
        self.replied = {}            # contact index -> real time its reply was handed to Postfix
        self.reply_errors = []
        self._stop = threading.Event()

    # ---- set-up

    def setup(self):
        began = time.time()
        r = relance("migrate", env={"DATABASE_URL": self.pg.url()})
        assert r.returncode == 0, f"migrate: {r.stdout + r.stderr}"
        accounts = [harness.account(self.ms, a, "PW_" + a.split("@")[0].upper(), daily_limit=self.cap,
                                    timezone="UTC", imap=f"imap://127.0.0.1:{self.ms.imap_port}",
                                    watch_interval="1s") for a, _ in ACCOUNTS]
        config = harness.pool_config(self.dir, {"sdrs": accounts})
        self.env = {"DATABASE_URL": self.pg.url(), "RELANCE_CONFIG": config}
        self.env.update({"PW_" + a.split("@")[0].upper(): pw for a, pw in ACCOUNTS})
        seq = harness.sequence(self.dir, "two_step", name="chaos", pool="sdrs", wait="1d")
        r = relance("apply", seq, env=self.env)
        assert r.returncode == 0, f"apply: {r.stdout + r.stderr}"
        for lo in range(0, self.n, 1000):
            self.pg.psql("INSERT INTO contacts (email) VALUES " +
                         ",".join(f"('{contact(i)}')" for i in range(lo, min(self.n, lo + 1000))))
        r = relance("enroll", "--sequence", "chaos", "--where", "true",
                    env={**self.env, "RELANCE_TEST_CLOCK": iso(START)})
        assert f"enrolled {self.n}" in r.stdout, f"enroll: {r.stdout + r.stderr}"
        self.log(f"set up in {time.time() - began:.1f} s: {self.n} enrollments, caps of {self.cap} a day, "
                 f"a day of the test clock every {self.day_s:g} s")

    # ---- the run

    def clock(self):
        """RELANCE_TEST_CLOCK for a replica started now: every replica's
        clock reads the same instant (to the few milliseconds a process
        takes to start, times the speed)."""
        now = START + datetime.timedelta(seconds=(time.time() - self.t0) * self.speed)
        return f"{iso(now)}*{self.speed:g}"

    def launch(self):
        s = self.start_serve({**self.env, "RELANCE_TEST_CLOCK": self.clock()})
        self.replicas.append(s)
        return s

    def day_at(self, day, plus=0.0):
        """The real time day (1: START's) opens, plus seconds."""
        return self.t0 + (day - 1) * self.day_s + plus

    def sleep_until(self, t):
        while time.time() < t:
            time.sleep(min(0.05, max(0.0, t - time.time())))

    def delivered(self):
        return sum(len(self.ms.folder_files(contact(i))) for i in range(self.n))

    def replier(self):
        """Answers the first step of every third prospect as soon as it is
        in the prospect's mailbox, through Postfix to the sender's mailbox
        (In-Reply-To: our Message-ID), as a prospect's mail server would."""
        waiting = [i for i in range(self.n) if replies_to(i)]
        conn = None
        while waiting and not self._stop.is_set():
            left = []
            for i in waiting:
                first = None
                for raw in self.ms.messages(contact(i)):
                    m = harness.parsed(raw)
                    if not str(m["Subject"]).startswith("Re:"):
                        first = m
                        break
                if first is None:
                    left.append(i)
                    continue
                sender = first["From"].addresses[0].addr_spec
                mid = str(first["Message-ID"])
                raw = (f"From: Prospect {i} <{contact(i)}>\r\nTo: {sender}\r\nSubject: Re: {first['Subject']}\r\n"
                       f"Date: {email.utils.formatdate()}\r\nMessage-ID: <reply-{i}-{os.urandom(4).hex()}@{PROSPECTS}>\r\n"
                       f"In-Reply-To: {mid}\r\nReferences: {mid}\r\n\r\nYes, let's talk.\r\n")
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", self.ms.smtp_port, timeout=10)
                    conn.sendmail(contact(i), [sender], raw.encode())
                    self.replied[i] = time.time()
                except (smtplib.SMTPException, OSError) as e:
                    self.reply_errors.append(f"{contact(i)}: {e}")
                    conn = None
                    left.append(i)
            waiting = left
            self._stop.wait(0.2)
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def run(self, timeout=None):
        """Starts the replicas, injects the faults, and waits until every
        enrollment ended and nothing is in flight; stops the replicas."""
        timeout = timeout or 90 + 8 * self.day_s
        self.t0 = time.time() + 0.5
        self.sleep_until(self.t0)
        for _ in range(REPLICAS):
            self.launch()
        for s in self.replicas:
            s.wait_status("/readyz", 200, timeout=30)
        replier = threading.Thread(target=self.replier, daemon=True)
        replier.start()
        try:
            self._faults()
            deadline = self.t0 + timeout
            settled = False
            while time.time() < deadline:
                rows = self.pg.psql("SELECT (SELECT count(*) FROM enrollments WHERE state = 'active'), "
                                    "(SELECT count(*) FROM messages WHERE state = 'sending')", check=False)
                self.note_settled()
                if rows and rows[0] == ["0", "0"]:
                    settled = True
                    break
                time.sleep(0.5)
            self.check.ok(settled, f"every enrollment ended within {timeout:.0f} s",
                          str(self.pg.psql("SELECT state, count(*) FROM enrollments GROUP BY 1", check=False)))
            self.log(f"settled {time.time() - self.t0:.1f} s after the start ({(time.time() - self.t0) / self.day_s:.1f} "
                     f"days of the test clock), {self.delivered()} messages delivered")
            time.sleep(1.5)  # a reply in flight is read before the mailboxes are counted
        finally:
            self._stop.set()
            replier.join(timeout=10)
        for s in self.replicas:
            if s is not self.killed and s.proc.poll() is None:
                self.check.eq(s.stop(), 0, f"replica pid {s.proc.pid} stops cleanly with SIGTERM")

    def busiest(self):
        """The live replica holding the most account leases: the one
        sending (the first to start takes every free lease)."""
        held = collections.Counter(h for (h,) in self.pg.psql(
            "SELECT holder FROM leases WHERE name LIKE 'account:%' AND expires_at > clock_timestamp()"))
        live = [s for s in self.replicas if s.proc.poll() is None]
        return max(live, key=lambda s: sum(n for h, n in held.items() if f"-{s.proc.pid}-" in h))

    def in_flight(self, replica=None, besides=None):
        """Messages 'sending': claimed by replica (a Serve) if given, not
        by besides (one that stopped) if given."""
        mine = f" AND claimed_by LIKE '%-{replica.proc.pid}-%'" if replica else ""
        mine += f" AND claimed_by NOT LIKE '%-{besides.proc.pid}-%'" if besides else ""
        return self.pg.psql("SELECT count(*) FROM messages WHERE state = 'sending'" + mine)[0][0]

    def note_settled(self):
        """A stopped replica's fault lasts until none of its messages is
        'sending' any more (a rescue settles them once its lease ran out):
        until then its accounts cannot take new enrollments."""
        for name, pid in list(self.stopped.items()):
            rows = self.pg.psql(f"SELECT count(*) FROM messages WHERE state = 'sending' AND claimed_by LIKE '%-{pid}-%'",
                                check=False)
            if rows and rows[0][0] == "0":
                self.faults[name] = (self.faults[name][0], max(self.faults[name][1], time.time()))
                del self.stopped[name]
                self.log(f"the {name} replica's messages settled {time.time() - self.faults[name][0]:.1f} s after it")

    def _faults(self):
        # Each fault falls just after a day opens, while the accounts' new
        # allowance is going out.
        # Day 2: SIGTERM to the sending replica, started again at once; its
        # leases are given up and another replica takes them.
        self.sleep_until(self.day_at(2))
        victim = self.busiest()
        deadline = self.day_at(2, 3)
        while self.in_flight(victim) == "0" and time.time() < deadline:
            pass  # until its claim of the day is answered: the stop finds bodies on the wire
        t = time.time()
        flying = self.in_flight(victim)
        self.check.eq(victim.stop(), 0, "the replica stopped with SIGTERM exits 0")
        self.log(f"SIGTERM to the sending replica (pid {victim.proc.pid}) with {flying} messages in flight, "
                 f"{self.delivered()} delivered: stopped in {time.time() - t:.1f} s")
        # A clean stop writes what became of its messages: those that went
        # out are 'sent', the rest deferred for another replica to send.
        # Left 'sending', they wait for the stopped replica's lease to run
        # out and a rescue, and the ones that went out end 'unknown'.
        left = self.pg.psql("SELECT count(*), count(*) FILTER (WHERE body_started) FROM messages "
                            f"WHERE state = 'sending' AND claimed_by LIKE '%-{victim.proc.pid}-%'")[0]
        self.check.eq(left, ["0", "0"], "a replica stopped with SIGTERM leaves none of its messages 'sending' "
                      "(count, of which the body had started); scheduler_stop() writes nothing once stopping: "
                      "claimed messages not yet handed to the sender, and those the sender defers, stay 'sending' "
                      "until the replica's lease runs out and another rescues them (30 to 60 s later), and any that "
                      "went out end 'unknown'")
        # What it had claimed and not sent is due again at once for
        # another replica, not after a deferral's 10-minute backoff.
        late = self.pg.psql("SELECT count(*) FROM events WHERE kind = 'message.deferred' "
                            "AND data->>'reply' = 'relance stopped before sending' "
                            "AND (data->>'retry_at')::timestamptz > occurred_at")[0][0]
        self.check.eq(late, "0", "the messages a SIGTERM'd replica had claimed and not sent are due again at "
                      "once (message.deferred with a later retry_at: a deferral's backoff)")
        self.launch().wait_status("/readyz", 200, timeout=30)
        self.faults["sigterm"] = (t, time.time())
        self.stopped["sigterm"] = victim.proc.pid

        # Day 3: PostgreSQL restarted
        self.sleep_until(self.day_at(3))
        deadline = self.day_at(3, 3)
        while self.in_flight(besides=victim) == "0" and time.time() < deadline:
            pass
        t = time.time()
        self.log(f"PostgreSQL restarts with {self.in_flight(besides=victim)} messages of the day in flight, "
                 f"{self.delivered()} delivered")
        self.pg.stop()
        time.sleep(1)
        self.pg.start()
        self.faults["postgresql"] = (t, time.time())

        # Day 4: SIGKILL to the sending replica: its bodies on the wire are
        # lost with it; its leases run out LEASE_TTL_S later and the
        # others take its accounts and mailboxes over
        self.sleep_until(self.day_at(4))
        self.killed = self.busiest()
        deadline = self.day_at(4, 3)
        while self.in_flight(self.killed) == "0" and time.time() < deadline:
            pass
        flying = self.in_flight(self.killed)
        self.killed.proc.send_signal(signal.SIGKILL)
        self.killed.proc.wait()
        t = time.time()
        self.faults["sigkill"] = (t, t + LEASE_TTL_S)
        self.stopped["sigkill"] = self.killed.proc.pid
        self.log(f"SIGKILL to the sending replica (pid {self.killed.proc.pid}) with {flying} messages in flight, "
                 f"{self.delivered()} delivered")

    # ---- the checks

    def q(self, sql):
        return self.pg.psql(sql)

    def verify(self):
        began = time.time()
        self._verify()
        self.log(f"verified in {time.time() - began:.1f} s")

    def _verify(self):
        check = self.check
        for s in self.replicas:
            report = s.sanitizer_report()
            check.ok(report is None, f"no sanitizer report in replica pid {s.proc.pid}'s log", report or "")
        check.eq(self.reply_errors, [], "every reply was handed to Postfix")
        states = dict((k, int(v)) for k, v in self.q("SELECT state, count(*) FROM messages GROUP BY 1"))
        self.log(f"messages by state: {states}")
        check.eq(states.get("sending", 0), 0, "nothing is left sending")
        # a deferred follow-up whose enrollment a reply then stopped is
        # never sent: rightly
        live = self.q("SELECT count(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                      "WHERE m.state = 'deferred' AND e.state <> 'replied'")[0][0]
        check.eq(live, "0", "nothing is left deferred but follow-ups a reply stopped")
        check.eq(set(states) - {"sent", "unknown", "deferred"}, set(), "every message ended sent, unknown or deferred")
        spans = self.q(f"SELECT (created_at AT TIME ZONE 'UTC')::date, count(*), "
                       f"round(extract(epoch FROM min(created_at) - date_trunc('day', min(created_at))) / {self.speed}, 2), "
                       f"round(extract(epoch FROM max(created_at) - date_trunc('day', min(created_at))) / {self.speed}, 2) "
                       "FROM messages GROUP BY 1 ORDER BY 1")
        self.log("claims by day (count, first and last claim in real seconds after the day opened): " +
                 ", ".join(f"{d} {n} {a}-{b}" for d, n, a, b in spans))
        self._deliveries()
        self._caps()
        self._replies()
        self._leases()

    def _deliveries(self):
        check = self.check
        rows = self.q("SELECT message_id, recipient, step_id, state FROM messages")
        # the table keeps Message-IDs without their angle brackets
        by_mid = {f"<{mid}>": (rcpt, step, state) for mid, rcpt, step, state in rows}
        in_boxes = collections.Counter()      # copies of each Message-ID in the prospects' mailboxes
        per_step = collections.Counter()      # distinct Message-IDs per (contact, step)
        strays = []
        for i in range(self.n):
            seen = set()
            for raw in self.ms.messages(contact(i)):
                mid = str(harness.parsed(raw)["Message-ID"])
                if mid not in by_mid or by_mid[mid][0] != contact(i):
                    strays.append(f"{contact(i)}: {mid}")
                    continue
                in_boxes[mid] += 1
                if mid not in seen:
                    seen.add(mid)
                    per_step[(contact(i), by_mid[mid][1])] += 1
        twice = {k: v for k, v in per_step.items() if v > 1}
        check.eq(twice, {}, "no (contact, step) arrived twice in the mailboxes")
        check.eq({m: c for m, c in in_boxes.items() if c > 1}, {}, "no message is in a mailbox twice")
        check.eq(strays[:5], [], f"every message in a prospect's mailbox is one of the messages table's "
                                 f"({len(strays)} others)")
        # Postfix's cleanup logs each message it accepted from a client
        # once, with its Message-ID: what relance handed over
        accepted = collections.Counter(re.findall(r"cleanup\[\d+\]: [0-9A-F]+: message-id=(<[^>]*>)",
                                                  self.ms.smtp_log()))
        ours = {m: c for m, c in accepted.items() if m in by_mid}
        check.eq({m: c for m, c in ours.items() if c > 1}, {}, "Postfix accepted each of relance's messages once")
        step_accepts = collections.Counter()
        for mid, c in ours.items():
            step_accepts[by_mid[mid][:2]] += c
        check.eq({k: v for k, v in step_accepts.items() if v > 1}, {},
                 "Postfix accepted one message per (contact, step)")
        lost = [mid for mid, (_, _, state) in by_mid.items() if state == "sent" and in_boxes[mid] == 0]
        check.eq(lost[:5], [], f"every message recorded sent is in its mailbox ({len(lost)} missing)")
        early = [mid for mid, (_, _, state) in by_mid.items() if state == "deferred" and in_boxes[mid] > 0]
        check.eq(early[:5], [], "no message left deferred arrived")
        unknown = sorted(mid for mid, (_, _, state) in by_mid.items() if state == "unknown")
        absent = [mid for mid in unknown if in_boxes[mid] == 0]
        self.log(f"{len(ours)} messages accepted by Postfix; {len(unknown)} unknown, {len(absent)} of them never arrived")
        r = relance("messages", "list", "--state", "unknown", "--limit", "100000", env=self.env)
        check.ok(len(r.stdout.splitlines()) == len(unknown), "messages list --state unknown lists each unknown message",
                 f"{len(r.stdout.splitlines())} lines for {len(unknown)}: {r.stdout[-500:]}{r.stderr}")
        enrolls = dict((k, int(v)) for k, v in self.q("SELECT state, count(*) FROM enrollments GROUP BY 1"))
        self.log(f"enrollments by state: {enrolls}")
        check.eq(set(enrolls) - {"completed", "replied"}, set(), "every enrollment completed or was replied to")

    def _caps(self):
        """Never above the cap (relance's count of the day, and what went
        out); exactly the cap on every (account, day) that had demand left
        over at its end and that no fault touched."""
        check = self.check
        # The day a message went out is known when it was claimed once:
        # created_at. One claimed again after a deferral keeps its first
        # claim's time only (and a rescued one's sent_at is the rescue's),
        # so those are counted in the account's total, not by day.
        once = ("WITH out AS (SELECT m.*, (m.created_at AT TIME ZONE 'UTC')::date AS day FROM messages m "
                "WHERE m.state IN ('sent', 'unknown') AND m.attempts = 1) ")
        ledger = {(a, d): int(n) for a, d, n in self.q("SELECT account_id, day, sent FROM account_days")}
        days = {(a, d): int(n) for a, d, n in self.q(once + "SELECT account_id, day, count(*) FROM out GROUP BY 1, 2")}
        check.eq({k: v for k, v in ledger.items() if v > self.cap}, {},
                 f"no account's count of the day (account_days) went above its cap of {self.cap}")
        check.eq({k: v for k, v in days.items() if v > self.cap}, {},
                 f"no account sent more than {self.cap} messages a day")
        # relance_step_deferred gives a count back to the day of the
        # message's first claim (created_at) even when the deferral ends a
        # later claim: that later day keeps the count, the first loses it
        check.eq({k: (ledger.get(k, 0), v) for k, v in days.items() if ledger.get(k, 0) < v}, {},
                 "each account's count of the day is at least what it sent that day (count, sent); less: a "
                 "message deferred twice gave its count back to the day of its first claim")
        totals = self.q("SELECT a.id, (SELECT coalesce(sum(sent), 0) FROM account_days d WHERE d.account_id = a.id), "
                        "(SELECT count(*) FROM messages m WHERE m.account_id = a.id AND m.state IN ('sent', 'unknown')) "
                        "FROM accounts a WHERE a.configured")
        check.eq([t for t in totals if int(t[1]) < int(t[2])], [],
                 "each account's days counted every message it sent (account, counted, sent)")
        accounts = [a for (a,) in self.q("SELECT id FROM accounts WHERE configured ORDER BY id")]
        last_day = max(d for _, d in ledger)
        series = f"generate_series(DATE '{START.date()}', '{last_day}'::date, interval '1 day') d"
        # demand left over at the end of a day: a first step (all are due
        # from START) first claimed on a later day, or a follow-up of the
        # account due that day (its first step went out a day earlier, 2
        # hours before the day ended at the latest) first claimed later
        first_later = {d for (d,) in self.q(
            f"SELECT DISTINCT d::date FROM {series} WHERE EXISTS (SELECT 1 FROM messages m WHERE m.position = 0 "
            "AND (m.created_at AT TIME ZONE 'UTC')::date > d::date)")}
        follow_later = {(a, d) for a, d in self.q(
            "SELECT DISTINCT f.account_id, d::date FROM messages f JOIN messages o ON o.enrollment_id = f.enrollment_id "
            f"AND o.position = 0, {series} WHERE f.position = 1 "
            "AND o.sent_at + interval '1 day' <= (d::date + interval '22 hours') AT TIME ZONE 'UTC' "
            "AND (f.created_at AT TIME ZONE 'UTC')::date > d::date")}
        judged, short = 0, []
        day = START.date()
        while str(day) <= last_day:
            n = (day - START.date()).days + 1
            span = (self.day_at(n), self.day_at(n + 1))
            for a in accounts:
                if str(day) not in first_later and (a, str(day)) not in follow_later:
                    continue  # no demand left over
                if self._disturbed(f"account:{a}", span):
                    continue
                judged += 1
                if ledger.get((a, str(day)), 0) != self.cap:
                    short.append(f"account {a} on {day}: {ledger.get((a, str(day)), 0)}")
            day += datetime.timedelta(days=1)
        check.eq(short, [], f"every account reached its cap of {self.cap} on each day with demand left that no fault "
                            f"touched ({judged} account-days judged)")
        check.ok(judged >= len(accounts), "the caps were judged on at least one day for each account",
                 f"{judged} account-days")

    def _disturbed(self, lease, span):
        """Whether a fault, or a time without a live holder of the lease,
        falls in the real-time span [a, b) (a day of the test clock)."""
        a, b = span
        for name in ("sigterm", "postgresql", "sigkill"):
            fa, fb = self.faults.get(name, (0, 0))
            if fa < b and fb + LEASE_EVERY_S > a:
                return True
        if self.killed is not None:
            fa, fb = self.faults["sigkill"]
            held = self.q(f"SELECT holder FROM lease_history WHERE name = '{lease}' AND since < to_timestamp({b}) "
                          f"AND until > to_timestamp({a})")
            if any(f"-{self.killed.proc.pid}-" in h for (h,) in held) and fa < b:
                return True
        return False

    def _replies(self):
        check = self.check
        # the replicas' clocks agree to the time a process takes to start
        # (times the speed): a claim is "after" the reply past that margin
        margin = f"{0.5 * self.speed:.0f} seconds"
        late = self.q("SELECT c.email, m.step_id FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                      "JOIN messages m ON m.enrollment_id = e.id WHERE e.state = 'replied' "
                      f"AND m.created_at > e.state_changed_at + interval '{margin}'")
        check.eq(late[:5], [], f"no follow-up was claimed after its reply was recorded ({len(late)})")
        on_wire = self.q("SELECT count(*) FROM enrollments e JOIN messages m ON m.enrollment_id = e.id "
                         "WHERE e.state = 'replied' AND m.state = 'sent' AND m.sent_at > e.state_changed_at")[0][0]
        self.log(f"follow-ups whose outcome came after the reply (on the wire when it was recorded): {on_wire}")
        replied = {email for (email,) in self.q("SELECT c.email FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                                                "WHERE e.state = 'replied'")}
        ours = {contact(i) for i in self.replied}
        check.eq(sorted(replied - ours)[:5], [], "only prospects who replied are 'replied'")
        # a reply that came after the follow-up went leaves the enrollment
        # completed; every other one stopped it
        done_first = {email for (email,) in self.q(
            "SELECT c.email FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE e.state = 'completed'")}
        check.eq(sorted(ours - replied - done_first)[:5], [], "every reply was read and recorded")
        self.log(f"{len(ours)} replies sent, {len(replied)} enrollments stopped by one")
        check.ok(len(replied) >= len(ours) // 2, "most replies stopped their enrollment before the follow-up",
                 f"{len(replied)} of {len(ours)}")

    def _leases(self):
        """One holder at a time for every mailbox and every account, from
        lease_history; a lease without a live holder only while the killed
        replica's ran out, or for one renewal period after a release."""
        check = self.check
        rows = self.q("SELECT name, holder, extract(epoch FROM since), extract(epoch FROM until), released "
                      "FROM lease_history WHERE name LIKE 'watch:%' OR name LIKE 'account:%' ORDER BY name, since")
        tenures = collections.defaultdict(list)
        for name, holder, since, until, released in rows:
            tenures[name].append((float(since), float(until), holder, released == "t"))
        mailboxes = [n for n in tenures if n.startswith("watch:")]
        check.eq(len(mailboxes), len(ACCOUNTS), "every mailbox has a lease history")
        overlaps, gaps = [], []
        pg = self.faults.get("postgresql", (0, 0))
        for name, ts in tenures.items():
            for (s1, u1, h1, _), (s2, u2, h2, _) in zip(ts, ts[1:]):
                if s2 < u1 and h1 != h2:
                    overlaps.append(f"{name}: {h1} until {u1:.3f}, {h2} from {s2:.3f}")
            covered, last = ts[0][0], ts[0]
            for t in ts:
                since = t[0]
                if since > covered + LEASE_EVERY_S + 1:
                    dead = self.killed is not None and f"-{self.killed.proc.pid}-" in last[2] and not last[3]
                    outage = pg[0] - 1 < since and covered < pg[1] + 1
                    if not dead and not outage:
                        gaps.append(f"{name}: no holder from {covered:.3f} to {since:.3f} after {last[2]}")
                if t[1] > covered:
                    covered, last = t[1], t
        check.eq(overlaps[:5], [], f"no two replicas held a lease at once ({len(overlaps)} overlaps)")
        check.eq(gaps[:5], [], f"every lease had a holder but while the killed replica's ran out ({len(gaps)} gaps)")
        watchers = collections.Counter()
        for name in mailboxes:
            watchers[len({h for _, _, h, _ in tenures[name]})] += 1
        self.log(f"mailboxes by how many replicas watched them in turn: {dict(sorted(watchers.items()))}")
        taken = [n for n in mailboxes if any(f"-{self.killed.proc.pid}-" in h for _, _, h, _ in tenures[n])] \
            if self.killed else []
        moved = [n for n in taken if len({h for _, _, h, _ in tenures[n]}) > 1]
        check.eq(len(moved), len(taken), "the killed replica's mailboxes were taken over by another replica")


def main():
    ap = argparse.ArgumentParser(description="The chaos run of issue 22 at any size (see the file's docstring).")
    ap.add_argument("--enrollments", type=int, default=2000)
    args = ap.parse_args()
    if not os.access(harness.RELANCE, os.X_OK):
        print(f"no relance binary at {harness.RELANCE}: set RELANCE_BIN", file=sys.stderr)
        return 2
    import mailservers
    began = time.time()
    pg = harness.Postgres()
    ms = mailservers.MailServers(users=ACCOUNTS)
    check = harness.Checks()
    run = Chaos(args.enrollments, pg, ms, harness.short_tempdir("rchaos"), harness.Serve, check)
    try:
        run.setup()
        run.run()
        run.verify()
    finally:
        for s in run.replicas:
            s.kill()
        ms.stop()
        pg.destroy()
    print(f"{check.passed} checks passed, {check.failed} failed, in {time.time() - began:.0f} s")
    for f in check.failures:
        print(f"FAIL {f}")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
