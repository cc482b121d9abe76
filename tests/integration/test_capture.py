"""A dry run shows what will really go out: with `transport: capture` and a
pool of two accounts, relance claims as it does for SMTP, so each captured
message has the From of the account the pool's rotation picked for its
enrollment, its {{sender.…}} fields, the follow-up from the same account,
and a DKIM signature that python3-dkim (not relance) verifies. No
password is set: capture logs in nowhere. Real PostgreSQL; the Maildir is
read as files."""
import email
import email.policy
import os

import dkim  # Debian's python3-dkim: the independent verifier

import harness
from harness import relance

START = "2026-03-02T09:00:00Z"
SENDERS = {"bob@acme.example": ("Bob Dupont", "Bob"), "elodie@acme.example": ("Élodie Roy", "Élodie")}
N = 6


def test_capture_uses_each_enrollments_account_and_signs(db, tmp):
    key, record = harness.dkim_key(tmp, "acme.example", "ED25519")
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write("transport: capture\npools:\n  main:\n    accounts:\n")
        for addr, (name, _) in SENDERS.items():
            # no password_env: capture needs none, and must not ask
            f.write(f"      - email: {addr}\n        from_name: {name}\n        smtp: smtps://mail.acme.example\n"
                    f"        signature: \"{name}\\nAcme\"\n")
        f.write(f"dkim:\n  acme.example: {{selector: s1, key_file: {key}}}\n")
    capture = os.path.join(tmp, "capture")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "RELANCE_CAPTURE_DIR": capture}
    seq = harness.sequence(tmp, "custom_steps", name="dry", pool="main", steps="""  - id: intro
    subject: "Bonjour {{first_name}}"
    body: "Une idée.\\n\\n{{sender.first_name}}\\n--\\n{{sender.signature}}"
  - id: bump
    wait: 10m
    body: "Je relance. {{sender.first_name}}"
""")
    assert relance("apply", seq, env=env).returncode == 0
    db.psql("INSERT INTO contacts (email, first_name) VALUES "
            + ",".join(f"('p{i}@prospects.example', 'P{i}')" for i in range(N)))
    r = relance("enroll", "--sequence", "dry", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {N}" in r.stdout, r.stdout + r.stderr
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*600"})
    new = os.path.join(capture, "new")
    try:
        s.wait_status("/readyz", 200)
        done = harness.wait_until(lambda: os.path.isdir(new) and len(os.listdir(new)) >= 2 * N, 60)
    finally:
        assert s.stop() == 0
    assert done, f"{len(os.listdir(new)) if os.path.isdir(new) else 0} captured of {2 * N}: {s.output()[-2000:]}"

    by_contact = {}
    bad_sig = []
    for name in os.listdir(new):
        with open(os.path.join(new, name), "rb") as f:
            raw = f.read()
        if not dkim.verify(raw, dnsfunc=lambda n, timeout=5: record):
            bad_sig.append(name)
        m = email.message_from_bytes(raw, policy=email.policy.default)
        by_contact.setdefault(m["To"].addresses[0].addr_spec, []).append(m)
    assert not bad_sig, f"python3-dkim verifies every captured message: {len(bad_sig)} fail"
    senders = {}
    for contact, msgs in by_contact.items():
        froms = {m["From"].addresses[0].addr_spec for m in msgs}
        assert len(msgs) == 2 and len(froms) == 1, f"{contact}: both steps from one account: {froms}"
        sender = froms.pop()
        name, first = SENDERS[sender]
        senders[sender] = senders.get(sender, 0) + 1
        intro = next(m for m in msgs if not str(m["Subject"]).startswith("Re:"))
        assert str(intro["From"].addresses[0].display_name) == name
        assert intro.get_content().replace("\r\n", "\n").rstrip("\n").endswith(f"{first}\n--\n{name}\nAcme"), \
            f"{contact}: signed by its own account {sender}: {intro.get_content()!r}"
    assert sorted(senders) == sorted(SENDERS) and max(senders.values()) - min(senders.values()) <= 1, \
        f"the pool's rotation spreads the enrollments over both accounts: {senders}"
    assert db.psql("SELECT count(*) FROM messages WHERE state = 'sent' AND account_id IS NOT NULL") == [[str(2 * N)]]
    # capture writes each file right after the claim: every message was
    # past its point of no return from the claim on (a crash leaves it
    # unknown, never captured twice)
    assert db.psql("SELECT count(*) FROM messages WHERE body_started") == [[str(2 * N)]], \
        "every captured message is marked past its point of no return"
