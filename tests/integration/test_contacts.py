"""Contacts against a real PostgreSQL: `relance contacts import` (good and
bad rows reported as FILE:LINE: reason with the right lines, also after
records that span lines; re-import updates without wiping; --map; BOM and
CRLF; ';' and tab files, guessed or --delimiter; an unknown time zone
imported without one; custom fields; derived company domains; one
transaction),
`contacts show|list`, `contacts export` (import of an export into an empty
database gives the same contacts), and `relance suppress add|remove|list`."""
import os
import re

import pytest

import harness
from harness import relance

FIRST = [
    "email,first_name,last_name,company,timezone,crm_id,Deal Size",
    "alice@ACME.example,Alice,Martin,Acme,Europe/Paris,crm-1,5000",
    '"bob@beta.example","Bob ""Bobby""","Stone, Jr.",Beta,america/new_york,crm-2,',
    '"  carol@gamma.example ",Carol,"multi\nline\nnote",Gamma,,crm-3,',
    'dave@delta.example,Da"ve,X,Delta,,,',
    "not-an-address,Eve,,,,,",
    "frank@zeta.example,Frank,,Zeta,Mars/Olympus,,",
    "grace@eta.example,Grace,,Eta,,crm-1,",
    ",Nobody,,,,,",
    "heidi@gmail.com,Heidi,,,Asia/Kolkata,,",
    'kim@kappa.example,"Kim"x,,,,,',
    "leo@lambda.example,Leo",
    "HEIDI@gmail.com,Heidi2,,,,,",
    "mallory@mu.example,Mallory,,Mu,,,,,",
    'ivan@theta.example,"Ivan',
    "judy@iota.example,Judy,,Iota,UTC,,",
]
SECOND = [
    "Email,First_Name,Title,Deal Size,Stage,company_domain,crm_id",
    "alice@acme.example,,CEO,7000,won,,",
    '"bob@beta.example","Bob ""Bobby""",,,,,',
    "newbie@nu.example,New,,,lead,https://www.Nu-Corp.example/about,crm-9",
    "zed@omega.example,Zed,,,,,crm-2",
    "olga@xi.example,Olga,,,,not a domain,",
]


class World:
    """One test's database and files, with the helpers the checks use."""

    def __init__(self, db, tmp):
        self.db, self.tmp = db, tmp
        self.env = {"DATABASE_URL": db.url()}

    def write(self, name, rows, bom=False, eol="\n"):
        """Writes the rows (each a string, maybe holding line breaks inside
        quotes) joined by eol; returns the path."""
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write((b"\xef\xbb\xbf" if bom else b"") + eol.join(rows).encode() + eol.encode())
        return path

    def imp(self, path, *args):
        return relance("contacts", "import", path, *args, env=self.env)

    def contact(self, email,
                cols="first_name, last_name, title, company, company_domain, timezone, crm_id, fields::text"):
        rows = self.db.psql(f"SELECT {cols} FROM contacts WHERE email_key = lower('{email}')")
        return rows[0] if rows else None

    def imported(self, *files):
        """Imports FIRST, then SECOND when asked: the contacts most cases start from."""
        for name, rows in (("first.csv", FIRST), ("second.csv", SECOND))[:len(files) or 1]:
            assert self.imp(self.write(name, rows)).returncode == 0, f"import {name}"


@pytest.fixture
def w(db, tmp):
    return World(db, tmp)


def lines_of(rows):
    """The 1-based starting line of each row."""
    out, line = [], 1
    for row in rows:
        out.append(line)
        line += row.count("\n") + 1
    return out


