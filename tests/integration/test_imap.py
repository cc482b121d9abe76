"""The IMAP client against Dovecot on 127.0.0.1:

- `relance imap-check` logs in over STARTTLS (imap://) and implicit TLS
  (imaps://) trusting the test CA, reads STATUS of the watched folders
  (INBOX and the \\Junk folder), refuses a wrong password without printing
  any password, and a certificate it cannot verify;
- APPEND puts exactly one copy of a message in the \\Sent special-use
  folder, flagged \\Seen;
- inside `relance serve`: messages in INBOX and Junk are read; a 5 MB
  message is classified from bounded prefixes (Dovecot's own byte count of
  what it sent stays far below the message's size), /healthz keeps
  answering promptly while the watcher works, and no message gets the
  \\Seen flag;
- imap_max_connections caps the pool: with 1, three watched accounts
  never hold more than one IMAP connection at once (counted on the server
  side), and every mailbox is still read;
- a check on request (watcher_check_now; SIGUSR1 asks it for every
  mailbox) reads a new message at once, with an hour between passes.
"""
import base64
import os
import signal
import threading
import time

import pytest

import mailservers
from harness import relance, wait_until

ALICE, BOB, CAROL = "alice@acme.example", "bob@acme.example", "carol@acme.example"
pytestmark = pytest.mark.mail(users=[(ALICE, "pw-alice-1"), (BOB, "pw-bob-2"), (CAROL, "pw-carol-3")])


def write_config(ms, path, extra_top="", bob_pw_env="PW_BOB", ca=None, interval="1s"):
    ca = ca or ms.ca_file
    with open(path, "w") as f:
        f.write(f"""tls_ca_file: {ca}
{extra_top}pools:
  founders:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_ALICE
        watch_interval: {interval}
        folders: [INBOX, Junk]
      - email: {BOB}
        smtp: smtps://127.0.0.1:{ms.smtps_port}/relance.test
        imap: imaps://127.0.0.1:{ms.imaps_port}
        password_env: {bob_pw_env}
        watch_interval: {interval}
      - email: {CAROL}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_CAROL
        watch_interval: {interval}
""")


@pytest.fixture
def env(fresh_mail, db, tmp):
    cfg = os.path.join(tmp, "relance.yaml")
    write_config(fresh_mail, cfg)
    return {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1", "PW_BOB": "pw-bob-2",
            "PW_CAROL": "pw-carol-3", "PW_WRONG": "not-the-password"}


def inbound(db):
    return {r[0]: r[1:] for r in db.psql("SELECT message_id, folder, kind, effect FROM inbound_messages")}


def test_imap_check_reads_status_over_starttls_and_implicit_tls(fresh_mail, env, check):
    ms = fresh_mail
    r = relance("imap-check", ALICE, env=env)
    check.ok(r.returncode == 0, "imap-check over STARTTLS", r.stdout + r.stderr)
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    check.ok(set(lines) == {"INBOX", "Junk"} and all("uidnext=1\tuidvalidity=" in v for v in lines.values()),
             "STATUS of INBOX and Junk (the account's folders)", r.stdout)
    r = relance("imap-check", BOB, env=env)
    check.ok(r.returncode == 0 and r.stdout.startswith("INBOX\tuidnext=1\tuidvalidity="), "imap-check over implicit TLS",
             r.stdout + r.stderr)
    check.eq(ms.imap_logins(ALICE), 1, "one login carried both STATUS commands (the connection is reused)")


def test_imap_check_refuses_a_wrong_password_and_an_unverified_certificate(fresh_mail, env, tmp, check):
    ms = fresh_mail
    bad = os.path.join(tmp, "bad.yaml")
    write_config(ms, bad, bob_pw_env="PW_WRONG")
    r = relance("imap-check", BOB, env={**env, "RELANCE_CONFIG": bad})
    check.ok(r.returncode == 1 and "not-the-password" not in r.stdout + r.stderr and "pw-bob" not in r.stdout + r.stderr,
             "a wrong password fails without printing any password", r.stdout + r.stderr)
    noca = os.path.join(tmp, "noca.yaml")
    write_config(ms, noca, ca="/etc/ssl/certs/ca-certificates.crt")
    r = relance("imap-check", ALICE, env={**env, "RELANCE_CONFIG": noca})
    check.ok(r.returncode == 1, "a server certificate it cannot verify is refused", r.stdout + r.stderr)


