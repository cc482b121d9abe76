"""Sending benchmarks for tests/bench/run: the send throughput of `relance
serve` end to end (claim, render, MIME, DKIM, SMTP to Postfix's
smtp-sink, outcome recorded in PostgreSQL) and its peak memory with many
accounts and enrollments, with the bounds measured beside them:
smtp-source to the same sink, `openssl speed -multi` sign rates, and
nodemailer's pooled transport.

tests/bench/run imports this file; everything here runs its servers and
tools from the standard library and Debian's packages (Postfix for
smtp-sink and smtp-source, OpenSSL), except nodemailer, which npm
installs into a temp folder (never into the project) only when asked.

Benchmark settings: the accounts send with `tls: none` and `auth: none`
to the local sink, with no daily limit, no spacing and no warm-up (the
defaults); the sequence has one step, window 00:00-24:00 every day,
jitter 0, so every enrollment is due at once and sends one message."""
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
# The test clock starts here at real speed: due times are in its past,
# the recorded instants (created_at, sent_at) move with the wall clock.
START = "2026-03-02T12:00:00Z"
DOMAIN = "bench.example"
SEQUENCE_NAME = "bench-send"
PROSPECT_DOMAINS = 50

# About 1.6 KB of body: with relance's headers the message is about
# 2,000 bytes (more with a DKIM signature), like smtp-source's 2,048
# bytes of payload. Lines stay under 76 characters and ASCII, so the
# body goes out 7bit, as smtp-source's does.
BODY_LINES = [
    "Hi {first_name},",
    "",
    "I am writing because {company} came up while we were looking at",
    "teams that run their outbound by hand. Most of them tell us the same",
    "story: the first email goes out on time, the follow-ups do not, and",
    "by the third touch nobody remembers who was supposed to send it.",
    "",
    "We built a small service that keeps those follow-ups going from the",
    "mailbox that sent the first one, in the same thread, inside the",
    "prospect's business hours, and stops the moment somebody answers.",
    "It runs next to your CRM, reads the cadence from a file in git and",
    "writes every outcome back where your team already looks.",
    "",
    "Three things people usually ask about:",
    "",
    "- It never sends a step twice, even when a server restarts halfway.",
    "- A bounce or an unsubscribe stops every sequence for that address.",
    "- Caps per mailbox hold exactly, so warm-up schedules stay intact.",
    "",
    "If that sounds useful for {company}, I would be glad to show you how",
    "a week of follow-ups looks with your own sequences. Fifteen minutes",
    "is usually enough to see whether it fits the way you work today.",
    "",
    "Would Tuesday or Thursday afternoon suit you? If neither does, a",
    "one-line answer with a better time works just as well for me.",
    "",
    "Best regards,",
    "Alex from the relance benchmark",
    "",
    "P.S. If you are not the right person for this at {company}, could",
    "you point me to whoever looks after outbound or sales operations?",
    "I will keep it short with them too, and I will not write again to",
    "you about it. And if the timing is simply wrong this quarter, tell",
    "me when to come back and I will put it in my calendar for then.",
    "",
    "--",
    "Alex, relance benchmark, 1 Example Street, Example City",
]
SUBJECT = "{company} and faster follow-ups"


def sequence_yaml():
    """The benchmark's one-step sequence, with the body above as a
    template ({{first_name}}, {{company}})."""
    body = "\n".join("      " + ln.replace("{first_name}", "{{first_name}}").replace("{company}", "{{company}}")
                     if ln else "" for ln in BODY_LINES)
    return f"""name: {SEQUENCE_NAME}
description: The send benchmark's sequence; every instant is inside its window
sender_pool: bench
schedule:
  timezone: UTC
  window: "00:00-24:00"
  days: [mon, tue, wed, thu, fri, sat, sun]
  jitter: 0
steps:
  - id: intro
    subject: "{SUBJECT.replace('{company}', '{{company}}')}"
    body: |
{body}
"""


