"""apply, sequences list/show and preview against a real PostgreSQL:
apply twice is 'unchanged', an edit is 'updated to v2' and both versions
stay readable, a file with an error applies nothing (not even the good
files beside it), preview of the French example is correctly encoded
(--raw) and shown decoded by default with its A/B variant named, the
French example reads well without a first name, and a hostile field
value yields no new header; a sequence naming a pool the configuration
does not have is applied with a warning, and serve logs it once."""
import email
import email.policy
import os
import shutil
import time

import pytest

import harness
from harness import relance

EXAMPLES = os.path.join(harness.SOURCE, "sequences")
NAMES = sorted(f[:-5] for f in os.listdir(EXAMPLES) if f.endswith(".yaml"))
FR_EDIT = ("avez-vous pu jeter un œil", "avez-vous eu le temps de lire")


def edited_copy(tmp, old, new):
    """The examples copied into tmp/seqs with old replaced by new in
    relance-fr.yaml; returns (the folder, the French file, its original text)."""
    seqdir = os.path.join(tmp, "seqs")
    if not os.path.isdir(seqdir):
        shutil.copytree(EXAMPLES, seqdir)
    fr = os.path.join(seqdir, "relance-fr.yaml")
    with open(os.path.join(EXAMPLES, "relance-fr.yaml")) as f:
        text = f.read()
    with open(fr, "w") as f:
        f.write(text.replace(old, new))
    return seqdir, fr


def test_apply_on_an_unmigrated_database_says_what_to_do(empty_db):
    r = relance("apply", EXAMPLES, env={"DATABASE_URL": empty_db.url()})
    assert r.returncode == 1 and "relance migrate" in r.stderr, r.stderr


def test_apply_creates_then_leaves_unchanged_then_versions_an_edit(db, tmp):
    env = {"DATABASE_URL": db.url()}
    r = relance("apply", EXAMPLES, env=env)
    assert r.returncode == 0 and all(f"{n}: created" in r.stdout for n in NAMES), \
        f"first apply creates every example: {r.stdout + r.stderr}"
    r = relance("apply", EXAMPLES, env=env)
    assert r.returncode == 0 and r.stdout.count(": unchanged") == len(NAMES), \
        f"second apply: all unchanged: {r.stdout}"

    seqdir, _ = edited_copy(tmp, *FR_EDIT)
    r = relance("apply", seqdir, env=env)
    assert r.returncode == 0 and "relance-fr: updated to v2" in r.stdout \
        and r.stdout.count("unchanged") == len(NAMES) - 1, \
        f"editing a step: updated to v2, the others unchanged: {r.stdout}"
    r = relance("sequences", "show", "relance-fr", env=env)
    assert r.returncode == 0 and "current v2" in r.stdout and "\nv1 " in r.stdout and "\nv2 " in r.stdout, \
        f"sequences show lists both versions: {r.stdout}"
    assert "relance  wait 4 business days" in r.stdout, f"show prints steps with their waits: {r.stdout}"
    rows = db.psql("SELECT version, position('avez-vous pu jeter' in source) > 0 FROM sequence_versions v "
                   "JOIN sequences s ON s.id = v.sequence_id WHERE s.name = 'relance-fr' ORDER BY version")
    assert rows == [["1", "t"], ["2", "f"]], "v1 keeps its text, v2 has the edit"
    r = relance("sequences", "list", env=env)
    assert r.returncode == 0 and "relance-fr\tv2" in r.stdout, f"sequences list shows current versions: {r.stdout}"


def test_sequences_show_of_an_unknown_name_fails(db):
    r = relance("sequences", "show", "nope", env={"DATABASE_URL": db.url()})
    assert r.returncode == 1 and "no sequence named 'nope'" in r.stderr, r.stderr


def test_an_error_in_one_file_applies_nothing_not_even_the_good_files(db, tmp):
    env = {"DATABASE_URL": db.url()}
    assert relance("apply", EXAMPLES, env=env).returncode == 0
    seqdir, _ = edited_copy(tmp, *FR_EDIT)
    assert "relance-fr: updated to v2" in relance("apply", seqdir, env=env).stdout
    edited_copy(tmp, FR_EDIT[0], "troisième version")
    with open(os.path.join(seqdir, "zz-broken.yaml"), "w") as f:
        f.write("name: broken\nsender_pool: p\nschedule:\n  window: \"17:00-09:00\"\nsteps:\n  - id: a\n"
                "    subject: s\n    body: b\n")
    r = relance("apply", seqdir, env=env)
    assert r.returncode == 1 and "zz-broken.yaml:4:" in r.stdout and "nothing applied" in r.stderr, \
        f"an error in one file: file:line:column, nothing applied: {r.stdout + r.stderr}"
    assert db.psql("SELECT current_version FROM sequences WHERE name = 'relance-fr'")[0][0] == "2", \
        "the good file beside it was not applied either"
    assert db.psql("SELECT count(*) FROM sequences WHERE name = 'broken'")[0][0] == "0", "the broken one neither"


