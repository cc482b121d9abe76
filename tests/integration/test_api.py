"""The HTTP API as a CRM uses it (issue 19): keys, contacts, errors,
paging, idempotency and rate limits, against one `relance serve` and a
real PostgreSQL. Every response any test here receives goes through
tests/openapi.py's Validator: it must be what api/openapi.json describes
(jsonschema, a third-party validator, judges the bodies), so the document
cannot drift from the server."""
import concurrent.futures
import glob
import json
import os
import random
import subprocess
import threading
import time

import pytest

import harness
from apiclient import DOC, Api, config, new_key, problem
from harness import relance


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    # a limit no test reaches but the one about it, which has its own serve
    env = {"DATABASE_URL": module_db.url(), "RELANCE_CONFIG": config(module_tmp, 100000, 100000),
           "RELANCE_TRANSPORT": "capture", "RELANCE_CAPTURE_DIR": os.path.join(module_tmp, "capture")}
    serve = harness.Serve(env)
    serve.wait_status("/readyz", 200)
    w = type("World", (), {})()
    w.db, w.env, w.serve, w.tmp, w.capture = module_db, env, serve, module_tmp, env["RELANCE_CAPTURE_DIR"]
    w.api = Api(serve.base, new_key(env, "crm"))
    # the first request, as soon as relance is ready, checks a time zone:
    # it waits for PostgreSQL's zone names rather than fail
    st, _, body, _ = w.api.call("POST", "/v1/contacts", {"email": "first@probe.example", "timezone": "utc"})
    assert st == 201 and body["timezone"] == "UTC", body
    yield w
    assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()


def test_the_document_is_served_as_it_is_in_the_repository(world, check):
    st, _, body, raw = world.api.call("GET", "/v1/openapi.json", key=False)
    check.eq(st, 200, "GET /v1/openapi.json answers without a key")
    with open(DOC, "rb") as f:
        check.eq(raw, f.read(), "the served document is api/openapi.json, byte for byte")


def test_keys_no_key_a_bad_key_a_missing_scope_and_a_revoked_key(world, check):
    api = world.api
    problem(check, api.call("GET", "/v1/contacts", key=False), 401, "unauthorized", "no key")
    st, hdrs, _, _ = api.call("GET", "/v1/contacts", key=False)
    check.eq(hdrs.get("WWW-Authenticate"), "Bearer", "a 401 says how to authenticate")
    bad = "rl_AAAAAAAAAAAA_" + "A" * 43
    problem(check, api.call("GET", "/v1/contacts", headers={"Authorization": "Bearer " + bad}), 401, "unauthorized",
            "an unknown key")
    wrong_secret = api.key[:-1] + ("B" if api.key[-1] != "B" else "C")
    problem(check, api.call("GET", "/v1/contacts", headers={"Authorization": "Bearer " + wrong_secret}), 401,
            "unauthorized", "a known id with a wrong secret")
    problem(check, api.call("GET", f"/v1/contacts?key={api.key}", key=False), 401, "unauthorized",
            "a key in the query string is never read")
    reader = Api(world.serve.base, new_key(world.env, "reader", "contacts:read"))
    check.eq(reader.call("GET", "/v1/contacts")[0], 200, "a key created a moment ago works at once")
    problem(check, reader.call("POST", "/v1/contacts", {"email": "x@scope.example"}), 403, "forbidden",
            "a key without contacts:write")
    key_id = reader.key.split("_")[1]
    r = relance("api-keys", "revoke", key_id, env=world.env)
    check.eq(r.returncode, 0, "revoke")
    t0 = time.time()
    refused = harness.wait_until(lambda: reader.call("GET", "/v1/contacts")[0] == 401, 15, step=0.5)
    took = time.time() - t0
    check.ok(refused and took < 10, f"a revoked key is refused within 10 s (took {took:.1f} s)")
    used = world.db.psql("SELECT last_used_at IS NOT NULL FROM api_keys WHERE name = 'crm'")
    check.eq(used, [["t"]], "a used key's last_used_at is written")
    check.ok(api.key not in world.serve.output(), "the key never reaches the log")


