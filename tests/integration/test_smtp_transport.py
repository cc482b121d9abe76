"""The SMTP transport (service/smtp.c on service/curl_uv.c) against real
servers: Postfix + Dovecot from tests/mailservers.py, and a scripted SMTP
server in this file for the replies Postfix will not give on demand (a 4xx
or 5xx to DATA or to the final dot, no final reply at all).

Driven through `relance smtp-send`, which prints per message
FILE, outcome, reply code, enhanced status, body started (0/1). Every run
must be free of sanitizer reports, of handles left on the loop and of a
body start reported when the body did not start."""
import os
import re
import socket
import threading
import time

import pytest

from harness import relance
from mailservers import STANDARD_BOUNCES, STANDARD_REJECTS

SENDER = "alice@acme.example"
PASSWORD = "s3cret-Pa55"
ENV = {"ALICE_PW": PASSWORD, "WRONG_PW": "not-the-password"}
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")

pytestmark = pytest.mark.mail(users=[(SENDER, PASSWORD)], reject_domains=STANDARD_REJECTS,
                              bounce_domains=STANDARD_BOUNCES)


@pytest.fixture
def message(tmp):
    def write(name, to, subject, body):
        """Writes an LF message file; returns (path, bytes)."""
        raw = (f"From: Alice Martin <{SENDER}>\nTo: <{to}>\nSubject: {subject}\n"
               f"Message-ID: <{name}@acme.example>\nMIME-Version: 1.0\n"
               f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}").encode()
        path = os.path.join(tmp, name + ".eml")
        with open(path, "wb") as f:
            f.write(raw)
        return path, raw
    return write


def body_text(i):
    # dot-stuffing, a lone dot, 8-bit text, trailing spaces, an empty line
    return (f"Hello number {i},\n\n.a line starting with a dot\n.\n..two dots\n"
            f"Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9 \u2014 {i}\ntrailing spaces   \n\n-- \nAlice\n")


def send(ms, files, to, url=None, auth=("--user", SENDER, "--password-env", "ALICE_PW"), ca=True, extra=()):
    url = url or f"smtp://127.0.0.1:{ms.submission_port}/client.acme.example"
    args = ["smtp-send", "--url", url, "--from", SENDER, "--to", to, *auth]
    if ca:
        args += ["--ca-file", ms.ca_file]
    args += list(extra) + list(files)
    t0 = time.time()
    r = relance(*args, env=ENV, timeout=120)
    assert not (SANITIZER.search(r.stderr) or "handles left open" in r.stderr
                or "body start reported" in r.stderr), \
        f"no sanitizer report, no handle left on the loop, on_body_start called exactly when body_started:\n{r.stderr}"
    rows = [line.split("\t") for line in r.stdout.splitlines() if line]
    return r, rows, time.time() - t0


def row_of(rows, i=0):
    return tuple(rows[i][1:]) if len(rows) > i else None


def body_of(raw):
    return raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else None


def arrived_intact(ms, to, raws, timeout=10):
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

def test_starttls_auth_and_implicit_tls_deliver_bodies_intact(mail, message, check):
    ms = mail
    p, raw = message("plain1", "bob@prospect.example", "STARTTLS and AUTH PLAIN", body_text(1))
    r, rows, _ = send(ms, [p], "bob@prospect.example", extra=["--sasl", "PLAIN"])
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "STARTTLS + AUTH PLAIN on submission: sent")
    check.eq(r.returncode, 0, "smtp-send exits 0 when all were sent")
    check.ok(ms.wait_log(r"sasl_method=PLAIN, sasl_username=alice@acme.example"), "the server saw AUTH PLAIN")
    p2, raw2 = message("login1", "bob@prospect.example", "STARTTLS and AUTH LOGIN", body_text(2))
    r, rows, _ = send(ms, [p2], "bob@prospect.example", extra=["--sasl", "LOGIN"])
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "STARTTLS + AUTH LOGIN: sent")
    check.ok(ms.wait_log(r"sasl_method=LOGIN, sasl_username=alice@acme.example"), "the server saw AUTH LOGIN")
    p3, raw3 = message("smtps1", "bob@prospect.example", "implicit TLS", body_text(3))
    r, rows, _ = send(ms, [p3], "bob@prospect.example", url=f"smtps://127.0.0.1:{ms.smtps_port}/client.acme.example")
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "implicit TLS (smtps://) + AUTH: sent")
    check.eq(arrived_intact(ms, "bob@prospect.example", [raw, raw2, raw3]), [],
             "the three messages arrived with their bodies byte-identical (dots, 8-bit text)")