def rejects(check, r, path):
    """{line: reason} from stderr; every stderr line must be FILE:LINE: reason."""
    out = {}
    for line in r.stderr.splitlines():
        m = re.match(re.escape(path) + r":(\d+): (.*)$", line)
        check.ok(m is not None, f"stderr line has the FILE:LINE: form: {line!r}")
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(w, check):
    at = dict(zip(["header", "alice", "bob", "carol", "dave", "eve", "frank", "grace", "nobody", "heidi", "kim",
                   "leo", "heidi2", "mallory", "ivan", "judy"], lines_of(FIRST)))
    assert at["dave"] == 7, "fixture: carol's record spans lines 4-6"
    first = w.write("first.csv", FIRST)
    r = w.imp(first)
    check.eq(r.returncode, 0, "import with rejected rows exits 0")
    check.eq(r.stdout, "inserted 7, updated 0, rejected 8\n", "summary line: the unknown zone is no reject")
    got = rejects(check, r, first)
    want = {
        at["dave"]: "quote inside an unquoted field",
        at["eve"]: "invalid email address 'not-an-address': no '@'",
        at["frank"]: "unknown time zone 'Mars/Olympus': imported without one",
        at["grace"]: f"crm_id 'crm-1' is also given to alice@acme.example on line {at['alice']}",
        at["nobody"]: "missing email",
        at["heidi"]: f"duplicate email heidi@gmail.com: line {at['heidi2']} has the same address and wins",
        at["kim"]: "text after a closing quote",
        at["leo"]: "2 fields, the header has 7",
        at["ivan"]: "unterminated quoted field",
    }
    for line, reason in want.items():
        check.ok(reason in got.get(line, ""), f"line {line} rejected: {reason}", f"got {got.get(line)!r}; all: {got}")
    check.ok(at["mallory"] not in got, "extra empty trailing fields are accepted", got.get(at["mallory"]))
    check.eq(len(got), 9, "eight rejected rows and one warning reported")
    reported = [int(line.split(":")[1]) for line in r.stderr.splitlines() if line.startswith(first + ":")]
    check.eq(reported, sorted(reported), "rejects reported in line order")
    check.eq(w.contact("alice@acme.example"),
             ["Alice", "Martin", "", "Acme", "acme.example", "Europe/Paris", "crm-1", '{"Deal Size": "5000"}'],
             "alice stored with a custom field and a derived company domain")
    check.eq(w.db.psql("SELECT email FROM contacts WHERE email_key = 'alice@acme.example'"),
             [["alice@acme.example"]], "the email's domain is lower-cased")
    check.eq(w.contact("bob@beta.example", "first_name, last_name, timezone"),
             ["Bob \"Bobby\"", "Stone, Jr.", "America/New_York"], "quoted fields; the zone's spelling made canonical")
    carol = w.db.psql("SELECT email, last_name = E'multi\\nline\\nnote' FROM contacts "
                      "WHERE email_key = 'carol@gamma.example'")
    check.eq(carol, [["carol@gamma.example", "t"]], "a field with line breaks; the email trimmed")
    check.eq(w.contact("heidi@gmail.com", "first_name, timezone, company_domain IS NULL"), ["Heidi2", "", "t"],
             "duplicate email: the last row wins; gmail.com is no company")
    check.ok(w.contact("judy@iota.example") is not None, "the row after an unterminated quote is kept")
    check.ok(w.contact("mallory@mu.example") is not None, "mallory kept")
    check.eq(w.contact("frank@zeta.example", "first_name, timezone IS NULL"), ["Frank", "t"],
             "an unknown time zone: the row imported without one")
    for who in ("dave@delta.example", "grace@eta.example", "kim@kappa.example",
                "leo@lambda.example", "ivan@theta.example"):
        check.ok(w.contact(who) is None, f"{who} not stored")


def test_a_reimport_updates_and_empty_cells_never_wipe(w, check):
    w.imported()
    before = dict(w.db.psql("SELECT email, updated_at FROM contacts ORDER BY email"))
    second = w.write("second.csv", SECOND)
    r = w.imp(second)
    check.eq(r.returncode, 0, "re-import exits 0")
    check.eq(r.stdout, "inserted 1, updated 2, rejected 2\n", "re-import summary: updated counts matched contacts")
    got = rejects(check, r, second)
    check.ok("crm_id 'crm-2' belongs to bob@beta.example, which line 3 names too" in got.get(5, ""),
             "a crm_id that would rename a contact another row names: refused", got)
    check.ok("invalid company domain 'not a domain'" in got.get(6, ""), "bad company domain refused", got)
    check.eq(w.contact("alice@acme.example", "first_name, title, crm_id, fields::text"),
             ["Alice", "CEO", "crm-1", '{"Stage": "won", "Deal Size": "7000"}'],
             "update: empty cells keep values, custom fields merged")
    after = dict(w.db.psql("SELECT email, updated_at FROM contacts ORDER BY email"))
    check.ok(after["alice@acme.example"] != before["alice@acme.example"], "a changed contact gets a new updated_at")
    check.eq(after["bob@beta.example"], before["bob@beta.example"], "an unchanged contact is not rewritten")
    check.eq(w.contact("newbie@nu.example", "company_domain, crm_id"), ["nu-corp.example", "crm-9"],
             "a given company domain is normalised")
    r = w.imp(second)
    check.eq(r.stdout, "inserted 0, updated 3, rejected 2\n", "importing the same file again")