# ---- preview, against the examples applied once

@pytest.fixture(scope="module")
def env(module_db):
    env = {"DATABASE_URL": module_db.url()}
    assert relance("apply", EXAMPLES, env=env).returncode == 0, "apply the examples"
    return env


def preview(env, *args):
    """preview --raw's output (the bytes sent) as text with its CRLF line
    ends kept."""
    r = relance("preview", "--raw", *args, env=env, raw=True)
    r.stdout = r.stdout.decode("utf-8")
    r.stderr = r.stderr.decode("utf-8")
    return r


FR_VARS = ("--var", "company=Société Générale", "--var", "first_name=Zoé", "--var", "email=zoe@example.fr",
           "--var", "sender.first_name=Élodie")  # --var stands in for the account's field too


def test_preview_of_the_french_example_is_correctly_encoded(env, check):
    r = preview(env, "relance-fr", "--step", "premier-contact", *FR_VARS)
    assert r.returncode == 0, f"preview of an applied sequence: {r.stderr}"
    check.ok("\r\n" in r.stdout and "\n" not in r.stdout.replace("\r\n", ""), "CRLF line ends throughout")
    msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
    check.eq(str(msg["Subject"]), "Une question sur Société Générale — relances automatisées",
             "accented subject decodes to the exact text")
    subject_line = [ln for ln in r.stdout.split("\r\n") if ln.startswith("Subject:")][0]
    check.ok("=?UTF-8?" in subject_line.upper() and all(ord(c) < 128 for c in r.stdout.split("\r\n\r\n")[0]),
             "headers are 7-bit, the subject RFC 2047 encoded", subject_line)
    body = msg.get_content()
    check.ok("Bonjour Zoé," in body and "Élodie" in body, "accented body decodes", body[:200])
    check.ok("Zo=C3=A9" in r.stdout, "--raw keeps the quoted-printable bytes", r.stdout[-400:])
    check.ok(msg["Content-Transfer-Encoding"] == "quoted-printable" and msg.get_content_charset() == "utf-8",
             "body is UTF-8 quoted-printable", str(msg["Content-Type"]))
    check.ok(msg["To"] == "zoe@example.fr" and msg["Message-ID"] and msg["Date"] and msg["List-Unsubscribe"],
             "To, Message-ID, Date and List-Unsubscribe present")


def test_preview_shows_a_decoded_view_by_default(env, check):
    r = relance("preview", "relance-fr", "--step", "premier-contact", *FR_VARS, env=env, raw=True)
    out = r.stdout.decode("utf-8")
    assert r.returncode == 0, r.stderr
    head, _, body = out.partition("\n\n")
    check.ok("\r" not in out and "=C3" not in out and "=?" not in out,
             "no CR, no quoted-printable, no encoded word", out[:600])
    lines = head.split("\n")
    check.ok("Subject: Une question sur Société Générale — relances automatisées" in lines,
             "the subject decoded to UTF-8", head)
    check.ok("To: zoe@example.fr" in lines and any(ln.startswith("From: ") for ln in lines)
             and any(ln.startswith("Date: ") for ln in lines)
             and any(ln.startswith("Message-ID: <preview@") for ln in lines), "From, To, Date, Message-ID", head)
    check.ok("variant: - (the step has no A/B variants)" in lines and not any(ln.startswith("html:") for ln in lines),
             "no variant, no html part", head)
    check.ok(body.startswith("Bonjour Zoé,\n") and "Élodie" in body
             and "à la main" in body, "the text body decoded", body)
    raw = preview(env, "relance-fr", "--step", "premier-contact", *FR_VARS).stdout
    msg = email.message_from_bytes(raw.encode(), policy=email.policy.default)
    check.eq(body, msg.get_content().replace("\r\n", "\n"), "the view's body is the sent text, decoded")
    r = relance("preview", "relance-fr", "--step", "relance", "--var", "email=a@b.example", "--var", "company=ACME",
                env=env)
    check.ok("In-Reply-To: <previous-step@" in r.stdout and "References: <previous-step@" in r.stdout
             and "Subject: Re: Une question sur ACME — relances automatisées" in r.stdout,
             "a follow-up shows its threading headers", r.stdout[:600])


