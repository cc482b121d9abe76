"""Open and click tracking end to end (issue 21): a sequence with track:
{clicks: true, opens: true} sends through Postfix with DKIM from a domain
with its own tracking_domain; in the delivered html every link goes
through https://TRACKING/c/TOKEN and a 1x1 /o/TOKEN.gif closes it, the
unsubscribe link and the text part stay as written, and python3-dkim
still verifies the signature. The click URL read out of the message
redirects (302) to exactly the original; a tampered token, or one made to
carry another destination, is 404 and redirects nowhere. Each hit is a
tracking_hits row and a message.opened or link.clicked event, flagged
bot_suspected with its reason for a HEAD, a scanner's user agent, a hit
within bot_window of delivery or every link clicked within seconds;
nothing else changes. `relance stats` counts people's and all hits
apart; retention empties a hit's user agent and URL, not the counts.

One serve run for the module (the public routes on their own listener,
reached here at 127.0.0.1 in place of the tracking host's DNS name);
each case acts on its own contact."""
import base64
import email
import email.policy
import hashlib
import hmac
import http.client
import json
import os
import re
import threading
import time
import urllib.parse

import dkim  # Debian's python3-dkim: the independent verifier
import pytest

import harness
from harness import relance

SENDER = ("sender@acme.example", "pw-sender")
SECRET = "track-secret-" + "t" * 32
START = "2026-03-02T09:00:00Z"
CONTACTS = ("ann@prospects.example",   # a person: opens and clicks after the window
            "bob@prospects.example",   # hits within seconds of delivery
            "cid@prospects.example",   # scanners: Apple MPP, HEAD, Proofpoint, every link at once
            "dan@prospects.example")   # tampering
PRICING = "https://acme.example/pricing?plan=team&ref=mail"
DEMO = "https://acme.example/demo"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
pytestmark = pytest.mark.mail(users=[SENDER])