def test_a_wrong_password_fails_before_mail_from_and_costs_no_penalty(mail, message, check):
    ms = mail
    p, _ = message("wrongpw", "bob@prospect.example", "a wrong password", body_text(1))
    r, rows, elapsed = send(ms, [p], "bob@prospect.example", auth=("--user", SENDER, "--password-env", "WRONG_PW"))
    check.eq(row_of(rows), ("auth_failed", "535", "5.7.8", "0"),
             "a wrong password: auth_failed 535 5.7.8, body not started")
    check.eq(r.returncode, 1, "smtp-send exits 1 when a message was not sent")
    check.ok("MAIL FROM not accepted" in r.stderr, "an AUTH failure never reached MAIL FROM", r.stderr)
    check.ok(PASSWORD not in r.stdout + r.stderr and "not-the-password" not in r.stdout + r.stderr,
             "no password in the output")
    r, rows, _ = send(ms, [p], "bob@prospect.example", auth=("--user", SENDER, "--password-env", "WRONG_PW"))
    r, rows, elapsed = send(ms, [p], "bob@prospect.example")
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "the right password right after two failures: sent")
    check.ok(elapsed < 2.0, "no auth penalty after failed logins", f"took {elapsed:.2f}s")


@pytest.mark.parametrize("name, scheme, port", [("STARTTLS", "smtp", "submission_port"),
                                                ("implicit TLS", "smtps", "smtps_port")])
def test_without_the_ca_file_the_certificate_fails_before_the_body(mail, message, name, scheme, port):
    p, _ = message("noca", "bob@prospect.example", "no CA", body_text(1))
    r, rows, _ = send(mail, [p], "bob@prospect.example", url=f"{scheme}://127.0.0.1:{getattr(mail, port)}/c.example",
                      ca=False)
    assert row_of(rows) == ("deferred", rows[0][2] if rows else "?", "-", "0"), \
        f"{name} without the CA file: deferred before the body"
    assert "certificate" in r.stderr.lower() and "curl 60" in r.stderr, \
        f"{name} without the CA file: the certificate is what failed: {r.stderr}"


def account_config(ms, tmp, name, account_ca=None, global_ca=None):
    """A configuration with alice's account on submission, her password in
    a file; account_ca / global_ca: its tls_ca_file, the global one."""
    pw = os.path.join(tmp, "alice.pw")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write((f"tls_ca_file: {global_ca}\n" if global_ca else "") +
                f"pools:\n  founders:\n    accounts:\n      - email: {SENDER}\n"
                f"        smtp: smtp://127.0.0.1:{ms.submission_port}/client.acme.example\n"
                f"        password_file: {pw}\n" +
                (f"        tls_ca_file: {account_ca}\n" if account_ca else ""))
    return path


def send_as_account(cfg, files, to, extra=()):
    r = relance("smtp-send", "--account", SENDER, "--to", to, *extra, *files, env={"RELANCE_CONFIG": cfg}, timeout=60)
    assert not SANITIZER.search(r.stderr), r.stderr
    return r, [line.split("\t") for line in r.stdout.splitlines() if line]


def test_smtp_send_checks_what_serve_would_use(mail, message, tmp, check):
    """--account takes the account's URL, login, password file and CA file;
    without --ca-file the configuration's tls_ca_file is trusted, as serve
    trusts it; flags override the account."""
    ms = mail
    p, raw = message("account1", "bob@prospect.example", "as the configured account", body_text(1))
    r, rows = send_as_account(account_config(ms, tmp, "with-ca", account_ca=ms.ca_file), [p], "bob@prospect.example")
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "--account with the account's tls_ca_file: sent")
    check.ok(PASSWORD not in r.stdout + r.stderr, "no password in the output")
    noca = account_config(ms, tmp, "no-ca")
    r, rows = send_as_account(noca, [p], "bob@prospect.example")
    check.eq(row_of(rows)[0:1] if rows else None, ("deferred",), "--account without a configured CA: not sent")
    check.ok("certificate" in r.stderr.lower() and r.returncode == 1,
             "without the configured CA the certificate is what failed", r.stderr)
    r, rows = send_as_account(noca, [p], "bob@prospect.example", extra=["--ca-file", ms.ca_file])
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "--ca-file overrides the account's (missing) CA")
    # without --account: the global tls_ca_file when no --ca-file is given
    env = dict(ENV, RELANCE_CONFIG=account_config(ms, tmp, "global-ca", global_ca=ms.ca_file))
    r = relance("smtp-send", "--url", f"smtp://127.0.0.1:{ms.submission_port}/client.acme.example", "--from", SENDER,
                "--to", "bob@prospect.example", "--user", SENDER, "--password-env", "ALICE_PW", p, env=env, timeout=60)
    rows = [line.split("\t") for line in r.stdout.splitlines() if line]
    check.eq(row_of(rows), ("sent", "250", "2.0.0", "1"), "--url without --ca-file: the global tls_ca_file")
    r = relance("smtp-send", "--account", "nobody@acme.example", "--to", "bob@prospect.example", p,
                env={"RELANCE_CONFIG": noca}, timeout=60)
    check.ok(r.returncode == 1 and "no account nobody@acme.example" in r.stderr, "an unknown account: an error",
             r.stderr)