def test_a_contact_is_created_then_updated_by_email_and_by_external_id(world, check):
    api = world.api
    st, _, c, _ = api.call("POST", "/v1/contacts", {"email": "Ada@Lovelace.example", "first_name": "Ada",
                                                    "timezone": "europe/london", "fields": {"deal": "5k"}})
    check.eq(st, 201, "a new contact: 201")
    check.eq((c["email"], c["timezone"], c["company_domain"], c["fields"]),
             ("Ada@lovelace.example", "Europe/London", "lovelace.example", {"deal": "5k"}),
             "normalised as the CSV import does: the domain lower-cased, the zone's canonical name")
    st, _, c2, _ = api.call("POST", "/v1/contacts", {"email": "ada@LOVELACE.example", "external_id": "crm-ada",
                                                     "fields": {"stage": "lead"}})
    check.eq((st, c2["id"], c2["first_name"], c2["fields"]), (200, c["id"], "Ada", {"deal": "5k", "stage": "lead"}),
             "the same email: 200, the same contact, absent members kept, fields merged")
    st, _, c3, _ = api.call("POST", "/v1/contacts", {"email": "ada@analytical.example", "external_id": "crm-ada"})
    check.eq((st, c3["id"], c3["email"]), (200, c["id"], "ada@analytical.example"),
             "a known external_id with a new email: the CRM is the source of truth, the email moves")
    st, _, other, _ = api.call("POST", "/v1/contacts", {"email": "charles@babbage.example"})
    got = api.call("POST", "/v1/contacts", {"email": "charles@babbage.example", "external_id": "crm-ada"})
    problem(check, got, 409, "conflict", "the external_id's contact and the email's contact differ")
    check.eq(sorted(got[2].get("contact_ids", [])), sorted([c["id"], other["id"]]), "the 409 names both contacts")
    for ref in (c["id"], "email:ADA@analytical.example", "ext:crm-ada"):
        st, _, g, _ = api.call("GET", f"/v1/contacts/{ref}")
        check.eq((st, g.get("id")), (200, c["id"]), f"GET /v1/contacts/{ref}")
    problem(check, api.call("GET", "/v1/contacts/ext:nobody"), 404, "not-found", "an unknown contact")


def test_patch_sets_clears_and_merges(world, check):
    api = world.api
    _, _, c, _ = api.call("POST", "/v1/contacts", {"email": "grace@hopper.example", "title": "RADM",
                                                   "fields": {"a": "1", "b": "2"}})
    st, _, p, _ = api.call("PATCH", f"/v1/contacts/{c['id']}", {"title": None, "company": "Navy",
                                                                "fields": {"a": None, "c": "3"}})
    check.eq((st, p["title"], p["company"], p["fields"]), (200, None, "Navy", {"b": "2", "c": "3"}),
             "null clears, a field set to null is removed, the others merge")
    problem(check, api.call("PATCH", f"/v1/contacts/{c['id']}", {"email": None}), 422, "validation",
            "email cannot be cleared")
    problem(check, api.call("PATCH", "/v1/contacts/999999999", {"title": "x"}), 404, "not-found",
            "PATCH of an unknown contact")
    _, _, other, _ = api.call("POST", "/v1/contacts", {"email": "rear@admiral.example", "external_id": "crm-rear"})
    for member, value in (("email", "REAR@admiral.example"), ("external_id", "crm-rear")):
        got = api.call("PATCH", f"/v1/contacts/{c['id']}", {member: value})
        problem(check, got, 409, "conflict", f"PATCH to another contact's {member}")
        check.eq(sorted(got[2].get("contact_ids", [])), sorted([c["id"], other["id"]]), "naming both contacts")


