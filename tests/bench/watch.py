"""The mailbox-watching benchmark for tests/bench/run (issue 9, scenario
3): how soon `relance serve` notices a reply in one of many mailboxes, how
many IMAP connections it holds meanwhile, and what a mailbox pass costs it
in CPU, with the bounds measured beside them.

Set-up: a private Dovecot (tests/mailservers.py; it starts Postfix too,
unused here) with one login per sender account; a relance configuration
with `transport: smtp` and, per account of one pool, an `smtp` URL
(nothing is sent: no enrollment is due) and an `imap` URL on that Dovecot;
the database holds, per account, one active enrollment in a two-step
sequence (stop_on: reply) whose first message went out from that account a
day ago and whose next step is a month away.

One `relance serve` (real clock) watches every mailbox for the whole
scenario. Once each mailbox has had its first pass (mailbox_state.
checked_at), the rounds follow. A round is a measured window of three
watch intervals, then the bound's loop. In the window, replies to the
first step (From the contact, In-Reply-To our Message-ID) are dropped into
mailboxes no earlier round wrote to, at random moments over the first two
intervals (MailServers.deliver renames the file into the Maildir's new/:
the moment it becomes visible over IMAP); relance's IMAP connections (its
sockets to Dovecot's port, /proc/PID/fd against a sock_diag dump) are
sampled every 0.1 s; its CPU (utime + stime, /proc/PID/stat) is read at
both ends; its passes are counted: every pass's EXAMINE stamps
mailbox_state.checked_at, polled every second (less than any interval, so
a mailbox cannot be read twice between polls): each change is one pass.
After the last round the replies are waited for; a reply's latency is its
inbound_messages.detected_at (relance's real clock) minus its drop, and
its record (effect, how it matched, the enrollment's state) is kept.

The bound of the CPU figure, in the same rounds: a plain Python imaplib
client doing, mailbox after mailbox, what a pass must at least do when
there are more mailboxes than imap_max_connections (connections cannot
all be held): connect, LOGIN, STATUS INBOX (UIDNEXT UIDVALIDITY), LOGOUT;
its process CPU per mailbox. Python is no fast IMAP client: relance, in C,
doing that and its bookkeeping should cost no more.

Benchmark settings: the accounts use `tls: none` (plaintext IMAP on
127.0.0.1, which Dovecot allows: disable_plaintext_auth = no) so that the
figures are relance's, not TLS handshakes'; one password for every
mailbox; imap_max_connections is set explicitly (to the default, 20).

Only Python's standard library; must run as root (MailServers needs it)."""
import imaplib
import os
import random
import re
import socket
import statistics
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

DOMAIN = "watch.bench.example"
PROSPECTS = "prospects.example"
SEQUENCE_NAME = "bench-watch"
PASSWORD_ENV = "BENCH_MAILBOX_PASSWORD"
PASSWORD = "bench-mailbox-pw"
MAX_CONNECTIONS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

SEQUENCE = f"""name: {SEQUENCE_NAME}
description: The watch benchmark's sequence; nothing of it is due while the benchmark runs
sender_pool: bench
stop_on: [reply, bounce, unsubscribe]
schedule:
  timezone: UTC
  window: "00:00-24:00"
  days: [mon, tue, wed, thu, fri, sat, sun]
  jitter: 0
steps:
  - id: intro
    subject: "{{{{company}}}} and faster follow-ups"
    body: "Hi {{{{first_name | there}}}}, a short note."
  - id: bump
    wait: 30 days
    body: "Bumping this, {{{{first_name | there}}}}."
"""


def account_email(i):
    """The i-th benchmark mailbox (0-based)."""
    return f"sdr{i + 1}@{DOMAIN}"


def contact_email(i):
    """The contact mailed from the i-th mailbox, who replies."""
    return f"p{i + 1}@{PROSPECTS}"


def first_message_id(i):
    return f"watch{i + 1}.intro@{DOMAIN}"


