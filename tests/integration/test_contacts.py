"""Issue 4's contacts against a real PostgreSQL: `relance contacts import`
(good and bad rows reported as FILE:LINE: reason with the right lines, also
after records that span lines; re-import updates without wiping; --map; BOM
and CRLF; custom fields; derived company domains; one transaction),
`contacts show|list`, and `relance suppress add|remove|list`."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import relance  # noqa: E402

t = harness.Check("contacts")
pg = harness.Postgres()
env = {"DATABASE_URL": pg.url()}
r = relance("migrate", env=env)
if not t.ok(r.returncode == 0, "migrate", r.stderr):
    t.done()
tmp = harness.short_tempdir("rct")


def write(name, rows, bom=False, eol="\n"):
    """Writes the rows (each a string, maybe holding line breaks inside
    quotes) joined by eol; returns the path."""
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + eol.join(rows).encode() + eol.encode())
    return path


def lines_of(rows):
    """The 1-based starting line of each row."""
    out, line = [], 1
    for row in rows:
        out.append(line)
        line += row.count("\n") + 1
    return out


def imp(path, *args):
    return relance("contacts", "import", path, *args, env=env)


def rejects(r, path):
    """{line: reason} from stderr; every stderr line must be FILE:LINE: reason."""
    out = {}
    for line in r.stderr.splitlines():
        m = re.match(re.escape(path) + r":(\d+): (.*)$", line)
        t.ok(m is not None, f"stderr line has the FILE:LINE: form: {line!r}")
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def contact(email, cols="first_name, last_name, title, company, company_domain, timezone, crm_id, fields::text"):
    rows = pg.psql(f"SELECT {cols} FROM contacts WHERE email_key = lower('{email}')")
    return rows[0] if rows else None


# --- a first import: good rows kept, bad rows reported by line --------------------
rows = [
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
at = dict(zip(["header", "alice", "bob", "carol", "dave", "eve", "frank", "grace", "nobody", "heidi", "kim", "leo",
               "heidi2", "mallory", "ivan", "judy"], lines_of(rows)))
t.eq(at["dave"], 7, "fixture: carol's record spans lines 4-6")
first = write("first.csv", rows)
r = imp(first)
t.eq(r.returncode, 0, "import with rejected rows exits 0")
t.eq(r.stdout, "inserted 6, updated 0, rejected 9\n", "summary line")
got = rejects(r, first)
want = {
    at["dave"]: "quote inside an unquoted field",
    at["eve"]: "invalid email address 'not-an-address': no '@'",
    at["frank"]: "unknown time zone 'Mars/Olympus'",
    at["grace"]: f"crm_id 'crm-1' is also given to alice@acme.example on line {at['alice']}",
    at["nobody"]: "missing email",
    at["heidi"]: f"duplicate email heidi@gmail.com: line {at['heidi2']} has the same address and wins",
    at["kim"]: "text after a closing quote",
    at["leo"]: "2 fields, the header has 7",
    at["ivan"]: "unterminated quoted field",
}
for line, reason in want.items():
    t.ok(reason in got.get(line, ""), f"line {line} rejected: {reason}", f"got {got.get(line)!r}; all: {got}")
t.ok(at["mallory"] not in got, "extra empty trailing fields are accepted", got.get(at["mallory"]))
t.eq(len(got), 9, "nine rejected rows reported")
reported = [int(line.split(":")[1]) for line in r.stderr.splitlines() if line.startswith(first + ":")]
t.eq(reported, sorted(reported), "rejects reported in line order")
t.eq(contact("alice@acme.example"),
     ["Alice", "Martin", "", "Acme", "acme.example", "Europe/Paris", "crm-1", '{"Deal Size": "5000"}'],
     "alice stored with a custom field and a derived company domain")
t.eq(pg.psql("SELECT email FROM contacts WHERE email_key = 'alice@acme.example'"), [["alice@acme.example"]],
     "the email's domain is lower-cased")
t.eq(contact("bob@beta.example", "first_name, last_name, timezone"), ["Bob \"Bobby\"", "Stone, Jr.", "America/New_York"],
     "quoted fields; the zone's spelling made canonical")
carol = pg.psql("SELECT email, last_name = E'multi\\nline\\nnote' FROM contacts WHERE email_key = 'carol@gamma.example'")
t.eq(carol, [["carol@gamma.example", "t"]], "a field with line breaks; the email trimmed")
t.eq(contact("heidi@gmail.com", "first_name, timezone, company_domain IS NULL"), ["Heidi2", "", "t"],
     "duplicate email: the last row wins; gmail.com is no company")
t.ok(contact("judy@iota.example") is not None, "the row after an unterminated quote is kept")
t.ok(contact("mallory@mu.example") is not None, "mallory kept")
for who in ("dave@delta.example", "frank@zeta.example", "grace@eta.example", "kim@kappa.example",
            "leo@lambda.example", "ivan@theta.example"):
    t.ok(contact(who) is None, f"{who} not stored")

# --- a re-import updates; empty cells never wipe ------------------------------------
before = pg.psql("SELECT email, updated_at FROM contacts ORDER BY email")
before = dict((e, u) for e, u in before)
rows2 = [
    "Email,First_Name,Title,Deal Size,Stage,company_domain,crm_id",
    "alice@acme.example,,CEO,7000,won,,",
    '"bob@beta.example","Bob ""Bobby""",,,,,',
    "newbie@nu.example,New,,,lead,https://www.Nu-Corp.example/about,crm-9",
    "zed@omega.example,Zed,,,,,crm-2",
    "olga@xi.example,Olga,,,,not a domain,",
]
second = write("second.csv", rows2)
r = imp(second)
t.eq(r.returncode, 0, "re-import exits 0")
t.eq(r.stdout, "inserted 1, updated 2, rejected 2\n", "re-import summary: updated counts matched contacts")
got = rejects(r, second)
t.ok("crm_id 'crm-2' already belongs to bob@beta.example" in got.get(5, ""), "crm_id of another contact refused",
     got)