def test_invalid_members_are_422_with_a_pointer_each(world, check):
    got = world.api.call("POST", "/v1/contacts", {"email": "not-an-address", "timezone": "Mars/Olympus",
                                                  "first_name": 7, "nickname": "x", "fields": {"k": 1}})
    problem(check, got, 422, "validation", "a contact with five bad members")
    pointers = sorted(e["pointer"] for e in got[2].get("errors", []))
    check.eq(pointers, ["/email", "/fields/k", "/first_name", "/nickname", "/timezone"], "one error a bad member")
    check.eq(world.db.psql("SELECT count(*) FROM contacts WHERE email_key = 'not-an-address'"), [["0"]],
             "nothing written")


def test_bulk_keeps_the_valid_items_and_reports_the_others_in_order(world, check):
    items = [{"email": f"bulk{i}@bulk.example", "external_id": f"bulk-{i}"} for i in range(20)]
    items[3] = {"email": "broken"}
    items[7] = {"email": "bulk7@bulk.example", "unknown": True}
    items[11] = "not an object"
    st, _, body, _ = world.api.call("POST", "/v1/contacts/bulk", {"contacts": items})
    check.eq(st, 200, "bulk answers 200")
    res = body["results"]
    check.eq([r["index"] for r in res], list(range(20)), "one result an item, in input order")
    check.eq([i for i, r in enumerate(res) if r["status"] == "invalid"], [3, 7, 11], "the bad items are invalid")
    check.eq(res[3]["errors"][0]["pointer"], "/contacts/3/email", "their pointers reach into the body")
    check.eq(sum(r["status"] == "created" for r in res), 17, "the other 17 are created")
    n = world.db.psql("SELECT count(*) FROM contacts WHERE email_key LIKE 'bulk%@bulk.example'")[0][0]
    check.eq(n, "17", "and stored")
    problem(check, world.api.call("POST", "/v1/contacts/bulk", {"contacts": [{"email": "a@b.example"}] * 1001}),
            422, "validation", "more than 1,000 items")


def test_an_idempotency_key_replays_the_first_answer_byte_for_byte(world, check):
    api = world.api
    body = {"email": "idem@retry.example", "first_name": "Once"}
    first = api.call("POST", "/v1/contacts", body, headers={"Idempotency-Key": "order-42"})
    again = api.call("POST", "/v1/contacts", body, headers={"Idempotency-Key": "order-42"})
    check.eq(first[0], 201, "the first request creates")
    check.eq((again[0], again[3]), (201, first[3]), "the retry gets the same status and the same bytes")
    check.eq(again[1].get("Idempotent-Replayed"), "true", "marked Idempotent-Replayed")
    check.ok(first[1].get("Idempotent-Replayed") is None, "the first answer is not marked")
    check.eq(world.db.psql("SELECT count(*) FROM contacts WHERE email_key = 'idem@retry.example'"), [["1"]],
             "one row")
    problem(check, api.call("POST", "/v1/contacts", {"email": "other@retry.example"},
                            headers={"Idempotency-Key": "order-42"}), 422, "idempotency-mismatch",
            "the same key with another body")
    problem(check, api.call("POST", "/v1/contacts", body, headers={"Idempotency-Key": "bad\tkey"}), 400,
            "bad-request", "a key with a control character")


