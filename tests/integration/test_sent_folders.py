"""Sent copies on any IMAP server, and `relance imap-check` (issue 15),
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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
from harness import relance, wait_until, parsed  # noqa: E402

t = harness.Check("sent_folders")
ALICE, BOB = "alice@acme.example", "bob@acme.example"
# what Courier-IMAP 5 advertises after login
COURIER = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
ms = mailservers.MailServers(users=[(ALICE, "pw-alice-1"), (BOB, "pw-bob-2")], imap_capability=COURIER,
                             special_use=False, log_imap_commands=True)
ms.make_folder(ALICE, "Sent Items")
ms.make_folder(ALICE, "Drafts")
BOB_FOLDERS = ["INBOX", "Projects", "Clients", "Later", "Archive"]
for f in BOB_FOLDERS[1:]:
    ms.make_folder(BOB, f)
pg = harness.Postgres()
tmp = harness.short_tempdir("rsnf")
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
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "PW_ALICE": "pw-alice-1", "PW_BOB": "pw-bob-2"}

# ---------------------------------------------------------------------------
# imap-check

r = relance("imap-check", BOB, env=env)
t.ok(r.returncode == 0, "imap-check with five configured folders exits 0", r.stdout + r.stderr)
t.eq([line.split("\t", 1)[0] for line in r.stdout.splitlines()], BOB_FOLDERS,
     "imap-check prints the STATUS of each of the five folders")
t.ok("AddressSanitizer" not in r.stderr, "no memory error", r.stderr[-2000:])

copy = os.path.join(tmp, "copy.eml")
with open(copy, "w") as f:
    f.write(f"From: {BOB}\nTo: p1@prospects.example\nSubject: An idea\nMessage-ID: <nosent@acme.example>\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0000\n\nHello.\n")
r = relance("imap-check", BOB, "--folder", "INBOX", "--append", copy, env=env)
t.ok(r.returncode == 1, "an append the server refuses (bob has no Sent folder) fails", r.stdout + r.stderr)
t.ok("appended" not in r.stdout, "and imap-check does not claim it was appended", r.stdout)
t.ok("append" in r.stderr and "Sent" in r.stderr, "the server's refusal is on stderr", r.stderr)

with open(copy, "w") as f:
    f.write(f"From: {ALICE}\nTo: p1@prospects.example\nSubject: An idea\nMessage-ID: <check@acme.example>\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0000\n\nHello.\n")
r = relance("imap-check", ALICE, "--folder", "INBOX", "--append", copy, env=env)
t.ok(r.returncode == 0 and "appended\tSent Items\tby-name" in r.stdout,
     "imap-check --append picks \"Sent Items\" by name", r.stdout + r.stderr)
t.eq(len(ms.folder_files(ALICE, "Sent Items")), 1, "the copy is in Sent Items")
cmds = ms.imap_commands(ALICE)
t.ok("CAPABILITY" in cmds, "CAPABILITY was read before listing", cmds)
t.ok(any(c.startswith("LIST") for c in cmds) and not any("RETURN" in c for c in cmds if c.startswith("LIST")),
     "a plain LIST, without RETURN (SPECIAL-USE) the server does not advertise", cmds)
for p in ms.folder_files(ALICE, "Sent Items"):
    os.unlink(p)  # the serve part below counts its own copies

# ---------------------------------------------------------------------------
# relance serve, save_sent

t.eq(relance("migrate", env=env).returncode, 0, "migrate")
seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write("""name: one
sender_pool: main
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - id: intro
    subject: "An idea"
    body: "Hello, an idea."
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
PROSPECT = "r1@prospects.example"
pg.psql(f"INSERT INTO contacts (email) VALUES ('{PROSPECT}')")
r = relance("enroll", "--sequence", "one", "--contact", PROSPECT, env=env)
t.ok("enrolled 1" in r.stdout, "enroll", r.stdout + r.stderr)
s = harness.Serve(env)
s.wait_status("/readyz", 200)
got = ms.wait_for(PROSPECT, 1, timeout=30)
t.ok(len(got) == 1, "the prospect got the message", s.output()[-3000:])
t.ok(wait_until(lambda: len(ms.folder_files(ALICE, "Sent Items")) >= 1, 20), "the copy reached Sent Items",
     s.output()[-3000:])
time.sleep(1)
copies = ms.folder_files(ALICE, "Sent Items")
t.eq(len(copies), 1, "exactly one copy")
if copies and got:
    with open(copies[0], "rb") as f:
        raw = f.read()
    t.eq(str(parsed(raw)["Message-ID"]), str(parsed(got[0])["Message-ID"]), "the copy is the message sent")
    t.ok("S" in ms.flags(copies[0]), "the copy is flagged \\Seen")
t.eq(ms.folder_files(ALICE, "Sent"), [], "nothing went to a folder named Sent")
t.ok(not any("RETURN" in c for c in ms.imap_commands(ALICE) if c.startswith("LIST")),
     "serve lists folders without RETURN (SPECIAL-USE) too", ms.imap_commands(ALICE))
t.eq(s.stop(), 0, "relance stops cleanly")
out = s.output()
t.ok("copy to the Sent folder failed" not in out and "cannot save a copy" not in out, "no copy was lost",
     out[-2000:])
t.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
t.ok("pw-alice-1" not in out and "pw-bob-2" not in out, "no password in the output")
t.done()
