"""Sent copies on any IMAP server, and `relance imap-check`,
against a Dovecot made to look like Courier: it advertises neither
SPECIAL-USE nor LIST-EXTENDED, flags no folder \\Sent, and the Sent folder
is a plain "Sent Items".

- relance reads CAPABILITY before listing folders and, without those two,
  sends a plain `LIST "" "*"` (Courier answers NO to `RETURN (SPECIAL-USE)`,
  and the copy was lost); the folder is chosen by name, so a message sent
  by `relance serve` with `save_sent: true` lands once in "Sent Items";
- `imap-check` with five configured folders prints all five (it crashed:
  its folder array was sized from the command line);
- `imap-check --append` says `appended` only after the server's OK: an
  account with no Sent folder at all gets an error and exit 1.
"""
import os
import time

import pytest

import harness
import mailservers
from harness import parsed, relance, wait_until

ALICE, BOB = "alice@acme.example", "bob@acme.example"
# what Courier-IMAP 5 advertises after login
COURIER = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
BOB_FOLDERS = ["INBOX", "Projects", "Clients", "Later", "Archive"]


@pytest.fixture
def ms():
    """A Dovecot that looks like Courier, alice with "Sent Items" and
    Drafts, bob with four folders and no Sent at all; for one test alone."""
    ms = mailservers.MailServers(users=[(ALICE, "pw-alice-1"), (BOB, "pw-bob-2")], imap_capability=COURIER,
                                 special_use=False, log_imap_commands=True)
    ms.make_folder(ALICE, "Sent Items")
    ms.make_folder(ALICE, "Drafts")
    for f in BOB_FOLDERS[1:]:
        ms.make_folder(BOB, f)
    yield ms
    ms.stop()


@pytest.fixture
def env(ms, db, tmp):
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(f"""tls_ca_file: {ms.ca_file}
pools:
  main:
    accounts:
      - email: {ALICE}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_ALICE
        watch_interval: 1h
        save_sent: true
  other:
    accounts:
      - email: {BOB}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW_BOB
        watch_interval: 1h
        folders: [{", ".join(f'"{x}"' for x in BOB_FOLDERS)}]
""")
    return {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1", "PW_BOB": "pw-bob-2"}


def write_copy(tmp, sender, mid):
    copy = os.path.join(tmp, "copy.eml")
    with open(copy, "w") as f:
        f.write(f"From: {sender}\nTo: p1@prospects.example\nSubject: An idea\nMessage-ID: <{mid}@acme.example>\n"
                "Date: Mon, 02 Mar 2026 10:00:00 +0000\n\nHello.\n")
    return copy


def test_imap_check_prints_every_configured_folder(env):
    r = relance("imap-check", BOB, env=env)
    assert r.returncode == 0, f"imap-check with five configured folders exits 0: {r.stdout + r.stderr}"
    assert [line.split("\t", 1)[0] for line in r.stdout.splitlines()] == BOB_FOLDERS, \
        "imap-check prints the STATUS of each of the five folders"
    assert "AddressSanitizer" not in r.stderr, f"no memory error: {r.stderr[-2000:]}"


def test_an_append_the_server_refuses_is_not_reported_appended(env, tmp):
    r = relance("imap-check", BOB, "--folder", "INBOX", "--append", write_copy(tmp, BOB, "nosent"), env=env)
    assert r.returncode == 1, f"an append the server refuses (bob has no Sent folder) fails: {r.stdout + r.stderr}"
    assert "appended" not in r.stdout, f"and imap-check does not claim it was appended: {r.stdout}"
    assert "append" in r.stderr and "Sent" in r.stderr, f"the server's refusal is on stderr: {r.stderr}"


def test_imap_check_append_finds_sent_items_by_name_with_a_plain_list(ms, env, tmp, check):
    r = relance("imap-check", ALICE, "--folder", "INBOX", "--append", write_copy(tmp, ALICE, "check"), env=env)
    check.ok(r.returncode == 0 and "appended\tSent Items\tby-name" in r.stdout,
             "imap-check --append picks \"Sent Items\" by name", r.stdout + r.stderr)
    check.eq(len(ms.folder_files(ALICE, "Sent Items")), 1, "the copy is in Sent Items")
    cmds = ms.imap_commands(ALICE)
    check.ok("CAPABILITY" in cmds, "CAPABILITY was read before listing", cmds)
    check.ok(any(c.startswith("LIST") for c in cmds) and not any("RETURN" in c for c in cmds if c.startswith("LIST")),
             "a plain LIST, without RETURN (SPECIAL-USE) the server does not advertise", cmds)


def test_serve_saves_one_seen_copy_in_sent_items(ms, db, env, tmp, serve, check):
    seq = harness.sequence(tmp, "custom_steps", name="one", pool="main", steps="""  - id: intro
    subject: "An idea"
    body: "Hello, an idea."
""")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    prospect = "r1@prospects.example"
    db.psql(f"INSERT INTO contacts (email) VALUES ('{prospect}')")
    r = relance("enroll", "--sequence", "one", "--contact", prospect, env=env)
    check.ok("enrolled 1" in r.stdout, "enroll", r.stdout + r.stderr)
    s = serve(env)
    s.wait_status("/readyz", 200)
    got = ms.wait_for(prospect, 1, timeout=30)
    check.ok(len(got) == 1, "the prospect got the message", s.output()[-3000:])
    check.ok(wait_until(lambda: len(ms.folder_files(ALICE, "Sent Items")) >= 1, 20), "the copy reached Sent Items",
             s.output()[-3000:])
    time.sleep(1)
    copies = ms.folder_files(ALICE, "Sent Items")
    check.eq(len(copies), 1, "exactly one copy")
    if copies and got:
        with open(copies[0], "rb") as f:
            raw = f.read()
        check.eq(str(parsed(raw)["Message-ID"]), str(parsed(got[0])["Message-ID"]), "the copy is the message sent")
        check.ok("S" in ms.flags(copies[0]), "the copy is flagged \\Seen")
    check.eq(ms.folder_files(ALICE, "Sent"), [], "nothing went to a folder named Sent")
    check.ok(not any("RETURN" in c for c in ms.imap_commands(ALICE) if c.startswith("LIST")),
             "serve lists folders without RETURN (SPECIAL-USE) too", ms.imap_commands(ALICE))
    check.eq(s.stop(), 0, "relance stops cleanly")
    out = s.output()
    check.ok("copy to the Sent folder failed" not in out and "cannot save a copy" not in out, "no copy was lost",
             out[-2000:])
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
    check.ok("pw-alice-1" not in out and "pw-bob-2" not in out, "no password in the output")