def test_paging_while_another_client_inserts_sees_every_row_once(world, check):
    api = world.api
    for start in range(0, 2500, 500):
        items = [{"email": f"page{i}@paging.example"} for i in range(start, start + 500)]
        st, _, body, _ = api.call("POST", "/v1/contacts/bulk", {"contacts": items})
        assert st == 200 and all(r["status"] == "created" for r in body["results"]), body
    existing = {r[0] for r in world.db.psql("SELECT id FROM contacts")}
    writer = Api(world.serve.base, new_key(world.env, "writer", "contacts:write"))
    stop = threading.Event()
    added = []

    def insert():
        i = 0
        while not stop.is_set():
            st, _, c, _ = writer.call("POST", "/v1/contacts", {"email": f"late{i}@paging.example"})
            if st == 201:
                added.append(c["id"])
            i += 1

    t = threading.Thread(target=insert)
    t.start()
    seen, after, pages = [], None, 0
    try:
        while True:
            path = "/v1/contacts?limit=100" + (f"&after={after}" if after else "")
            st, _, page, _ = api.call("GET", path)
            assert st == 200, page
            seen += [c["id"] for c in page["data"]]
            pages += 1
            after = page["next"]
            if after is None:
                break
    finally:
        stop.set()
        t.join()
    check.ok(len(added) > 0, f"the other client inserted while paging ({len(added)} rows)")
    check.eq(len(seen), len(set(seen)), "no row twice")
    check.eq(existing - set(seen), set(), "every row that existed when paging began was seen")
    problem(check, api.call("GET", "/v1/contacts?after=garbage"), 400, "bad-request", "a cursor this list never gave")
    problem(check, api.call("GET", "/v1/contacts?limit=501"), 400, "bad-request", "limit over 500")


def test_bodies_refused_before_the_handler(world, check):
    api = world.api
    problem(check, api.call("POST", "/v1/contacts", b'{"email": "x@y.example"', headers={
        "Content-Type": "application/json"}), 400, "malformed-json", "truncated JSON")
    problem(check, api.call("POST", "/v1/contacts", b'{"email": "x@y.example"}', headers={
        "Content-Type": "text/plain"}), 415, "unsupported-media-type", "not application/json")
    problem(check, api.call("POST", "/v1/contacts", b"[1, 2]", headers={"Content-Type": "application/json"}), 422,
            "validation", "an array, not an object")
    big = b'{"email": "' + b"a" * (2 << 20) + b'"}'
    problem(check, api.call("POST", "/v1/contacts", big, headers={"Content-Type": "application/json"}), 413,
            "body-too-large", "a 2 MiB body")
    problem(check, api.call("DELETE", "/v1/contacts"), 405, "method-not-allowed", "a method the path does not take")
    problem(check, api.call("GET", "/v1/nothing-here", judged=False), 404, "not-found", "an unknown path")
    problem(check, api.call("GET", "/v1/contacts?colour=red"), 400, "bad-request", "an unknown query argument")
    for query in ("email=%FF%FE", "after=%C3%28", "external_id=a%00b%FF"):
        problem(check, api.call("GET", f"/v1/contacts?{query}"), 400, "bad-request",
                f"a query argument that is not UTF-8 ({query}), never a 5xx")
    problem(check, api.call("GET", "/v1/contacts/ext:%FF"), 400, "bad-request", "a path that is not UTF-8")


def hostile_bodies(n, seed=19):
    """n malformed or hostile JSON bodies: truncated documents, deep
    nesting, huge strings, wrong types, invalid UTF-8, NUL bytes."""
    rnd = random.Random(seed)
    good = json.dumps({"email": "h@hostile.example", "first_name": "H", "fields": {"k": "v"}}).encode()
    makers = [
        lambda: good[:rnd.randrange(1, len(good))],
        lambda: b"[" * rnd.randrange(33, 5000) + b"]" * rnd.randrange(0, 40),
        lambda: b'{"a":' * rnd.randrange(33, 2000) + b"1" + b"}" * 40,
        lambda: json.dumps({"email": "x" * rnd.randrange(300, 200000) + "@e.example"}).encode(),
        lambda: json.dumps({"first_name": "y" * rnd.randrange(1001, 300000), "email": "a@b.example"}).encode(),
        lambda: json.dumps({"email": rnd.choice([1, True, None, [], {}, 2.5])}).encode(),
        lambda: json.dumps({"email": "a@b.example", "fields": rnd.choice([[], "x", 3, {"k": {"n": 1}}])}).encode(),
        lambda: b'{"email": "a\xff\xfe@b.example"}',
        lambda: b'{"email": "\xc3\x28@b.example"}',
        lambda: b'{"email": "a@b.example", "first_name": "nul\\u0000here"}',
        lambda: b'{"email": "a@b.example"\x00}',
        lambda: b'{"email": "\xed\xa0\x80@b.example"}',
        lambda: bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400))),
        lambda: b'{"email": "a@b.example", "first_name": "\\ud800"}',
        lambda: b'{"contacts": ' + b"1" * rnd.randrange(1, 500) + b"}",
        lambda: json.dumps({"email": "a@b.example", "timezone": "../../etc/passwd"}).encode(),
        lambda: b"",
        lambda: b"null",
        lambda: b'"just a string"',
        lambda: b"1e999999",
    ]
    return [makers[i % len(makers)]() for i in range(n)]


