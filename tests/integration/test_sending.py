"""Sending for real over SMTP, against Postfix + Dovecot started on
127.0.0.1: a 3-step sequence to 30 contacts across 3 accounts arrives with
correct headers, threading and a sticky sender, rotated across the pool,
DKIM-signed (RSA-2048 and Ed25519) as an independent verifier (python3-dkim,
given the public keys locally) confirms; each account's messages travel
over one reused connection (counted in Postfix's log), closed with QUIT
once unused for smtp_idle_timeout; and preview equals what arrived,
Date/Message-ID/signature aside. One serve run; each case reads a fact of it."""
import collections
import email
import email.policy
import os
import re
import time

import dkim  # Debian's python3-dkim: the independent verifier
import pytest

import harness
from harness import relance

ACCOUNTS = [("alice@acme.example", "pw-alice-1"), ("bob@acme.example", "pw-bob-2"), ("carol@beta.example", "pw-c-3")]
# Each account's sender fields: from_name, an explicit first_name (None:
# the first word of from_name), and a two-line signature.
SENDERS = {"alice@acme.example": ("Alice Martin", None, "Alice Martin\nAcme, ventes"),
           "bob@acme.example": ("Bob Dupont", None, "Bob Dupont\nAcme, partenariats"),
           "carol@beta.example": ("Élodie Roy", "Élo", "Élodie Roy\nBeta SAS")}
