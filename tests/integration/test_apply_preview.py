"""apply, sequences list/show and preview against a real PostgreSQL:
apply twice is 'unchanged', an edit is 'updated to v2' and both versions
stay readable, a file with an error applies nothing (not even the good
files beside it), preview of the French example is correctly encoded,
and a hostile field value yields no new header."""
import email
import email.policy
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("apply_preview")
pg = harness.Postgres()
env = {"DATABASE_URL": pg.url()}
examples = os.path.join(harness.SOURCE, "sequences")
tmp = harness.short_tempdir("rapp")
t.eq(relance("migrate", env=env).returncode, 0, "migrate")

# apply refuses an unmigrated database with a clear line
bare = pg.new_database("bare")
r = relance("apply", examples, env={"DATABASE_URL": bare})
t.ok(r.returncode == 1 and "relance migrate" in r.stderr, "apply on an unmigrated database says what to do",
     r.stderr)

r = relance("apply", examples, env=env)
names = sorted(f[:-5] for f in os.listdir(examples) if f.endswith(".yaml"))
t.ok(r.returncode == 0 and all(f"{n}: created" in r.stdout for n in names), "first apply creates every example",
     r.stdout + r.stderr)
r = relance("apply", examples, env=env)
t.ok(r.returncode == 0 and r.stdout.count(": unchanged") == len(names), "second apply: all unchanged", r.stdout)

# edit one step: v2
seqdir = os.path.join(tmp, "seqs")
shutil.copytree(examples, seqdir)
fr = os.path.join(seqdir, "relance-fr.yaml")
with open(fr) as f:
    text = f.read()
with open(fr, "w") as f:
    f.write(text.replace("avez-vous pu jeter un œil", "avez-vous eu le temps de lire"))
r = relance("apply", seqdir, env=env)
t.ok(r.returncode == 0 and "relance-fr: updated to v2" in r.stdout and r.stdout.count("unchanged") == len(names) - 1,
     "editing a step: updated to v2, the others unchanged", r.stdout)
r = relance("sequences", "show", "relance-fr", env=env)
t.ok(r.returncode == 0 and "current v2" in r.stdout and "\nv1 " in r.stdout and "\nv2 " in r.stdout,
     "sequences show lists both versions", r.stdout)
t.ok("relance  wait 4 business days" in r.stdout, "show prints steps with their waits", r.stdout)
rows = pg.psql("SELECT version, position('avez-vous pu jeter' in source) > 0 FROM sequence_versions v "
               "JOIN sequences s ON s.id = v.sequence_id WHERE s.name = 'relance-fr' ORDER BY version")
t.eq(rows, [["1", "t"], ["2", "f"]], "v1 keeps its text, v2 has the edit")
r = relance("sequences", "list", env=env)
t.ok(r.returncode == 0 and "relance-fr\tv2" in r.stdout, "sequences list shows current versions", r.stdout)
r = relance("sequences", "show", "nope", env=env)
t.ok(r.returncode == 1 and "no sequence named 'nope'" in r.stderr, "show of an unknown name", r.stderr)

# one broken file: nothing applied, not even the changed good file
with open(fr, "w") as f:
    f.write(text.replace("avez-vous pu jeter un œil", "troisième version"))
with open(os.path.join(seqdir, "zz-broken.yaml"), "w") as f:
    f.write("name: broken\nsender_pool: p\nschedule:\n  window: \"17:00-09:00\"\nsteps:\n  - id: a\n"
            "    subject: s\n    body: b\n")
r = relance("apply", seqdir, env=env)
t.ok(r.returncode == 1 and "zz-broken.yaml:4:" in r.stdout and "nothing applied" in r.stderr,
     "an error in one file: file:line:column, nothing applied", r.stdout + r.stderr)
t.eq(pg.psql("SELECT current_version FROM sequences WHERE name = 'relance-fr'")[0][0], "2",
     "the good file beside it was not applied either")
t.eq(pg.psql("SELECT count(*) FROM sequences WHERE name = 'broken'")[0][0], "0", "the broken one neither")

# preview: the French example, from the database and from the file
def preview(*args):
    """preview's output as text with its CRLF line ends kept."""
    r = relance("preview", *args, env=env, raw=True)
    r.stdout = r.stdout.decode("utf-8")
    r.stderr = r.stderr.decode("utf-8")
    return r