STEPS = """  - id: one
    subject: "Pricing"
    body: "Hi {{first_name | there}}, see https://acme.example/pricing"
    html: "<p>Hi, see <a href=\\"https://acme.example/pricing?plan=team&amp;ref=mail\\">our pricing</a>
      or <a href='https://acme.example/demo'>a demo</a>.</p>
      <p><a href=\\"{{unsubscribe_url}}\\">Unsubscribe</a></p>"
"""


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    ms, db, tmp = mail, module_db, module_tmp
    key, record = harness.dkim_key(tmp, "acme.example")
    port = harness.free_port()
    public = f"http://127.0.0.1:{port}"
    account = "".join(f"      {ln}" for ln in harness.account(ms, SENDER[0], "PW").splitlines(keepends=True)
                      if ln.strip())
    head = (f"http:\n  public_url: {public}\n  public_url_insecure: true\n  public_listen: 127.0.0.1:{port}\n"
            "  link_secret_env: LINK\n")
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(head + "tracking:\n  domains:\n    acme.example: {tracking_domain: links.acme.example}\n"
                "pools:\n  main:\n    accounts:\n" + account
                + f"dkim:\n  acme.example: {{selector: s1, key_file: {key}}}\n")
    # for lint alone: a pool sending from a domain without a tracking host
    lint_cfg = os.path.join(tmp, "lint.yaml")
    with open(lint_cfg, "w") as f:
        f.write(head + "pools:\n  main:\n    accounts:\n"
                "      - {email: ops@beta.example, smtp: 'smtp://127.0.0.1:1', password_env: PW}\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW": SENDER[1], "LINK": SECRET}
    seq = harness.sequence(tmp, "custom_steps", name="tracked", pool="main", steps=STEPS,
                           extra="track: {clicks: true, opens: true}")
    lint = relance("lint", seq, env=env)
    assert lint.returncode == 0 and lint.stdout == "", f"lint with the tracking host: {lint.stdout + lint.stderr}"
    lint_warned = relance("lint", seq, env={**env, "RELANCE_CONFIG": lint_cfg}).stdout
    r = relance("apply", seq, env=env)
    assert r.returncode == 0, f"apply: {r.stdout + r.stderr}"
    db.psql("INSERT INTO contacts (email) VALUES " + ",".join(f"('{c}')" for c in CONTACTS))
    args = [a for c in CONTACTS for a in ("--contact", c)]
    r = relance("enroll", "--sequence", "tracked", *args, env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {len(CONTACTS)}" in r.stdout, f"enroll: {r.stdout + r.stderr}"
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": START})
    s.wait_status("/readyz", 200)
    raw = {c: ms.wait_for(c, 1, timeout=30)[0] for c in CONTACTS}
    delivered = time.monotonic()
    yield {"env": env, "db": db, "serve": s, "public": public, "raw": raw, "delivered": delivered, "seq": seq,
           "lint_warned": lint_warned, "dns": {b"s1._domainkey.acme.example.": record}}
    rc = s.stop()
    assert rc == 0 and not s.sanitizer_report(), f"serve stops cleanly: {rc}\n{s.output()[-3000:]}"


def html_of(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(preferencelist=("html",)).get_content()


def text_of(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(preferencelist=("plain",)).get_content()


def clicks_of(raw):
    return re.findall(r'href="(https://links\.acme\.example/c/[A-Za-z0-9_-]+)"', html_of(raw))


def pixel_of(raw):
    return re.search(r'<img src="(https://links\.acme\.example/o/[A-Za-z0-9_-]+\.gif)" width="1" height="1" '
                     r'alt="">', html_of(raw)).group(1)


def hit(run, method, link, ua):
    """The request a browser (or scanner) makes for a tracked link, sent to
    the public listener as the tracking host's CNAME would route it."""
    path = urllib.parse.urlsplit(link).path
    u = urllib.parse.urlsplit(run["public"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, headers={"User-Agent": ua} if ua else {})
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def hits(db, contact, n, timeout=10):
    """The contact's recorded hits (kind, url, user agent, bot_suspected,
    bot_reason), oldest first, once there are n, each judged (a hit is
    written, then judged, after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = db.psql("SELECT h.kind, coalesce(h.url, ''), coalesce(h.user_agent, ''), h.bot_suspected, "
                       "coalesce(h.bot_reason, '') FROM tracking_hits h JOIN messages m ON m.id = h.message_id "
                       f"WHERE m.recipient = '{contact}' ORDER BY h.id")
        judged = all(why != "not judged" for *_, why in rows)
        if (len(rows) >= n and judged) or time.monotonic() > deadline:
            return [(k, u, a, b == "t", why) for k, u, a, b, why in rows]
        time.sleep(0.05)


def age(db, contact, seconds):
    """Moves the contact's delivery back, as if it had been read later."""
    db.psql(f"UPDATE messages SET sent_at = sent_at - interval '{seconds} seconds' WHERE recipient = '{contact}'")


def token_parts(link):
    tok = link.rsplit("/", 1)[1].removesuffix(".gif")
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    return raw[:-16], raw[-16:]


def make_token(secret, body):
    tag = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + tag).decode().rstrip("=")


def test_links_go_through_the_tracking_host_and_dkim_still_verifies(run, check):
    raw = run["raw"]["ann@prospects.example"]
    html = html_of(raw)
    check.eq(len(clicks_of(raw)), 2, "both http links of the html go through the tracking host")
    check.ok("https://acme.example/" not in html, "no original destination left in the html", html)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    unsub = re.match(r"<(http[^>]+)>", " ".join(str(msg["List-Unsubscribe"]).split())).group(1)
    check.ok(unsub.startswith(run["public"] + "/u/"), "List-Unsubscribe keeps its public_url link", unsub)
    check.ok(f'href="{unsub}"' in html, "the unsubscribe link in the html is not rewritten", html)
    check.ok(pixel_of(raw) and html.rstrip().endswith(".gif\" width=\"1\" height=\"1\" alt=\"\">"),
             "a 1x1 open image ends the html", html[-300:])
    check.eq(html.count("<img"), 1, "one image, the open image: no hidden link nor other addition")
    check.ok("see https://acme.example/pricing" in text_of(raw), "the text part stays as written (no text_links)")
    check.ok("/o/" not in text_of(raw), "no open image in the text part")
    dns = run["dns"]
    check.ok(dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(
        name if isinstance(name, bytes) else name.encode())), "python3-dkim verifies the tracked message")
    check.ok("warning: track is on and beta.example (pool 'main') has no tracking_domain" in run["lint_warned"],
             "lint warns about a sending domain without a tracking host", run["lint_warned"])


STATE = ("SELECT e.state, e.state_changed_at, m.state, (SELECT count(*) FROM events v WHERE v.contact_id = "
         "e.contact_id AND v.kind NOT IN ('link.clicked', 'message.opened')) FROM enrollments e JOIN messages m "
         "ON m.enrollment_id = e.id WHERE m.recipient = '{}'")


@pytest.fixture(scope="module")
def clicked(run):
    """The module's hits, made once whichever case asks first (so each
    case runs alone too), each recorded before the next: they are recorded
    after their answer, on either of two connections, so their order is
    the test's to keep. bob's come within seconds of delivery; ann's (a
    person) and cid's (scanners) as if read an hour later."""
    db, out = run["db"], {}
    b, a, c = "bob@prospects.example", "ann@prospects.example", "cid@prospects.example"
    out["bob_within"] = time.monotonic() - run["delivered"] < 25
    hit(run, "GET", clicks_of(run["raw"][b])[1], CHROME)
    hits(db, b, 1)
    hit(run, "GET", pixel_of(run["raw"][b]), THUNDERBIRD)
    hits(db, b, 2)
    age(db, a, 3600)
    out["ann_before"] = db.psql(STATE.format(a))
    out["click"] = hit(run, "GET", clicks_of(run["raw"][a])[0], CHROME)
    hits(db, a, 1)
    out["open"] = hit(run, "GET", pixel_of(run["raw"][a]), THUNDERBIRD)
    hits(db, a, 2)
    out["ann_after"] = db.psql(STATE.format(a))
    age(db, c, 3600)
    links = clicks_of(run["raw"][c])
    for n, (method, link, ua) in enumerate([("GET", pixel_of(run["raw"][c]), "Mozilla/5.0"),
                                            ("HEAD", links[0], CHROME),
                                            ("GET", links[0], "Mozilla/5.0 (compatible; Proofpoint URL Defense)"),
                                            # the other link within seconds: every link of the message
                                            ("GET", links[1], CHROME)]):
        hit(run, method, link, ua)
        hits(db, c, n + 1)
    return out


def test_a_person_click_redirects_to_exactly_the_original_and_is_recorded(run, clicked, check):
    db, c = run["db"], "ann@prospects.example"
    status, headers, _ = clicked["click"]
    check.eq((status, headers.get("Location")), (302, PRICING), "302 to exactly the original URL (&amp; decoded)")
    check.eq(headers.get("Cache-Control"), "no-store", "the redirect is not cached")
    status, headers, body = clicked["open"]
    check.eq((status, headers.get("Content-Type"), body[:6]), (200, "image/gif", b"GIF89a"), "the open image")
    check.eq(len(body), 43, "a 1x1 GIF")
    check.ok("no-store" in headers.get("Cache-Control", "") and headers.get("Pragma") == "no-cache",
             "never cached, so each open asks", str(headers))
    check.eq(hits(db, c, 2), [("click", PRICING, CHROME, False, ""), ("open", "", THUNDERBIRD, False, "")],
             "a click and an open by a person, recorded as human")
    ev = db.psql("SELECT v.kind, v.data FROM events v JOIN contacts c ON c.id = v.contact_id "
                 f"WHERE c.email = '{c}' AND v.kind IN ('link.clicked', 'message.opened') ORDER BY v.id")
    check.eq([k for k, _ in ev], ["link.clicked", "message.opened"], "one event each")
    d = json.loads(ev[0][1])
    check.eq((d.get("url"), d.get("bot_suspected"), d.get("bot_reason"), d.get("sequence"), d.get("step"),
              d.get("contact", {}).get("email"), d.get("account")),
             (PRICING, False, None, "tracked", "one", c, SENDER[0]),
             "link.clicked: its destination, the verdict, the contact, sequence, step and account")
    # a GET on a public link changes no state: a click is a record
    check.eq(clicked["ann_after"], clicked["ann_before"],
             "the enrollment, the message and the other events are as they were")


def test_a_tampered_or_forged_click_token_redirects_nowhere(run, check):
    c = "dan@prospects.example"
    link = clicks_of(run["raw"][c])[0]
    i = len(link) - 5
    flipped = link[:i] + ("A" if link[i] != "A" else "B") + link[i + 1:]
    status, headers, _ = hit(run, "GET", flipped, CHROME)
    check.eq((status, headers.get("Location")), (404, None), "a changed character: 404, no Location")
    body, tag = token_parts(link)
    # the same tag over another destination, and a token the attacker signs
    other = body[:-len(PRICING)] + b"https://evil.example/" + b"x" * (len(PRICING) - 21)
    forged = run["public"] + "/c/" + base64.urlsafe_b64encode(other + tag).decode().rstrip("=")
    status, headers, _ = hit(run, "GET", forged, CHROME)
    check.eq((status, headers.get("Location")), (404, None), "another destination under the old tag: 404")
    wrong = run["public"] + "/c/" + make_token("not-the-secret-" + "x" * 32, other)
    status, headers, _ = hit(run, "GET", wrong, CHROME)
    check.eq((status, headers.get("Location")), (404, None), "signed with another secret: 404")
    # even under the secret, only http(s) destinations are followed
    js = run["public"] + "/c/" + make_token(SECRET, body[:body.index(b"https://")] + b"javascript:alert(1)")
    status, headers, _ = hit(run, "GET", js, CHROME)
    check.eq((status, headers.get("Location")), (404, None), "a javascript: destination: 404")
    # a token of another kind on this route, and the open token as a click
    msg = email.message_from_bytes(run["raw"][c], policy=email.policy.default)
    unsub = re.match(r"<(http[^>]+)>", " ".join(str(msg["List-Unsubscribe"]).split())).group(1)
    status, _, _ = hit(run, "GET", run["public"] + "/c/" + unsub.rsplit("/", 1)[1], CHROME)
    check.eq(status, 404, "an unsubscribe token at /c/: 404")
    status, _, _ = hit(run, "GET", pixel_of(run["raw"][c]).removesuffix(".gif"), CHROME)
    check.eq(status, 404, "the open image without .gif: 404")
    status, headers, _ = hit(run, "POST", link, CHROME)
    check.eq(status, 405, "POST to a click link: 405")
    time.sleep(0.5)
    check.eq(hits(run["db"], c, 0), [], "nothing recorded for tokens that did not open")


def test_scanners_and_hits_within_seconds_of_delivery_are_flagged(run, clicked, check):
    db = run["db"]
    assert clicked["bob_within"], "bob's hits came within the 30 s bot_window"
    check.eq([(k, bot, why) for k, _, _, bot, why in hits(db, "bob@prospects.example", 2)],
             [("click", True, "within bot_window of delivery"), ("open", True, "within bot_window of delivery")],
             "hits right after delivery are flagged, whatever their user agent")
    c = "cid@prospects.example"
    got = hits(db, c, 4)
    check.eq([(k, bot, why) for k, _, _, bot, why in got],
             [("open", True, "Apple Mail Privacy Protection"), ("click", True, "HEAD request"),
              ("click", True, "Proofpoint URL Defense"), ("click", True, "every link clicked within seconds")],
             "scanner user agents, HEAD and every link clicked at once are flagged")
    ev = db.psql("SELECT v.kind, v.data->>'bot_suspected', v.data->>'bot_reason' FROM events v "
                 f"JOIN contacts c ON c.id = v.contact_id WHERE c.email = '{c}' "
                 "AND v.kind IN ('link.clicked', 'message.opened') ORDER BY v.id")
    check.eq([tuple(r) for r in ev],
             [("message.opened", "true", "Apple Mail Privacy Protection"), ("link.clicked", "true", "HEAD request"),
              ("link.clicked", "true", "Proofpoint URL Defense"),
              ("link.clicked", "true", "every link clicked within seconds")],
             "the events carry the verdict and its reason")
    states = db.psql("SELECT DISTINCT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                     "WHERE c.email IN ('bob@prospects.example', 'cid@prospects.example')")
    check.ok(all(s[0] in ("completed", "active") for s in states), "no hit moved an enrollment", str(states))


def test_stats_show_people_and_all_apart(run, clicked, check):
    # ann: a person's open and click; bob and cid: machines' only
    r = relance("stats", "tracked", "--json", env=run["env"])
    assert r.returncode == 0, r.stderr
    total = json.loads(r.stdout)["total"]
    check.eq({k: total[k] for k in ("sent", "opened", "clicked", "opened_raw", "clicked_raw", "open_rate",
                                    "click_rate")},
             {"sent": 4, "opened": 1, "clicked": 1, "opened_raw": 3, "clicked_raw": 3, "open_rate": 0.25,
              "click_rate": 0.25}, "people's and all hits apart; rates on people's")
    r = relance("stats", "tracked", env=run["env"])
    lines = r.stdout.splitlines()
    check.ok("opened (all)" in lines[1] and "open rate" in lines[1] and "click rate" in lines[1],
             "the table shows the tracking columns", r.stdout)
    total_row = lines[-1].split()
    check.eq(total_row[7:], ["1", "1", "3", "3", "0.0%", "25.0%", "25.0%"], "the total row")


def test_retention_empties_the_hits_and_keeps_the_counts(run, clicked, check):
    db = run["db"]
    db.psql("UPDATE enrollments SET state = 'completed' WHERE state = 'active'")
    db.psql("SELECT * FROM relance_retention_prune(now() + interval '400 days', 0, 86400, 0, 1000)")
    left = db.psql("SELECT count(*) FILTER (WHERE user_agent IS NOT NULL OR url IS NOT NULL), count(*) "
                   "FROM tracking_hits")
    check.eq(left[0][0], "0", "no user agent nor URL left once the messages are pruned")
    check.eq(left[0][1], "8", "the hits stay")
    r = relance("stats", "tracked", "--json", env=run["env"])
    total = json.loads(r.stdout)["total"]
    check.eq((total["opened"], total["clicked"], total["opened_raw"], total["clicked_raw"]), (1, 1, 3, 3),
             "the counts are the same after pruning")


def test_a_preview_shows_the_links_as_sent_and_mints_none_that_work(run):
    """relance preview --raw with the configuration: the unsubscribe
    headers, the tracked links and the open image as the message will
    carry them, signed with the preview's stand-in key, so that none of
    its links opens anything on the public routes."""
    r = relance("preview", "--raw", "--step", "one", run["seq"], env=run["env"])
    assert r.returncode == 0, f"preview: {r.stdout + r.stderr}"
    raw = r.stdout
    unfolded = re.sub(r"\r?\n[ \t]+", " ", raw)
    m = re.search(r"^List-Unsubscribe: <(http://127\.0\.0\.1:\d+/u/[A-Za-z0-9_-]+)>, <mailto:", unfolded, re.M)
    assert m, f"the preview carries the one-click header: {raw[:1500]}"
    assert re.search(r"^List-Unsubscribe-Post: List-Unsubscribe=One-Click", unfolded, re.M), "and its Post header"
    msg = email.message_from_string(raw, policy=email.policy.default)
    html = msg.get_body(preferencelist=("html",)).get_content()
    links = re.findall(r'href="(https://links\.acme\.example/c/[A-Za-z0-9_-]+)"', html)
    assert len(links) == 2, f"both links go through the tracking host: {html}"
    assert re.search(r'<img src="https://links\.acme\.example/o/[A-Za-z0-9_-]+\.gif"', html), "the open image"
    assert m.group(1) in html, "the footer's link is the header's, not rewritten"
    for link in [m.group(1)] + links:
        path = urllib.parse.urlsplit(link).path
        u = urllib.parse.urlsplit(run["public"])
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", path, headers={"User-Agent": CHROME})
        status = conn.getresponse().status
        conn.close()
        assert status == 404, f"a preview's link opens nothing: {path} answered {status}"


def test_links_fetched_at_once_see_each_other_and_an_erased_person_is_not_recorded(run, check):
    """A scanner fetches every link of a message at the same instant: the
    hits are written one at a time per message, so the last sees the
    others (counted before they were written, each saw only itself).
    Then the person is erased: their old links still answer, and nothing
    more is recorded about them."""
    db, c = run["db"], "dan@prospects.example"
    # by Message-ID: an earlier case's retention may have pruned the address
    mid = email.message_from_bytes(run["raw"][c], policy=email.policy.default)["Message-ID"].strip("<>")
    # long after delivery: only the burst can flag these
    db.psql(f"UPDATE messages SET sent_at = sent_at - interval '3600 seconds' WHERE message_id = '{mid}'")
    links = clicks_of(run["raw"][c])
    assert len(links) == 2, "dan's message has two tracked links"
    start = threading.Barrier(len(links))

    def fetch(link):
        start.wait()
        hit(run, "GET", link, CHROME)

    threads = [threading.Thread(target=fetch, args=(link,)) for link in links]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    why = lambda: sorted(r[0] for r in db.psql(  # noqa: E731
        "SELECT coalesce(h.bot_reason, 'a person') FROM tracking_hits h JOIN messages m ON m.id = h.message_id "
        f"WHERE m.message_id = '{mid}'"))
    harness.wait_until(lambda: len(why()) == 2 and "not judged" not in why(), 10, 0.05)
    got = why()
    check.eq(got, ["a person", "every link clicked within seconds"],
             "of two links fetched at once, the second written sees the first and is flagged")
    # the erasure DELETE /v1/contacts/{id} runs
    st = db.psql(f"SELECT status FROM relance_contact_erase('email:{c}', now())")[0][0]
    check.eq(st, "200", "the person is erased")
    status, _, _ = hit(run, "GET", links[0], CHROME)
    check.eq(status, 302, "an erased person's old link still redirects")
    hit(run, "GET", pixel_of(run["raw"][c]), CHROME)
    time.sleep(0.5)
    n = db.psql("SELECT count(*) FROM tracking_hits h JOIN messages m ON m.id = h.message_id "
                "JOIN enrollments e ON e.id = m.enrollment_id JOIN contacts p ON p.id = e.contact_id "
                "WHERE p.erased_at IS NOT NULL")[0][0]
    check.eq(n, "2", "nothing more is recorded of an erased person: their two earlier hits only")
