"""The SMTP transport (service/smtp.c on service/curl_uv.c) against real
servers: Postfix + Dovecot from tests/mailservers.py, and a scripted SMTP
server in this file for the replies Postfix will not give on demand (a 4xx
or 5xx to DATA or to the final dot, no final reply at all).

Driven through `relance smtp-send`, which prints per message
FILE, outcome, reply code, enhanced status, body started (0/1)."""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import Check, relance, short_tempdir  # noqa: E402
from mailservers import STANDARD_BOUNCES, STANDARD_REJECTS, MailServers  # noqa: E402

SENDER = "alice@acme.example"
PASSWORD = "s3cret-Pa55"
c = Check("smtp_transport")

ms = MailServers(users=[(SENDER, PASSWORD)], reject_domains=STANDARD_REJECTS, bounce_domains=STANDARD_BOUNCES)
work = short_tempdir("rsmtp")
ENV = {"ALICE_PW": PASSWORD, "WRONG_PW": "not-the-password"}
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")
sanitizer_reports = []


def message(name, to, subject, body):
    """Writes an LF message file; returns (path, bytes)."""
    raw = (f"From: Alice Martin <{SENDER}>\nTo: <{to}>\nSubject: {subject}\n"
           f"Message-ID: <{name}@acme.example>\nMIME-Version: 1.0\n"
           f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}").encode()
    path = os.path.join(work, name + ".eml")
    with open(path, "wb") as f:
        f.write(raw)
    return path, raw


def body_text(i):
    # dot-stuffing, a lone dot, 8-bit text, trailing spaces, an empty line
    return (f"Hello number {i},\n\n.a line starting with a dot\n.\n..two dots\n"
            f"Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9 \u2014 {i}\ntrailing spaces   \n\n-- \nAlice\n")


def send(files, to, url=None, auth=("--user", SENDER, "--password-env", "ALICE_PW"), ca=True, extra=()):
    url = url or f"smtp://127.0.0.1:{ms.submission_port}/client.acme.example"
    args = ["smtp-send", "--url", url, "--from", SENDER, "--to", to, *auth]
    if ca:
        args += ["--ca-file", ms.ca_file]
    args += list(extra) + list(files)
    t0 = time.time()
    r = relance(*args, env=ENV, timeout=120)
    if SANITIZER.search(r.stderr) or "handles left open" in r.stderr or "body start reported" in r.stderr:
        sanitizer_reports.append(r.stderr)
    rows = [line.split("\t") for line in r.stdout.splitlines() if line]
    return r, rows, time.time() - t0


def row_of(rows, i=0):
    return tuple(rows[i][1:]) if len(rows) > i else None


def body_of(raw):
    return raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else None


def arrived_intact(to, raws, timeout=10):
    """Every raw message arrived in to's Maildir with its body unchanged."""
    got = ms.wait_for(to, len(raws), timeout)
    bodies = {}
    for m in got:
        mid = re.search(rb"^Message-ID: <([^>]+)>", m, re.M | re.I)
        if mid:
            bodies[mid.group(1)] = body_of(m)
    missing = []
    for raw in raws:
        mid = re.search(rb"^Message-ID: <([^>]+)>", raw, re.M).group(1)
        if bodies.get(mid) != body_of(raw):
            missing.append(mid.decode())
    return missing


# ---- TLS and AUTH

p, raw = message("plain1", "bob@prospect.example", "STARTTLS and AUTH PLAIN", body_text(1))
r, rows, _ = send([p], "bob@prospect.example", extra=["--sasl", "PLAIN"])
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "STARTTLS + AUTH PLAIN on submission: sent")
c.eq(r.returncode, 0, "smtp-send exits 0 when all were sent")
c.ok(ms.wait_log(r"sasl_method=PLAIN, sasl_username=alice@acme.example"), "the server saw AUTH PLAIN")

p2, raw2 = message("login1", "bob@prospect.example", "STARTTLS and AUTH LOGIN", body_text(2))
r, rows, _ = send([p2], "bob@prospect.example", extra=["--sasl", "LOGIN"])
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "STARTTLS + AUTH LOGIN: sent")
c.ok(ms.wait_log(r"sasl_method=LOGIN, sasl_username=alice@acme.example"), "the server saw AUTH LOGIN")

p3, raw3 = message("smtps1", "bob@prospect.example", "implicit TLS", body_text(3))
r, rows, _ = send([p3], "bob@prospect.example", url=f"smtps://127.0.0.1:{ms.smtps_port}/client.acme.example")
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "implicit TLS (smtps://) + AUTH: sent")
c.eq(arrived_intact("bob@prospect.example", [raw, raw2, raw3]), [],
     "the three messages arrived with their bodies byte-identical (dots, 8-bit text)")