AB_HTML = """name: ab-html
sender_pool: p
schedule:
  timezone: Europe/Paris
  window: "09:00-17:00"
steps:
  - id: intro
    body: "Bonjour {{first_name | Madame, Monsieur}}, une idée pour {{company}} : café ?"
    html: "<p>Bonjour, une idée pour <b>{{company}}</b></p>"
    variants:
      - { weight: 1, subject: "Première idée pour {{company}}" }
      - { weight: 1, subject: "Deuxième idée pour {{company}}" }
"""


def test_preview_names_the_variant_and_says_an_html_part_exists(tmp, check):
    path = os.path.join(tmp, "ab-html.yaml")
    with open(path, "w") as f:
        f.write(AB_HTML)
    seen = {}
    for i in range(8):
        r = relance("preview", path, "--step", "intro", "--var", "company=Société", "--var",
                    f"email=p{i}@example.fr")
        assert r.returncode == 0, r.stderr
        head, _, body = r.stdout.partition("\n\n")
        variant = [ln for ln in head.split("\n") if ln.startswith("variant: ")]
        subject = {"A": "Subject: Première idée pour Société", "B": "Subject: Deuxième idée pour Société"}
        check.ok(len(variant) == 1 and variant[0][9:] in subject and subject[variant[0][9:]] in head,
                 "the variant named is the one whose subject is shown", head)
        seen[variant[0][9:] if variant else "?"] = True
        check.ok("html: an HTML part is sent too" in head, "the html part is mentioned", head)
        check.eq(body, "Bonjour Madame, Monsieur, une idée pour Société : café ?\n",
                 "the text part is shown, decoded, not the html")
    check.eq(sorted(seen), ["A", "B"], "eight contacts see both variants")


def test_the_french_example_reads_well_without_a_first_name(env, check):
    for step in ("premier-contact", "relance", "derniere"):
        r = relance("preview", "relance-fr", "--step", step, "--var", "company=ACME", "--var", "email=a@b.example",
                    env=env)
        assert r.returncode == 0, r.stderr
        body = r.stdout.partition("\n\n")[2]
        check.ok(body.startswith("Bonjour Madame, Monsieur,\n") and " ," not in body,
                 f"step {step}: a greeting without a first name", body[:80])
        r = relance("preview", "relance-fr", "--step", step, "--var", "company=ACME", "--var", "email=a@b.example",
                    "--var", "first_name=Marie", env=env)
        check.ok(r.stdout.partition("\n\n")[2].startswith("Bonjour Marie,\n"), f"step {step}: with one",
                 r.stdout[-300:])


def test_preview_of_a_file_equals_preview_of_the_applied_sequence(env):
    def strip(s):
        return "\r\n".join(ln for ln in s.split("\r\n") if not ln.startswith(("Date:", "Message-ID:")))

    applied = preview(env, "relance-fr", "--step", "premier-contact", *FR_VARS)
    from_file = preview(env, os.path.join(EXAMPLES, "relance-fr.yaml"), "--step", "premier-contact", *FR_VARS)
    assert strip(from_file.stdout) == strip(applied.stdout), \
        "preview of the file equals preview of the applied sequence, Date and Message-ID aside"


def test_a_follow_up_without_a_subject_is_threaded_as_re(env):
    r = preview(env, "relance-fr", "--step", "relance", "--var", "company=ACME", "--var", "email=a@b.example")
    msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
    assert str(msg["Subject"]).startswith("Re: Une question sur ACME") and msg["In-Reply-To"] \
        and msg["References"], f"follow-up: Re: <first subject>, In-Reply-To, References: {r.stdout[:600]}"


def test_a_value_with_crlf_adds_no_header(env):
    evil = "ACME\r\nBcc: victim@example.com"
    r = preview(env, "relance-fr", "--step", "premier-contact", "--var", f"company={evil}",
                "--var", "first_name=x\nBcc: y@example.com", "--var", "email=a@b.example")
    head = r.stdout.split("\r\n\r\n")[0]
    assert r.returncode == 0 and "\r\nBcc:" not in head and "\nBcc:" not in head, \
        f"a value with CRLF Bcc: adds no header: {head}"
    msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
    assert msg["Bcc"] is None and "ACME  Bcc: victim@example.com" in str(msg["Subject"]), \
        f"the value is kept on one line with spaces: {msg['Subject']}"


