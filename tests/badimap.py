"""An IMAP server on 127.0.0.1 that goes silent on purpose, for the tests
that prove no mail server can stall relance (tests/badsmtp.py's twin for
the mailbox side).

BadImap(silent_append=..., silent_logout=...) listens on a free port
(`port`), plaintext (accounts point at it with `tls: none`), takes any
LOGIN, and speaks enough IMAP4rev1 for libcurl and relance's watcher:
CAPABILITY, LOGIN, NOOP, LIST (an INBOX and a \\Sent folder), SELECT and
EXAMINE (an empty INBOX), STATUS, UID SEARCH (no messages), APPEND and
LOGOUT. Then:

- silent_append: an APPEND's literal is read whole (its bytes counted in
  `appended`) and never answered: the tagged OK relance waits for after
  the upload never comes.
- silent_logout: LOGOUT is never answered (`logouts` counts them).

`connections` counts the connections made; `silent` the connections left
hanging (what the client does then is up to it: a client that gave up
just drops the connection). drop() closes every open connection, stop()
the listener too. Only Python's standard library; one thread per
connection, all daemons (tests/loopback.py)."""
import re

from loopback import LoopbackServer


class BadImap(LoopbackServer):
    def __init__(self, silent_append=False, silent_logout=False):
        self.silent_append, self.silent_logout = silent_append, silent_logout
        self.logouts = self.silent = 0
        self.appended = []  # the size of each APPEND literal read whole
        super().__init__()

    def _hang(self, f):
        """Answers nothing more: reads what the client sends until it
        closes the connection."""
        with self._lock:
            self.silent += 1
        while f.readline():
            pass

    def _serve(self, conn):
        f = conn.makefile("rb")
        send = conn.sendall
        send(b"* OK [CAPABILITY IMAP4rev1] badimap ready\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            parts = line.rstrip(b"\r\n").split(b" ", 2)
            if len(parts) < 2:
                continue
            tag, verb = parts[0], parts[1].upper()
            rest = parts[2] if len(parts) > 2 else b""
            if verb == b"UID" and rest:
                verb = b"UID " + rest.split(b" ", 1)[0].upper()
            if verb == b"CAPABILITY":
                send(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK CAPABILITY done\r\n")
            elif verb in (b"LOGIN", b"NOOP", b"CHECK"):
                send(tag + b" OK done\r\n")
            elif verb == b"LIST":
                send(b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                     b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n' + tag + b" OK LIST done\r\n")
            elif verb in (b"SELECT", b"EXAMINE"):
                mode = b"READ-ONLY" if verb == b"EXAMINE" else b"READ-WRITE"
                send(b"* FLAGS (\\Seen)\r\n* 0 EXISTS\r\n* 0 RECENT\r\n"
                     b"* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n" +
                     tag + b" OK [" + mode + b"] done\r\n")
            elif verb == b"STATUS":
                m = re.match(rb'("[^"]*"|\S+)', rest)
                name = m.group(1) if m else b"INBOX"
                send(b"* STATUS " + name + b" (UIDNEXT 1 UIDVALIDITY 7)\r\n" + tag + b" OK STATUS done\r\n")
            elif verb == b"UID SEARCH":
                send(b"* SEARCH\r\n" + tag + b" OK SEARCH done\r\n")
            elif verb == b"APPEND":
                m = re.search(rb"\{(\d+)\+?\}$", rest)
                if not m:
                    send(tag + b" BAD no literal\r\n")
                    continue
                n = int(m.group(1))
                if not rest.endswith(b"+}"):
                    send(b"+ go ahead\r\n")
                data = f.read(n)
                f.readline()  # the CRLF that ends the command
                if len(data) < n:
                    return
                with self._lock:
                    self.appended.append(n)
                if self.silent_append:
                    self._hang(f)
                    return
                send(tag + b" OK [APPENDUID 7 1] APPEND done\r\n")
            elif verb == b"LOGOUT":
                with self._lock:
                    self.logouts += 1
                if self.silent_logout:
                    self._hang(f)
                    return
                send(b"* BYE badimap\r\n" + tag + b" OK LOGOUT done\r\n")
                return
            else:
                send(tag + b" BAD what\r\n")
