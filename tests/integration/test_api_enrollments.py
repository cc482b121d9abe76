"""The HTTP API's enrollments (issue 19) against one `relance serve` with
the capture transport and a real PostgreSQL: enrolling by reference and
with an inline contact, the skips `relance enroll` reports as 409s, bulk
enrolls with skipped and invalid items, next_send_at and why_not_sooner
read back, pause/resume/stop and a contact's stop as the database holds
them, and a stopped enrollment that is never sent while its twin is.
Every response goes through tests/openapi.py's Validator."""
import datetime

import pytest

import harness
from apiclient import Api, new_key, problem
from harness import relance

# Monday 08:00 UTC: 03:00 in New York, hours before its window opens
CLOCK = "2026-03-02T08:00:00Z"
LATER = """name: later
sender_pool: default
schedule:
  timezone: contact
  fallback_timezone: America/New_York
  window: "09:00-17:00"
  days: [mon, tue, wed, thu, fri]
  jitter: 0
steps:
  - id: intro
    subject: "Hello"
    body: "Hi."
  - id: bump
    wait: 2 days
    body: "Again."
"""
NOW = """name: now
sender_pool: default
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - {id: one, subject: "Hello", body: "Hi."}
  - {id: two, wait: 3 days, body: "Again."}
"""


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    cfg = f"{module_tmp}/relance.yaml"
    with open(cfg, "w") as f:
        f.write("transport: capture\nhttp:\n  api_rate_limit: 100000\n  api_rate_burst: 100000\n")
    env = {"DATABASE_URL": module_db.url(), "RELANCE_CONFIG": cfg, "RELANCE_CAPTURE_DIR": f"{module_tmp}/capture"}
    for name, text in (("later", LATER), ("now", NOW)):
        with open(f"{module_tmp}/{name}.yaml", "w") as f:
            f.write(text)
    r = relance("apply", f"{module_tmp}/later.yaml", f"{module_tmp}/now.yaml", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    module_db.psql("INSERT INTO contacts (email, crm_id, timezone) VALUES "
                   "('ann@one.example', 'crm-ann', 'America/New_York'), ('bob@two.example', NULL, NULL), "
                   "('cy@three.example', 'crm-cy', NULL), ('dee@four.example', NULL, NULL), "
                   "('eve@blocked.example', NULL, NULL), ('fay@five.example', NULL, NULL), "
                   "('gus@six.example', NULL, NULL), ('hal@seven.example', NULL, NULL)")
    assert relance("suppress", "add", "@blocked.example", env=env).returncode == 0
    serve = harness.Serve({**env, "RELANCE_TEST_CLOCK": CLOCK})
    serve.wait_status("/readyz", 200)
    w = type("World", (), {})()
    w.db, w.env, w.serve = module_db, env, serve
    w.api = Api(serve.base, new_key(env, "crm", "contacts:read,contacts:write,enrollments:read,enrollments:write"))
    # the time zone names (inline contacts) are read once the database is there
    harness.wait_until(lambda: w.api.call("POST", "/v1/contacts",
                                          {"email": "tz-probe@probe.example", "timezone": "UTC"})[0] in (200, 201), 10)
    yield w
    assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()


def state(w, eid):
    return tuple(w.db.psql(f"SELECT state, state_reason FROM enrollments WHERE id = {int(eid)}")[0])


def test_enroll_by_reference_reads_next_send_at_back(world, check):
    api = world.api
    st, _, e, _ = api.call("POST", "/v1/enrollments", {"contact": "ext:crm-ann", "sequence": "later"})
    check.eq(st, 201, "enrolled by external id: 201")
    check.eq((e["sequence"], e["version"], e["state"], e["position"], e["next_step"], e["account"]),
             ("later", 1, "active", 0, "intro", None), "a new enrollment at its first step")
    # 09:00 in New York on Monday 2 March (EST) is 14:00 UTC
    check.eq((e["next_send_at"], e["next_send_local"], e["timezone"]),
             ("2026-03-02T14:00:00.000000Z", "2026-03-02T09:00:00-05:00", "America/New_York"),
             "the first step at the window's opening in the contact's zone, UTC and local")
    st, _, g, _ = api.call("GET", f"/v1/enrollments/{e['id']}")
    check.eq((st, g["next_send_at"], g["why_not_sooner"]),
             (200, e["next_send_at"], "window: outside the sending window in America/New_York"),
             "GET reads next_send_at back, with why not sooner as enrollments show says it")
    r = relance("enrollments", "show", "ann@one.example", env={**world.env, "RELANCE_TEST_CLOCK": CLOCK})
    check.ok("why not sooner: window: outside the sending window in America/New_York" in r.stdout,
             "the command line says the same", r.stdout + r.stderr)
    db = world.db.psql(f"SELECT c.email, e.next_send_at AT TIME ZONE 'UTC' FROM enrollments e JOIN contacts c "
                       f"ON c.id = e.contact_id WHERE e.id = {int(e['id'])}")
    check.eq(db, [["ann@one.example", "2026-03-02 14:00:00"]], "the row in the database")
    for ref in ("email:BOB@two.example", world.db.psql("SELECT id FROM contacts WHERE email = 'cy@three.example'")[0][0]):
        st, _, x, _ = api.call("POST", "/v1/enrollments", {"contact": ref, "sequence": "later",
                                                           "start_at": "2026-03-04T12:00:00+01:00"})
        check.eq(st, 201, f"enrolled by {ref}")
        check.eq(x.get("next_send_at"), "2026-03-04T14:00:00.000000Z",
                 "start_at: the first window opening from then (11:00 UTC is 06:00 in New York)")
        check.eq(api.call("GET", f"/v1/enrollments/{x.get('id')}")[2].get("why_not_sooner"),
                 "start: the first step waits for the start asked at enrollment, then for the window in "
                 "America/New_York", "why not sooner: the start asked for")
    problem(check, api.call("GET", "/v1/enrollments/999999"), 404, "not-found", "an unknown enrollment")


def test_enroll_an_inline_contact_upserts_it_first(world, check):
    api = world.api
    st, _, e, _ = api.call("POST", "/v1/enrollments", {
        "contact": {"email": "Ida@Nine.example", "external_id": "crm-ida", "first_name": "Ida",
                    "timezone": "europe/paris"}, "sequence": "later"})
    check.eq(st, 201, "an inline contact is created and enrolled")
    c = world.db.psql("SELECT id, email, crm_id, first_name, timezone FROM contacts WHERE crm_id = 'crm-ida'")
    check.eq([r[1:] for r in c], [["Ida@nine.example", "crm-ida", "Ida", "Europe/Paris"]],
             "the contact as POST /v1/contacts stores it")
    check.eq((e["contact_id"], e["timezone"]), (c[0][0], "Europe/Paris"), "the enrollment is that contact's")
    got = api.call("POST", "/v1/enrollments", {"contact": {"email": "bob@two.example", "external_id": "crm-cy"},
                                               "sequence": "later"})
    problem(check, got, 409, "conflict", "an inline contact whose external_id and email are two contacts'")
    ids = world.db.psql("SELECT id FROM contacts WHERE email IN ('bob@two.example', 'cy@three.example') ORDER BY email")
    check.eq(sorted(got[2].get("contact_ids", [])), sorted(r[0] for r in ids), "the 409 names both")
    got = api.call("POST", "/v1/enrollments", {"contact": {"email": "not an address", "nick": 1}, "sequence": "later"})
    problem(check, got, 422, "validation", "an invalid inline contact")
    check.eq(sorted(x["pointer"] for x in got[2].get("errors", [])), ["/contact/email", "/contact/nick"],
             "one pointer per bad member, inside /contact")
    check.eq(world.db.psql("SELECT count(*) FROM contacts WHERE email LIKE 'not%'"), [["0"]], "nothing written")


def test_skips_are_409_with_the_reason_relance_enroll_prints(world, check):
    api = world.api
    st, _, _, _ = api.call("POST", "/v1/enrollments", {"contact": "email:dee@four.example", "sequence": "now",
                                                       "start_at": "2026-03-09T00:00:00Z"})
    check.eq(st, 201, "dee into now")
    for contact, seq, reason in (("email:dee@four.example", "now", "already active in this sequence"),
                                 ("email:dee@four.example", "later", "active in another sequence: now"),
                                 ("email:eve@blocked.example", "later", "suppressed"),
                                 ("ext:nobody", "later", "unknown contact")):
        got = api.call("POST", "/v1/enrollments", {"contact": contact, "sequence": seq})
        problem(check, got, 409, "not-enrolled", f"{contact} into {seq}")
        check.eq(got[2].get("reason"), reason, f"{contact} into {seq}: the reason")
    got = api.call("POST", "/v1/enrollments", {"contact": "email:fay@five.example", "sequence": "nope"})
    problem(check, got, 422, "validation", "an unknown sequence")
    check.eq([x["pointer"] for x in got[2].get("errors", [])], ["/sequence"], "pointing at /sequence")
    got = api.call("POST", "/v1/enrollments", {"contact": "fay", "sequence": "later", "start_at": "soon", "x": 1})
    problem(check, got, 422, "validation", "a bad reference, a bad time, an unknown member")
    check.eq(sorted(x["pointer"] for x in got[2].get("errors", [])), ["/contact", "/start_at", "/x"], "each pointed at")
    check.eq(world.db.psql("SELECT count(*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                           "WHERE c.email IN ('eve@blocked.example', 'fay@five.example')"), [["0"]],
             "nothing enrolled")


def test_bulk_reports_created_skipped_and_invalid_in_input_order(world, check):
    items = [{"contact": "email:fay@five.example", "sequence": "later"},
             {"contact": {"email": "jo@ten.example", "first_name": "Jo"}, "sequence": "later"},
             {"contact": "email:FAY@five.example", "sequence": "later"},
             {"contact": 5, "sequence": "later"},
             {"contact": "email:gus@six.example", "sequence": "nope"},
             {"contact": "email:eve@blocked.example", "sequence": "later"},
             {"contact": {"email": "bad"}, "sequence": "later"},
             {"contact": "email:gus@six.example", "sequence": "now", "start_at": "2026-03-09T00:00:00Z"}]
    st, _, body, _ = world.api.call("POST", "/v1/enrollments/bulk", {"enrollments": items})
    check.eq(st, 200, "bulk: 200")
    res = body.get("results", [])
    check.eq([(r["index"], r["status"]) for r in res],
             [(0, "created"), (1, "created"), (2, "skipped"), (3, "invalid"), (4, "invalid"), (5, "skipped"),
              (6, "invalid"), (7, "created")], "one result per item, in input order")
    check.eq([r.get("reason") for r in res if r["status"] == "skipped"],
             ["already active in this sequence", "suppressed"], "the skips' reasons")
    check.eq([[e["pointer"] for e in r["errors"]] for r in res if r["status"] == "invalid"],
             [["/enrollments/3/contact"], ["/enrollments/4/sequence"], ["/enrollments/6/contact/email"]],
             "each invalid item points at its member")
    ids = [r["id"] for r in res if r["status"] == "created"]
    got = world.db.psql("SELECT c.email, s.name FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                        "JOIN sequences s ON s.id = e.sequence_id WHERE e.id IN (" + ",".join(ids) + ") ORDER BY e.id")
    check.eq(got, [["fay@five.example", "later"], ["jo@ten.example", "later"], ["gus@six.example", "now"]],
             "the created ones are in the database")
    problem(check, world.api.call("POST", "/v1/enrollments/bulk", {"enrollments": []}), 422, "validation",
            "an empty list")


def test_list_filters_and_pages(world, check):
    api = world.api
    seen, after = [], None
    while True:
        st, _, page, _ = api.call("GET", "/v1/enrollments?sequence=later&state=active&limit=2"
                                  + (f"&after={after}" if after else ""))
        check.eq(st, 200, "a page")
        seen += [e["id"] for e in page["data"]]
        after = page["next"]
        if not after or len(seen) > 50:
            break
    want = world.db.psql("SELECT e.id FROM enrollments e JOIN sequences s ON s.id = e.sequence_id "
                         "WHERE s.name = 'later' AND e.state = 'active' ORDER BY e.id")
    check.eq(seen, [r[0] for r in want], "every active enrollment of later, in id order, once")
    st, _, page, _ = api.call("GET", "/v1/enrollments?contact=ext:crm-ann")
    check.eq([(e["sequence"], e["contact_id"]) for e in page["data"]],
             [("later", world.db.psql("SELECT id FROM contacts WHERE crm_id = 'crm-ann'")[0][0])], "by contact")
    problem(check, api.call("GET", "/v1/enrollments?sequence=nope"), 400, "bad-request", "an unknown sequence")
    problem(check, api.call("GET", "/v1/enrollments?state=asleep"), 400, "bad-request", "an unknown state")
    problem(check, api.call("GET", "/v1/enrollments?after=xyz"), 400, "bad-request", "a cursor of nothing")
    reader = Api(world.serve.base, new_key(world.env, "reader", "enrollments:read"))
    check.eq(reader.call("GET", "/v1/enrollments?limit=1")[0], 200, "enrollments:read lists")
    problem(check, reader.call("POST", "/v1/enrollments", {"contact": "email:hal@seven.example", "sequence": "later"}),
            403, "forbidden", "enrollments:read cannot enroll")


def test_pause_resume_stop_and_a_contacts_stop(world, check):
    api = world.api
    _, _, e, _ = api.call("POST", "/v1/enrollments", {"contact": "email:hal@seven.example", "sequence": "later"})
    eid = e["id"]
    st, _, p, _ = api.call("POST", f"/v1/enrollments/{eid}/pause", {"reason": "on holiday"})
    check.eq((st, p["state"], p["state_reason"]), (200, "paused", "on holiday"), "pause with a reason")
    check.eq(state(world, eid), ("paused", "on holiday"), "paused in the database")
    st, _, p, _ = api.call("POST", f"/v1/enrollments/{eid}/pause", {})
    check.eq((st, p["state_reason"]), (200, "on holiday"), "pausing a paused one: answered as it is")
    st, _, p, _ = api.call("POST", f"/v1/enrollments/{eid}/resume", {})
    check.eq((st, p["state"]), (200, "active"), "resume")
    check.eq(state(world, eid), ("active", "resumed by user"), "active again, the command line's reason")
    st, _, p, _ = api.call("POST", f"/v1/enrollments/{eid}/stop", {"reason": None})
    check.eq((st, p["state"], p["next_send_at"]), (200, "stopped", None), "stop")
    check.eq(state(world, eid), ("stopped", "stopped by user"), "stopped in the database")
    got = api.call("POST", f"/v1/enrollments/{eid}/resume", {})
    problem(check, got, 409, "state-conflict", "a stopped enrollment cannot resume")
    check.eq(got[2].get("state"), "stopped", "the 409 says the state")
    check.eq(api.call("GET", f"/v1/enrollments/{eid}")[2].get("why_not_sooner"), "stopped", "why not sooner: stopped")
    problem(check, api.call("POST", "/v1/enrollments/999999/pause", {}), 404, "not-found", "pause of nothing")
    problem(check, api.call("POST", f"/v1/enrollments/{eid}/pause", {"why": "x"}), 422, "validation",
            "an unknown member")

    st, _, e2, _ = api.call("POST", "/v1/enrollments", {"contact": "email:hal@seven.example", "sequence": "later"})
    check.eq(st, 201, "a stopped contact can be enrolled again")
    st, _, s, _ = api.call("POST", "/v1/contacts/email:HAL@seven.example/stop", {"reason": "deal won"})
    check.eq((st, [x["id"] for x in s.get("stopped", [])]), (200, [e2["id"]]), "the contact's live enrollment stops")
    check.eq(state(world, e2["id"]), ("stopped", "deal won"), "stopped with the CRM's reason")
    check.eq(state(world, eid), ("stopped", "stopped by user"), "an ended one is left as it was")
    st, _, s, _ = api.call("POST", "/v1/contacts/email:hal@seven.example/stop", {"reason": "deal won"})
    check.eq((st, s.get("stopped")), (200, []), "again: nothing left to stop")
    problem(check, api.call("POST", "/v1/contacts/email:hal@seven.example/stop", {}), 422, "validation",
            "a contact's stop needs a reason")
    problem(check, api.call("POST", "/v1/contacts/ext:nobody/stop", {"reason": "x"}), 404, "not-found",
            "an unknown contact")


def test_a_stopped_enrollment_is_never_sent(world, check):
    api = world.api
    # the server's clock, from an enrollment it just wrote
    _, _, x, _ = api.call("POST", "/v1/enrollments", {"contact": {"email": "clock@probe.example"}, "sequence": "later"})
    now = datetime.datetime.fromisoformat(x["created_at"].replace("Z", "+00:00"))
    start = (now + datetime.timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    ids = {}
    for who in ("kim", "lou"):
        st, _, e, _ = api.call("POST", "/v1/enrollments", {"contact": {"email": f"{who}@send.example"},
                                                           "sequence": "now", "start_at": start})
        check.eq(st, 201, f"{who} enrolled, due in 3 s")
        ids[who] = e["id"]
    st, _, _, _ = api.call("POST", f"/v1/enrollments/{ids['lou']}/stop", {"reason": "lost"})
    check.eq(st, 200, "lou stopped before its step is due")

    def sent(eid):
        return world.db.psql(f"SELECT count(*) FROM messages WHERE enrollment_id = {int(eid)}")[0][0] != "0"

    check.ok(harness.wait_until(lambda: sent(ids["kim"]), 20), "kim's first step is sent (captured)",
             world.serve.output()[-2000:])
    check.ok(not sent(ids["lou"]), "no message row for the stopped enrollment")
    check.eq(state(world, ids["lou"]), ("stopped", "lost"), "lou is still stopped")