def test_a_crm_id_stored_with_another_email_moves_the_contact_to_the_new_email(w, check):
    """The CRM is the source of truth: a row whose crm_id is stored with
    another email changes that contact's email (the same rule as the
    API's POST /v1/contacts, in the same SQL), unless the new email is
    another contact's: then the row is refused, naming both."""
    w.imported()
    before = w.db.psql("SELECT id FROM contacts WHERE crm_id = 'crm-2'")[0][0]
    # external_id: the API's name for the crm_id column, accepted as its alias
    moved = w.write("moved.csv", ["email,external_id,title", "bob.stone@beta.example,crm-2,CTO",
                                  "carol@gamma.example,crm-1,"])
    r = w.imp(moved)
    check.eq(r.stdout, "inserted 0, updated 1, rejected 1\n", "one moved, one refused")
    check.eq(w.db.psql("SELECT id, email, title FROM contacts WHERE crm_id = 'crm-2'"),
             [[before, "bob.stone@beta.example", "CTO"]], "the same contact, at its new email")
    check.eq(w.contact("bob@beta.example"), None, "no contact is left at the old email")
    got = rejects(check, r, moved)
    alice, carol = (w.db.psql(f"SELECT id FROM contacts WHERE email_key = '{e}'")[0][0]
                    for e in ("alice@acme.example", "carol@gamma.example"))
    check.ok(f"crm_id 'crm-1' belongs to alice@acme.example (contact {alice}), and carol@gamma.example to contact "
             f"{carol}" in got.get(3, ""), "the email of another contact: refused, naming both", got)


def test_map_names_the_columns_of_a_file_without_an_email_column(w):
    third = w.write("third.csv", ["E-mail,Given Name,Role,Junk", "paul@pi.example,Paul,Buyer,zzz"])
    r = w.imp(third)
    assert r.returncode == 1 and f"{third}:1: the header has no email column" in r.stderr \
        and '--map "E-mail=email"' in r.stderr, f"no email column: the file fails with a hint: {r.stderr}"
    assert w.contact("paul@pi.example") is None, "nothing imported from a file without an email column"
    r = w.imp(third, "--map", "e-mail=email", "--map", "Given Name=first_name", "--map=Junk=")
    assert (r.returncode, r.stdout, r.stderr) == (0, "inserted 1, updated 0, rejected 0\n", ""), "--map imports"
    assert w.contact("paul@pi.example", "first_name, fields::text") == ["Paul", '{"Role": "Buyer"}'], \
        "--map: mapped field, custom field kept, ignored column dropped"
    r = w.imp(third, "--map", "Nope=email")
    assert r.returncode == 1 and "no column 'Nope'" in r.stderr, f"--map of an absent column fails: {r.stderr}"
    r = w.imp(third, "--map", "E-mail=email", "--map", "Role=email")
    assert r.returncode == 1 and "both give email" in r.stderr, f"two columns for one field fail: {r.stderr}"


def test_a_bom_and_crlf_line_ends_are_read(w):
    fourth = w.write("fourth.csv", ["email,last_name", "quinn@rho.example,\"Q\r\nQ\"", "rose@sigma.example,R",
                                    "bad@,B"], bom=True, eol="\r\n")
    r = w.imp(fourth)
    assert (r.returncode, r.stdout) == (0, "inserted 2, updated 0, rejected 1\n"), "BOM and CRLF"
    assert f"{fourth}:5: invalid email address 'bad@'" in r.stderr, f"line numbers count CRLF once: {r.stderr}"