r, rows, elapsed = send([p], "bob@prospect.example", auth=("--user", SENDER, "--password-env", "WRONG_PW"))
c.eq(row_of(rows), ("auth_failed", "535", "5.7.8", "0"), "a wrong password: auth_failed 535 5.7.8, body not started")
c.eq(r.returncode, 1, "smtp-send exits 1 when a message was not sent")
c.ok("MAIL FROM not accepted" in r.stderr, "an AUTH failure never reached MAIL FROM", r.stderr)
c.ok(PASSWORD not in r.stdout + r.stderr and "not-the-password" not in r.stdout + r.stderr,
     "no password in the output")
r, rows, _ = send([p], "bob@prospect.example", auth=("--user", SENDER, "--password-env", "WRONG_PW"))
r, rows, elapsed = send([p], "bob@prospect.example")
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "the right password right after two failures: sent")
c.ok(elapsed < 2.0, "no auth penalty after failed logins", f"took {elapsed:.2f}s")

for name, url in (("STARTTLS", f"smtp://127.0.0.1:{ms.submission_port}/c.example"),
                  ("implicit TLS", f"smtps://127.0.0.1:{ms.smtps_port}/c.example")):
    r, rows, _ = send([p], "bob@prospect.example", url=url, ca=False)
    c.eq(row_of(rows), ("deferred", rows[0][2] if rows else "?", "-", "0"),
         f"{name} without the CA file: deferred before the body")
    c.ok("certificate" in r.stderr.lower() and "curl 60" in r.stderr,
         f"{name} without the CA file: the certificate is what failed", r.stderr)

pn, rawn = message("sink1", "dan@sink.example", "plaintext sink", body_text(4))
r, rows, _ = send([pn], "dan@sink.example", url=f"smtp://127.0.0.1:{ms.smtp_port}/c.example",
                  auth=("--auth", "none"), ca=False, extra=["--tls", "none"])
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "--tls none --auth none on the MX port: sent")
r, rows, _ = send([pn], "dan@sink.example", url=f"smtp://127.0.0.1:{ms.smtp_port}/c.example",
                  auth=("--auth", "none"))
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "smtp:// without --tls none upgrades with STARTTLS: sent")
c.ok(ms.wait_log(r"postfix/smtpd\[\d+\]: Anonymous TLS connection established from"),
     "the MX port saw a TLS connection")

# ---- many messages, one connection

raws = []
files = []
for i in range(30):
    p_i, raw_i = message(f"many{i:02d}", "erin@prospect.example", f"message {i} of 30", body_text(100 + i))
    files.append(p_i)
    raws.append(raw_i)
time.sleep(0.3)
before = ms.count_connections()
r, rows, elapsed = send(files, "erin@prospect.example")
c.eq([row[1:] for row in rows], [["sent", "250", "2.0.0", "1"]] * 30, "30 messages: all sent")
c.eq([row[0] for row in rows], files, "one line per file, in order")
time.sleep(0.5)
c.eq(ms.count_connections() - before, 1, "30 messages over exactly one connection (Postfix log)")
c.eq(arrived_intact("erin@prospect.example", raws, timeout=20), [],
     "all 30 arrived, bodies byte-identical")
print(f"     (30 messages in {elapsed:.2f}s)")

# ---- rejections at RCPT: never reach the body

pr, _ = message("rej", "x@bad.example", "to a rejected domain", body_text(5))
cases = [
    ("x@bad.example", ("rejected_hard", "550", "5.1.1", "0"), "550 5.1.1 at RCPT: rejected_hard, body not started"),
    ("x@slow.example", ("deferred", "450", "4.2.1", "0"), "450 4.2.1 at RCPT: deferred, body not started"),
    ("x@blocked.example", ("rejected_policy", "554", "5.7.1", "0"),
     "554 5.7.1 at RCPT: rejected_policy, body not started"),
]
for to, want, what in cases:
    r, rows, _ = send([pr], to)
    c.eq(row_of(rows), want, what)
r, rows, _ = send([pr], "x@bad.example")
c.ok("User unknown" in r.stderr, "the server's text is reported", r.stderr)
c.ok("MAIL FROM accepted" in r.stderr, "a rejection at RCPT is past MAIL FROM (counts against the cap)", r.stderr)

# ---- accepted, then bounced with a DSN to the envelope sender

before_dsn = len(ms.messages(SENDER))
pgone, _ = message("gone", "nobody@gone.example", "to a bouncing domain", body_text(8))
r, rows, _ = send([pgone], "nobody@gone.example")
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "a bounce domain accepts the message")
dsns = ms.wait_for(SENDER, before_dsn + 1, timeout=15)[before_dsn:]
c.ok(any(b"report-type=delivery-status" in m and b"nobody@gone.example" in m for m in dsns),
     "then a DSN (multipart/report) reaches the envelope sender's Maildir")

# ---- server gone, then back

ms.stop_smtp()
r, rows, _ = send([p], "bob@prospect.example")
c.eq(row_of(rows), ("deferred", "0", "-", "0"), "SMTP server stopped: deferred, no reply, body not started")
c.ok("curl 7" in r.stderr, "connection refused is what failed", r.stderr)
ms.start_smtp()
r, rows, _ = send([p], "bob@prospect.example")
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "SMTP server back: sent")