t.ok("invalid company domain 'not a domain'" in got.get(6, ""), "bad company domain refused", got)
t.eq(contact("alice@acme.example", "first_name, title, crm_id, fields::text"),
     ["Alice", "CEO", "crm-1", '{"Stage": "won", "Deal Size": "7000"}'],
     "update: empty cells keep values, custom fields merged")
after = dict(pg.psql("SELECT email, updated_at FROM contacts ORDER BY email"))
t.ok(after["alice@acme.example"] != before["alice@acme.example"], "a changed contact gets a new updated_at")
t.eq(after["bob@beta.example"], before["bob@beta.example"], "an unchanged contact is not rewritten")
t.eq(contact("newbie@nu.example", "company_domain, crm_id"), ["nu-corp.example", "crm-9"],
     "a given company domain is normalised")
r = imp(second)
t.eq(r.stdout, "inserted 0, updated 3, rejected 2\n", "importing the same file again")

# --- --map, ignored columns, missing email column -------------------------------------
rows3 = ["E-mail,Given Name,Role,Junk", "paul@pi.example,Paul,Buyer,zzz"]
third = write("third.csv", rows3)
r = imp(third)
t.ok(r.returncode == 1 and f"{third}:1: the header has no email column" in r.stderr
     and '--map "E-mail=email"' in r.stderr, "no email column: the file fails with a hint", r.stderr)
t.ok(contact("paul@pi.example") is None, "nothing imported from a file without an email column")
r = imp(third, "--map", "e-mail=email", "--map", "Given Name=first_name", "--map=Junk=")
t.eq((r.returncode, r.stdout, r.stderr), (0, "inserted 1, updated 0, rejected 0\n", ""), "--map imports")
t.eq(contact("paul@pi.example", "first_name, fields::text"), ["Paul", '{"Role": "Buyer"}'],
     "--map: mapped field, custom field kept, ignored column dropped")
r = imp(third, "--map", "Nope=email")
t.ok(r.returncode == 1 and "no column 'Nope'" in r.stderr, "--map of an absent column fails", r.stderr)
r = imp(third, "--map", "E-mail=email", "--map", "Role=email")
t.ok(r.returncode == 1 and "both give email" in r.stderr, "two columns for one field fail", r.stderr)

# --- BOM and CRLF -----------------------------------------------------------------------
fourth = write("fourth.csv", ["email,last_name", "quinn@rho.example,\"Q\r\nQ\"", "rose@sigma.example,R", "bad@,B"],
               bom=True, eol="\r\n")
r = imp(fourth)
t.eq((r.returncode, r.stdout), (0, "inserted 2, updated 0, rejected 1\n"), "BOM and CRLF")
t.ok(f"{fourth}:5: invalid email address 'bad@'" in r.stderr, "line numbers count CRLF once", r.stderr)

# --- one transaction: a failure applies nothing ----------------------------------------
pg.psql("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.email = 'boom@tau.example' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;"
        "CREATE TRIGGER boom BEFORE INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION boom()")
fifth = write("fifth.csv", ["email", "sam@upsilon.example", "boom@tau.example", "tina@phi.example"])
r = imp(fifth)
t.ok(r.returncode == 1 and "boom" in r.stderr and "nothing was imported" in r.stderr,
     "a database failure mid-way: exit 1", r.stderr)
t.ok(contact("sam@upsilon.example") is None and contact("tina@phi.example") is None, "... and nothing applied")
pg.psql("DROP TRIGGER boom ON contacts")

# --- files that cannot be used ----------------------------------------------------------
for what, path in (("a missing file", os.path.join(tmp, "nope.csv")), ("a directory", tmp)):
    r = imp(path)
    t.ok(r.returncode == 1 and "cannot read" in r.stderr, f"{what}: exit 1", r.stderr)