def mail_servers(mailboxes):
    """Dovecot (and Postfix) on 127.0.0.1 with one login per mailbox."""
    import mailservers
    return mailservers.MailServers(users=[(account_email(i), PASSWORD) for i in range(mailboxes)])


def write_config(path, ms, mailboxes, interval, max_connections=MAX_CONNECTIONS):
    """relance's configuration: `mailboxes` accounts in pool 'bench', each
    watched every `interval` seconds over plaintext IMAP on ms."""
    lines = ["transport: smtp", f"imap_max_connections: {max_connections}", "pools:", "  bench:", "    accounts:"]
    for i in range(mailboxes):
        lines += [f"      - email: {account_email(i)}",
                  f"        smtp: smtp://127.0.0.1:{ms.smtp_port}/relance.bench",
                  f"        imap: imap://127.0.0.1:{ms.imap_port}",
                  "        tls: none",
                  f"        password_env: {PASSWORD_ENV}",
                  f"        watch_interval: {interval}s"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def load(db, env, workdir, mailboxes):
    """Syncs the accounts, applies the sequence and gives every account
    one contact with an active enrollment whose first step went out from
    it a day ago (its next step a month away: nothing is due)."""
    seq = os.path.join(workdir, "bench-watch.yaml")
    with open(seq, "w") as f:
        f.write(SEQUENCE)
    for args in (("accounts", "sync"), ("apply", seq)):
        r = harness.relance(*args, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"relance {' '.join(args)} failed: {r.stdout}{r.stderr}")
    db.psql(f"""
        INSERT INTO contacts (id, email, first_name, company)
        SELECT i, 'p' || i || '@{PROSPECTS}', 'First' || i, 'Company ' || i FROM generate_series(1, {mailboxes}) i;
        SELECT setval('contacts_id_seq', {mailboxes});
        INSERT INTO enrollments (id, contact_id, sequence_id, version, state, state_reason, state_changed_at,
                                 position, account_id, next_send_at, jitter_r, created_at)
        SELECT i, i, s.id, s.current_version, 'active', 'enrolled', now() - interval '1 day', 1, a.id,
               now() + interval '30 days', 0, now() - interval '1 day'
          FROM generate_series(1, {mailboxes}) i
          JOIN accounts a ON a.email = 'sdr' || i || '@{DOMAIN}'
          CROSS JOIN sequences s WHERE s.name = '{SEQUENCE_NAME}';
        SELECT setval('enrollments_id_seq', {mailboxes});
        INSERT INTO messages (enrollment_id, position, step_id, state, message_id, sender, recipient, subject,
                              attempts, reply, claimed_by, body_started, account_id, created_at, sent_at)
        SELECT e.id, 0, 'intro', 'sent', 'watch' || e.id || '.intro@{DOMAIN}', a.email, c.email,
               c.company || ' and faster follow-ups', 1, '250 2.0.0 Ok: queued', 'bench', true, a.id,
               now() - interval '1 day', now() - interval '1 day'
          FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN accounts a ON a.id = e.account_id;
    """)
    n = int(db.psql("SELECT count(*) FROM enrollments e JOIN messages m ON m.enrollment_id = e.id "
                    "WHERE e.state = 'active'")[0][0])
    if n != mailboxes:
        raise RuntimeError(f"loaded {n} enrollments with a sent first step, expected {mailboxes}")
    db.psql("VACUUM (FREEZE, ANALYZE)")


def reply_message(i, message_id):
    """The contact's reply to the first step of mailbox i."""
    ours = first_message_id(i)
    return (f"From: First {i + 1} <{contact_email(i)}>\r\n"
            f"To: {account_email(i)}\r\n"
            f"Subject: Re: Company {i + 1} and faster follow-ups\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <{message_id}>\r\n"
            f"In-Reply-To: <{ours}>\r\nReferences: <{ours}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "Thanks for the note. Yes, let's talk: Thursday at 3 pm works for me.\r\n\r\n"
            f"First {i + 1}\r\n")


# ---------------------------------------------------------------- sampling

def cpu_seconds(pid):
    """utime + stime of pid in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# Netlink sock_diag (linux/sock_diag.h, linux/inet_diag.h): a dump of the
# machine's TCP sockets with their ports, state and inode, filtered by
# state in the kernel. Reading /proc/net/tcp instead costs milliseconds
# per read once a thousand logins a minute leave their TIME_WAIT entries
# there: the sampler would steal the CPU it is measuring.
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_STATES = ("?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
              "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV")
# every state but TIME_WAIT (no process holds it) and LISTEN
HELD_STATES = sum(1 << i for i in range(1, len(TCP_STATES)) if TCP_STATES[i] not in ("TIME_WAIT", "LISTEN"))


def tcp_sockets(states=HELD_STATES):
    """(state, local port, remote port, inode) of every IPv4 TCP socket
    in `states` (a bit mask of TCP_STATES' indexes), from one netlink
    sock_diag dump."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        req = struct.pack("=BBBBI48x", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, states)
        nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
        out = []
        while True:
            data = nl.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    raise OSError("sock_diag dump failed")
                body = off + 16
                state = data[body + 1]
                sport, dport = struct.unpack_from(">HH", data, body + 4)
                inode = struct.unpack_from("=I", data, body + 68)[0]
                out.append((state, sport, dport, inode))
                off += (length + 3) & ~3
            if not data:
                return out


def socket_inodes(pid):
    """The inodes of pid's open sockets."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def imap_connections(pid, port):
    """relance's TCP sockets to 127.0.0.1:port (any state a process
    holds): its open sockets' inodes matched against a sock_diag dump.
    Returns the list of their states' names."""
    inodes = socket_inodes(pid)
    return [TCP_STATES[st] for st, _, dport, inode in tcp_sockets() if dport == port and inode in inodes]


class ConnectionSampler:
    """Samples imap_connections(pid, port) every `every` seconds from a
    thread; .peak is the largest count seen (.peak_states their states),
    .samples how many samples were taken."""

    def __init__(self, pid, port, every=0.1):
        self.pid, self.port, self.every = pid, port, every
        self.peak, self.peak_states, self.samples = 0, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            states = imap_connections(self.pid, self.port)
            if len(states) > self.peak:
                self.peak, self.peak_states = len(states), states
            self.samples += 1
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


class PassCounter:
    """Counts the mailbox passes relance makes: every pass's EXAMINE stamps
    mailbox_state.checked_at; polled every `every` seconds (less than any
    watch interval, so a mailbox cannot be checked twice between polls),
    each change of a row's stamp is one pass. .gaps holds the seconds
    between a mailbox's consecutive passes (its effective interval)."""

    def __init__(self, db, every=1.0):
        self.db, self.every = db, every
        self.last = self._read()
        self.passes, self.gaps, self.read = 0, [], set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self):
        return {k: float(v) for k, v in self.db.psql("SELECT account_id, extract(epoch FROM checked_at) "
                                                      "FROM mailbox_state WHERE checked_at IS NOT NULL")}

    def _poll(self):
        now = self._read()
        for k, v in now.items():
            before = self.last.get(k)
            if before != v:
                self.passes += 1
                self.read.add(k)
                if before is not None:
                    self.gaps.append(v - before)
        self.last = now

    def _run(self):
        while not self._stop.wait(self.every):
            self._poll()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._poll()
        return self.passes