# ---- the point of no return, against a scripted server

class ScriptedSMTP:
    """A plaintext SMTP server that answers by script and records what it
    received. data_reply answers DATA; final_reply answers the dot (None:
    close the connection without answering)."""

    def __init__(self, data_reply="354 go ahead", final_reply="250 2.0.0 queued", rcpt_replies=()):
        self.data_reply = data_reply
        self.final_reply = final_reply
        self.rcpt_replies = list(rcpt_replies)  # used first, then 250
        self.connections = 0
        self.log = []          # commands, and ("BODY", bytes)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        harness.at_exit(self.sock.close)

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                try:
                    self.session(conn)
                except OSError:
                    pass

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 scripted ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            self.log.append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                conn.sendall(b"250-scripted\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
            elif verb == "MAIL":
                conn.sendall(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                reply = self.rcpt_replies.pop(0) if self.rcpt_replies else "250 2.1.5 Ok"
                conn.sendall(reply.encode() + b"\r\n")
            elif verb == "DATA":
                conn.sendall(self.data_reply.encode() + b"\r\n")
                if not self.data_reply.startswith("354"):
                    continue
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    chunk = f.readline()
                    if not chunk:
                        return
                    body += chunk
                self.log.append(("BODY", body))
                if self.final_reply is None:
                    return  # hang up: no final reply
                conn.sendall(self.final_reply.encode() + b"\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            elif verb == "RSET" or verb == "NOOP":
                conn.sendall(b"250 2.0.0 Ok\r\n")
            else:
                conn.sendall(b"502 5.5.2 Unknown command\r\n")


def send_scripted(server, *paths):
    return send(list(paths), "gil@prospect.example", url=f"smtp://127.0.0.1:{server.port}/c.example",
                auth=("--auth", "none"), ca=False, extra=["--tls", "none", "--timeout", "5000"])


ps, raws_ = message("scripted", "gil@prospect.example", "scripted", body_text(9))
crlf = raws_.replace(b"\n", b"\r\n")

srv = ScriptedSMTP()
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "scripted server: sent")
bodies = [x[1] for x in srv.log if isinstance(x, tuple)]
c.ok(bodies and bodies[0].replace(b"\r\n..", b"\r\n.") == crlf + b".\r\n",
     "scripted server: the body arrived dot-stuffed and CRLF, ended by a lone dot")

srv = ScriptedSMTP()
r, rows, _ = send_scripted(srv, ps, ps, ps)
c.eq([row[1] for row in rows], ["sent"] * 3, "scripted server: three messages sent")
c.eq(srv.connections, 1, "scripted server: three messages over one connection")
c.eq([x.split(" ")[0] for x in srv.log if isinstance(x, str)].count("EHLO"), 1,
     "scripted server: one EHLO for the three (MAIL FROM follows the previous 250)")

# libcurl closes a connection after a failed transaction; the channel's
# next message opens a new one and goes.
srv = ScriptedSMTP(rcpt_replies=["550 5.1.1 No such user"])
r, rows, _ = send_scripted(srv, ps, ps)
c.eq([tuple(row[1:]) for row in rows], [("rejected_hard", "550", "5.1.1", "0"), ("sent", "250", "2.0.0", "1")],
     "a message after a rejected one: sent, on a new connection")
c.eq(srv.connections, 2, "a failed transaction closed its connection; the next message opened one")

srv = ScriptedSMTP(data_reply="451 4.3.0 Not now")
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows), ("deferred", "451", "4.3.0", "0"),
     "DATA answered 451: deferred, and the read callback was never called (body not started)")
srv = ScriptedSMTP(data_reply="554 5.7.1 Go away")
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows), ("rejected_policy", "554", "5.7.1", "0"),
     "DATA answered 554 5.7.1: rejected_policy, body not started")
c.ok(not any(isinstance(x, tuple) for x in srv.log), "DATA refused: no body bytes reached the server")

srv = ScriptedSMTP(final_reply=None)
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows)[0::3] if rows else None, ("unknown", "1"),
     "354, body sent, connection closed without a final reply: unknown, body started")

srv = ScriptedSMTP(final_reply="554 5.7.1 Message content rejected")
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows), ("rejected_policy", "554", "5.7.1", "1"), "final reply 554 5.7.1: rejected_policy, body started")

srv = ScriptedSMTP(final_reply="452 4.3.1 Insufficient system storage")
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows), ("deferred", "452", "4.3.1", "1"), "final reply 452: deferred, body started")

srv = ScriptedSMTP(final_reply="550 5.1.1 No such user here")
r, rows, _ = send_scripted(srv, ps)
c.eq(row_of(rows), ("rejected_hard", "550", "5.1.1", "1"), "final reply 550 5.1.1: rejected_hard, body started")

c.eq(sanitizer_reports, [], "no sanitizer report, no handle left on the loop, on_body_start called exactly "
                           "when body_started, in every smtp-send run")
c.done()