def test_the_mx_port_takes_plaintext_or_upgrades_with_starttls(mail, message):
    ms = mail
    pn, _ = message("sink1", "dan@sink.example", "plaintext sink", body_text(4))
    r, rows, _ = send(ms, [pn], "dan@sink.example", url=f"smtp://127.0.0.1:{ms.smtp_port}/c.example",
                      auth=("--auth", "none"), ca=False, extra=["--tls", "none"])
    assert row_of(rows) == ("sent", "250", "2.0.0", "1"), "--tls none --auth none on the MX port: sent"
    r, rows, _ = send(ms, [pn], "dan@sink.example", url=f"smtp://127.0.0.1:{ms.smtp_port}/c.example",
                      auth=("--auth", "none"))
    assert row_of(rows) == ("sent", "250", "2.0.0", "1"), "smtp:// without --tls none upgrades with STARTTLS: sent"
    assert ms.wait_log(r"postfix/smtpd\[\d+\]: Anonymous TLS connection established from"), \
        "the MX port saw a TLS connection"


def test_thirty_messages_go_over_one_connection_intact(mail, message, check):
    ms = mail
    raws = []
    files = []
    for i in range(30):
        p_i, raw_i = message(f"many{i:02d}", "erin@prospect.example", f"message {i} of 30", body_text(100 + i))
        files.append(p_i)
        raws.append(raw_i)
    time.sleep(0.3)
    before = ms.count_connections()
    r, rows, elapsed = send(ms, files, "erin@prospect.example")
    check.eq([row[1:] for row in rows], [["sent", "250", "2.0.0", "1"]] * 30, "30 messages: all sent")
    check.eq([row[0] for row in rows], files, "one line per file, in order")
    time.sleep(0.5)
    check.eq(ms.count_connections() - before, 1, "30 messages over exactly one connection (Postfix log)")
    check.eq(arrived_intact(ms, "erin@prospect.example", raws, timeout=20), [],
             "all 30 arrived, bodies byte-identical")
    print(f"     (30 messages in {elapsed:.2f}s)")


# ---- rejections at RCPT: never reach the body

@pytest.mark.parametrize("to, want", [
    ("x@bad.example", ("rejected_hard", "550", "5.1.1", "0")),
    ("x@slow.example", ("deferred", "450", "4.2.1", "0")),
    ("x@blocked.example", ("rejected_policy", "554", "5.7.1", "0")),
])
def test_a_rejection_at_rcpt_never_reaches_the_body(mail, message, to, want):
    pr, _ = message("rej", to, "to a rejected domain", body_text(5))
    r, rows, _ = send(mail, [pr], to)
    assert row_of(rows) == want, f"{want[1]} {want[2]} at RCPT: {want[0]}, body not started"


def test_a_rejection_at_rcpt_reports_the_server_text_past_mail_from(mail, message):
    pr, _ = message("rej", "x@bad.example", "to a rejected domain", body_text(5))
    r, rows, _ = send(mail, [pr], "x@bad.example")
    assert "User unknown" in r.stderr, f"the server's text is reported: {r.stderr}"
    assert "MAIL FROM accepted" in r.stderr, \
        f"a rejection at RCPT is past MAIL FROM (counts against the cap): {r.stderr}"


def test_an_accepted_message_may_bounce_later_with_a_dsn(mail, message):
    ms = mail
    before_dsn = len(ms.messages(SENDER))
    pgone, _ = message("gone", "nobody@gone.example", "to a bouncing domain", body_text(8))
    r, rows, _ = send(ms, [pgone], "nobody@gone.example")
    assert row_of(rows) == ("sent", "250", "2.0.0", "1"), "a bounce domain accepts the message"
    dsns = ms.wait_for(SENDER, before_dsn + 1, timeout=15)[before_dsn:]
    assert any(b"report-type=delivery-status" in m and b"nobody@gone.example" in m for m in dsns), \
        "then a DSN (multipart/report) reaches the envelope sender's Maildir"


