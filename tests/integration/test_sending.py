"""Sending for real over SMTP (issue 5), against Postfix + Dovecot started
on 127.0.0.1: a 3-step sequence to 30 contacts across 3 accounts arrives
with correct headers, threading and a sticky sender, rotated across the
pool, DKIM-signed (RSA-2048 and Ed25519) as an independent verifier
(python3-dkim, given the public keys locally) confirms; each account's
messages travel over one reused connection (counted in Postfix's log),
closed with QUIT once unused for smtp_idle_timeout; and
preview equals what arrived, Date/Message-ID/signature aside."""
import collections
import email
import email.policy
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance  # noqa: E402

import dkim  # noqa: E402  (Debian's python3-dkim: the independent verifier)

t = harness.Check("sending")
ACCOUNTS = [("alice@acme.example", "pw-alice-1"), ("bob@acme.example", "pw-bob-2"), ("carol@beta.example", "pw-c-3")]
ms = mailservers.MailServers(users=ACCOUNTS)
pg = harness.Postgres()
tmp = harness.short_tempdir("rsnd")

keys = {}
for domain, alg in (("acme.example", "RSA"), ("beta.example", "ED25519")):
    key = os.path.join(tmp, f"{domain}.pem")
    args = ["openssl", "genpkey", "-algorithm", alg, "-out", key]
    if alg == "RSA":
        args += ["-pkeyopt", "rsa_keygen_bits:2048"]
    subprocess.run(args, check=True, capture_output=True)
    r = relance("dkim-sign", "--print-dns", "--key", key, "--domain", domain, "--selector", "s1")
    t.eq(r.returncode, 0, f"dkim record for {domain}")
    # 's1._domainkey.D IN TXT "v=DKIM1; ..." "..."' -> the TXT value
    keys[f"s1._domainkey.{domain}."] = "".join(r.stdout.split("TXT", 1)[1].replace('"', " ").split()).replace(
        "v=DKIM1;", "v=DKIM1; ").encode()
    keys[domain] = key

cfg = os.path.join(tmp, "relance.yaml")
IDLE = 15  # seconds; steps come 6 s apart, so each account keeps one connection throughout
with open(cfg, "w") as f:
    f.write(f"smtp_idle_timeout: {IDLE}s\npools:\n  founders:\n    accounts:\n")
    for i, (addr, _) in enumerate(ACCOUNTS):
        f.write(f"      - email: {addr}\n        from_name: Account {i}\n"
                f"        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test\n"
                f"        password_env: PW_{i}\n        tls_ca_file: {ms.ca_file}\n")
    f.write("dkim:\n")
    for domain in ("acme.example", "beta.example"):
        f.write(f"  {domain}: {{selector: s1, key_file: {keys[domain]}}}\n")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg}
env.update({f"PW_{i}": pw for i, (_, pw) in enumerate(ACCOUNTS)})
t.eq(relance("migrate", env=env).returncode, 0, "migrate")

seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write("""name: three-touch
sender_pool: founders
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - id: intro
    subject: "Une idée pour {{company}}"
    body: "Bonjour {{first_name | }}, {voici|voilà} une idée pour {{company}}."
  - id: bump
    wait: 1h
    body: "Je me permets de relancer, {{first_name | }}."
  - id: last
    wait: 1h
    body: "Dernier message."
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
N = 30
pg.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
        ",".join(f"('p{i}@prospects.example', 'Zoé{i}', 'Société {i}')" for i in range(N)))
START = "2026-03-02T09:00:00Z"
r = relance("enroll", "--sequence", "three-touch", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(f"enrolled {N}" in r.stdout, "enroll", r.stdout + r.stderr)

before = ms.count_connections()
s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*600"})
s.wait_status("/readyz", 200)
got = {}
deadline = time.time() + 240
for i in range(N):
    got[i] = ms.wait_for(f"p{i}@prospects.example", 3, timeout=max(1, deadline - time.time()))
t.ok(all(len(m) == 3 for m in got.values()), "every contact got exactly its 3 steps",
     str({i: len(m) for i, m in got.items() if len(m) != 3}) + s.output()[-3000:])
connections = ms.count_connections() - before
# idle connections are closed politely (NOOP, QUIT) while serve runs on
idle_quits = harness.wait_until(lambda: len(re.findall(r"disconnect from \S+ .*noop=1 quit=1", ms.smtp_log())) >=
                                len(ACCOUNTS), 40)
t.ok(idle_quits, f"each account's connection was closed with QUIT after {IDLE}s unused, relance still running",
     "\n".join(ln for ln in ms.smtp_log().splitlines() if "disconnect from" in ln))
t.eq(s.proc.poll(), None, "(relance was still running then)")
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("runtime error" not in out and "AddressSanitizer" not in out and "pw-" not in out, "no sanitizer report, "
     "no password in the logs", out[-2000:])

senders = collections.Counter()
sticky = threading = dkim_ok = dkim_all = subject_ok = 0
for i, msgs in got.items():
    parsed = [email.message_from_bytes(m, policy=email.policy.default) for m in msgs]
    parsed.sort(key=lambda m: 0 if not str(m["Subject"]).startswith("Re:") else 1 + ("Dernier" in m.get_content()))
    froms = {m["From"].addresses[0].addr_spec for m in parsed}
    if len(froms) == 1:
        sticky += 1
        senders[froms.pop()] += 1
    if (str(parsed[0]["Subject"]) == f"Une idée pour Société {i}"
            and all(str(m["Subject"]) == f"Re: Une idée pour Société {i}" for m in parsed[1:])):
        subject_ok += 1
    if (parsed[1]["In-Reply-To"] == parsed[0]["Message-ID"]
            and parsed[2]["In-Reply-To"] == parsed[1]["Message-ID"]
            and parsed[2]["References"].split() == [parsed[0]["Message-ID"], parsed[1]["Message-ID"]]):
        threading += 1
    for raw in msgs:
        dkim_all += 1
        if dkim.verify(raw, dnsfunc=lambda name, timeout=5: keys.get(name.decode() if isinstance(name, bytes)
                                                                     else name)):
            dkim_ok += 1
t.eq(sticky, N, "every contact's three steps came from one account")
t.eq(subject_ok, N, "subjects: the rendered first subject, then 'Re: ' for follow-ups")
t.eq(threading, N, "follow-ups carry In-Reply-To and References of the earlier steps")
t.eq(dkim_ok, dkim_all, f"DKIM verifies with python3-dkim on all {dkim_all} messages (RSA and Ed25519)")
t.eq(sorted(senders), sorted(a for a, _ in ACCOUNTS), "all three accounts of the pool were used")
t.ok(max(senders.values()) - min(senders.values()) <= 2, f"new contacts rotate evenly: {dict(senders)}")
t.eq(connections, len(ACCOUNTS), "one SMTP connection per account carried all its messages")
rows = pg.psql("SELECT state, count(*) FROM messages GROUP BY 1")
t.eq(rows, [["sent", str(3 * N)]], "every message recorded as sent")
t.eq(pg.psql("SELECT count(*) FROM messages WHERE reply NOT LIKE '250%'")[0][0], "0", "server replies recorded")
r = relance("accounts", "list", env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(r.returncode == 0 and "alice@acme.example\tpool founders\tactive\ttoday " in r.stdout, "accounts list",
     r.stdout)

# preview equals what arrived (for a contact the first account mailed)
i = next(i for i, msgs in got.items()
         if email.message_from_bytes(msgs[0], policy=email.policy.default)["From"].addresses[0].addr_spec
         == ACCOUNTS[0][0])
arrived = sorted(got[i], key=lambda m: b"Re:" in m.split(b"\r\n\r\n")[0])[0]
p = relance("preview", "three-touch", "--step", "intro", "--contact", f"p{i}@prospects.example", env=env, raw=True)
t.eq(p.returncode, 0, "preview")
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


ph, pb = headers_body(p.stdout)
ah, ab = headers_body(arrived)
t.eq(ph, ah, "preview's headers equal the delivered ones (Date, Message-ID, signature and trace aside)")
t.eq(pb, ab, "preview's body equals the delivered body byte for byte")
t.done()