def test_500_hostile_bodies_each_get_a_4xx_problem_and_the_service_stays_up(world, check):
    api = world.api
    bodies = hostile_bodies(500)
    paths = ["/v1/contacts", "/v1/contacts/bulk"]

    def one(i):
        path = paths[i % 2]
        st, hdrs, body, _ = api.call("POST", path, bodies[i], headers={"Content-Type": "application/json"})
        return i, st, hdrs.get("Content-Type"), body

    # sending goes on meanwhile: prospects enrolled now are due at once
    seq = harness.sequence(world.tmp, "one_step", name="during-hostile", pool="main")
    assert relance("apply", seq, env=world.env).returncode == 0
    world.db.psql("INSERT INTO contacts (email) SELECT 'during' || i || '@sending.example' "
                  "FROM generate_series(1, 20) i")
    sent_before = len(glob.glob(os.path.join(world.capture, "new", "*")))
    r = relance("enroll", "--sequence", "during-hostile", "--where", "email LIKE 'during%@sending.example'",
                env=world.env)
    assert "enrolled 20" in r.stdout, r.stdout + r.stderr
    bad = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for i, st, ctype, body in pool.map(one, range(len(bodies))):
            if not (400 <= st < 500 and st != 429 and ctype == "application/problem+json"
                    and isinstance(body, dict)):
                bad.append((i, st, ctype, str(body)[:200]))
    check.eq(bad, [], "every hostile body gets a 4xx problem document from the handler's checks")
    sent = harness.wait_until(lambda: len(glob.glob(os.path.join(world.capture, "new", "*"))) - sent_before >= 20, 20)
    check.ok(sent, "the 20 messages due during the barrage went out")
    check.eq(world.serve.proc.poll(), None, "relance serve is still running")
    check.eq(world.serve.get("/healthz")[0], 200, "and answers")
    check.eq(world.db.psql("SELECT count(*) FROM contacts WHERE email_key LIKE '%hostile.example'"), [["0"]],
             "no hostile body wrote a contact")


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(world, module_tmp, check):
    """Its own serve, with http.api_rate_limit 5 a second and a burst of 10."""
    env = dict(world.env, RELANCE_CONFIG=config(module_tmp, 5, 10))
    serve = harness.Serve(env)
    try:
        serve.wait_status("/readyz", 200)
        one = Api(serve.base, new_key(world.env, "burst", "contacts:read"))
        other = Api(serve.base, world.api.key)
        answers = [one.call("GET", "/v1/contacts?limit=1") for _ in range(30)]
        codes = [a[0] for a in answers]
        check.eq(codes[:10], [200] * 10, "the burst of 10 passes")
        limited = [a for a in answers if a[0] == 429]
        check.ok(len(limited) >= 10, f"past the burst and the rate, 429 ({len(limited)} of 30)", codes)
        if limited:
            problem(check, limited[0], 429, "rate-limited", "a limited request")
            check.ok(int(limited[0][1].get("Retry-After", "0")) >= 1, "with Retry-After in whole seconds")
        check.eq(other.call("GET", "/v1/contacts?limit=1")[0], 200, "another key is not limited by it")
        time.sleep(1.0)
        check.eq(one.call("GET", "/v1/contacts?limit=1")[0], 200, "a second later the key passes again")
    finally:
        assert serve.stop() == 0


