"""The HTTP API's suppressions, accounts and messages (issue 19) against
one `relance serve` and a real PostgreSQL: each route's answers and its
4xx, and that the API and the command line are one face: a suppression
added through the API stops the live enrollment it covers and `relance
suppress list` shows it; a pause or resume through the API is what
`relance accounts list` shows, and the command line's pause is what the
API shows. Every answer goes through apiclient's Api.call: it must be
what api/openapi.json describes."""
import os

import pytest

import harness
from apiclient import Api, config, new_key, problem
from harness import relance

SEQ = """name: alpha
sender_pool: founders
schedule:
  timezone: UTC
  window: "00:00-23:59"
  days: [mon, tue, wed, thu, fri, sat, sun]
  jitter: 0
steps:
  - id: intro
    subject: "Hi"
    body: "Hello."
  - id: bump
    wait: 2 days
    body: "Again."
"""
# a Tuesday; the claim runs at this time, the enrollments start at it
TUE = "2026-03-10T09:00:00Z"
SENDER = "a@acme.example"


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    env = {"DATABASE_URL": module_db.url(), "RELANCE_CONFIG": config(module_tmp, 100000, 100000)}
    path = os.path.join(module_tmp, "alpha.yaml")
    with open(path, "w") as f:
        f.write(SEQ)
    r = relance("apply", path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    serve = harness.Serve(env)
    serve.wait_status("/readyz", 200)
    # after serve's own sync (its configuration has no account): these
    # stay configured until the next one. The lease held by replica 't'
    # keeps serve's scheduler off the account: the test claims by hand.
    module_db.psql("INSERT INTO pools (name) VALUES ('founders'); "
                   f"INSERT INTO accounts (email, pool, daily_limit) VALUES ('{SENDER}', 'founders', 50), "
                   "('b@acme.example', 'founders', 0); "
                   "INSERT INTO leases (name, holder, expires_at) "
                   "SELECT 'account:' || id, 't', now() + interval '1 hour' FROM accounts")
    w = type("World", (), {})()
    w.db, w.env, w.serve, w.tmp = module_db, env, serve, module_tmp
    w.api = Api(serve.base, new_key(env, "admin"))
    yield w
    assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()


def enroll(w, *emails):
    w.db.psql("INSERT INTO contacts (email) VALUES " + ", ".join(f"('{e}')" for e in emails))
    args = [a for e in emails for a in ("--contact", e)]
    r = relance("enroll", "--sequence", "alpha", *args, env={**w.env, "RELANCE_TEST_CLOCK": TUE})
    assert r.returncode == 0 and f"enrolled {len(emails)}" in r.stdout, r.stdout + r.stderr


def state(w, email):
    return w.db.psql("SELECT e.state, e.state_reason FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                     f"WHERE c.email = '{email}'")


def pages(api, path, limit):
    """Every item of a list, following next; the number of pages."""
    got, after, n = [], None, 0
    while True:
        st, _, body, _ = api.call("GET", f"{path}{'&' if '?' in path else '?'}limit={limit}"
                                  + (f"&after={after}" if after else ""))
        assert st == 200, body
        got += body["data"]
        n += 1
        after = body["next"]
        if not after:
            return got, n


# ---- suppressions

def test_a_suppression_added_through_the_api_stops_the_live_enrollment_and_the_cli_lists_it(world, check):
    w, api = world, world.api
    enroll(w, "ann@one.example", "bob@one.example", "cy@xn--bcher-kva.example")
    st, _, s, _ = api.call("POST", "/v1/suppressions", {"pattern": "  Ann@ONE.example", "reason": "asked us"})
    check.eq((st, s.get("pattern"), s.get("reason"), s.get("stopped_enrollments")),
             (201, "ann@one.example", "asked us", 1), "added: 201, stored lower-case, her enrollment stopped")
    check.eq(state(w, "ann@one.example"), [["stopped", "suppressed: ann@one.example"]],
             "her live enrollment is stopped at once, as suppress add does")
    check.eq(state(w, "bob@one.example"), [["active", "enrolled"]], "another address of the domain goes on")
    check.eq(w.db.psql("SELECT count(*) FROM events WHERE kind = 'enrollment.stopped'"), [["1"]],
             "the stop is an event, as the command line's")
    st, _, again, _ = api.call("POST", "/v1/suppressions", {"pattern": "ann@one.example", "reason": "other"})
    check.eq((st, again.get("reason"), again.get("stopped_enrollments")), (200, "asked us", 0),
             "added twice: 200, the first reason kept")
    st, _, d, _ = api.call("POST", "/v1/suppressions", {"pattern": "@Bücher.example"})
    check.eq((st, d.get("pattern"), d.get("reason"), d.get("stopped_enrollments")),
             (201, "@xn--bcher-kva.example", "manual", 1), "a domain: A-labels, reason manual by default")
    r = relance("suppress", "list", env=w.env)
    check.eq(r.stdout, "@xn--bcher-kva.example\nann@one.example\n", "relance suppress list shows both")
    r = relance("suppress", "add", "@cli.example", env=w.env)
    check.eq(r.returncode, 0, "the command line adds one")
    got, n = pages(api, "/v1/suppressions", 1)
    check.eq([x["pattern"] for x in got], sorted(["ann@one.example", "@xn--bcher-kva.example", "@cli.example"]),
             "paged one at a time: each once, the command line's too")
    check.eq(n, 3, "three pages of one")
    st, _, gone, _ = api.call("DELETE", "/v1/suppressions/ANN@one.example")
    check.eq((st, gone.get("pattern"), gone.get("reason")), (200, "ann@one.example", "asked us"),
             "DELETE: 200 with what was lifted")
    r = relance("suppress", "list", env=w.env)
    check.eq(r.stdout, "@cli.example\n@xn--bcher-kva.example\n", "gone for the command line too")
    check.eq(state(w, "ann@one.example"), [["stopped", "suppressed: ann@one.example"]], "her enrollment stays stopped")
    problem(check, api.call("DELETE", "/v1/suppressions/ann@one.example"), 404, "not-found", "DELETE twice")
    st, _, _, _ = api.call("DELETE", "/v1/suppressions/%40cli.example")
    check.eq(st, 200, "a domain's, percent-encoded")


def test_suppression_requests_that_are_wrong(world, check):
    api = world.api
    got = api.call("POST", "/v1/suppressions", {"reason": 7, "note": "x"})
    problem(check, got, 422, "validation", "no pattern, a number for a reason, an unknown member")
    check.eq(sorted(e["pointer"] for e in got[2].get("errors", [])), ["/note", "/pattern", "/reason"],
             "one error per member, with its pointer")
    for bad in ("not-an-address", "@nodot", "a@", "", "x\u0000@y.example"):
        got = api.call("POST", "/v1/suppressions", {"pattern": bad})
        problem(check, got, 422, "validation", f"pattern {bad!r}")
        check.eq([e["pointer"] for e in got[2].get("errors", [])], ["/pattern"], f"pattern {bad!r}: its pointer")
    problem(check, api.call("POST", "/v1/suppressions", {"pattern": "z@z.example", "reason": ""}), 422,
            "validation", "an empty reason")
    problem(check, api.call("DELETE", "/v1/suppressions/not-an-address"), 400, "bad-request",
            "DELETE of something that is no pattern")
    problem(check, api.call("GET", "/v1/suppressions?after=nonsense"), 400, "bad-request", "a cursor it never gave")
    problem(check, api.call("GET", "/v1/suppressions?after=%FF%FE"), 400, "bad-request", "a cursor not UTF-8")
    problem(check, api.call("GET", "/v1/suppressions?limit=501"), 400, "bad-request", "limit over 500")
    problem(check, api.call("GET", "/v1/suppressions?pattern=x"), 400, "bad-request", "an unknown argument")
    problem(check, api.call("PUT", "/v1/suppressions", {"pattern": "z@z.example"}), 405, "method-not-allowed", "PUT")
    problem(check, api.call("POST", "/v1/suppressions", b"pattern=z", headers={"Content-Type": "text/plain"}), 415,
            "unsupported-media-type", "not JSON")
    reader = Api(world.serve.base, new_key(world.env, "supp-reader", "suppressions:read"))
    check.eq(reader.call("GET", "/v1/suppressions")[0], 200, "suppressions:read lists")
    problem(check, reader.call("POST", "/v1/suppressions", {"pattern": "z@z.example"}), 403, "forbidden",
            "suppressions:read cannot add")
    problem(check, reader.call("DELETE", "/v1/suppressions/z@z.example"), 403, "forbidden",
            "suppressions:read cannot delete")
    problem(check, api.call("GET", "/v1/suppressions", key=False), 401, "unauthorized", "no key")
    check.eq(world.db.psql("SELECT count(*) FROM suppressions WHERE pattern LIKE '%z.example'"), [["0"]],
             "nothing refused was written")
    h = {"Idempotency-Key": "supp-1"}
    first = api.call("POST", "/v1/suppressions", {"pattern": "idem@one.example"}, headers=h)
    second = api.call("POST", "/v1/suppressions", {"pattern": "idem@one.example"}, headers=h)
    check.eq((first[0], second[0], second[1].get("Idempotent-Replayed"), second[3]),
             (201, 201, "true", first[3]), "a retry with the same Idempotency-Key replays the first answer")


# ---- accounts

def account_line(w, email):
    r = relance("accounts", "list", env={**w.env, "RELANCE_TEST_CLOCK": TUE})
    assert r.returncode == 0, r.stdout + r.stderr
    return next((ln for ln in r.stdout.splitlines() if ln.startswith(email + "\t")), None)


def test_accounts_are_listed_paused_and_resumed_as_the_command_line_does(world, check):
    w, api = world, world.api
    w.db.psql(f"INSERT INTO account_days (account_id, day, sent) SELECT id, (now() AT TIME ZONE 'UTC')::date, 3 "
              f"FROM accounts WHERE email = '{SENDER}'; "
              "INSERT INTO inbound_messages (account_id, folder, uidvalidity, uid, sender, kind, detected_at) "
              f"SELECT id, 'INBOX', 1, 1, 'ann@one.example', 'human_reply', '2026-03-09T08:00:00Z' FROM accounts "
              f"WHERE email = '{SENDER}'")
    got, n = pages(api, "/v1/accounts", 1)
    check.eq(n, 2, "two accounts, one a page")
    a = {x["email"]: x for x in got}
    check.eq((a[SENDER]["state"], a[SENDER]["sent_today"], a[SENDER]["limit_today"], a[SENDER]["last_reply_at"],
              a[SENDER]["pool"], a[SENDER]["configured"]),
             ("active", 3, 50, "2026-03-09T08:00:00.000000Z", "founders", True),
             "state, today's usage and limit, the last reply seen")
    check.eq((a["b@acme.example"]["limit_today"], a["b@acme.example"]["last_reply_at"]), (None, None),
             "no limit, no reply yet: null")
    st, _, p, _ = api.call("POST", f"/v1/accounts/{SENDER.upper()}/pause", {"reason": "CRM: warming"})
    check.eq((st, p.get("email"), p.get("state"), p.get("state_reason")), (200, SENDER, "paused", "CRM: warming"),
             "paused through the API (the address case-insensitive)")
    check.ok("\tpaused: CRM: warming\t" in (account_line(w, SENDER) or ""), "relance accounts list shows the pause",
             account_line(w, SENDER))
    check.eq(w.db.psql("SELECT count(*) FROM events WHERE kind = 'account.paused'"), [["1"]],
             "an account.paused event, as the command line's")
    problem(check, api.call("POST", f"/v1/accounts/{SENDER}/pause", {}), 409, "conflict", "pausing a paused one")
    st, _, p, _ = api.call("POST", f"/v1/accounts/{SENDER}/resume", {})
    check.eq((st, p.get("state"), p.get("state_reason")), (200, "active", "resumed through the API"),
             "resumed through the API")
    check.ok("\tactive: resumed through the API\t" in (account_line(w, SENDER) or ""),
             "relance accounts list shows the resume", account_line(w, SENDER))
    problem(check, api.call("POST", f"/v1/accounts/{SENDER}/resume", {}), 409, "conflict", "resuming an active one")
    r = relance("accounts", "pause", "b@acme.example", env=w.env)
    check.eq(r.returncode, 0, "the command line pauses b")
    st, _, body, _ = api.call("GET", "/v1/accounts")
    b = next(x for x in body["data"] if x["email"] == "b@acme.example")
    check.eq((b["state"], b["state_reason"]), ("paused", "paused by user"), "the API shows the command line's pause")
    check.eq(api.call("POST", "/v1/accounts/b@acme.example/resume", {"reason": "done"})[0], 200, "resume b")
    r = relance("accounts", "resume", "b@acme.example", env=w.env)
    check.ok(r.returncode != 0 and "no paused account" in r.stderr, "the command line sees it resumed", r.stderr)
    check.eq(w.db.psql("SELECT count(*) FROM events WHERE kind = 'account.resumed'"), [["2"]],
             "each resume is an account.resumed event")


def test_account_requests_that_are_wrong(world, check):
    api = world.api
    problem(check, api.call("POST", "/v1/accounts/nobody@acme.example/pause", {}), 404, "not-found",
            "an unknown account")
    got = api.call("POST", f"/v1/accounts/{SENDER}/pause", {"reason": 5, "until": "x"})
    problem(check, got, 422, "validation", "a number for a reason, an unknown member")
    check.eq(sorted(e["pointer"] for e in got[2].get("errors", [])), ["/reason", "/until"], "their pointers")
    problem(check, api.call("POST", f"/v1/accounts/{SENDER}/pause", [1]), 422, "validation", "not an object")
    problem(check, api.call("POST", f"/v1/accounts/{SENDER}/pause", b"", headers={"Content-Type": "text/plain"}),
            415, "unsupported-media-type", "no JSON body")
    problem(check, api.call("POST", "/v1/accounts/%FF@acme.example/pause", {}), 400, "bad-request",
            "an address not UTF-8")
    problem(check, api.call("GET", "/v1/accounts?limit=0"), 400, "bad-request", "limit 0")
    problem(check, api.call("GET", "/v1/accounts?after=bm9wZTox"), 400, "bad-request", "another list's cursor")
    reader = Api(world.serve.base, new_key(world.env, "acct-reader", "accounts:read"))
    check.eq(reader.call("GET", "/v1/accounts")[0], 200, "accounts:read lists")
    problem(check, reader.call("POST", f"/v1/accounts/{SENDER}/pause", {}), 403, "forbidden",
            "accounts:read cannot pause")
    check.eq(world.db.psql(f"SELECT state FROM accounts WHERE email = '{SENDER}'"), [["active"]],
             "nothing refused was applied")


# ---- messages

def test_messages_of_an_enrollment_as_the_sender_left_them(world, check):
    w, api = world, world.api
    enroll(w, "dee@two.example", "eve@three.example")
    # now, not TUE: an account resumed (by another test) sends nothing
    # dated before its resume; both accounts claim, as serve's cycle does
    # (the pool's new enrollments are shared between them)
    at = w.db.psql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")[0][0]
    claimed = w.db.psql("SELECT m.message_id, m.email, a.email FROM relance_claim_accounts("
                        f"'{at}', ARRAY(SELECT id FROM accounts), 10, 't', false) m "
                        "JOIN accounts a ON a.id = m.account_id")
    check.ok({"dee@two.example", "eve@three.example"} <= {e for _, e, _ in claimed},
             "the claim takes their first steps", claimed)
    sender = {e: a for _, e, a in claimed}
    for mid, email, _ in claimed:
        outcome = "rejected_hard" if email == "eve@three.example" else "sent"
        w.db.psql(f"SELECT relance_step_outcome('{mid}', '{at}', '{outcome}', '250 ok', true, 'Hi', NULL, NULL)")
    dee = w.db.psql("SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                    "WHERE c.email = 'dee@two.example'")[0][0]
    st, _, body, _ = api.call("GET", f"/v1/messages?enrollment={dee}")
    check.eq(st, 200, "GET /v1/messages?enrollment=")
    m = body["data"][0] if body.get("data") else {}
    check.eq((len(body["data"]), m.get("enrollment_id"), m.get("step"), m.get("position"), m.get("state"),
              m.get("account"), m.get("sent_at"), m.get("outcome"), body["next"]),
             (1, dee, "intro", 0, "sent", sender.get("dee@two.example"), at.replace("Z", ".000000Z"), "sent", None),
             "its one message: step, state, account, sent_at, outcome")
    check.ok(not any(k in m for k in ("body", "subject", "recipient")), "no body, subject or address", m)
    got, n = pages(api, "/v1/messages", 1)
    ids = sorted(int(x) for x, in w.db.psql("SELECT id FROM messages"))
    check.eq(([int(x["id"]) for x in got], n), (ids, len(ids)), "every message once, in id order, one a page")
    st, _, body, _ = api.call("GET", "/v1/messages?state=bounced")
    check.eq([(x["state"], x["outcome"]) for x in body["data"]], [("bounced", "rejected_hard")], "by state")
    check.eq(api.call("GET", "/v1/messages?enrollment=999999999")[2].get("data"), [], "an unknown enrollment: none")
    problem(check, api.call("GET", "/v1/messages?enrollment=abc"), 400, "bad-request", "enrollment not an id")
    problem(check, api.call("GET", "/v1/messages?state=lost"), 400, "bad-request", "an unknown state")
    problem(check, api.call("GET", "/v1/messages?after=x"), 400, "bad-request", "a bad cursor")
    reader = Api(world.serve.base, new_key(world.env, "contacts-only", "contacts:read"))
    problem(check, reader.call("GET", "/v1/messages"), 403, "forbidden", "messages need enrollments:read")
