"""Idle HTTP connections must not hurt relance, against a real
PostgreSQL, Postfix and Dovecot.

Run 1: `relance serve` started with RLIMIT_NOFILE 1024/1024 (the common
`ulimit -n`, with the hard limit there too, so that raising soft to hard
gives nothing). 1,000 idle TCP connections from 127.0.0.1, then 1,000 more
spread over 127.0.0.10-29 (each address under the per-address cap, all of
them well over the total). While they are held: /healthz from a new
client (127.0.0.2, and 127.0.0.1 itself) answers 200 within 2 s; /readyz
is 200; a due step goes out over SMTP and is delivered, never deferred;
what relance keeps open stays within its caps (the rest are closed at
once, not left hanging in the listen backlog); and relance closes the
idle ones after its idle timeout. The process stays up and stops cleanly.

Run 2: started with soft 256 under a hard 2048, relance raises its soft
limit to the hard one. Then its soft limit is lowered (from outside, with
prlimit) to the descriptors it has open, so that the next accept(),
socket() or open() fails with EMFILE: a new HTTP client is refused at once
(not left in the backlog), and a step that falls due is not deferred nor
blamed on the server: relance logs "out of file descriptors" with the
limit, keeps the message, and sends it by itself once the limit is back."""
import http.client
import os
import re
import resource
import select
import socket
import time

import pytest

import harness
from harness import relance

IDLE_TIMEOUT = 10   # seconds: relance's HTTP idle timeout (service/http.c)
PER_IP = 64         # connections from one address (service/http.c)
TOTAL = 256         # the HTTP total at this descriptor limit (service/fdlimit.c)
N = 1000
OPENED = []         # every client socket a case opened, closed when it ends
pytestmark = pytest.mark.mail(users=[harness.SENDER])


@pytest.fixture(autouse=True)
def many_descriptors():
    # this process holds 2,000 client sockets at once
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * N + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    yield
    for s in OPENED:
        s.close()
    OPENED.clear()


@pytest.fixture
def env(mail, db, tmp):
    env = harness.one_sender(mail, db, tmp, "limits", "custom_steps",
                             steps='  - {id: one, subject: "Hello", body: "Hello."}\n')
    db.psql("INSERT INTO contacts (email) VALUES ('held@prospects.example'), ('short@prospects.example')")
    return env


@pytest.fixture
def serve_limited(serve):
    """serve(env, (soft, hard)): `relance serve` with RLIMIT_NOFILE set in
    the child before exec."""
    def start(env, nofile):
        return serve(env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
    return start


def open_idle(port, sources, n, timeout=5):
    """n connections that never send a byte, round-robin over sources;
    returns them once each connected or failed (bounded by timeout)."""
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    OPENED.extend(socks)
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLOUT)
    pending = len(socks)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in p.poll(100):
            p.unregister(fd)
            pending -= 1
    return socks


def server_closed(s):
    """True once the server closed s (EOF or reset)."""
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def still_open(socks):
    return sum(1 for s in socks if not server_closed(s))


def get(port, path, source):
    """(status, seconds) of GET path from source; status 0 on failure."""
    start = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        status = r.status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        c.close()
    return status, time.monotonic() - start


def probe(check, port, path, source, what):
    status, secs = get(port, path, source)
    print(f"     {path} from {source}: {status} in {secs * 1000:.0f} ms")
    check.ok(status == 200 and secs < 2, f"{what}: {path} from {source} answers 200 within 2 s",
             f"status {status} after {secs:.2f} s")


def message_states(db, rcpt):
    return [r[0] for r in db.psql(f"SELECT state FROM messages WHERE recipient = '{rcpt}'")]


def deferrals(db):
    return int(db.psql("SELECT count(*) FROM events WHERE kind = 'message.deferred'")[0][0])


def starve(pid):
    """Lowers pid's soft descriptor limit to its lowest free descriptor
    number, so that its next socket(), open() or accept() fails with
    EMFILE (a descriptor gets the lowest free number). Again while a
    descriptor closed meanwhile left a lower one free."""
    time.sleep(0.3)  # the last HTTP connection closes
    limit = None
    for _ in range(10):
        used = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
        lowest_free = next(n for n in range(len(used) + 1) if n not in used)
        if lowest_free == limit:
            break
        limit = lowest_free
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, 2048))
        time.sleep(0.1)
    return limit


def enroll(check, env, contact):
    r = relance("enroll", "--sequence", "limits", "--contact", contact, env=env)
    check.ok(r.returncode == 0 and "enrolled 1" in r.stdout, f"enroll {contact}", r.stdout + r.stderr)