r = preview("relance-fr", "--step", "premier-contact", "--var", "company=Société Générale",
            "--var", "first_name=Zoé", "--var", "email=zoe@example.fr")
t.eq(r.returncode, 0, "preview of an applied sequence")
t.ok("\r\n" in r.stdout and "\n" not in r.stdout.replace("\r\n", ""), "CRLF line ends throughout")
raw = r.stdout.encode()
msg = email.message_from_bytes(raw, policy=email.policy.default)
t.eq(str(msg["Subject"]), "Une question sur Société Générale — relances automatisées",
     "accented subject decodes to the exact text")
subject_line = [ln for ln in r.stdout.split("\r\n") if ln.startswith("Subject:")][0]
t.ok("=?UTF-8?" in subject_line.upper() and all(ord(c) < 128 for c in r.stdout.split("\r\n\r\n")[0]),
     "headers are 7-bit, the subject RFC 2047 encoded", subject_line)
body = msg.get_content()
t.ok("Bonjour Zoé," in body and "Élodie" in body, "accented body decodes", body[:200])
t.ok(msg["Content-Transfer-Encoding"] == "quoted-printable" and msg.get_content_charset() == "utf-8",
     "body is UTF-8 quoted-printable", str(msg["Content-Type"]))
t.ok(msg["To"] == "zoe@example.fr" and msg["Message-ID"] and msg["Date"] and msg["List-Unsubscribe"],
     "To, Message-ID, Date and List-Unsubscribe present")
# the file (applied as v2 above, edited since) renders the same first step
r2 = preview(fr, "--step", "premier-contact", "--var", "company=Société Générale",
             "--var", "first_name=Zoé", "--var", "email=zoe@example.fr")


def strip(s):
    return "\r\n".join(ln for ln in s.split("\r\n") if not ln.startswith(("Date:", "Message-ID:")))


t.eq(strip(r2.stdout), strip(r.stdout), "preview of the file equals preview of the applied sequence, Date and "
     "Message-ID aside")

# a follow-up without a subject is threaded as Re:
r = preview("relance-fr", "--step", "relance", "--var", "company=ACME", "--var", "email=a@b.example")
msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
t.ok(str(msg["Subject"]).startswith("Re: Une question sur ACME") and msg["In-Reply-To"] and msg["References"],
     "follow-up: Re: <first subject>, In-Reply-To, References", r.stdout[:600])

# hostile values: no new header
evil = "ACME\r\nBcc: victim@example.com"
r = preview("relance-fr", "--step", "premier-contact", "--var", f"company={evil}",
            "--var", "first_name=x\nBcc: y@example.com", "--var", "email=a@b.example")
head = r.stdout.split("\r\n\r\n")[0]
t.ok(r.returncode == 0 and "\r\nBcc:" not in head and "\nBcc:" not in head, "a value with CRLF Bcc: adds no header",
     head)
msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
t.ok(msg["Bcc"] is None and "ACME  Bcc: victim@example.com" in str(msg["Subject"]),
     "the value is kept on one line with spaces", str(msg["Subject"]))

# missing field without fallback: a clear error
r = relance("preview", "saas-founders", "--step", "intro", "--var", "email=a@b.example", env=env)
t.ok(r.returncode == 1 and "'company' has no value" in r.stderr, "a missing field is named", r.stderr)
r = relance("preview", "saas-founders", "--step", "nope", env=env)
t.ok(r.returncode == 1 and "has no step 'nope'" in r.stderr and "intro" in r.stderr, "unknown step lists steps",
     r.stderr)
r = relance("preview", "no-such-sequence", "--step", "x", env=env)
t.ok(r.returncode == 1 and "neither a file nor an applied sequence" in r.stderr, "unknown sequence", r.stderr)

# --contact: the fields come from the database
pg.psql("INSERT INTO contacts (email, first_name, company, fields) VALUES "
        "('jo@acme.example', 'Jo', 'Acme', '{\"plan\": \"pro\"}')")
r = preview("saas-founders", "--step", "intro", "--contact", "jo@acme.example")
msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
t.ok(r.returncode == 0 and str(msg["Subject"]).startswith("Acme ") and msg["To"] == "jo@acme.example"
     and "Hi Jo," in msg.get_content(), "--contact fills fields from the database", r.stdout[:500] + r.stderr)
t.done()