def test_append_puts_one_seen_copy_in_the_special_use_sent_folder(fresh_mail, env, tmp, check):
    ms = fresh_mail
    copy = os.path.join(tmp, "copy.eml")
    with open(copy, "w") as f:
        f.write(f"From: {ALICE}\nTo: p1@prospects.example\nSubject: An idea\nMessage-ID: <copy1@acme.example>\n"
                "Date: Mon, 02 Mar 2026 10:00:00 +0000\n\nHello.\n")
    r = relance("imap-check", ALICE, "--folder", "INBOX", "--append", copy, env=env)
    check.ok(r.returncode == 0 and "appended\tSent\tspecial-use" in r.stdout, "APPEND finds the \\Sent folder by its flag",
             r.stdout + r.stderr)
    sent = ms.folder_files(ALICE, "Sent")
    check.eq(len(sent), 1, "exactly one copy in Sent")
    check.ok(sent and b"Message-ID: <copy1@acme.example>" in open(sent[0], "rb").read() and
             open(sent[0], "rb").read().rstrip().endswith(b"Hello."), "the copy is the whole message")
    check.ok(sent and "S" in ms.flags(sent[0]), "the copy is flagged \\Seen (it is sent mail)")
    check.eq(len(ms.folder_files(ALICE)), 0, "nothing went to INBOX")


def test_serve_reads_junk_and_a_5mb_message_from_bounded_prefixes_and_stays_responsive(fresh_mail, db, env, serve,
                                                                                        check):
    ms = fresh_mail
    s = serve(env)
    s.wait_status("/readyz", 200)


    def states():
        return int(db.psql("SELECT count(*) FROM mailbox_state")[0][0])


    check.ok(wait_until(lambda: states() == 4, 20), "every watched folder has its state (3 INBOX + Junk)",
             s.output()[-2000:])
    bytes_before = ms.imap_bytes_out()

    attachment = base64.encodebytes(os.urandom(3_900_000)).decode().replace("\n", "\r\n")
    big = (f"From: Big Sender <big@files.example>\r\nTo: {ALICE}\r\nSubject: the files\r\n"
           "Message-ID: <big1@files.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
           "--XX\r\nContent-Type: text/plain\r\n\r\nHere are the files.\r\n"
           "--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
           "Content-Disposition: attachment; filename=data.bin\r\n\r\n" + attachment + "--XX--\r\n")
    check.ok(len(big) > 5_000_000, f"a {len(big) / 1e6:.1f} MB message")
    # one long line too (no line break in 200 kB), as some HTML mail has
    long_line = (f"From: wide@lines.example\r\nTo: {ALICE}\r\nSubject: wide\r\nMessage-ID: <wide1@lines.example>\r\n"
                 "\r\n" + "x" * 200_000 + "\r\n")
    junk = (f"From: spam@junk.example\r\nTo: {ALICE}\r\nSubject: offer\r\nMessage-ID: <junk1@junk.example>\r\n\r\n"
            "Buy now.\r\n")

    latencies = []
    stop_polling = threading.Event()


    def poll_health():
        while not stop_polling.is_set():
            t0 = time.time()
            status, _ = s.get("/healthz")
            latencies.append((time.time() - t0, status))
            time.sleep(0.02)


    poller = threading.Thread(target=poll_health)
    poller.start()
    ms.deliver(ALICE, big)
    ms.deliver(ALICE, long_line)
    md = ms.maildir(ALICE)
    ms._make_maildir(os.path.join(md, ".Junk"))
    jpath = os.path.join(md, ".Junk", "new", f"{time.time():.6f}.junk1.{mailservers.HOSTNAME}")
    with open(jpath, "w") as f:
        f.write(junk)
    os.chown(jpath, ms._mail_uid, ms._mail_gid)


    ok = wait_until(lambda: {"big1@files.example", "wide1@lines.example", "junk1@junk.example"} <= set(inbound(db)), 30)
    stop_polling.set()
    poller.join()
    got = inbound(db)
    check.ok(ok, "the 5 MB message, the wide one and the Junk one were all read", str(got) + s.output()[-2000:])
    check.eq(got.get("junk1@junk.example", [None])[0], "Junk", "the Junk folder is watched")
    worst = max((lat for lat, _ in latencies), default=0)
    check.ok(latencies and all(st == 200 for _, st in latencies) and worst < 0.5,
             f"/healthz answered {len(latencies)} times while the watcher worked (worst {worst * 1000:.0f} ms)",
             str(latencies[-5:]))
    check.eq(s.stop(), 0, "serve stops cleanly")
    out = s.output()
    check.ok("AddressSanitizer" not in out and "runtime error" not in out and "pw-" not in out,
             "no sanitizer report, no password in the logs", out[-2000:])
    sent_bytes = ms.imap_bytes_out() - bytes_before
    check.ok(0 < sent_bytes < 1_000_000, f"Dovecot sent {sent_bytes} bytes in all: the 5 MB message was not fetched whole",
             ms.dovecot_log_text()[-2000:])
    check.ok(all("S" not in ms.flags(p) for p in ms.folder_files(ALICE) + ms.folder_files(ALICE, "Junk")),
             "no message was flagged \\Seen", str(ms.folder_files(ALICE)))


