"""Issue 14: contact values are HTML-escaped in html parts, and only there.
A contact imported from CSV carries markup in first_name, company and a
custom field; a two-step sequence with text and html bodies goes out
through the capture transport. In the captured messages the html part
holds the values as entities (no live link, no script) while the
author's own markup and spintax stay markup; the text part and the
subject (also the threaded 'Re:' one) hold the values verbatim; and
`relance preview` shows the same html part as the one that was sent."""
import csv
import email
import email.policy
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("html_escape")
pg = harness.Postgres()
tmp = harness.short_tempdir("rhtm")
capture = os.path.join(tmp, "capture")
env = {"DATABASE_URL": pg.url(), "RELANCE_STATE_DIR": tmp}
r = relance("migrate", env=env)
if not t.ok(r.returncode == 0, "migrate", r.stderr):
    t.done()

FIRST = "Tom & <Jerry>"
COMPANY = '</p><a href="https://evil.test">x</a>'
NOTE = "<script>alert(1)</script>"
ADDR = "tom@acme.example"

# The sequence: author markup, spintax of markup, a fallback with markup
# characters (a value, so escaped in html) and a follow-up threaded on the
# first subject.
seq = """name: html-escape
sender_pool: founders
schedule:
  timezone: UTC
  window: "00:00-24:00"
  days: [mon, tue, wed, thu, fri, sat, sun]
  jitter: 0
steps:
  - id: intro
    subject: "Hello {{first_name}} at {{company}}"
    body: "Hi {{first_name}} of {{company}}: {{Note}} / {{title | R&D <lead>}}"
    html: "<p class=\\"hi\\">Hi <b>{{first_name}}</b> of {{company}}</p>{<i>spun</i>|<em>spun</em>}<p>{{Note}}</p><p title=\\"{{first_name}}\\">{{title | R&D <lead>}}</p>"
  - id: bump
    wait: 10m
    body: "Bumping, {{first_name}}."
    html: "<p>Bumping, <b>{{first_name}}</b>.</p>"
"""
seq_file = os.path.join(tmp, "html-escape.yaml")
with open(seq_file, "w") as f:
    f.write(seq)
r = relance("apply", seq_file, env=env)
if not t.ok(r.returncode == 0 and "html-escape: created" in r.stdout, "apply", r.stdout + r.stderr):
    t.done()

csv_path = os.path.join(tmp, "contacts.csv")
with open(csv_path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["email", "first_name", "company", "Note"])
    w.writerow([ADDR, FIRST, COMPANY, NOTE])
r = relance("contacts", "import", csv_path, env=env)
t.ok(r.returncode == 0, "import the contact", r.stdout + r.stderr)
t.eq(pg.psql(f"SELECT first_name, company, fields->>'Note' FROM contacts WHERE email = '{ADDR}'"),
     [[FIRST, COMPANY, NOTE]], "the values are stored as given")

START = "2026-03-05T10:00:00Z"
r = relance("enroll", "--sequence", "html-escape", "--contact", ADDR, env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(r.returncode == 0 and "enrolled 1" in r.stdout, "enroll", r.stdout + r.stderr)

# 10 minutes of wait pass in one second
s = harness.Serve({**env, "RELANCE_TRANSPORT": "capture", "RELANCE_CAPTURE_DIR": capture,
                   "RELANCE_TEST_CLOCK": f"{START}*600"})
s.wait_status("/readyz", 200)
harness.wait_until(lambda: len(glob.glob(os.path.join(capture, "new", "*"))) >= 2, 15)
t.eq(s.stop(), 0, "serve stops cleanly")
out = s.output()
t.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])


def parts(raw):
    """(subject, text part, html part) of a message, decoded."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return (str(msg["Subject"]), text.get_content() if text else None, html.get_content() if html else None,
            msg)


by_subject = {}
for path in glob.glob(os.path.join(capture, "new", "*")):
    with open(path, "rb") as f:
        subject, text, html, msg = parts(f.read())
    by_subject["bump" if subject.startswith("Re: ") else "intro"] = (subject, text, html, msg)
if not t.eq(sorted(by_subject), ["bump", "intro"], "both steps were captured"):
    t.done()

subject, text, html, msg = by_subject["intro"]
t.eq(msg.get_content_type(), "multipart/alternative", "the first step has a text and an html part")
# the html part: values as entities, author markup as markup
t.ok("Hi <b>Tom &amp; &lt;Jerry&gt;</b> of " in html, "first_name escaped in the html part", html)
t.ok('<a href="https://evil.test"' not in html and "evil.test" in html
     and "&lt;/p&gt;&lt;a href=&quot;https://evil.test&quot;&gt;x&lt;/a&gt;" in html,
     "company escaped: no live link", html)
t.ok("<script>" not in html and "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" in html,
     "custom field escaped: no script", html)
t.ok('<p title="Tom &amp; &lt;Jerry&gt;">' in html, "a value in a quoted attribute cannot close it", html)
t.ok("R&amp;D &lt;lead&gt;" in html, "a fallback is a value: escaped too", html)
t.ok(html.startswith('<p class="hi">Hi <b>') and ("<i>spun</i>" in html or "<em>spun</em>" in html),
     "the author's markup and spintax stay markup", html)
# the text part and the subject: verbatim
t.eq(text.rstrip("\r\n"), f"Hi {FIRST} of {COMPANY}: {NOTE} / R&D <lead>", "the text part holds the values verbatim")
t.eq(subject, f"Hello {FIRST} at {COMPANY}", "the subject holds the values verbatim")

subject, text, html, msg = by_subject["bump"]
t.eq(subject, f"Re: Hello {FIRST} at {COMPANY}", "the threaded subject holds the values verbatim")
t.eq(text.rstrip("\r\n"), f"Bumping, {FIRST}.", "the follow-up's text part verbatim")
t.eq(html.rstrip("\r\n"), "<p>Bumping, <b>Tom &amp; &lt;Jerry&gt;</b>.</p>", "the follow-up's html part escaped")

# preview shows what was sent: same parts for the same contact and step
r = relance("preview", "html-escape", "--step", "intro", "--contact", ADDR, env=env, raw=True)
t.eq(r.returncode, 0, "preview")
p_subject, p_text, p_html, _ = parts(r.stdout)
sent = by_subject["intro"]
t.eq(p_html, sent[2], "preview's html part is the one sent (escaped)")
t.eq(p_text, sent[1], "preview's text part is the one sent")
t.eq(p_subject, sent[0], "preview's subject is the one sent")
t.done()