def test_a_french_excel_file_semicolons_bom_and_accents_is_read(w, check):
    """What Excel in a French locale writes for 'CSV UTF-8': a BOM, ';'
    between fields, CRLF, and ',' as the decimal mark inside fields."""
    fr = w.write("excel-fr.csv", ["email;first_name;last_name;company;Montant;Ville",
                                  "elodie@societe.example;\u00c9lodie;Lef\u00e8vre;Soci\u00e9t\u00e9 G\u00e9n\u00e9rale;"
                                  "12,5;Orl\u00e9ans",
                                  '"bruno@ca.example";Bruno;"Dupont; fils";Cr\u00e9dit;1 000,00;',
                                  "pas-une-adresse;X;;;;"], bom=True, eol="\r\n")
    r = w.imp(fr)
    check.eq((r.returncode, r.stdout), (0, "inserted 2, updated 0, rejected 1\n"), f"a ';' file is read: {r.stderr}")
    check.ok(f"{fr}:4: invalid email address 'pas-une-adresse'" in r.stderr, "its bad row by line", r.stderr)
    check.eq(w.contact("elodie@societe.example", "first_name, last_name, company, fields::text"),
             ["\u00c9lodie", "Lef\u00e8vre", "Soci\u00e9t\u00e9 G\u00e9n\u00e9rale",
              '{"Ville": "Orl\u00e9ans", "Montant": "12,5"}'],
             "accents kept; a comma is text in a ';' file; the BOM is not part of 'email'")
    check.eq(w.contact("bruno@ca.example", "last_name, fields::text"), ["Dupont; fils", '{"Montant": "1 000,00"}'],
             "a quoted ';' is text")
    with open(fr, "rb") as f:
        r = relance("contacts", "import", "-", env=w.env, input=f.read())
    check.eq((r.returncode, r.stdout), (0, "inserted 0, updated 2, rejected 1\n"), f"the same from a pipe: {r.stderr}")


def test_delimiter_option_overrides_the_guess(w, check):
    # The header has more commas than semicolons: the guess is ',', wrong here.
    mixed = w.write("mixed.csv", ["email;Nom,Pr\u00e9nom,Ville", "ines@mixed.example;Martin,In\u00e8s,Lyon"])
    r = w.imp(mixed)
    check.eq(r.returncode, 1, f"guessed ',': no email column: {r.stderr}")
    r = w.imp(mixed, "--delimiter", ";")
    check.eq((r.returncode, r.stdout, r.stderr), (0, "inserted 1, updated 0, rejected 0\n", ""), "--delimiter ';'")
    check.eq(w.contact("ines@mixed.example", "fields::text"), ['{"Nom,Pr\u00e9nom,Ville": "Martin,In\u00e8s,Lyon"}'],
             "--delimiter ';': commas are text")
    tabs = w.write("tabs.csv", ["email\tfirst_name\tcompany", "tom@tab.example\tTom\tTab, Inc."])
    for spelling in ("\t", "\\t", "tab"):
        r = w.imp(tabs, f"--delimiter={spelling}")
        check.eq(r.returncode, 0, f"--delimiter {spelling!r}: {r.stderr}")
    check.eq(w.contact("tom@tab.example", "first_name, company"), ["Tom", "Tab, Inc."], "a tab file")
    r = w.imp(tabs, "--delimiter", "|")
    check.eq(r.returncode, 2, "--delimiter '|': a usage error")
    check.ok("--delimiter takes ',', ';' or tab" in r.stderr, "... that says what it takes", r.stderr)


def test_an_unknown_time_zone_is_imported_without_one_with_a_warning(w, check):
    w.db.psql("INSERT INTO contacts (email, first_name, timezone) VALUES ('old@zone.example', 'Old', 'Asia/Tokyo')")
    f = w.write("zones.csv", ["email,timezone", "new@zone.example,Europe/Pariss", "old@zone.example,CEST",
                              "ok@zone.example,europe/paris"])
    r = w.imp(f)
    check.eq((r.returncode, r.stdout), (0, "inserted 2, updated 1, rejected 0\n"), f"no row rejected: {r.stderr}")
    check.eq(r.stderr, f"{f}:2: unknown time zone 'Europe/Pariss': imported without one\n"
                       f"{f}:3: unknown time zone 'CEST': imported without one\n", "one warning line per row")
    check.eq(w.contact("new@zone.example", "timezone IS NULL"), ["t"], "a new contact: no zone (the fallback applies)")
    check.eq(w.contact("old@zone.example", "timezone"), ["Asia/Tokyo"], "a stored zone is kept, as for an empty cell")
    check.eq(w.contact("ok@zone.example", "timezone"), ["Europe/Paris"], "a known zone, canonical")


def test_an_import_is_one_transaction(w):
    w.db.psql("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
              " IF NEW.email = 'boom@tau.example' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;"
              "CREATE TRIGGER boom BEFORE INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION boom()")
    fifth = w.write("fifth.csv", ["email", "sam@upsilon.example", "boom@tau.example", "tina@phi.example"])
    r = w.imp(fifth)
    assert r.returncode == 1 and "boom" in r.stderr and "nothing was imported" in r.stderr, \
        f"a database failure mid-way: exit 1: {r.stderr}"
    assert w.contact("sam@upsilon.example") is None and w.contact("tina@phi.example") is None, \
        "... and nothing applied"