empty = os.path.join(tmp, "empty.csv")
open(empty, "w").close()
r = imp(empty)
t.ok(r.returncode == 1 and "empty" in r.stderr, "an empty file: exit 1", r.stderr)
badhead = write("badhead.csv", ['"email,name', "x@y.example,z"])
r = imp(badhead)
t.ok(r.returncode == 1 and f"{badhead}:1:" in r.stderr, "a broken header: exit 1", r.stderr)
allbad = write("allbad.csv", ["email", "x@", "@y"])
r = imp(allbad)
t.eq((r.returncode, r.stdout), (0, "inserted 0, updated 0, rejected 2\n"), "only bad rows: processed, exit 0")
r = relance("contacts", "import", env=env)
t.eq(r.returncode, 2, "import without a file: usage error")

# --- show and list ----------------------------------------------------------------------
r = relance("contacts", "show", "Alice@acme.EXAMPLE", env=env)
t.ok(r.returncode == 0 and "email: alice@acme.example\n" in r.stdout and "title: CEO\n" in r.stdout
     and "fields.Deal Size: 7000\n" in r.stdout and "company_domain: acme.example\n" in r.stdout
     and "suppressed: no\n" in r.stdout, "contacts show", r.stdout)
t.ok(all(re.match(r"^[a-z_.A-Z ]+: ", line) for line in r.stdout.splitlines()), "show prints key: value lines",
     r.stdout)
r = relance("contacts", "show", "carol@gamma.example", env=env)
t.ok("last_name: multi\\nline\\nnote\n" in r.stdout, "show keeps one value on one line", r.stdout)
r = relance("contacts", "show", "nobody@nowhere.example", env=env)
t.ok(r.returncode == 1 and "no contact" in r.stderr, "show of an unknown contact: exit 1", r.stderr)
r = relance("contacts", "list", env=env)
lines = r.stdout.splitlines()
total = int(pg.psql("SELECT count(*) FROM contacts")[0][0])
t.ok(r.returncode == 0 and len(lines) == total, "list prints every contact", r.stdout)
t.ok("alice@acme.example\tAlice Martin\tAcme\tEurope/Paris" in lines, "list: email, name, company, zone", lines)
t.eq([line.split("\t")[0].lower() for line in lines], sorted(line.split("\t")[0].lower() for line in lines),
     "list is sorted by email")
r = relance("contacts", "list", "--limit", "2", env=env)
t.eq(r.stdout.splitlines(), lines[:2], "list --limit 2")
r = relance("contacts", "list", "--limit", "x", env=env)
t.eq(r.returncode, 2, "list --limit x: usage error")

# --- suppressions -----------------------------------------------------------------------
r = relance("suppress", "add", "Bob@Beta.example", "@Spam.EXAMPLE", "--reason", "asked", env=env)
t.eq((r.returncode, r.stdout), (0, "added 2, already suppressed 0\n"), "suppress add")
r = relance("suppress", "list", env=env)
t.eq(r.stdout, "@spam.example\nbob@beta.example\n", "suppress list: lower-case, sorted, one per line")
t.eq(pg.psql("SELECT reason FROM suppressions WHERE pattern = 'bob@beta.example'"), [["asked"]], "--reason stored")
t.eq(pg.psql("SELECT relance_suppressed('Anyone@spam.example'), relance_suppressed('bob@beta.example'),"
             " relance_suppressed('alice@acme.example')"), [["t", "t", "f"]], "relance_suppressed sees both kinds")
r = relance("suppress", "add", "bob@beta.example", env=env)
t.eq((r.returncode, r.stdout), (0, "added 0, already suppressed 1\n"), "adding twice is not an error")
r = relance("suppress", "add", "ok@fine.example", "not valid", env=env)
t.ok(r.returncode == 1 and "invalid email address 'not valid'" in r.stderr, "invalid address: exit 1", r.stderr)
r = relance("suppress", "add", "@nodot", env=env)
t.ok(r.returncode == 1 and "invalid domain 'nodot'" in r.stderr, "invalid domain: exit 1", r.stderr)
t.eq(pg.psql("SELECT count(*) FROM suppressions"), [["2"]], "an invalid argument changes nothing")
r = relance("contacts", "show", "bob@beta.example", env=env)
t.ok("suppressed: yes\n" in r.stdout, "show says suppressed", r.stdout)
r = relance("suppress", "remove", "@spam.example", "gone@nowhere.example", env=env)
t.eq((r.returncode, r.stdout), (0, "removed 1, not suppressed 1\n"), "suppress remove")
r = relance("suppress", "list", env=env)
t.eq(r.stdout, "bob@beta.example\n", "list after remove")
r = relance("suppress", "frob", env=env)
t.eq(r.returncode, 2, "unknown suppress subcommand: usage error")
r = relance("suppress", "--help")
t.ok(r.returncode == 0 and "usage: relance suppress" in r.stdout, "suppress --help")
r = relance("contacts", "--help")
t.ok(r.returncode == 0 and "usage: relance contacts" in r.stdout, "contacts --help")

t.done()