def test_preview_names_a_missing_field_an_unknown_step_and_an_unknown_sequence(env):
    r = relance("preview", "saas-founders", "--step", "intro", "--var", "email=a@b.example", env=env)
    assert r.returncode == 1 and "'company' has no value" in r.stderr, f"a missing field is named: {r.stderr}"
    r = relance("preview", "saas-founders", "--step", "nope", env=env)
    assert r.returncode == 1 and "has no step 'nope'" in r.stderr and "intro" in r.stderr, \
        f"unknown step lists steps: {r.stderr}"
    r = relance("preview", "no-such-sequence", "--step", "x", env=env)
    assert r.returncode == 1 and "neither a file nor an applied sequence" in r.stderr, \
        f"unknown sequence: {r.stderr}"


def test_preview_contact_fills_fields_from_the_database(env, module_db):
    module_db.psql("INSERT INTO contacts (email, first_name, company, fields) VALUES "
                   "('jo@acme.example', 'Jo', 'Acme', '{\"plan\": \"pro\"}')")
    r = preview(env, "saas-founders", "--step", "intro", "--contact", "jo@acme.example")
    msg = email.message_from_bytes(r.stdout.encode(), policy=email.policy.default)
    assert r.returncode == 0 and str(msg["Subject"]).startswith("Acme ") and msg["To"] == "jo@acme.example" \
        and "Hi Jo," in msg.get_content(), f"--contact fills fields from the database: {r.stdout[:500] + r.stderr}"


def test_apply_warns_of_a_pool_the_configuration_does_not_have(db, tmp):
    config = os.path.join(tmp, "relance.yaml")
    with open(config, "w") as f:
        f.write("pools:\n  main:\n    accounts:\n      - email: a@acme.example\n"
                "        smtp: smtp://127.0.0.1:2525\n        password_env: PW\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": config, "PW": "pw"}
    known = harness.sequence(tmp, "one_step", name="known", pool="main")
    lost = harness.sequence(tmp, "one_step", name="lost", pool="nosuch")
    r = relance("apply", known, lost, env=env)
    assert r.returncode == 0 and "lost: created" in r.stdout, f"applied all the same: {r.stdout + r.stderr}"
    assert "warning: sequence 'lost' names pool 'nosuch', which the configuration does not have" in r.stderr \
        and "'known'" not in r.stderr, f"a warning for the unknown pool alone: {r.stderr}"
    r = relance("apply", known, lost, env={**env, "RELANCE_TRANSPORT": "capture"})
    assert r.returncode == 0 and "warning" not in r.stderr, f"capture ignores pools: no warning: {r.stderr}"


def test_serve_without_any_account_says_so_once(db, tmp, serve):
    env = {"DATABASE_URL": db.url()}
    r = relance("apply", harness.sequence(tmp, "one_step", name="a", pool="p1"),
                harness.sequence(tmp, "one_step", name="b", pool="p2"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    s = serve({**env, "RELANCE_STATE_DIR": tmp})
    s.wait_status("/readyz", 200)
    assert harness.wait_until(lambda: "no sender account is configured" in s.output(), 5), s.output()
    assert "names a pool" not in s.output(), f"one line, not one per sequence: {s.output()}"


def test_serve_logs_a_sequence_naming_a_pool_the_configuration_does_not_have(db, tmp, serve):
    config = os.path.join(tmp, "relance.yaml")
    with open(config, "w") as f:
        f.write("pools:\n  main:\n    accounts:\n      - email: a@acme.example\n"
                "        smtp: smtp://127.0.0.1:2525\n        password_env: PW\n")
    env = {"DATABASE_URL": db.url(), "PW": "pw"}
    r = relance("apply", harness.sequence(tmp, "one_step", name="lost", pool="nosuch"),
                harness.sequence(tmp, "one_step", name="known", pool="main"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    s = serve({**env, "RELANCE_CONFIG": config, "RELANCE_STATE_DIR": tmp})
    s.wait_status("/readyz", 200)
    deadline = time.time() + 5
    while "names a pool" not in s.output() and time.time() < deadline:
        time.sleep(0.1)
    lines = [ln for ln in s.output().splitlines() if "names a pool" in ln]
    assert len(lines) == 1 and "lost" in lines[0] and "nosuch" in lines[0], f"one warning, for lost: {s.output()}"