def test_files_that_cannot_be_used_fail(w):
    for what, path in (("a missing file", os.path.join(w.tmp, "nope.csv")), ("a directory", w.tmp)):
        r = w.imp(path)
        assert r.returncode == 1 and "cannot read" in r.stderr, f"{what}: exit 1: {r.stderr}"
    empty = os.path.join(w.tmp, "empty.csv")
    open(empty, "w").close()
    r = w.imp(empty)
    assert r.returncode == 1 and "empty" in r.stderr, f"an empty file: exit 1: {r.stderr}"
    badhead = w.write("badhead.csv", ['"email,name', "x@y.example,z"])
    r = w.imp(badhead)
    assert r.returncode == 1 and f"{badhead}:1:" in r.stderr, f"a broken header: exit 1: {r.stderr}"
    allbad = w.write("allbad.csv", ["email", "x@", "@y"])
    r = w.imp(allbad)
    assert (r.returncode, r.stdout) == (0, "inserted 0, updated 0, rejected 2\n"), \
        "only bad rows: processed, exit 0"
    r = relance("contacts", "import", env=w.env)
    assert r.returncode == 2, "import without a file: usage error"


def test_contacts_show_and_list(w, check):
    w.imported("first", "second")
    env = w.env
    r = relance("contacts", "show", "Alice@acme.EXAMPLE", env=env)
    check.ok(r.returncode == 0 and "email: alice@acme.example\n" in r.stdout and "title: CEO\n" in r.stdout
             and "fields.Deal Size: 7000\n" in r.stdout and "company_domain: acme.example\n" in r.stdout
             and "suppressed: no\n" in r.stdout, "contacts show", r.stdout)
    check.ok(all(re.match(r"^[a-z_.A-Z ]+: ", line) for line in r.stdout.splitlines()),
             "show prints key: value lines", r.stdout)
    r = relance("contacts", "show", "carol@gamma.example", env=env)
    check.ok("last_name: multi\\nline\\nnote\n" in r.stdout, "show keeps one value on one line", r.stdout)
    r = relance("contacts", "show", "nobody@nowhere.example", env=env)
    check.ok(r.returncode == 1 and "no contact" in r.stderr, "show of an unknown contact: exit 1", r.stderr)
    r = relance("contacts", "list", env=env)
    lines = r.stdout.splitlines()
    total = int(w.db.psql("SELECT count(*) FROM contacts")[0][0])
    check.ok(r.returncode == 0 and len(lines) == total, "list prints every contact", r.stdout)
    check.ok("alice@acme.example\tAlice Martin\tAcme\tEurope/Paris" in lines, "list: email, name, company, zone",
             lines)
    check.eq([line.split("\t")[0].lower() for line in lines], sorted(line.split("\t")[0].lower() for line in lines),
             "list is sorted by email")
    r = relance("contacts", "list", "--limit", "2", env=env)
    check.eq(r.stdout.splitlines(), lines[:2], "list --limit 2")
    r = relance("contacts", "list", "--limit", "x", env=env)
    check.eq(r.returncode, 2, "list --limit x: usage error")


def test_suppress_add_list_and_remove(w, check):
    w.imported()
    env = w.env
    r = relance("suppress", "add", "Bob@Beta.example", "@Spam.EXAMPLE", "--reason", "asked", env=env)
    check.eq((r.returncode, r.stdout), (0, "added 2, already suppressed 0, stopped 0 enrollments\n"), "suppress add")
    r = relance("suppress", "list", env=env)
    check.eq(r.stdout, "@spam.example\nbob@beta.example\n", "suppress list: lower-case, sorted, one per line")
    check.eq(w.db.psql("SELECT reason FROM suppressions WHERE pattern = 'bob@beta.example'"), [["asked"]],
             "--reason stored")
    check.eq(w.db.psql("SELECT relance_suppressed('Anyone@spam.example'), relance_suppressed('bob@beta.example'),"
                       " relance_suppressed('alice@acme.example')"), [["t", "t", "f"]],
             "relance_suppressed sees both kinds")
    r = relance("suppress", "add", "bob@beta.example", env=env)
    check.eq((r.returncode, r.stdout), (0, "added 0, already suppressed 1, stopped 0 enrollments\n"), "adding twice is not an error")
    r = relance("suppress", "add", "ok@fine.example", "not valid", env=env)
    check.ok(r.returncode == 1 and "invalid email address 'not valid'" in r.stderr, "invalid address: exit 1",
             r.stderr)
    r = relance("suppress", "add", "@nodot", env=env)
    check.ok(r.returncode == 1 and "invalid domain 'nodot'" in r.stderr, "invalid domain: exit 1", r.stderr)
    check.eq(w.db.psql("SELECT count(*) FROM suppressions"), [["2"]], "an invalid argument changes nothing")
    r = relance("contacts", "show", "bob@beta.example", env=env)
    check.ok("suppressed: yes\n" in r.stdout, "show says suppressed", r.stdout)
    r = relance("suppress", "remove", "@spam.example", "gone@nowhere.example", env=env)
    check.eq((r.returncode, r.stdout), (0, "removed 1, not suppressed 1\n"), "suppress remove")
    r = relance("suppress", "list", env=env)
    check.eq(r.stdout, "bob@beta.example\n", "list after remove")
    r = relance("suppress", "frob", env=env)
    check.eq(r.returncode, 2, "unknown suppress subcommand: usage error")


