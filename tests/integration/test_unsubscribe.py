"""One-click unsubscribe (RFC 8058) end to end: relance sends through
Postfix with DKIM; the delivered messages carry List-Unsubscribe (the
signed https link, then the mailto:) and List-Unsubscribe-Post, both
covered by a signature Debian's python3-dkim verifies. RFC 8058's own
request, POSTed to the link read out of the delivered message, suppresses
the address, ends every live enrollment of the contact and writes
contact.unsubscribed (source one_click); again, the same 200 and nothing
more. A GET or HEAD changes nothing; a tampered token is 404; a token
signed with the previous secret still works after a rotation. A sequence
with unsubscribe: {header: false} sends neither header, and one with a
footer shows the link in every step. Headless Chromium opens the page (in
English and, for a sequence in French, in French) and clicks its button.

One serve run for the module (the public routes on their own listener);
each case reads a fact of it or acts on its own contact."""
import base64
import email
import email.policy
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import dkim  # Debian's python3-dkim: the independent verifier
import pytest

import harness
from harness import relance

SENDER = ("sender@acme.example", "pw-sender")
SECRET = "new-secret-" + "n" * 32
OLD_SECRET = "old-secret-" + "o" * 32
START = "2026-03-02T09:00:00Z"
# contact -> the sequences it is enrolled in
CONTACTS = {"ann@prospects.example": ("plain", "other"),   # POSTed to by a mail client
            "bea@prospects.example": ("quiet",),           # header: false
            "cid@prospects.example": ("footer",),          # footer, language: fr; Chromium clicks
            "dan@prospects.example": ("plain",),           # rotation
            "eve@prospects.example": ("plain",),           # GET, HEAD, tampering; Chromium in English
            "fay@prospects.example": ("plain",)}           # the page's own form, urlencoded
pytestmark = pytest.mark.mail(users=[SENDER])