def test_delete_erases_the_person_everywhere_and_they_are_never_mailed_again(world, module_tmp, check):
    """DELETE /v1/contacts/{id}: a data-only pg_dump of the whole database
    must not hold the address (in any case) nor its custom field's value
    afterwards, though the contact had an enrollment, a message, a reply
    recorded, events, a suppression and an idempotency record; and the
    address, imported again, cannot be enrolled."""
    api, db, env = world.api, world.db, world.env
    addr, secret_value = "Erin.Erased@Forget-Me.example", "deal-secret-4711"
    st, _, c, _ = api.call("POST", "/v1/contacts", {"email": addr, "external_id": "crm-erin", "first_name": "Erin",
                                                    "fields": {"deal": secret_value}},
                           headers={"Idempotency-Key": "erin-1"})
    assert st == 201, c
    seq = harness.sequence(module_tmp, "two_step", name="erase-me", pool="main", wait="30d")
    assert relance("apply", seq, env=env).returncode == 0
    r = relance("enroll", "--sequence", "erase-me", "--contact", addr, env=env)
    assert "enrolled 1" in r.stdout, r.stdout + r.stderr
    enrollment = db.psql(f"SELECT id FROM enrollments WHERE contact_id = {c['id']}")[0][0]
    # what sending and the watcher would have written
    db.psql("INSERT INTO pools (name) VALUES ('main') ON CONFLICT DO NOTHING")
    db.psql("INSERT INTO accounts (email, pool) VALUES ('sender@ours.example', 'main') ON CONFLICT DO NOTHING")
    account = db.psql("SELECT id FROM accounts WHERE email = 'sender@ours.example'")[0][0]
    # the capture transport sends its step; a server's answer names the address
    check.ok(harness.wait_until(lambda: db.psql(f"SELECT count(*) FROM messages WHERE enrollment_id = {enrollment} "
                                                "AND state = 'sent'")[0][0] == "1", 20), "the step went out")
    db.psql(f"UPDATE messages SET reply = '250 ok for <{addr.lower()}>' WHERE enrollment_id = {enrollment}")
    message_id = db.psql(f"SELECT message_id FROM messages WHERE enrollment_id = {enrollment}")[0][0]
    db.psql("INSERT INTO inbound_messages (account_id, folder, uidvalidity, uid, sender, kind, enrollment_id, "
            f"detected_at) VALUES ({account}, 'INBOX', 1, 1, '{addr.upper()}', 'human_reply', {enrollment}, now())")
    r = relance("suppress", "add", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    dump = subprocess.run(["pg_dump", "--data-only", db.url()], capture_output=True, text=True).stdout
    check.ok(addr.lower() in dump.lower() and secret_value in dump, "before: the dump holds the address and the field")

    def captured():
        out = []
        for path in glob.glob(os.path.join(world.capture, "*", "*")):
            with open(path, "rb") as f:
                if addr.lower().encode() in f.read().lower():
                    out.append(path)
        return out

    check.ok(len(captured()) == 1, "before: the capture Maildir holds the message sent to them")

    st, _, body, _ = api.call("DELETE", f"/v1/contacts/{c['id']}")
    check.eq((st, body), (200, {"id": c["id"], "erased": True}), "DELETE answers 200")
    dump = subprocess.run(["pg_dump", "--data-only", db.url()], capture_output=True, text=True).stdout
    check.ok(addr.lower() not in dump.lower(), "after: the address is nowhere in a pg_dump of the database",
             [ln for ln in dump.splitlines() if addr.lower() in ln.lower()][:5])
    check.ok(secret_value not in dump, "nor its custom field's value")
    check.eq(captured(), [], "nor any message in the capture Maildir")
    check.eq(db.psql(f"SELECT state, state_reason FROM enrollments WHERE id = {enrollment}"),
             [["stopped", "suppressed: erased-" + c["id"] + "@erased.invalid"]],
             "its enrollment stays stopped, its reason no longer names the address")
    check.eq(db.psql(f"SELECT state, subject IS NULL FROM messages WHERE message_id = '{message_id}'"),
             [["sent", "t"]], "the message row stays (the stats count it), without its subject")
    check.eq(db.psql("SELECT count(*) FROM events WHERE kind = 'contact.erased' AND data = jsonb_build_object("
                     f"'contact', jsonb_build_object('id', '{c['id']}', 'external_id', null, "
                     f"'email', 'erased-{c['id']}@erased.invalid'))"), [["1"]],
             "an event records the erasure, without the address")
    problem(check, api.call("GET", f"/v1/contacts/{c['id']}"), 404, "not-found", "an erased contact is unknown")
    problem(check, api.call("DELETE", f"/v1/contacts/{c['id']}"), 404, "not-found", "erasing it again")
    st, _, again, _ = api.call("POST", "/v1/contacts", {"email": addr})
    check.eq(st, 201, "the address can come back as a new contact")
    r = relance("enroll", "--sequence", "erase-me", "--contact", addr, env=env)
    check.ok("enrolled 0" in r.stdout and "suppressed" in r.stdout, "but it is never enrolled: suppressed",
             r.stdout + r.stderr)


def test_the_rate_limit_is_configured_and_checked(module_tmp, check):
    r = relance("config", env={"RELANCE_CONFIG": config(module_tmp, 7, 9)})
    check.ok("http.api_rate_limit: 7 requests a second a key, bursts of 9" in r.stdout,
             "relance config says the API's rate limit", r.stdout + r.stderr)
    r = relance("config", env={"RELANCE_CONFIG": config(module_tmp, 0, 9)})
    check.ok(r.returncode != 0 and "api_rate_limit" in r.stderr, "a limit of 0 is refused, naming the key",
             r.stdout + r.stderr)


def test_a_second_replica_replays_the_first_ones_answer_and_refuses_a_revoked_key(world, check):
    """Idempotency records live in PostgreSQL: a retry that reaches another
    replica gets the first answer; a key revoked is refused there too."""
    other = harness.Serve(world.env)
    try:
        other.wait_status("/readyz", 200)
        body = {"email": "replica@retry.example"}
        first = world.api.call("POST", "/v1/contacts", body, headers={"Idempotency-Key": "replica-1"})
        again = Api(other.base, world.api.key).call("POST", "/v1/contacts", body,
                                                    headers={"Idempotency-Key": "replica-1"})
        check.eq(first[0], 201, "the first replica creates")
        check.eq((again[0], again[3], again[1].get("Idempotent-Replayed")), (201, first[3], "true"),
                 "the second replica replays the same bytes")
        key = new_key(world.env, "two-replicas", "contacts:read")
        a, b = Api(world.serve.base, key), Api(other.base, key)
        check.eq((a.call("GET", "/v1/contacts?limit=1")[0], b.call("GET", "/v1/contacts?limit=1")[0]), (200, 200),
                 "a new key works on both replicas")
        assert relance("api-keys", "revoke", key.split("_")[1], env=world.env).returncode == 0
        t0 = time.time()
        gone = harness.wait_until(lambda: a.call("GET", "/v1/contacts?limit=1")[0] == 401
                                  and b.call("GET", "/v1/contacts?limit=1")[0] == 401, 15, step=0.5)
        check.ok(gone and time.time() - t0 < 10, f"revoked: refused on both within 10 s ({time.time() - t0:.1f} s)")
    finally:
        assert other.stop() == 0