def test_a_stopped_smtp_server_defers_and_a_restarted_one_takes_mail(mail, message):
    ms = mail
    p, _ = message("gone-back", "bob@prospect.example", "server gone", body_text(1))
    ms.stop_smtp()
    try:
        r, rows, _ = send(ms, [p], "bob@prospect.example")
        assert row_of(rows) == ("deferred", "0", "-", "0"), \
            "SMTP server stopped: deferred, no reply, body not started"
        assert "curl 7" in r.stderr, f"connection refused is what failed: {r.stderr}"
    finally:
        ms.start_smtp()
    r, rows, _ = send(ms, [p], "bob@prospect.example")
    assert row_of(rows) == ("sent", "250", "2.0.0", "1"), "SMTP server back: sent"


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

    def close(self):
        self.sock.close()

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


@pytest.fixture
def scripted(mail, message):
    """scripted(**replies) starts a ScriptedSMTP; returns (server, send(n)),
    send(n) sending n copies of one message to it."""
    made = []
    ps, raw = message("scripted", "gil@prospect.example", "scripted", body_text(9))

    def start(**replies):
        srv = ScriptedSMTP(**replies)
        made.append(srv)

        def send_n(n=1):
            return send(mail, [ps] * n, "gil@prospect.example", url=f"smtp://127.0.0.1:{srv.port}/c.example",
                        auth=("--auth", "none"), ca=False, extra=["--tls", "none", "--timeout", "5000"])
        return srv, send_n, raw

    yield start
    for srv in made:
        srv.close()


def test_scripted_server_receives_the_body_dot_stuffed_and_crlf(scripted):
    srv, send_n, raw = scripted()
    r, rows, _ = send_n()
    assert row_of(rows) == ("sent", "250", "2.0.0", "1"), "scripted server: sent"
    bodies = [x[1] for x in srv.log if isinstance(x, tuple)]
    crlf = raw.replace(b"\n", b"\r\n")
    assert bodies and bodies[0].replace(b"\r\n..", b"\r\n.") == crlf + b".\r\n", \
        "scripted server: the body arrived dot-stuffed and CRLF, ended by a lone dot"


def test_three_messages_share_one_connection_and_one_ehlo(scripted):
    srv, send_n, _ = scripted()
    r, rows, _ = send_n(3)
    assert [row[1] for row in rows] == ["sent"] * 3, "scripted server: three messages sent"
    assert srv.connections == 1, "scripted server: three messages over one connection"
    assert [x.split(" ")[0] for x in srv.log if isinstance(x, str)].count("EHLO") == 1, \
        "scripted server: one EHLO for the three (MAIL FROM follows the previous 250)"


def test_a_message_after_a_rejected_one_goes_on_a_new_connection(scripted):
    # libcurl closes a connection after a failed transaction; the channel's
    # next message opens a new one and goes.
    srv, send_n, _ = scripted(rcpt_replies=["550 5.1.1 No such user"])
    r, rows, _ = send_n(2)
    assert [tuple(row[1:]) for row in rows] == [("rejected_hard", "550", "5.1.1", "0"),
                                                ("sent", "250", "2.0.0", "1")], \
        "a message after a rejected one: sent, on a new connection"
    assert srv.connections == 2, "a failed transaction closed its connection; the next message opened one"


def test_data_answered_451_defers_without_starting_the_body(scripted):
    srv, send_n, _ = scripted(data_reply="451 4.3.0 Not now")
    r, rows, _ = send_n()
    assert row_of(rows) == ("deferred", "451", "4.3.0", "0"), \
        "DATA answered 451: deferred, and the read callback was never called (body not started)"


def test_data_answered_554_is_a_policy_rejection_with_no_body_sent(scripted):
    srv, send_n, _ = scripted(data_reply="554 5.7.1 Go away")
    r, rows, _ = send_n()
    assert row_of(rows) == ("rejected_policy", "554", "5.7.1", "0"), \
        "DATA answered 554 5.7.1: rejected_policy, body not started"
    assert not any(isinstance(x, tuple) for x in srv.log), "DATA refused: no body bytes reached the server"


def test_no_final_reply_after_the_body_is_unknown(scripted):
    srv, send_n, _ = scripted(final_reply=None)
    r, rows, _ = send_n()
    assert (row_of(rows)[0::3] if rows else None) == ("unknown", "1"), \
        "354, body sent, connection closed without a final reply: unknown, body started"


@pytest.mark.parametrize("final, want", [
    ("554 5.7.1 Message content rejected", ("rejected_policy", "554", "5.7.1", "1")),
    ("452 4.3.1 Insufficient system storage", ("deferred", "452", "4.3.1", "1")),
    ("550 5.1.1 No such user here", ("rejected_hard", "550", "5.1.1", "1")),
])
def test_the_final_reply_decides_the_outcome_of_a_started_body(scripted, final, want):
    srv, send_n, _ = scripted(final_reply=final)
    r, rows, _ = send_n()
    assert row_of(rows) == want, f"final reply {final}: {want[0]}, body started"