TWO_STEPS = """  - {id: one, subject: "Hello", body: "Hi {{first_name | there}}."}
  - {id: two, wait: 30 days, body: "Again."}
"""


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    ms, db, tmp = mail, module_db, module_tmp
    key, record = harness.dkim_key(tmp, "acme.example")
    port = harness.free_port()
    public = f"http://127.0.0.1:{port}"
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(f"http:\n  public_url: {public}/links/\n  public_url_insecure: true\n  public_listen: 127.0.0.1:{port}\n"
                "  link_secret_env: LINK\n  link_secret_previous_env: LINK_OLD\n"
                "pools:\n  main:\n    bulk: true\n    accounts:\n"
                + "".join(f"      {ln}" for ln in harness.account(ms, SENDER[0], "PW").splitlines(keepends=True)
                          if ln.strip())
                + f"dkim:\n  acme.example: {{selector: s1, key_file: {key}}}\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW": SENDER[1], "LINK": SECRET, "LINK_OLD": OLD_SECRET}
    extra = {"plain": "", "other": "", "quiet": "unsubscribe: {header: false}",
             "footer": "language: fr\nunsubscribe: {footer: \"Pour ne plus recevoir nos messages : "
                       "{{unsubscribe_url}}\"}"}
    lint = {}
    for name, more in extra.items():
        seq = harness.sequence(tmp, "custom_steps", name=name, pool="main", steps=TWO_STEPS, extra=more)
        lint[name] = relance("lint", seq, env=env).stdout
        r = relance("apply", seq, env=env)
        assert r.returncode == 0, f"apply {name}: {r.stdout + r.stderr}"
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('{c}')" for c in CONTACTS))
    for name in extra:
        who = [c for c, seqs in CONTACTS.items() if name in seqs]
        args = [a for c in who for a in ("--contact", c)]
        r = relance("enroll", "--sequence", name, "--allow-parallel", *args, env={**env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(who)}" in r.stdout, f"enroll {name}: {r.stdout + r.stderr}"
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": START})
    s.wait_status("/readyz", 200)
    got = {}
    for c, seqs in CONTACTS.items():
        got[c] = [email.message_from_bytes(m, policy=email.policy.default)
                  for m in ms.wait_for(c, len(seqs), timeout=30)]
        raw = ms.wait_for(c, len(seqs), timeout=1)
        got[c + ":raw"] = raw
    yield {"env": env, "db": db, "serve": s, "public": public, "got": got, "lint": lint, "tmp": tmp,
           "dns": {b"s1._domainkey.acme.example.": record}}
    # a clean stop: every request's state freed (the sanitizers would say)
    rc = s.stop()
    assert rc == 0 and not s.sanitizer_report(), f"serve stops cleanly: {rc}\n{s.output()[-3000:]}"


def link_of(msg):
    """The https (here http) link of a message's List-Unsubscribe."""
    value = " ".join(str(msg["List-Unsubscribe"]).split())
    return re.match(r"<(http[^>]+)>, <mailto:", value).group(1)


def post(url, body, content_type, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("POST", u.path, body=body, headers={"Content-Type": content_type, **(headers or {})})
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read().decode()
    conn.close()
    return out


def request(method, url, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, u.path, headers=headers or {})
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read().decode()
    conn.close()
    return out


def state(db, contact):
    """(suppressed, sorted enrollment states, contact.unsubscribed events' sources)"""
    out = db.psql(f"SELECT (SELECT count(*) FROM suppressions WHERE pattern = '{contact}'), "
                  f"(SELECT string_agg(e.state, ',' ORDER BY e.state) FROM enrollments e JOIN contacts c "
                  f"ON c.id = e.contact_id WHERE c.email = '{contact}'), "
                  f"(SELECT coalesce(string_agg(v.data->>'source', ','), '') FROM events v JOIN contacts c "
                  f"ON c.id = v.contact_id WHERE c.email = '{contact}' AND v.kind = 'contact.unsubscribed')")
    n, states, sources = out[0]
    return int(n) == 1, states, sources


def token(secret, message_id, kind=b"u"):
    """linktoken.h's layout, made here from the specification alone."""
    mid = message_id.strip("<>").encode()
    body = kind + bytes([len(mid)]) + mid
    tag = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + tag).decode().rstrip("=")


# RFC 8058, section 8.1: the request a mail client makes (its body as
# the RFC prints it, boundaries and all)
RFC8058_BODY = ("---FormBoundaryjWmhtjORrn\r\n"
                "Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
                "\r\n"
                "One-Click\r\n"
                "---FormBoundaryjWmhtjORrn--\r\n")
RFC8058_TYPE = "multipart/form-data; boundary=---FormBoundaryjWmhtjORrn"


def test_messages_carry_both_headers_signed_by_dkim(run, check):
    for c in ("ann@prospects.example", "dan@prospects.example"):
        for raw in run["got"][c + ":raw"]:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            # public_url has a path: the link has it (a proxy may pass it on, or strip it)
            check.ok(link_of(msg).startswith(run["public"] + "/links/u/"), f"{c}: List-Unsubscribe's link first",
                     str(msg["List-Unsubscribe"]))
            check.ok("<mailto:sender@acme.example?subject=unsubscribe>" in str(msg["List-Unsubscribe"]),
                     f"{c}: then the mailto:")
            check.eq(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click", f"{c}: List-Unsubscribe-Post")
            check.ok(c.encode() not in link_of(msg).encode() and "@" not in link_of(msg),
                     f"{c}: no address in the link")
            sig = " ".join(str(msg["DKIM-Signature"]).split())
            h = [x.strip().lower() for x in re.search(r"\bh=([^;]+)", sig).group(1).split(":")]
            check.ok("list-unsubscribe" in h and "list-unsubscribe-post" in h, f"{c}: h= covers both", sig)
            dns = run["dns"]
            check.ok(dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(
                name if isinstance(name, bytes) else name.encode())), f"{c}: python3-dkim verifies it")


def test_rfc8058_post_suppresses_ends_enrollments_and_writes_the_event(run, check):
    db, c = run["db"], "ann@prospects.example"
    check.eq(state(db, c), (False, "active,active", ""), "before: two live enrollments, not suppressed")
    url = link_of(run["got"][c][0])
    status, headers, body = post(url, RFC8058_BODY, RFC8058_TYPE)
    check.eq(status, 200, "RFC 8058's request: 200")
    check.eq(state(db, c), (True, "unsubscribed,unsubscribed", "one_click"),
             "the address is suppressed, both enrollments unsubscribed, one contact.unsubscribed (one_click)")
    ev = db.psql("SELECT data FROM events v JOIN contacts c ON c.id = v.contact_id "
                 f"WHERE c.email = '{c}' AND v.kind = 'contact.unsubscribed'")
    data = json.loads(ev[0][0])
    check.eq((data.get("message_id"), data.get("step"), data.get("source")),
             (str(run["got"][c][0]["Message-ID"]).strip("<>"), "one", "one_click"),
             "the event names the message the link came in, its step, and one_click")
    stopped = db.psql("SELECT count(*) FROM events v JOIN contacts c ON c.id = v.contact_id "
                      f"WHERE c.email = '{c}' AND v.kind = 'enrollment.stopped'")[0][0]
    check.eq(stopped, "1", "the other sequence's enrollment writes enrollment.stopped")
    # a mail client may send it again (Gmail's form): the same 200, nothing more
    status2, _, body2 = post(url, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    check.eq((status2, body2), (status, body), "a second POST: the same 200")
    check.eq(state(db, c), (True, "unsubscribed,unsubscribed", "one_click"), "and nothing more is written")
    stats = relance("stats", data.get("sequence", "?"), "--json", env=run["env"]).stdout
    check.ok('"unsubscribed":1' in stats.replace(" ", ""), "relance stats counts it for the step", stats)


def test_get_and_head_change_nothing(run, check):
    db, c = run["db"], "eve@prospects.example"
    url = link_of(run["got"][c][0])
    for method in ("GET", "HEAD", "GET"):
        status, headers, body = request(method, url, {"Accept-Language": "de-DE, fr;q=0.8, en;q=0.5"})
        check.eq(status, 200, f"{method}: 200")
    status, headers, body = request("GET", url, {"Accept-Language": "de-DE, fr;q=0.8, en;q=0.5"})
    check.ok("Voulez-vous ne plus recevoir" in body and 'lang="fr"' in body,
             "without a sequence language, Accept-Language's best: French", body)
    check.ok('method="post"' in body and "List-Unsubscribe" in body and "One-Click" in body,
             "a button that POSTs the one-click form")
    check.ok("default-src 'none'" in headers.get("Content-Security-Policy", "")
             and "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), "a CSP", str(headers))
    check.eq(headers.get("Referrer-Policy"), "no-referrer", "no referrer")
    check.eq(headers.get("X-Frame-Options"), "DENY", "no framing")
    check.ok(not re.search(r"(src|href)=\"?(https?:)?//", body) and "<script" not in body,
             "no outside resource, no script")
    check.ok(c not in body, "nothing about the contact")
    check.eq(state(db, c), (False, "active", ""), "after GETs and a HEAD: nothing changed")


def test_tampered_tokens_are_404_without_detail(run, check):
    url = link_of(run["got"]["eve@prospects.example"][0])
    base, tok = url.rsplit("/", 1)
    flipped = tok[:10] + ("A" if tok[10] != "A" else "B") + tok[11:]
    other = token("an unknown secret of at least 32 characters", str(run["got"]["eve@prospects.example"][0]
                                                                      ["Message-ID"]))
    bodies = set()
    for bad in (flipped, tok[:-1], tok + "A", other, "nope", ""):
        status, _, body = post(f"{base}/{bad}", "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
        check.eq(status, 404, f"POST with token {bad[:12]}...: 404")
        bodies.add(body)
        status, _, body = request("GET", f"{base}/{bad}")
        check.eq(status, 404, f"GET with token {bad[:12]}...: 404")
        bodies.add(body)
    check.ok(len(bodies) == 1, "every refusal reads the same", str(bodies))
    check.eq(state(run["db"], "eve@prospects.example"), (False, "active", ""), "nothing changed")
    # another kind's token on /u/ (a click's, signed alike) is no unsubscribe link
    clicks = token(SECRET, str(run["got"]["eve@prospects.example"][0]["Message-ID"]), kind=b"c")
    check.eq(post(f"{base}/{clicks}", "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")[0], 404,
             "a token of another kind: 404")
    # the public routes are not on the API's listener when they have their own
    check.eq(run["serve"].get(urllib.parse.urlsplit(url).path)[0], 404, "not served on the API's listener")


def test_a_link_signed_with_the_previous_secret_still_works(run, check):
    db, c = run["db"], "dan@prospects.example"
    msg = run["got"][c][0]
    old = token(OLD_SECRET, str(msg["Message-ID"]))
    check.ok(old != link_of(msg).rsplit("/", 1)[1], "the link relance sent is the current secret's")
    check.eq(token(SECRET, str(msg["Message-ID"])), link_of(msg).rsplit("/", 1)[1],
             "the token's layout is linktoken.h's (made here from it)")
    # (on the path a proxy that strips public_url's /links leaves)
    status, _, _ = post(f"{run['public']}/u/{old}", "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    check.eq(status, 200, "a link signed with the previous secret: 200")
    check.eq(state(db, c), (True, "unsubscribed", "one_click"), "and the contact is unsubscribed")


def test_the_page_form_post_works_too(run, check):
    db, c = run["db"], "fay@prospects.example"
    url = link_of(run["got"][c][0])
    status, _, body = post(url, "List-Unsubscribe=One-Click&lang=fr", "application/x-www-form-urlencoded")
    check.eq(status, 200, "the page's form: 200")
    check.ok("Vous êtes désinscrit" in body, "in the page's language", body)
    check.eq(state(db, c), (True, "unsubscribed", "one_click"), "unsubscribed")
    status, _, _ = post(url, "List-Unsubscribe=Maybe", "application/x-www-form-urlencoded")
    check.eq(status, 400, "a POST that is not the one-click form: 400")


def test_header_false_and_the_footer(run, check):
    quiet = run["got"]["bea@prospects.example"][0]
    check.ok(quiet["List-Unsubscribe"] is None and quiet["List-Unsubscribe-Post"] is None,
             "unsubscribe: {header: false}: neither header")
    footer = run["got"]["cid@prospects.example"][0]
    text = footer.get_body(("plain",)).get_content()
    check.ok(re.search(r"Pour ne plus recevoir nos messages : " + re.escape(link_of(footer)), text),
             "the footer shows the message's own link", text)
    check.ok(any("unsubscribe footer" in ln or "shows no link to opt out" in ln for ln in run["lint"]["plain"].splitlines()),
             "lint warns about a bulk pool's sequence without a visible link", run["lint"]["plain"])
    check.ok("opt out" not in run["lint"]["footer"], "and not about one with a footer", run["lint"]["footer"])


# ---- headless Chromium: a person's browser opens the page and clicks

class Chromium:
    """Chromium headless over --remote-debugging-pipe: the DevTools
    protocol as NUL-terminated JSON on descriptors 3 (in) and 4 (out)."""

    def __init__(self, tmp, lang):
        exe = shutil.which("chromium")
        assert exe, "Debian's chromium is installed (deploy/deps test)"
        # above 4, so that placing them on 3 and 4 cannot overwrite one
        pipes = [os.pipe() for _ in range(2)]
        (to_r, self.to_w), (self.from_r, from_w) = [
            tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in p) for p in pipes]
        for p in pipes:
            for fd in p:
                os.close(fd)
        profile = os.path.join(tmp, f"chromium-{lang}")

        def fds():
            os.dup2(to_r, 3)  # dup2 leaves them open across exec
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--lang={lang}", f"--accept-lang={lang}",
             "about:blank"], preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.id = 0
        self.events = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    def send(self, method, session, params):
        self.id += 1
        msg = {"id": self.id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        return self.id

    def read(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise AssertionError("chromium did not answer in time")
            chunk = os.read(self.from_r, 65536)
            if not chunk:
                raise AssertionError("chromium closed its pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, session=False, timeout=20, **params):
        want = self.send(method, session, params)
        deadline = time.time() + timeout
        while True:
            msg = self.read(deadline)
            if msg.get("id") == want:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name, timeout=20):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == name:
                    del self.events[i]
                    return e
            self.events.append(self.read(deadline))

    def evaluate(self, expr):
        return self.call("Runtime.evaluate", session=True, expression=expr, returnByValue=True)["result"].get("value")

    def navigate(self, url):
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")

    def click(self, selector):
        """A real mouse click at the middle of the element."""
        box = self.evaluate(f"JSON.stringify(document.querySelector({json.dumps(selector)}).getBoundingClientRect())")
        r = json.loads(box)
        x, y = r["x"] + r["width"] / 2, r["y"] + r["height"] / 2
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self.to_w)
            os.close(self.from_r)


@pytest.mark.parametrize("contact,lang,ask,done", [
    ("cid@prospects.example", "en-US", "Voulez-vous ne plus recevoir ces e-mails", "Vous êtes désinscrit"),
    ("eve@prospects.example", "en-US", "Do you want to stop receiving these emails?", "You are unsubscribed"),
])
def test_chromium_shows_the_page_and_its_button_unsubscribes(run, check, contact, lang, ask, done):
    # cid's sequence says language: fr, which wins over the browser's English
    db = run["db"]
    url = link_of(run["got"][contact][0])
    browser = Chromium(run["tmp"], lang)
    try:
        browser.navigate(url)
        text = browser.evaluate("document.body.innerText")
        check.ok(ask in text, f"{contact}: the page asks, in its language", text)
        check.eq(state(db, contact)[0], False, f"{contact}: opening the page unsubscribes nobody")
        browser.events = []
        browser.click("button")
        browser.wait_event("Page.loadEventFired")
        text = browser.evaluate("document.body.innerText")
        check.ok(done in text, f"{contact}: after the click, the page says so", text)
    finally:
        browser.close()
    check.eq(state(db, contact)[:2], (True, "unsubscribed"), f"{contact}: the button unsubscribed the contact")


def test_relance_config_says_what_the_links_need(tmp, check):
    def config(text, env=None):
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        return relance("--config", path, "config", env={"DATABASE_URL": "", **(env or {})})

    r = config("http: {listen: '127.0.0.1:8080'}\n")
    check.ok(r.returncode == 0 and "http.public_url is not set" in r.stderr and "mailto:" in r.stderr,
             "without public_url: a warning, mailto: only", r.stderr)
    r = config("http: {public_url: 'http://links.acme.example', link_secret_env: LINK}\n", {"LINK": SECRET})
    check.ok(r.returncode != 0 and "must be https://" in r.stderr, "http:// without public_url_insecure: refused",
             r.stderr)
    r = config("http: {public_url: 'https://links.acme.example'}\n")
    check.ok(r.returncode != 0 and "needs a secret to sign its links" in r.stderr, "no secret: refused", r.stderr)
    r = config("http: {public_url: 'https://links.acme.example', link_secret_env: LINK}\n")
    check.ok(r.returncode != 0 and "LINK" in r.stderr and "not set" in r.stderr, "an unset secret: a problem",
             r.stderr)
    r = config("http: {public_url: 'https://links.acme.example', link_secret_env: LINK}\n", {"LINK": "short"})
    check.ok(r.returncode != 0 and "fewer than 32 characters" in r.stderr and "short" not in r.stderr.replace(
        "fewer", ""), "a short secret: a problem, never shown", r.stderr)
    r = config("http: {public_url: 'https://links.acme.example', link_secret_env: LINK}\n", {"LINK": SECRET})
    check.ok(r.returncode == 0 and "http.public_url: https://links.acme.example" in r.stdout
             and SECRET not in r.stdout + r.stderr, "set: shown, its secret never", r.stdout + r.stderr)