def test_two_thousand_idle_connections_under_ulimit_1024_hurt_nothing(mail, db, env, serve_limited, check):
    ms = mail
    s = serve_limited(env, (1024, 1024))
    s.wait_status("/readyz", 200)

    started = time.monotonic()
    one_address = open_idle(s.port, ["127.0.0.1"], N)
    print(f"     opened {N} idle connections from 127.0.0.1 in {time.monotonic() - started:.2f} s")
    probe(check, s.port, "/healthz", "127.0.0.2", "1,000 idle connections from 127.0.0.1")
    probe(check, s.port, "/readyz", "127.0.0.2", "1,000 idle connections from 127.0.0.1")
    time.sleep(0.5)
    kept = still_open(one_address)
    print(f"     relance keeps {kept} of the {N} from 127.0.0.1 open")
    check.ok(kept <= PER_IP, f"at most {PER_IP} connections from one address are kept; the rest are closed at once",
             f"{kept} open")

    enroll(check, env, "held@prospects.example")
    got = ms.wait_for("held@prospects.example", 1, timeout=15)
    check.eq(len(got), 1, "a due step is delivered over SMTP while the idle connections are held")
    check.eq(message_states(db, "held@prospects.example"), ["sent"], "its message is 'sent'")
    check.eq(deferrals(db), 0, "no message was deferred")

    started = time.monotonic()
    many_addresses = open_idle(s.port, [f"127.0.0.{10 + i}" for i in range(20)], N)
    print(f"     opened {N} more from 20 addresses in {time.monotonic() - started:.2f} s")
    probe(check, s.port, "/healthz", "127.0.0.2", f"at the total ({TOTAL})")
    probe(check, s.port, "/healthz", "127.0.0.1", "at the total, from the first clients' address")
    probe(check, s.port, "/readyz", "127.0.0.3", "at the total")
    time.sleep(0.5)
    held = one_address + many_addresses
    kept = still_open(held)
    print(f"     relance keeps {kept} of the {2 * N} open")
    check.ok(kept <= TOTAL, f"at most {TOTAL} idle connections are kept in all; the others are closed at once",
             f"{kept} open")
    check.ok(kept > 0, "the latest idle connections are kept until they time out")

    opened = time.monotonic()
    closed_at = None
    while time.monotonic() < opened + IDLE_TIMEOUT + 8:
        left = still_open(held)
        if left == 0:
            closed_at = time.monotonic() - opened
            break
        time.sleep(0.25)
    closed = len(held) - still_open(held)
    print(f"     {closed} of {len(held)} closed by relance; the last "
          + (f"{closed_at:.1f} s after they were opened" if closed_at is not None else "not yet"))
    check.ok(closed_at is not None and closed_at >= IDLE_TIMEOUT - 3,
             f"relance closed all {len(held)} idle connections, the kept ones after its {IDLE_TIMEOUT} s idle timeout",
             f"closed {closed}, the last at {closed_at}")
    check.eq(s.proc.poll(), None, "relance is still running")
    probe(check, s.port, "/healthz", "127.0.0.1", "afterwards")
    for c in held:
        c.close()
    check.eq(s.stop(), 0, "serve stops cleanly")
    out = s.output()
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "no sanitizer report", out[-3000:])
    check.ok("out of file descriptors" not in out, "no descriptor shortage was logged", out[-3000:])


def test_a_descriptor_shortage_is_local_and_transient(mail, db, env, serve_limited, check):
    """The soft limit is raised to the hard one; then lowered from outside."""
    ms = mail
    s = serve_limited(env, (256, 2048))
    s.wait_status("/readyz", 200)
    with open(f"/proc/{s.proc.pid}/limits") as f:
        line = next(ln for ln in f if ln.startswith("Max open files"))
    check.eq(line.split()[3:5], ["2048", "2048"], "serve raised its soft descriptor limit to the hard one")
    check.ok("2048" in s.output(), "the limit is logged", s.output()[-2000:])

    lowest_free = starve(s.proc.pid)
    status, secs = get(s.port, "/healthz", "127.0.0.2")
    print(f"     /healthz with no descriptor to spare: {status} in {secs * 1000:.0f} ms")
    check.ok(status == 0 and secs < 1, "with no descriptor to spare a new HTTP connection is refused at once (closed), "
             "not left waiting", f"status {status} after {secs:.2f} s")
    check.ok(harness.wait_until(lambda: re.search(rf"http: out of file descriptors.* limit={lowest_free}\b", s.output()), 3),
             "and relance logs that it is out of file descriptors, with the limit", s.output()[-2000:])
    enroll(check, env, "short@prospects.example")
    told = harness.wait_until(lambda: "sender: out of file descriptors" in s.output(), 10)
    check.ok(told, "a send whose socket() fails with EMFILE is logged as 'out of file descriptors'", s.output()[-3000:])
    lines = [ln for ln in s.output().splitlines() if "sender: out of file descriptors" in ln]
    check.ok(any(re.search(rf"limit[= ]{lowest_free}\b", ln) for ln in lines), "with the limit", "\n".join(lines[:3]))
    check.eq(deferrals(db), 0, "the message is not deferred while descriptors are short")
    resource.prlimit(s.proc.pid, resource.RLIMIT_NOFILE, (2048, 2048))
    got = ms.wait_for("short@prospects.example", 1, timeout=15)
    check.eq(len(got), 1, "once descriptors are back, the message goes out by itself, soon")
    check.eq(message_states(db, "short@prospects.example"), ["sent"], "its message is 'sent'")
    check.eq(deferrals(db), 0, "no message was deferred")
    check.eq(db.psql("SELECT state FROM accounts")[0][0], "active", "the account is not held responsible")
    check.eq(s.stop(), 0, "serve stops cleanly")
    out = s.output()
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "no sanitizer report", out[-3000:])