IDLE = 15  # seconds; steps come 6 s apart, so each account keeps one connection throughout
N = 30
START = "2026-03-02T09:00:00Z"
pytestmark = pytest.mark.mail(users=ACCOUNTS)


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    ms, db, tmp = mail, module_db, module_tmp
    keys = {}
    for domain, alg in (("acme.example", "RSA"), ("beta.example", "ED25519")):
        key, keys[f"s1._domainkey.{domain}."] = harness.dkim_key(tmp, domain, alg)
        keys[domain] = key
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(f"smtp_idle_timeout: {IDLE}s\npools:\n  founders:\n    accounts:\n")
        for i, (addr, _) in enumerate(ACCOUNTS):
            name, first, signature = SENDERS[addr]
            f.write(f"      - email: {addr}\n        from_name: {name}\n"
                    + (f"        first_name: {first}\n" if first else "")
                    + "        signature: |\n" + "".join(f"          {ln}\n" for ln in signature.splitlines())
                    + f"        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test\n"
                    f"        password_env: PW_{i}\n        tls_ca_file: {ms.ca_file}\n")
        f.write("dkim:\n")
        for domain in ("acme.example", "beta.example"):
            f.write(f"  {domain}: {{selector: s1, key_file: {keys[domain]}}}\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg}
    env.update({f"PW_{i}": pw for i, (_, pw) in enumerate(ACCOUNTS)})
    seq = harness.sequence(tmp, "custom_steps", name="three-touch", pool="founders", steps="""  - id: intro
    subject: "Une idée pour {{company}}"
    body: "Bonjour {{first_name | }}, {voici|voilà} une idée pour {{company}}.\\n\\n{{sender.first_name}}\\n--\\n{{sender.signature}}"
  - id: bump
    wait: 1h
    body: "Je me permets de relancer, {{first_name | }}."
  - id: last
    wait: 1h
    body: "Dernier message."
""")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    db.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
            ",".join(f"('p{i}@prospects.example', 'Zoé{i}', 'Société {i}')" for i in range(N)))
    r = relance("enroll", "--sequence", "three-touch", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {N}" in r.stdout, f"enroll: {r.stdout + r.stderr}"

    before = ms.count_connections()
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*600"})
    try:
        s.wait_status("/readyz", 200)
        got = {}
        deadline = time.time() + 240
        for i in range(N):
            got[i] = ms.wait_for(f"p{i}@prospects.example", 3, timeout=max(1, deadline - time.time()))
        connections = ms.count_connections() - before
        # idle connections are closed politely (NOOP, QUIT) while serve runs on
        idle_quits = harness.wait_until(
            lambda: len(re.findall(r"disconnect from \S+ .*noop=1 quit=1", ms.smtp_log())) >= len(ACCOUNTS), 40)
        running = s.proc.poll()
        stopped = s.stop()
    finally:
        s.kill()
    return {"env": env, "keys": keys, "got": got, "connections": connections, "idle_quits": idle_quits,
            "running": running, "stopped": stopped, "out": s.output(), "db": db, "ms": ms}


def parsed_steps(msgs):
    parsed = [email.message_from_bytes(m, policy=email.policy.default) for m in msgs]
    parsed.sort(key=lambda m: 0 if not str(m["Subject"]).startswith("Re:") else 1 + ("Dernier" in m.get_content()))
    return parsed


def test_every_contact_gets_exactly_its_three_steps(run):
    got = run["got"]
    assert all(len(m) == 3 for m in got.values()), \
        f"every contact got exactly its 3 steps: {({i: len(m) for i, m in got.items() if len(m) != 3})}" \
        f"{run['out'][-3000:]}"


def test_idle_connections_are_closed_with_quit_while_serve_runs(run):
    assert run["idle_quits"], f"each account's connection was closed with QUIT after {IDLE}s unused, relance " \
        "still running:\n" + "\n".join(ln for ln in run["ms"].smtp_log().splitlines() if "disconnect from" in ln)
    assert run["running"] is None, "(relance was still running then)"


def test_serve_stops_cleanly_without_sanitizer_reports_or_passwords(run):
    assert run["stopped"] == 0, "serve stops cleanly"
    out = run["out"]
    assert "runtime error" not in out and "AddressSanitizer" not in out and "pw-" not in out, \
        f"no sanitizer report, no password in the logs: {out[-2000:]}"


def test_each_contact_has_one_sender_threaded_subjects_and_references(run, check):
    senders = collections.Counter()
    sticky = threading = subject_ok = 0
    for i, msgs in run["got"].items():
        parsed = parsed_steps(msgs)
        froms = {m["From"].addresses[0].addr_spec for m in parsed}
        if len(froms) == 1:
            sticky += 1
            senders[froms.pop()] += 1
        if (str(parsed[0]["Subject"]) == f"Une idée pour Société {i}"
                and all(str(m["Subject"]) == f"Re: Une idée pour Société {i}" for m in parsed[1:])):
            subject_ok += 1
        if (len(parsed) == 3 and parsed[1]["In-Reply-To"] == parsed[0]["Message-ID"]
                and parsed[2]["In-Reply-To"] == parsed[1]["Message-ID"]
                and parsed[2]["References"].split() == [parsed[0]["Message-ID"], parsed[1]["Message-ID"]]):
            threading += 1
    check.eq(sticky, N, "every contact's three steps came from one account")
    check.eq(subject_ok, N, "subjects: the rendered first subject, then 'Re: ' for follow-ups")
    check.eq(threading, N, "follow-ups carry In-Reply-To and References of the earlier steps")
    check.eq(sorted(senders), sorted(a for a, _ in ACCOUNTS), "all three accounts of the pool were used")
    check.ok(max(senders.values(), default=0) - min(senders.values(), default=0) <= 2,
             f"new contacts rotate evenly: {dict(senders)}")


def test_templates_get_the_sending_accounts_own_fields(run):
    # {{sender.first_name}} and {{sender.signature}} are the account's the
    # enrollment really sends from, not the pool's first: with three
    # accounts in rotation each intro is signed by its own From.
    wrong = []
    for i, msgs in run["got"].items():
        intro = parsed_steps(msgs)[0]
        sender = intro["From"].addresses[0].addr_spec
        name, first, signature = SENDERS[sender]
        want = f"{first or name.split()[0]}\n--\n{signature}"
        body = intro.get_content().replace("\r\n", "\n").rstrip("\n")
        if str(intro["From"].addresses[0].display_name) != name or not body.endswith(want):
            wrong.append((i, sender, body[-80:]))
    assert not wrong, f"each intro signed by its own account (first name, then the signature's lines): {wrong[:3]}"


def test_every_message_is_dkim_signed_rsa_and_ed25519(run):
    keys = run["keys"]
    dkim_ok = dkim_all = 0
    for msgs in run["got"].values():
        for raw in msgs:
            dkim_all += 1
            if dkim.verify(raw, dnsfunc=lambda name, timeout=5: keys.get(name.decode() if isinstance(name, bytes)
                                                                         else name)):
                dkim_ok += 1
    assert dkim_ok == dkim_all, f"DKIM verifies with python3-dkim on all {dkim_all} messages (RSA and Ed25519)"


def test_one_smtp_connection_per_account_carries_all_its_messages(run):
    assert run["connections"] == len(ACCOUNTS), "one SMTP connection per account carried all its messages"


def test_every_message_is_recorded_sent_with_the_server_reply(run):
    db = run["db"]
    assert db.psql("SELECT state, count(*) FROM messages GROUP BY 1") == [["sent", str(3 * N)]], \
        "every message recorded as sent"
    assert db.psql("SELECT count(*) FROM messages WHERE reply NOT LIKE '250%'")[0][0] == "0", \
        "server replies recorded"
    r = relance("accounts", "list", env={**run["env"], "RELANCE_TEST_CLOCK": START})
    assert r.returncode == 0 and "alice@acme.example\tpool founders\tactive\ttoday " in r.stdout, \
        f"accounts list: {r.stdout}"


SKIP = (b"date:", b"message-id:", b"dkim-signature:", b"return-path:", b"delivered-to:", b"received:")


def headers_body(raw):
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # Maildir files use LF
    head, _, body = raw.partition(b"\r\n\r\n")
    lines, cur = [], None
    for ln in head.split(b"\r\n"):
        if ln[:1] in (b" ", b"\t") and cur is not None:
            cur += b"\r\n" + ln
            continue
        if cur is not None:
            lines.append(cur)
        cur = ln
    lines.append(cur)
    return [ln for ln in lines if not ln.lower().startswith(SKIP)], body


def test_preview_equals_what_arrived(run):
    # for a contact the second account mailed: preview shows the account
    # the contact's enrollment sends from, not the pool's first
    got = run["got"]
    i = next(i for i, msgs in got.items()
             if email.message_from_bytes(msgs[0], policy=email.policy.default)["From"].addresses[0].addr_spec
             == ACCOUNTS[1][0])
    arrived = sorted(got[i], key=lambda m: b"Re:" in m.split(b"\r\n\r\n")[0])[0]
    p = relance("preview", "--raw", "three-touch", "--step", "intro", "--contact", f"p{i}@prospects.example",
                env=run["env"], raw=True)
    assert p.returncode == 0, "preview"
    assert f"account: {ACCOUNTS[1][0]} (the account the enrollment of p{i}@prospects.example sends from)" \
        in p.stderr.decode(), f"preview says which account it shows: {p.stderr!r}"
    ph, pb = headers_body(p.stdout)
    ah, ab = headers_body(arrived)
    assert ph == ah, "preview's headers equal the delivered ones (Date, Message-ID, signature and trace aside)"
    assert pb == ab, "preview's body equals the delivered body byte for byte"
