"""An SMTP server on 127.0.0.1 that misbehaves on purpose, for the tests
that prove no mail server can stall relance (one account's server must
only ever delay that account).

BadSmtp(mode) listens on a free port (`port`), plaintext and without AUTH
(accounts point at it with `tls: none` and `auth: none`), speaks enough
ESMTP for libcurl (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and then, per
message, does what mode says:

- "ok": a well-behaved server: 250 after the final dot.
- "silent_after_dot": reads the whole body and never answers the dot.
- "silent_at_data": never answers DATA (no 354).
- "drip": answers everything one byte per second.
- "reset_mid_body": reads part of the body and resets the connection.

`accepted` counts the bodies it answered 250 to, `bodies` the final dots
it saw (a body fully received, answered or not), `connections` the
connections made. set_mode() changes the behaviour for new connections;
with then=MODE, only the first connection misbehaves and the ones after
it get MODE. drop() closes every open connection (a server replaced: what
it held is cut off). Per recipient (the RCPT TO address, lower case),
`data` counts the DATA commands, `started` the bodies a 354 let begin,
`rcpt_bodies` the final dots and `rcpt_accepted` the 250s to them: what at
most once is checked against; `quits_while_silent` the QUITs a client sent
on a connection left silent after the dot (a client that gave up on it
should just drop it). Only Python's standard library; one thread
per connection, all daemons, stopped with stop() (tests/loopback.py)."""
import collections
import re
import socket
import struct
import time

from loopback import LoopbackServer


class BadSmtp(LoopbackServer):
    def __init__(self, mode="ok", then=None):
        self.mode = mode
        self.then = then
        self.accepted = self.bodies = 0
        self.quits_while_silent = 0  # QUITs on a connection left silent after the dot
        self.data, self.started = collections.Counter(), collections.Counter()
        self.rcpt_bodies, self.rcpt_accepted = collections.Counter(), collections.Counter()
        super().__init__()

    def set_mode(self, mode):
        self.mode = mode

    def _accepted(self):
        mode = self.mode
        if self.then is not None:
            self.mode, self.then = self.then, None
        return (mode,)

    def _send(self, conn, text, mode):
        data = text.encode()
        if mode == "drip":
            for b in data:
                conn.sendall(bytes([b]))
                time.sleep(1)
        else:
            conn.sendall(data)

    def _serve(self, conn, mode):
        f = conn.makefile("rb")
        rcpt = None
        self._send(conn, "220 badsmtp ESMTP\r\n", mode)
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self._send(conn, "250-badsmtp\r\n250-PIPELINING\r\n250 8BITMIME\r\n", mode)
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                if verb == b"RCPT":
                    m = re.search(rb"<([^>]*)>", line)
                    rcpt = m.group(1).decode("utf-8", "replace").lower() if m else None
                self._send(conn, "250 ok\r\n", mode)
            elif verb == b"QUIT":
                self._send(conn, "221 bye\r\n", mode)
                return
            elif verb == b"DATA":
                with self._lock:
                    self.data[rcpt] += 1
                if mode == "silent_at_data":
                    while f.readline():
                        pass
                    return
                self._send(conn, "354 go on\r\n", mode)
                with self._lock:
                    self.started[rcpt] += 1
                n = 0
                while True:
                    ln = f.readline()
                    if not ln:
                        return
                    n += len(ln)
                    if mode == "reset_mid_body" and n > 200:
                        # SO_LINGER 0: the close sends RST, not FIN
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        conn.close()
                        return
                    if ln == b".\r\n":
                        break
                with self._lock:
                    self.bodies += 1
                    self.rcpt_bodies[rcpt] += 1
                if mode == "silent_after_dot":
                    while True:  # what the client says while waiting, if anything
                        ln = f.readline()
                        if not ln:
                            return
                        if ln[:4].upper() == b"QUIT":
                            with self._lock:
                                self.quits_while_silent += 1
                self._send(conn, "250 2.0.0 queued\r\n", mode)
                with self._lock:
                    self.accepted += 1
                    self.rcpt_accepted[rcpt] += 1
            else:
                self._send(conn, "502 5.5.2 what\r\n", mode)