def account_email(i):
    """The i-th benchmark account (0-based): distinct addresses spread
    over a few domains, all signed by the DKIM key of their domain."""
    return f"sdr{i + 1}@{account_domain(i)}"


def account_domain(i):
    return DOMAIN if i % 4 == 0 else f"d{i % 4}.{DOMAIN}"


def write_config(path, sink_port, accounts, dkim=None):
    """A relance configuration: `accounts` accounts in pool 'bench' on the
    sink (tls none, auth none, no caps), and dkim = (selector, key_file)
    for every account domain, or None."""
    lines = ["transport: smtp", "pools:", "  bench:", "    accounts:"]
    for i in range(accounts):
        lines += [f"      - email: {account_email(i)}",
                  f"        from_name: Bench Sender {i + 1}",
                  f"        smtp: smtp://127.0.0.1:{sink_port}/relance.bench",
                  "        tls: none",
                  "        auth: none"]
    if dkim:
        lines.append("dkim:")
        for d in sorted({account_domain(i) for i in range(min(accounts, 4))}):
            lines.append(f"  {d}: {{selector: {dkim[0]}, key_file: {dkim[1]}}}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_keys(workdir):
    """DKIM keys made with openssl: {"rsa": path, "ed25519": path}."""
    keys = {}
    for name, args in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ed25519", ["-algorithm", "ED25519"])):
        path = os.path.join(workdir, f"dkim-{name}.pem")
        r = subprocess.run(["openssl", "genpkey", *args, "-out", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl genpkey {name} failed: {r.stderr}")
        keys[name] = path
    return keys


# ---------------------------------------------------------------- the sink

SINK_SESSIONS = 1200


def _more_files():
    """Room for SINK_SESSIONS descriptors in smtp-sink (the soft limit is
    often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = SINK_SESSIONS + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))


class Sink:
    """Postfix's smtp-sink on 127.0.0.1 (a free port): takes every
    message and throws it away. As root it drops to nobody (-u)."""

    def __init__(self):
        if not os.access(SMTP_SINK, os.X_OK):
            raise RuntimeError(f"{SMTP_SINK} not found (apt-get install postfix)")
        self.port = harness.free_port()
        argv = [SMTP_SINK]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        # -m: more simultaneous sessions than the benchmarks have accounts
        # (each account keeps its connection between messages, as with a
        # real provider); above its -m, smtp-sink leaves a connection
        # unanswered in the backlog, which relance rightly treats as a
        # server that never greets
        argv += ["-m", str(SINK_SESSIONS), f"127.0.0.1:{self.port}", "1000"]
        self.log = os.path.join(harness.short_tempdir("rsink"), "smtp-sink.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_more_files)
        harness.at_exit(self.stop)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                with open(self.log) as f:
                    raise RuntimeError(f"smtp-sink exited: {f.read()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not answer within 10 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- the data

def load(db, env, workdir, contacts, history, prospect_domains=PROSPECT_DOMAINS):
    """Applies the sequence and inserts `contacts` contacts, each with one
    enrollment due before START, and `history` more contacts whose
    enrollment completed a month earlier with its message sent: a live
    database's past, so that the messages table has rows and statistics
    (autovacuum is off in the benchmark cluster) and the planner picks
    the plans it would pick in production. The load is not measured."""
    seq = os.path.join(workdir, "bench-send.yaml")
    with open(seq, "w") as f:
        f.write(sequence_yaml())
    r = harness.relance("apply", seq, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"relance apply failed: {r.stdout}{r.stderr}")
    total = contacts + history
    ago = f"timestamptz '{START}' - interval '30 days'"
    db.psql(f"""
        INSERT INTO contacts (id, email, first_name, company)
        SELECT i, 'p' || i || '@prospect' || (i % {prospect_domains}) || '.example', 'First' || i, 'Company ' || i
          FROM generate_series(1, {total}) i;
        SELECT setval('contacts_id_seq', {total});
        INSERT INTO enrollments (id, contact_id, sequence_id, version, state, state_reason, state_changed_at,
                                 position, next_send_at, jitter_r, created_at)
        SELECT i, i, s.id, s.current_version, 'active', 'enrolled', {DUE}, 0, {DUE}, 0, {DUE}
          FROM generate_series(1, {contacts}) i, sequences s WHERE s.name = '{SEQUENCE_NAME}';
        INSERT INTO enrollments (id, contact_id, sequence_id, version, state, state_reason, state_changed_at,
                                 position, next_send_at, jitter_r, created_at)
        SELECT i, i, s.id, s.current_version, 'completed', 'all steps sent', {ago}, 1, NULL, 0, {ago}
          FROM generate_series({contacts + 1}, {total}) i, sequences s WHERE s.name = '{SEQUENCE_NAME}';
        SELECT setval('enrollments_id_seq', {total});
        INSERT INTO messages (enrollment_id, position, step_id, state, message_id, sender, recipient, subject,
                              attempts, reply, claimed_by, body_started, created_at, sent_at)
        SELECT e.id, 0, 'intro', 'sent', 'hist' || e.id || '@{DOMAIN}', 'sdr1@{DOMAIN}', c.email,
               c.company || ' and faster follow-ups', 1, '250 2.0.0 Ok: queued', 'bench', true, {ago}, {ago}
          FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE e.id > {contacts};
    """)
    db.psql("VACUUM (FREEZE, ANALYZE)")
    return contacts


# Every benchmark enrollment is due at this instant, an hour before the
# test clock starts; history is older.
DUE = f"(timestamptz '{START}' - interval '1 hour')"


def reset(db, contacts):
    """Puts the benchmark's enrollments (ids 1..contacts) back to due at
    step 0 and forgets what they sent, so each round sends the same
    messages from the same state; the history stays."""
    for sql in (f"DELETE FROM messages WHERE enrollment_id <= {contacts}",
                f"DELETE FROM events WHERE occurred_at >= {DUE}",
                "DELETE FROM account_days", "DELETE FROM leases",
                f"UPDATE enrollments SET state = 'active', state_reason = 'enrolled', position = 0, "
                f"account_id = NULL, next_send_at = {DUE} WHERE id <= {contacts} "
                "AND (state <> 'active' OR position <> 0 OR account_id IS NOT NULL OR next_send_at IS NULL)",
                "UPDATE accounts SET last_claim_at = NULL, next_send_after = NULL",
                "VACUUM ANALYZE messages, events, enrollments, accounts, account_days, leases", "CHECKPOINT"):
        db.psql(sql)


# ---------------------------------------------------------------- relance

SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:")


def read_hwm(pid):
    """VmHWM of pid in bytes, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's VmHWM (the kernel's peak resident set) every
    `every` seconds from a thread; .peak is the largest value seen."""

    def __init__(self, pid, every=0.1):
        self.pid, self.every, self.peak, self._stop = pid, every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            v = read_hwm(self.pid)
            if v is None:
                return
            self.peak = max(self.peak, v)
            self._stop.wait(self.every)

    def stop(self):
        v = read_hwm(self.pid)
        if v is not None:
            self.peak = max(self.peak, v)
        self._stop.set()
        self._thread.join()
        return self.peak


def settle(db, timeout=120):
    """Waits until the stopped relance's sessions have left the database:
    a statement it sent before it stopped (a claim) runs to its end and
    commits. Past the timeout they are terminated."""
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    deadline = time.time() + timeout
    while int(db.psql(f"SELECT count(*) {others}")[0][0]):
        if time.time() > deadline:
            db.psql(f"SELECT pg_terminate_backend(pid) {others}")
            deadline = time.time() + timeout
        time.sleep(0.2)


def run_relance(db, env, config, contacts, timeout, want=None, window=None, sample_rss=False):
    """Starts `relance serve` with `config` and the test clock at START,
    then stops it once `want` of the benchmark's messages (enrollments
    1..contacts) have an outcome, or `window` seconds after the first
    outcome. Returns a dict: sent, seconds (first claim to last outcome,
    by the instants recorded in PostgreSQL), rate, peak_rss (bytes, when
    sampled). Every outcome must be 'sent'."""
    e = dict(env, RELANCE_CONFIG=config, RELANCE_TEST_CLOCK=START)
    serve = harness.Serve(e)
    sampler = RssSampler(serve.proc.pid) if sample_rss else None
    deadline = time.time() + timeout
    done, first = 0, None
    # an index range scan over the benchmark's rows only: cheap to poll
    poll = (f"SELECT count(*) FROM messages WHERE enrollment_id <= {contacts} "
            "AND state NOT IN ('sending', 'deferred')")
    try:
        while time.time() < deadline:
            if serve.proc.poll() is not None:
                raise RuntimeError(f"relance serve exited {serve.proc.returncode}: {serve.output()[-2000:]}")
            done = int(db.psql(poll)[0][0])
            if done and first is None:
                first = time.time()
            if (want is not None and done >= want) or (window is not None and first and time.time() - first >= window):
                break
            time.sleep(0.5)
        peak = sampler.stop() if sampler else None
    finally:
        code = serve.stop() if serve.proc.poll() is None else serve.proc.returncode
        settle(db)
    out = serve.output()
    if code != 0 or SANITIZER.search(out):
        raise RuntimeError(f"relance serve stopped with {code}: {out[-2000:]}")
    if (want is not None and done < want) or done == 0:
        states = db.psql(f"SELECT state, count(*) FROM messages WHERE enrollment_id <= {contacts} GROUP BY 1")
        raise RuntimeError(f"only {done} of {want or 'any'} messages had an outcome within {timeout:.0f}s "
                           f"(states: {states}); serve said: {out[-1500:]}")
    row = db.psql("SELECT count(*) FILTER (WHERE state = 'sent'), count(*), "
                  "extract(epoch FROM max(sent_at) - min(created_at)), count(DISTINCT account_id) FROM messages "
                  f"WHERE enrollment_id <= {contacts} AND state NOT IN ('sending', 'deferred')")[0]
    sent, total, secs, accounts = int(row[0]), int(row[1]), float(row[2] or 0), int(row[3])
    if sent != total:
        states = db.psql(f"SELECT state, reply, count(*) FROM messages WHERE enrollment_id <= {contacts} "
                         "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5")
        raise RuntimeError(f"{total - sent} of {total} messages were not sent: {states}")
    return {"sent": sent, "seconds": secs, "rate": sent / secs if secs > 0 else 0.0, "peak_rss": peak,
            "accounts": accounts}


# ---------------------------------------------------------------- the bounds

def smtp_source_rate(port, messages, sessions=8, size=2048):
    """smtp-source: `sessions` parallel sessions, each keeping its
    connection for all its messages (-d, as relance's accounts do),
    `size` bytes of payload each. Returns messages per second."""
    if not os.access(SMTP_SOURCE, os.X_OK):
        raise RuntimeError(f"{SMTP_SOURCE} not found (apt-get install postfix)")
    t0 = time.monotonic()
    r = subprocess.run([SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                        "-f", f"sdr@{DOMAIN}", "-t", "p@prospect.example", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({r.returncode}): {r.stderr[-500:]}")
    return messages / took


OPENSSL_SIGN = {
    # the summary line of `openssl speed`: name, then times, then sign/s verify/s
    "rsa2048": re.compile(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([0-9.]+)\s+([0-9.]+)\s*$", re.M),
    "ed25519": re.compile(r"^\s*253 bits EdDSA \(Ed25519\)\s+\S+s\s+\S+s\s+([0-9.]+)\s+([0-9.]+)\s*$", re.M),
}


def openssl_sign_rates(seconds, multi=2):
    """`openssl speed -multi N` over RSA-2048 and Ed25519: the sign rates
    (signatures per second, all N processes together)."""
    r = subprocess.run(["openssl", "speed", "-multi", str(multi), "-seconds", str(seconds), "rsa2048", "ed25519"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"openssl speed failed: {r.stderr[-500:]}")
    out = {}
    for name, rx in OPENSSL_SIGN.items():
        m = rx.search(r.stdout)
        if not m:
            raise RuntimeError(f"openssl speed: no {name} sign rate in its output:\n{r.stdout[-800:]}")
        out[name] = float(m.group(1))
    return out


NODE_SCRIPT = r"""
// The peer: nodemailer's pooled SMTP transport sending the benchmark's
// messages, timed from the first sendMail to the last callback.
const nodemailer = require(process.argv[2]);
const port = Number(process.argv[3]), count = Number(process.argv[4]), keyFile = process.argv[5];
const body = JSON.parse(process.argv[6]), subject = process.argv[7], accounts = JSON.parse(process.argv[8]);
const opts = { pool: true, maxConnections: 8, maxMessages: Infinity, host: '127.0.0.1', port,
               secure: false, ignoreTLS: true, name: 'relance.bench' };
if (keyFile)
  opts.dkim = { domainName: 'bench.example', keySelector: 's1',
                privateKey: require('fs').readFileSync(keyFile, 'utf8') };
const t = nodemailer.createTransport(opts);
let left = count, failed = 0;
const t0 = process.hrtime.bigint();
for (let i = 1; i <= count; i++) {
  const fill = s => s.replaceAll('{first_name}', 'First' + i).replaceAll('{company}', 'Company ' + i);
  const from = accounts[i % accounts.length];
  t.sendMail({ from: { name: 'Bench Sender', address: from },
               to: 'p' + i + '@prospect' + (i % 50) + '.example',
               subject: fill(subject), text: fill(body) }, err => {
    if (err) { failed++; if (failed === 1) console.error(String(err)); }
    if (--left === 0) {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(JSON.stringify({ sent: count - failed, seconds: secs }));
      t.close();
    }
  });
}
"""


def nodemailer_install(workdir):
    """npm installs nodemailer into workdir/node (never into the project);
    returns the module's path and version. The latest release needs
    Node.js 20; on an older Node (Debian 12 ships 18) the last major
    that runs there, 7."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise RuntimeError("node and npm are needed for the nodemailer bound (deploy/deps bench)")
    r = subprocess.run(["node", "--version"], capture_output=True, text=True)
    m = re.match(r"v(\d+)\.", r.stdout.strip())
    spec = "nodemailer" if m and int(m.group(1)) >= 20 else "nodemailer@7"
    prefix = os.path.join(workdir, "node")
    os.makedirs(prefix, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error",
                        spec], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"npm install nodemailer failed: {r.stderr[-800:]}")
    mod = os.path.join(prefix, "node_modules", "nodemailer")
    with open(os.path.join(mod, "package.json")) as f:
        version = json.load(f)["version"]
    script = os.path.join(workdir, "nodemailer-bench.js")
    with open(script, "w") as f:
        f.write(NODE_SCRIPT)
    return {"module": mod, "version": version, "script": script}


def nodemailer_rate(nm, port, messages, accounts, key_file=None):
    """nodemailer's pool (8 connections, kept for all messages) sending
    `messages` of the benchmark's text, DKIM-signed with key_file (RSA)
    when given. Returns messages per second."""
    senders = [account_email(i) for i in range(accounts)]
    r = subprocess.run(["node", nm["script"], nm["module"], str(port), str(messages), key_file or "",
                        json.dumps("\n".join(BODY_LINES) + "\n"), SUBJECT, json.dumps(senders)],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"nodemailer run failed ({r.returncode}): {r.stderr[-800:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["sent"] != messages:
        raise RuntimeError(f"nodemailer sent {res['sent']} of {messages}: {r.stderr[-500:]}")
    return messages / res["seconds"]