def test_help_of_suppress_and_contacts():
    r = relance("suppress", "--help")
    assert r.returncode == 0 and "usage: relance suppress" in r.stdout, "suppress --help"
    r = relance("contacts", "--help")
    assert r.returncode == 0 and "usage: relance contacts" in r.stdout, "contacts --help"


THIRD = [
    "email,first_name,last_name,company,company_domain,timezone,crm_id,\"Notes, misc\",Ville",
    'zoe@b\u00fccher.example,Zo\u00eb,\u00c9lodie-\u5f20,"Caf\u00e9 ""Le Z"", SARL",cafe.example,Pacific/Chatham,'
    'crm-7,"line one\nline two, with ""quotes""",S\u00e8te',
    "yann@omicron.example,Yann,,,,Asia/Kolkata,,;semi;colons;,\\N",
]


def test_export_then_import_into_an_empty_database_gives_the_same_contacts(w, cluster, check):
    w.imported("first", "second")
    assert w.imp(w.write("third.csv", THIRD)).returncode == 0, "import the third file"
    # one JSON line a contact, so values with line breaks stay on one
    every = ("SELECT row_to_json(c)::text FROM (SELECT email, first_name, last_name, title, company, company_domain,"
             " timezone, crm_id, fields FROM contacts ORDER BY email_key COLLATE \"C\") c")
    want = w.db.psql(every)
    assert len(want) == 10 and any("\\n" in row[0] for row in want), f"the contacts to export: {want}"
    out = os.path.join(w.tmp, "out.csv")
    r = relance("contacts", "export", "--output", out, env=w.env)
    check.ok(r.returncode == 0 and r.stdout == f"exported {len(want)} contacts to {out}\n",
             "export --output writes the file and says how many", r.stdout + r.stderr)
    with open(out, "rb") as f:
        exported = f.read()
    check.ok(exported.startswith(b"email,first_name,last_name,title,company,company_domain,timezone,crm_id,"
                                 b"Deal Size,\"Notes, misc\",Stage,Ville\n"),
             "a header row: the fields, then the custom field keys, sorted", exported[:200])
    r = relance("contacts", "export", env=w.env, raw=True)
    check.ok(r.returncode == 0 and r.stdout == exported, "without --output: the same CSV on stdout")
    for delimiter in (None, ";", "tab"):
        other = harness.Database(cluster)
        try:
            path = out
            if delimiter:
                path = os.path.join(w.tmp, f"out-{delimiter}.csv")
                r = relance("contacts", "export", "--output", path, "--delimiter", delimiter, env=w.env)
                check.ok(r.returncode == 0, f"export --delimiter {delimiter}", r.stderr)
            r = relance("contacts", "import", path, env={"DATABASE_URL": other.url()})
            check.ok(r.returncode == 0 and r.stdout == f"inserted {len(want)}, updated 0, rejected 0\n"
                     and r.stderr == "", f"the export ({delimiter or ','}) imports cleanly", r.stdout + r.stderr)
            got = other.psql(every)
            check.ok(got == want, f"the same contacts after the round trip ({delimiter or ','})",
                     "\n".join(f"{a} != {b}" for a, b in zip(want, got) if a != b) or f"{len(want)} vs {len(got)}")
        finally:
            other.drop()
    r = relance("contacts", "export", "--delimiter", "|", env=w.env)
    check.ok(r.returncode == 2 and "--delimiter takes" in r.stderr, "a bad --delimiter is a usage error", r.stderr)
    r = relance("contacts", "--help")
    check.ok("export" in r.stdout, "contacts --help names export", r.stdout)