def percentile(xs, p):
    """The p-th percentile (0-100) of xs, linearly interpolated."""
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# ---------------------------------------------------------------- relance

class Watching:
    """One `relance serve` watching every mailbox (real clock: detected_at
    must be comparable with the drops' times)."""

    def __init__(self, db, env, ms, config, mailboxes):
        e = dict(env, RELANCE_CONFIG=config)
        e[PASSWORD_ENV] = PASSWORD
        e.pop("RELANCE_TEST_CLOCK", None)
        self.db, self.ms, self.mailboxes = db, ms, mailboxes
        self.started = time.time()
        self.serve = harness.Serve(e)
        self.pid = self.serve.proc.pid
        self.backends = []

    def check(self):
        if self.serve.proc.poll() is not None:
            raise RuntimeError(f"relance serve exited {self.serve.proc.returncode}: {self.serve.output()[-2000:]}")

    def passed(self, since=None):
        """How many mailboxes had a pass (an EXAMINE) since `since` (epoch),
        by default since relance started."""
        return int(self.db.psql(f"SELECT count(*) FROM mailbox_state "
                                f"WHERE checked_at >= to_timestamp({since or self.started})")[0][0])

    def wait_first_passes(self, timeout):
        """Waits until every mailbox had its first pass of this run, or
        timeout seconds; returns (mailboxes passed, seconds)."""
        deadline = self.started + timeout
        n = self.passed()
        while n < self.mailboxes and time.time() < deadline:
            self.check()
            time.sleep(0.5)
            n = self.passed()
        # relance's PostgreSQL backends: connected by now
        self.backends = [int(r[0]) for r in self.db.psql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'")]
        return n, time.time() - self.started

    def window(self, chosen, interval):
        """One round's measured window of 3 intervals: a reply into each
        of `chosen` (mailbox indexes) at random moments over the first
        two. Returns a dict: dropped ({Message-ID: (mailbox, drop time)}),
        cpu and pg_cpu (seconds), passes, gaps, window (seconds),
        peak_connections, peak_states, logins."""
        rng = random.Random(len(chosen) * 7919 + chosen[0])
        offsets = sorted(rng.uniform(0, 2 * interval) for _ in chosen)
        logins0 = self.ms.imap_logins()
        counter = PassCounter(self.db)
        sampler = ConnectionSampler(self.pid, self.ms.imap_port)
        pg0 = sum(cpu_seconds(b) or 0 for b in self.backends)
        cpu0 = cpu_seconds(self.pid)
        t0 = time.time()
        dropped = {}
        for i, off in zip(chosen, offsets):
            time.sleep(max(0.0, t0 + off - time.time()))
            mid = f"r{os.urandom(6).hex()}.{i + 1}@{PROSPECTS}"
            self.ms.deliver(account_email(i), reply_message(i, mid))
            dropped[mid] = (i, time.time())
        time.sleep(max(0.0, t0 + 3 * interval - time.time()))
        cpu1 = cpu_seconds(self.pid)
        pg1 = sum(cpu_seconds(b) or 0 for b in self.backends)
        seconds = time.time() - t0
        sampler.stop()
        counter.stop()
        self.check()
        if cpu0 is None or cpu1 is None:
            raise RuntimeError("relance serve went away during the window")
        return {"dropped": dropped, "cpu": cpu1 - cpu0, "pg_cpu": pg1 - pg0, "passes": counter.passes,
                "gaps": counter.gaps, "read": len(counter.read), "window": seconds, "peak_connections": sampler.peak,
                "peak_states": sampler.peak_states, "logins": self.ms.imap_logins() - logins0}

    def detections(self, dropped, timeout):
        """Waits up to timeout seconds for every reply in dropped to be
        recorded; returns {Message-ID: (detected_at epoch, effect,
        matched_by, enrollment state)} for those that were."""
        ids = ",".join(f"'{m}'" for m in dropped)
        sql = ("SELECT i.message_id, extract(epoch FROM i.detected_at), i.effect, i.matched_by, e.state "
               "FROM inbound_messages i LEFT JOIN enrollments e ON e.id = i.enrollment_id "
               f"WHERE i.message_id IN ({ids})")
        deadline = time.time() + timeout
        while True:
            rows = self.db.psql(sql)
            if len(rows) >= len(dropped) or time.time() >= deadline:
                return {r[0]: (float(r[1]), r[2], r[3], r[4]) for r in rows}
            self.check()
            time.sleep(0.5)

    def kill(self):
        self.serve.kill()

    def stop(self):
        code = self.serve.stop() if self.serve.proc.poll() is None else self.serve.proc.returncode
        out = self.serve.output()
        if code != 0 or re.search(r"AddressSanitizer|LeakSanitizer|runtime error:", out):
            raise RuntimeError(f"relance serve stopped with {code}: {out[-2000:]}")


# ---------------------------------------------------------------- the bound

def imaplib_pass_cpu(port, mailboxes):
    """The bound: a bare Python imaplib client, for each of `mailboxes`
    (indexes) in turn, connects, logs in, asks STATUS INBOX (UIDNEXT
    UIDVALIDITY) and logs out. Returns (CPU seconds of this process, wall
    seconds) per mailbox. The process's other threads must be idle."""
    c0, w0 = time.process_time(), time.monotonic()
    for i in mailboxes:
        im = imaplib.IMAP4("127.0.0.1", port)
        im.login(account_email(i), PASSWORD)
        typ, data = im.status("INBOX", "(UIDNEXT UIDVALIDITY)")
        if typ != "OK" or b"UIDNEXT" not in data[0]:
            raise RuntimeError(f"imaplib STATUS of {account_email(i)}: {typ} {data}")
        im.logout()
    return (time.process_time() - c0) / len(mailboxes), (time.monotonic() - w0) / len(mailboxes)


def imaplib_ceiling(port, mailboxes, parallel, ops):
    """For the note: how many connect+LOGIN+STATUS+LOGOUT a second the
    server gives `parallel` imaplib clients (threads) together, over `ops`
    of them spread over the mailboxes: the most passes a second any client
    can make when every pass must log in."""
    errors = []

    def client(k):
        try:
            for j in range(ops // parallel):
                i = (k * (ops // parallel) + j) % mailboxes
                im = imaplib.IMAP4("127.0.0.1", port)
                im.login(account_email(i), PASSWORD)
                im.status("INBOX", "(UIDNEXT UIDVALIDITY)")
                im.logout()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(parallel)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"imaplib clients failed: {errors[0]}")
    return (ops // parallel) * parallel / took


def imaplib_status_cpu(port, count):
    """For the note: STATUS alone on one held connection, `count` times;
    CPU seconds per STATUS."""
    im = imaplib.IMAP4("127.0.0.1", port)
    im.login(account_email(0), PASSWORD)
    c0 = time.process_time()
    for _ in range(count):
        typ, _ = im.status("INBOX", "(UIDNEXT UIDVALIDITY)")
        if typ != "OK":
            raise RuntimeError("imaplib STATUS failed")
    cpu = (time.process_time() - c0) / count
    im.logout()
    return cpu


BOUND_MAILBOXES = 100  # per round: enough for a stable mean, short enough to interleave


def latencies(res, seen, t_end):
    """Fills res (a window) with "latencies" (seconds, one per reply) and
    "effects" ({"effect/matched_by/enrollment state": count}) from seen
    (Watching.detections). A reply never seen counts as seen at t_end,
    when the wait gave up: a latency it exceeds."""
    res["latencies"], res["effects"] = [], {}
    for mid, (i, t_drop) in res["dropped"].items():
        if mid in seen:
            detected, effect, matched_by, state = seen[mid]
            res["latencies"].append(detected - t_drop)
            key = f"{effect}/{matched_by or '-'}/{state or '-'}"
        else:
            res["latencies"].append(t_end - t_drop)
            key = "undetected"
        res["effects"][key] = res["effects"].get(key, 0) + 1


def window_line(res):
    """A window's figures for the progress log."""
    gaps = res["gaps"] or [0]
    return (f"{len(res['dropped'])} replies dropped; {res['passes']:,} passes of {res['read']:,} mailboxes in "
            f"{res['window']:.1f}s (a mailbox every {statistics.median(gaps):.1f}s, at most {max(gaps):.1f}s), "
            f"CPU {res['cpu']:.2f}s = {1000 * res['cpu'] / max(1, res['passes']):.3f} ms/pass, PostgreSQL "
            f"{res['pg_cpu']:.2f}s; peak {res['peak_connections']} IMAP connections "
            f"({', '.join(sorted(set(res['peak_states'])))}); {res['logins']:,} logins")


def isolated(ctx, w, db, chosen, interval):
    """The diagnosis: every account paused (relance_claim_account then
    returns at once, so the scheduler's claims stop competing with the
    watcher for relance's database connection; the watcher goes on), the
    watcher catches up, then one window like a round's. Returns the
    window with its latencies, and "catch_up" (seconds until every
    mailbox had a pass after the pause, or None)."""
    db.psql("UPDATE accounts SET state = 'paused', state_reason = 'bench: out of the scheduler''s way', "
            "state_changed_at = now()")
    since = time.time()
    deadline = since + 30
    while w.passed(since) < w.mailboxes and time.time() < deadline:
        w.check()
        time.sleep(0.5)
    catch_up = time.time() - since if w.passed(since) >= w.mailboxes else None
    res = w.window(chosen, interval)
    seen = w.detections(res["dropped"], 2 * interval + 10)
    latencies(res, seen, time.time())
    res["catch_up"] = catch_up
    ctx.log(f"watch_latency diagnosis (accounts paused): caught up in "
            f"{'more than 30' if catch_up is None else f'{catch_up:.1f}'}s; {window_line(res)}")
    return res


def prepare(db, env, mailboxes, interval, max_connections, prefix):
    """Dovecot with `mailboxes` logins, relance's configuration for them
    and the database loaded (load()); returns (ms, config, cenv), cenv the
    environment that runs relance with that configuration."""
    work = harness.short_tempdir(prefix)
    ms = mail_servers(mailboxes)
    config = os.path.join(work, "relance.yaml")
    write_config(config, ms, mailboxes, interval, max_connections=max_connections)
    cenv = dict(env, RELANCE_CONFIG=config)
    cenv[PASSWORD_ENV] = PASSWORD
    load(db, cenv, work, mailboxes)
    return ms, config, cenv


def wait_detections(w, got, interval):
    """After the last round: waits for every reply of got["rounds"] to be
    recorded (2 intervals + 20 s at most); sets got["wait"]; returns
    (dropped, seen, t_end)."""
    dropped = {}
    for res in got["rounds"]:
        dropped.update(res["dropped"])
    t1 = time.time()
    seen = w.detections(dropped, 2 * interval + 20)
    t_end = time.time()
    got["wait"] = t_end - t1
    return dropped, seen, t_end


def run(ctx, db, env, mailboxes, replies, interval, diagnose):
    """The whole scenario: servers, data, one relance serve, ctx.rounds
    interleaved rounds (a measured window, then the bound's loop), the
    replies' detections, and with `diagnose` the isolated() window.
    Returns {"rounds": [windows, with "latencies" and "effects"], "bound":
    [CPU s per mailbox], "bound_wall", "held": [CPU s per STATUS on a held
    connection], "first_pass": (mailboxes, seconds), "undetected": count,
    "wait": seconds, "never_read": mailboxes never read, "isolated": a
    window or None, "ceiling": imaplib_ceiling() with `diagnose`}."""
    if mailboxes <= MAX_CONNECTIONS:
        raise ValueError("the bound assumes more mailboxes than imap_max_connections")
    t0 = time.monotonic()
    ms, config, cenv = prepare(db, env, mailboxes, interval, MAX_CONNECTIONS, "rbw")
    ctx.log(f"watch_latency: Dovecot with {mailboxes:,} mailboxes and the data ready in {time.monotonic() - t0:.1f}s")
    rng = random.Random(20260302)
    # each window's replies go to mailboxes no earlier one wrote to (while
    # there are), so every reply finds its enrollment still active
    order = list(range(mailboxes))
    rng.shuffle(order)
    order *= -(-(ctx.rounds + 1) * replies // mailboxes)
    per = min(mailboxes, BOUND_MAILBOXES)
    got = {"rounds": [], "bound": [], "bound_wall": [], "held": [], "isolated": None, "ceiling": None}
    w = Watching(db, cenv, ms, config, mailboxes)
    try:
        first_timeout = 30 if ctx.quick else 60
        got["first_pass"] = w.wait_first_passes(first_timeout)
        n, secs = got["first_pass"]
        ctx.log(f"watch_latency: {n:,} of {mailboxes:,} mailboxes had their first pass within {secs:.1f}s")
        if n < mailboxes:
            ctx.note(f"watch_latency: only {n:,} of {mailboxes:,} mailboxes had a first pass within "
                     f"{first_timeout}s of relance's start; the rounds started anyway")
        for rnd in range(ctx.rounds):
            tag = f"watch_latency round {rnd + 1}/{ctx.rounds}"
            res = w.window(order[rnd * replies:(rnd + 1) * replies], interval)
            got["rounds"].append(res)
            ctx.log(f"{tag} relance: {window_line(res)}")
            sample = [(rnd * per + k) % mailboxes for k in range(per)]
            cpu, wall = imaplib_pass_cpu(ms.imap_port, sample)
            got["bound"].append(cpu)
            got["bound_wall"].append(wall)
            got["held"].append(imaplib_status_cpu(ms.imap_port, per))
            ctx.log(f"{tag} imaplib: {1000 * cpu:.3f} ms CPU per login+STATUS+LOGOUT ({1000 * wall:.2f} ms wall) "
                    f"over {per} mailboxes; {1000 * got['held'][-1]:.3f} ms per STATUS on a held connection")
        dropped, seen, t_end = wait_detections(w, got, interval)
        got["never_read"] = w.mailboxes - w.passed(w.started)
        if diagnose:
            got["isolated"] = isolated(ctx, w, db, order[ctx.rounds * replies:(ctx.rounds + 1) * replies], interval)
        w.stop()
        if diagnose:
            got["ceiling"] = imaplib_ceiling(ms.imap_port, mailboxes, MAX_CONNECTIONS, 20 * MAX_CONNECTIONS)
            ctx.log(f"watch_latency: {MAX_CONNECTIONS} parallel imaplib clients made {got['ceiling']:.0f} "
                    "connect+LOGIN+STATUS+LOGOUT a second")
    finally:
        w.kill()
        ms.stop()
    got["undetected"] = len(dropped) - len(seen)
    for res in got["rounds"]:
        latencies(res, seen, t_end)
    return got


def run_held(ctx, db, env, mailboxes, replies, interval):
    """The held-connection scenario (issue 14): imap_max_connections is
    the number of mailboxes, so relance holds one connection per mailbox
    and the folder it read last stays selected on it between passes (what
    README recommends, and where a STATUS-based check saw only the first
    new message of a mailbox). Every round drops a reply into the SAME
    `replies` mailboxes, so from the second round on each reply lands in a
    mailbox already read on its held connection. Returns {"rounds":
    [windows with "latencies" and "effects"], "first_pass", "undetected",
    "wait"}."""
    ms, config, cenv = prepare(db, env, mailboxes, interval, mailboxes, "rbh")
    chosen = random.Random(20261207).sample(range(mailboxes), replies)
    got = {"rounds": []}
    w = Watching(db, cenv, ms, config, mailboxes)
    try:
        got["first_pass"] = w.wait_first_passes(30 if ctx.quick else 60)
        for rnd in range(ctx.rounds):
            res = w.window(chosen, interval)
            got["rounds"].append(res)
            ctx.log(f"watch_held round {rnd + 1}/{ctx.rounds}: {window_line(res)}")
        dropped, seen, t_end = wait_detections(w, got, interval)
        w.stop()
    finally:
        w.kill()
        ms.stop()
    got["undetected"] = len(dropped) - len(seen)
    for res in got["rounds"]:
        latencies(res, seen, t_end)
    return got


def digest_message(i, k):
    """The k-th newsletter of a backlog in mailbox i: not a reply."""
    return (f"From: Weekly Letter <news@letters.example>\r\nTo: {account_email(i)}\r\n"
            f"Subject: Digest number {k}\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <digest{k}.{os.urandom(4).hex()}@letters.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            + "Nothing that needs an answer, just the week's news.\r\n" * 20)


def imaplib_fetch_rate(port, mailbox, count):
    """The bound of the backlog figure: a bare Python imaplib client
    fetching the last `count` messages of one mailbox the way a pass must
    (UID FETCH of header and body prefixes with BODY.PEEK, 50 a command,
    on one connection); returns messages a second of wall time."""
    im = imaplib.IMAP4("127.0.0.1", port)
    im.login(account_email(mailbox), PASSWORD)
    im.select("INBOX", readonly=True)
    typ, data = im.uid("SEARCH", None, "ALL")
    uids = data[0].split()[-count:]
    t0 = time.perf_counter()
    got = 0
    for k in range(0, len(uids), 50):
        batch = uids[k:k + 50]
        typ, data = im.uid("FETCH", b",".join(batch).decode(),
                           "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER]<0.65536> BODY.PEEK[TEXT]<0.65536>)")
        if typ != "OK":
            raise RuntimeError("imaplib UID FETCH failed")
        got += sum(1 for d in data if isinstance(d, tuple)) // 2
    secs = time.perf_counter() - t0
    im.logout()
    return len(uids) / secs


def run_backlog(ctx, db, env, backlog, interval):
    """The backlog scenario (issue 14): `backlog` newsletters and then a
    prospect's reply land at once in one watched mailbox, round after
    round. Returns {"rate": [messages recorded a second], "latency":
    [seconds from the drop's start to the reply's record], "bound":
    [imaplib messages a second]}."""
    ms, config, cenv = prepare(db, env, 1, interval, 1, "rbb")
    got = {"rate": [], "latency": [], "bound": []}
    w = Watching(db, cenv, ms, config, 1)
    try:
        w.wait_first_passes(30)
        for rnd in range(ctx.rounds):
            # as the other scenarios: every round starts vacuumed (the
            # cluster runs without autovacuum)
            db.psql("VACUUM ANALYZE")
            before = int(db.psql("SELECT count(*) FROM inbound_messages")[0][0])
            t0 = time.time()
            for k in range(backlog):
                ms.deliver(account_email(0), digest_message(0, k))
            mid = f"r{os.urandom(6).hex()}.1@{PROSPECTS}"
            ms.deliver(account_email(0), reply_message(0, mid))
            t_drop = time.time() - t0
            seen = w.detections({mid: (0, t0)}, 120)
            if mid not in seen:
                raise RuntimeError(f"the reply behind {backlog:,} messages was not recorded within 120 s")
            n = int(db.psql("SELECT count(*) FROM inbound_messages")[0][0]) - before
            first = float(db.psql("SELECT extract(epoch FROM min(detected_at)) FROM inbound_messages "
                                  f"WHERE id > (SELECT coalesce(max(id), 0) - {n} FROM inbound_messages)")[0][0])
            rate = n / max(1e-6, seen[mid][0] - first)
            got["rate"].append(rate)
            got["latency"].append(seen[mid][0] - t0)
            got["bound"].append(imaplib_fetch_rate(ms.imap_port, 0, backlog + 1))
            ctx.log(f"watch_backlog round {rnd + 1}/{ctx.rounds}: {backlog:,} messages and a reply dropped in "
                    f"{t_drop:.1f}s; relance recorded {n:,} at {rate:,.0f}/s, the reply {got['latency'][-1]:.1f}s "
                    f"after the drop began; imaplib fetched them at {got['bound'][-1]:,.0f}/s")
        w.stop()
    finally:
        w.kill()
        ms.stop()
    return got
