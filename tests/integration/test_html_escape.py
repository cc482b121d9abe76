"""Contact values are HTML-escaped in html parts, and only there.
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

import pytest

import harness
from harness import relance

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


def parts(raw):
    """(subject, text part, html part, message) of a message, decoded."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return (str(msg["Subject"]), text.get_content() if text else None, html.get_content() if html else None,
            msg)


@pytest.fixture(scope="module")
def sent(module_db, module_tmp):
    """The contact imported, enrolled and both steps sent through the
    capture transport: {"intro"|"bump": (subject, text, html, message)},
    and the environment."""
    tmp, db = module_tmp, module_db
    capture = os.path.join(tmp, "capture")
    env = {"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": tmp}
    seq_file = os.path.join(tmp, "html-escape.yaml")
    with open(seq_file, "w") as f:
        f.write(seq)
    r = relance("apply", seq_file, env=env)
    assert r.returncode == 0 and "html-escape: created" in r.stdout, f"apply: {r.stdout + r.stderr}"
    csv_path = os.path.join(tmp, "contacts.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "first_name", "company", "Note"])
        w.writerow([ADDR, FIRST, COMPANY, NOTE])
    r = relance("contacts", "import", csv_path, env=env)
    assert r.returncode == 0, f"import the contact: {r.stdout + r.stderr}"
    start = "2026-03-05T10:00:00Z"
    r = relance("enroll", "--sequence", "html-escape", "--contact", ADDR, env={**env, "RELANCE_TEST_CLOCK": start})
    assert r.returncode == 0 and "enrolled 1" in r.stdout, f"enroll: {r.stdout + r.stderr}"

    # 10 minutes of wait pass in one second
    s = harness.Serve({**env, "RELANCE_TRANSPORT": "capture", "RELANCE_CAPTURE_DIR": capture,
                       "RELANCE_TEST_CLOCK": f"{start}*600"})
    try:
        s.wait_status("/readyz", 200)
        harness.wait_until(lambda: len(glob.glob(os.path.join(capture, "new", "*"))) >= 2, 15)
        assert s.stop() == 0, f"serve stops cleanly: {s.output()[-2000:]}"
    finally:
        s.kill()
    out = s.output()
    assert "runtime error" not in out and "AddressSanitizer" not in out, f"sanitizers quiet: {out[-2000:]}"
    by_subject = {}
    for path in glob.glob(os.path.join(capture, "new", "*")):
        with open(path, "rb") as f:
            subject, text, html, msg = parts(f.read())
        by_subject["bump" if subject.startswith("Re: ") else "intro"] = (subject, text, html, msg)
    assert sorted(by_subject) == ["bump", "intro"], "both steps were captured"
    return {"env": env, **by_subject}


def test_the_values_are_stored_as_given(sent, module_db):
    assert module_db.psql(f"SELECT first_name, company, fields->>'Note' FROM contacts WHERE email = '{ADDR}'") == \
        [[FIRST, COMPANY, NOTE]], "the values are stored as given"


def test_the_html_part_holds_values_as_entities_and_markup_as_markup(sent, check):
    subject, text, html, msg = sent["intro"]
    check.eq(msg.get_content_type(), "multipart/alternative", "the first step has a text and an html part")
    check.ok("Hi <b>Tom &amp; &lt;Jerry&gt;</b> of " in html, "first_name escaped in the html part", html)
    check.ok('<a href="https://evil.test"' not in html and "evil.test" in html
             and "&lt;/p&gt;&lt;a href=&quot;https://evil.test&quot;&gt;x&lt;/a&gt;" in html,
             "company escaped: no live link", html)
    check.ok("<script>" not in html and "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" in html,
             "custom field escaped: no script", html)
    check.ok('<p title="Tom &amp; &lt;Jerry&gt;">' in html, "a value in a quoted attribute cannot close it", html)
    check.ok("R&amp;D &lt;lead&gt;" in html, "a fallback is a value: escaped too", html)
    check.ok(html.startswith('<p class="hi">Hi <b>') and ("<i>spun</i>" in html or "<em>spun</em>" in html),
             "the author's markup and spintax stay markup", html)


def test_the_text_part_and_the_subject_hold_the_values_verbatim(sent):
    subject, text, html, msg = sent["intro"]
    assert text.rstrip("\r\n") == f"Hi {FIRST} of {COMPANY}: {NOTE} / R&D <lead>", \
        "the text part holds the values verbatim"
    assert subject == f"Hello {FIRST} at {COMPANY}", "the subject holds the values verbatim"


def test_the_follow_up_is_escaped_in_html_only(sent):
    subject, text, html, msg = sent["bump"]
    assert subject == f"Re: Hello {FIRST} at {COMPANY}", "the threaded subject holds the values verbatim"
    assert text.rstrip("\r\n") == f"Bumping, {FIRST}.", "the follow-up's text part verbatim"
    assert html.rstrip("\r\n") == "<p>Bumping, <b>Tom &amp; &lt;Jerry&gt;</b>.</p>", \
        "the follow-up's html part escaped"


def test_preview_shows_the_parts_that_were_sent(sent):
    r = relance("preview", "--raw", "html-escape", "--step", "intro", "--contact", ADDR, env=sent["env"], raw=True)
    assert r.returncode == 0, "preview"
    p_subject, p_text, p_html, _ = parts(r.stdout)
    subject, text, html, _ = sent["intro"]
    assert p_html == html, "preview's html part is the one sent (escaped)"
    assert p_text == text, "preview's text part is the one sent"
    assert p_subject == subject, "preview's subject is the one sent"