def test_imap_max_connections_caps_the_pool(fresh_mail, db, env, tmp, serve, check):
    ms = fresh_mail
    capped = os.path.join(tmp, "capped.yaml")
    write_config(ms, capped, extra_top="imap_max_connections: 1\n")
    conns = []
    crowded = []
    stop_counting = threading.Event()

    def count_connections(pid):
        # relance's ESTABLISHED TCP connections to Dovecot's ports, from /proc
        # (no probe): /proc/net/tcp's entries whose remote port is Dovecot's
        # and whose socket inode is one of relance's descriptors. Counting by
        # port alone also counted other tests' sockets that drew the same
        # number (test_http_limits opens 2,000).
        ports = {f"{ms.imap_port:04X}", f"{ms.imaps_port:04X}"}
        while not stop_counting.is_set():
            mine = set()
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    except OSError:
                        continue
                    if link.startswith("socket:["):
                        mine.add(link[8:-1])
            except OSError:
                pass
            seen = []
            with open("/proc/net/tcp") as f:
                for line in f:
                    fields = line.split()
                    if (len(fields) > 9 and fields[3] == "01" and fields[2].split(":")[1] in ports
                            and fields[9] in mine):
                        seen.append(fields[1])
            conns.append(len(seen))
            if len(seen) > 1:
                crowded.append(seen)
            time.sleep(0.01)


    s = serve({**env, "RELANCE_CONFIG": capped})
    counter = threading.Thread(target=count_connections, args=(s.proc.pid,))
    counter.start()
    s.wait_status("/readyz", 200)
    # a mailbox's first pass takes its current end as the starting point
    # (nothing was sent from it yet): deliver once every folder has one
    check.ok(wait_until(lambda: int(db.psql("SELECT count(*) FROM mailbox_state")[0][0]) == 4, 30),
             "every watched folder has its state", s.output()[-2000:])
    for who in (ALICE, BOB, CAROL):
        ms.deliver(who, f"From: x@y.example\r\nTo: {who}\r\nSubject: hi\r\nMessage-ID: <cap-{who}>\r\n\r\nhi\r\n")
    ok = wait_until(lambda: all(f"cap-{w}" in inbound(db) for w in (ALICE, BOB, CAROL)), 30)
    stop_counting.set()
    counter.join()
    check.ok(ok, "with imap_max_connections: 1 every mailbox is still read", str(inbound(db)) + s.output()[-2000:])
    check.ok(conns and max(conns) <= 1, f"never more than one IMAP connection open (max seen {max(conns or [0])})",
             f"relance's local ends when more: {crowded[:3]}\n" + s.output()[-3000:])
    check.eq(s.stop(), 0, "serve stops cleanly")


def test_a_check_on_request_reads_a_new_message_at_once(fresh_mail, db, env, tmp, serve, check):
    ms = fresh_mail
    hourly = os.path.join(tmp, "hourly.yaml")
    write_config(ms, hourly, interval="1h")
    s = serve({**env, "RELANCE_CONFIG": hourly})
    s.wait_status("/readyz", 200)
    check.ok(wait_until(lambda: s.output().count("watching mailbox") == 3, 15), "three mailboxes watched", s.output())
    time.sleep(1)  # the first pass of each
    ms.deliver(CAROL, f"From: z@y.example\r\nTo: {CAROL}\r\nSubject: hi\r\nMessage-ID: <now-1@y.example>\r\n\r\nhi\r\n")
    time.sleep(2)
    check.ok("now-1@y.example" not in inbound(db), "with watch_interval 1h the new message waits")
    t0 = time.time()
    s.proc.send_signal(signal.SIGUSR1)
    ok = wait_until(lambda: f"mailbox checked on request account={CAROL} new_messages=1" in s.output(), 10)
    check.ok(ok, "a check on request reads it at once and says one new message", s.output()[-2000:])
    print(f"     checked in {time.time() - t0:.2f}s")
    check.ok("now-1@y.example" in inbound(db), "and it is recorded before the check answers")
    check.ok(f"mailbox checked on request account={ALICE} new_messages=0" in s.output(),
             "a mailbox with nothing new answers 0")
    check.eq(s.stop(), 0, "serve stops cleanly")
    check.ok("AddressSanitizer" not in s.output() and "runtime error" not in s.output(), "no sanitizer report")
