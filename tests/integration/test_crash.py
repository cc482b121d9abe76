"""At most once through crashes (DESIGN semantic 1), against Postfix +
Dovecot and a real PostgreSQL: while a batch is going out, relance is
killed with SIGKILL and restarted, PostgreSQL is restarted, and the SMTP
server is killed and started again. Afterwards no step arrived twice
(distinct Message-IDs per contact and step in the mailboxes, and Postfix
accepted each Message-ID once), no message is empty or foreign, nothing is
left 'sending' without restarting relance (the replica settles its own
lost claims at reconnect), and every message ended sent,
deferred-then-sent or unknown."""
import collections
import email
import email.policy
import os
import re
import signal
import time

import pytest

import harness
from harness import relance

N = int(os.environ.get("RELANCE_TEST_CONTACTS", "150"))
START = "2026-03-02T09:00:00Z"
pytestmark = pytest.mark.mail(users=[harness.SENDER])


def delivered(ms):
    # files, not their bytes: this is polled every 50 ms while relance works
    return sum(len(ms.folder_files(f"c{i}@prospects.example")) for i in range(N))


def wait_delivered(ms, n, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline and delivered(ms) < n:
        time.sleep(0.05)
    return delivered(ms)


def test_no_step_arrives_twice_through_crashes_of_relance_postgresql_and_smtp(mail, own_postgres, tmp, serve,
                                                                              check):
    # PostgreSQL is restarted in the middle: a cluster of this test's own
    ms, pg = mail, own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0, "migrate"
    env = harness.one_sender(ms, pg, tmp, "crash", "two_step", wait="30m")
    pg.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('c{i}@prospects.example')" for i in range(N)))
    r = relance("enroll", "--sequence", "crash", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {N}" in r.stdout, f"enroll: {r.stdout + r.stderr}"
    serve_env = {**env, "RELANCE_TEST_CLOCK": f"{START}*30"}

    serves = []


    s = serve(serve_env)
    serves.append(s)
    s.wait_status("/readyz", 200)
    wait_delivered(ms, N // 5)
    s.proc.send_signal(signal.SIGKILL)  # mid-batch
    s.proc.wait()
    check.ok(True, f"killed relance with SIGKILL after {delivered(ms)} deliveries")
    s = serve(serve_env)  # a new replica: takes over once the dead one's leases expire (30 s)
    serves.append(s)
    s.wait_status("/readyz", 200)
    wait_delivered(ms, N // 2, timeout=120)
    pg.stop()
    time.sleep(1)
    pg.start()
    check.ok(True, f"restarted PostgreSQL after {delivered(ms)} deliveries")
    wait_delivered(ms, 3 * N // 4, timeout=120)
    ms.stop_smtp()  # kills Postfix's process groups: connections drop mid-transaction
    time.sleep(2)
    ms.start_smtp()
    check.ok(True, f"restarted the SMTP server after {delivered(ms)} deliveries")

    # No restart of relance from here: rows whose claim answer was lost with
    # the PostgreSQL connection are rescued by the replica itself at reconnect.
    deadline = time.time() + 240
    while time.time() < deadline:
        left = pg.psql("SELECT count(*) FROM messages WHERE state IN ('sending', 'deferred')")[0][0]
        done = pg.psql("SELECT count(*) FROM enrollments WHERE state = 'completed'")[0][0]
        if left == "0" and done == str(N):
            break
        time.sleep(1)
    check.eq(s.stop(), 0, "relance stops cleanly")
    out = s.output()
    if pg.psql("SELECT count(*) FROM messages WHERE state = 'sending'")[0][0] != "0":
        print("\n".join(out.splitlines()[-40:]))
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])

    arrived = collections.Counter()   # distinct Message-IDs per contact and step
    copies = collections.Counter()    # copies per Message-ID in the mailboxes
    seen_ids = set()
    strays = []
    for i in range(N):
        for raw in ms.messages(f"c{i}@prospects.example"):
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if not str(msg["Message-ID"]).endswith("@acme.example>"):
                strays.append(raw)
                continue
            step = "two" if str(msg["Subject"]).startswith("Re:") else "one"
            mid = str(msg["Message-ID"])
            copies[mid] += 1
            if mid not in seen_ids:
                seen_ids.add(mid)
                arrived[(i, step)] += 1
    # How many times Postfix accepted each Message-ID from a client: what
    # relance sent. A Postfix killed during its own LMTP delivery delivers
    # that queue file again after its restart (the server's at-least-once,
    # not a second send); those copies share one acceptance.
    accepted = collections.Counter(re.findall(r"cleanup\[\d+\]: [0-9A-F]+: message-id=(<[^>]*>)", ms.smtp_log()))
    check.eq({m: n for m, n in accepted.items() if n > 1}, {}, "relance handed each message to the SMTP server once")
    redelivered = sum(n - 1 for n in copies.values() if n > 1)
    check.ok(all(accepted[m] == 1 for m, n in copies.items() if n > 1),
             f"a message in a mailbox twice ({redelivered}) was accepted once (Postfix redelivered it after its kill)")
    check.eq(strays[:1], [], f"every delivered message is one of relance's ({len(strays)} others)")
    if strays:
        for k, sv in enumerate(serves):
            for ln in sv.output().splitlines():
                if "WARN" in ln or "ERROR" in ln or "no return" in ln or "abandon" in ln:
                    print(f"     serve{k}: {ln}"[:400])
    for raw in strays[:3]:  # what happened, for the record
        qid = re.search(rb"with ESMTPS?A? id ([0-9A-F]+)", raw)
        if qid:
            q = qid.group(1).decode()
            print("\n".join("     " + ln for ln in ms.smtp_log().splitlines() if q in ln))
            cl = [ln for ln in ms.smtp_log().splitlines() if q in ln and "client=" in ln]
            m = re.search(r"smtpd\[(\d+)\]", cl[0]) if cl else None
            if m:
                print("\n".join("     " + ln for ln in ms.smtp_log().splitlines() if f"smtpd[{m.group(1)}]" in ln)[-3000:])
    twice = {k: v for k, v in arrived.items() if v > 1}
    check.eq(twice, {}, "no step arrived twice")
    for (i, step) in twice:  # what happened, for the record
        ids = [email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]
               for raw in ms.messages(f"c{i}@prospects.example")]
        print(f"     c{i} {step}: arrived {ids}")
        print("     " + str(pg.psql("SELECT message_id, position, state, attempts, body_started, claimed_by, outcome, "
                                    f"reply FROM messages WHERE recipient = 'c{i}@prospects.example'")))
        print("     " + str(pg.psql("SELECT kind, data->>'reply' FROM events WHERE data->>'message_id' IN "
                                    f"(SELECT message_id FROM messages WHERE recipient = 'c{i}@prospects.example')")))
    states = dict((k, int(v)) for k, v in pg.psql("SELECT state, count(*) FROM messages GROUP BY 1"))
    check.eq(states.get("sending", 0) + states.get("deferred", 0), 0, f"nothing left sending or deferred: {states}")
    check.eq(states.get("sent", 0) + states.get("unknown", 0), 2 * N, "every step ended sent or unknown")
    missing = [(i, st) for i in range(N) for st in ("one", "two") if arrived[(i, st)] == 0]
    unknown = int(pg.psql("SELECT count(*) FROM messages WHERE state = 'unknown'")[0][0])
    check.ok(len(missing) <= unknown, f"a step missing from a mailbox is one recorded as unknown ({len(missing)} missing, "
             f"{unknown} unknown)")
    check.eq(pg.psql("SELECT count(*) FROM messages WHERE state = 'sent' AND NOT body_started")[0][0], "0",
             "every sent message had its point of no return recorded first")
    r = relance("messages", "list", "--state", "unknown", env=env)
    check.eq(len(r.stdout.splitlines()), unknown, "messages list --state unknown reports each of them")
