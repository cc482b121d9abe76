"""The HTTP API's webhook endpoints, /v1/webhooks (issue 20), and `relance
webhooks list|deliveries|secret`, against one `relance serve` and a real
PostgreSQL:
  - a create answers 201 with the whsec_ secret, which no other answer
    shows (read, list, patch); a rotation answers a new one, and the old
    one is kept to sign with for 24 hours;
  - the URL policy: http to a host not on webhook_allow_insecure, and a
    private or loopback address literal, are 422 at /url with the reason;
    http to a listed host is accepted;
  - the members: unknown ones, wrong types, event types outside the
    catalogue (checked by SQL against event_types, at /types/<i>), a bad
    since: 422 with one pointer each;
  - events written after an endpoint is made are owed to it (the events'
    trigger): the deliveries list and `relance webhooks deliveries` show
    them, latest first; a replay counts and re-queues what it owes;
  - delete, 404s, 403 without webhooks:write, and 409 for an endpoint the
    configuration declares.
Every answer goes through apiclient's Api.call: it must be what
api/openapi.json describes. Wall time: about 8 s."""
import os
import re

import pytest

import harness
from apiclient import Api, new_key, problem
from harness import relance

SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")
HOOK = "https://crm.invalid/hooks/relance"


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    path = os.path.join(module_tmp, "relance.yaml")
    with open(path, "w") as f:
        f.write("http:\n  api_rate_limit: 100000\n  api_rate_burst: 100000\n"
                "webhook_allow_insecure: [127.0.0.1, crm.internal]\n")
    env = {"DATABASE_URL": module_db.url(), "RELANCE_CONFIG": path}
    serve = harness.Serve(env)
    serve.wait_status("/readyz", 200)
    w = type("World", (), {})()
    w.db, w.env, w.serve = module_db, env, serve
    w.api = Api(serve.base, new_key(env, "crm", "webhooks:write"))
    yield w
    assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()


def create(w, **body):
    st, _, got, raw = w.api.call("POST", "/v1/webhooks", {"url": HOOK, **body})
    assert st == 201, raw
    return got


def errors(got):
    """{pointer: message} of a 422's errors."""
    return {e["pointer"]: e["message"] for e in got[2].get("errors", [])}


def test_create_shows_the_secret_once(world, check):
    made = create(world, types=["reply.received", "message.bounced", "reply.received"], description="the CRM")
    check.ok(SECRET.match(made.get("secret", "")), "the create answers a whsec_ secret", made)
    check.eq(made["types"], ["reply.received", "message.bounced"], "types are kept once each, in order")
    check.eq((made["enabled"], made["source"], made["name"], made["description"]), (True, "api", None, "the CRM"),
             "enabled, from the API, unnamed, described")
    raw = f'{{"url": "{HOOK}", "types": ["nope.nope"], "types": ["reply.received"]}}'
    st, _, got, _ = world.api.call("POST", "/v1/webhooks", raw, headers={"Content-Type": "application/json"})
    check.eq((st, got.get("types")), (201, ["reply.received"]), "a repeated member: the last one counts")
    other = create(world)
    check.ok(other["secret"] != made["secret"], "each endpoint gets its own secret")
    check.eq(other["types"], [], "no types: every type")

    st, _, got, raw = world.api.call("GET", f"/v1/webhooks/{made['id']}")
    check.eq(st, 200, "GET one")
    check.ok("secret" not in got and made["secret"].encode() not in raw, "GET one shows no secret", got)
    st, _, page, raw = world.api.call("GET", "/v1/webhooks?limit=1")
    check.eq((st, len(page["data"])), (200, 1), "a page of one")
    check.ok(page["next"], "a next page")
    st, _, page2, raw2 = world.api.call("GET", f"/v1/webhooks?after={page['next']}")
    ids = [x["id"] for x in page["data"] + page2["data"]]
    check.ok(made["id"] in ids and other["id"] in ids, "the list has both, across pages", ids)
    check.ok(b"whsec_" not in raw + raw2, "the list shows no secret")
    problem(check, world.api.call("GET", "/v1/webhooks?after=bm9wZTox"), 400, "bad-request", "another list's cursor")
    st, _, got, raw = world.api.call("PATCH", f"/v1/webhooks/{made['id']}", {"description": "renamed"})
    check.ok(st == 200 and b"whsec_" not in raw, "a PATCH shows no secret", raw)
    stored = world.db.psql(f"SELECT secret FROM webhooks WHERE id = {made['id']}")[0][0]
    check.eq(stored, made["secret"], "the secret shown is the one stored (the delivery signs with it)")


def test_url_policy_refuses_http_and_private_addresses_unless_listed(world, check):
    for url, why in [("http://crm.example/hook", "http to a host not on webhook_allow_insecure"),
                     ("https://10.1.2.3/hook", "a private address literal"),
                     ("https://127.0.0.2/hook", "a loopback address literal not listed"),
                     ("https://169.254.169.254/latest/meta-data", "the cloud metadata address"),
                     ("https://user:pw@crm.example/hook", "a password in the URL"),
                     ("ftp://crm.example/hook", "another scheme")]:
        got = world.api.call("POST", "/v1/webhooks", {"url": url})
        problem(check, got, 422, "validation", why)
        check.ok(errors(got).get("/url"), f"{why}: the reason at /url", got[2])
    for url in ("http://127.0.0.1:9/hook", "http://crm.internal/hook"):
        st, _, got, raw = world.api.call("POST", "/v1/webhooks", {"url": url})
        check.eq(st, 201, f"{url}: listed, so http (and a loopback literal) is accepted")
    got = world.api.call("PATCH", f"/v1/webhooks/{create(world)['id']}", {"url": "http://crm.example/x"})
    problem(check, got, 422, "validation", "a PATCH's url is held to the policy too")
    check.ok(errors(got).get("/url"), "the PATCH's reason at /url", got[2])


def test_members_are_checked_with_a_pointer_each(world, check):
    got = world.api.call("POST", "/v1/webhooks", {"url": HOOK, "types": ["reply.received", "reply.recieved"]})
    problem(check, got, 422, "validation", "a type outside the catalogue")
    check.eq(list(errors(got)), ["/types/1"], "the unknown type's pointer")
    got = world.api.call("POST", "/v1/webhooks", {"url": HOOK, "types": ["Reply", 4], "enabled": "yes",
                                                  "description": 5, "colour": "red"})
    problem(check, got, 422, "validation", "wrong types and an unknown member")
    check.eq(sorted(errors(got)), ["/colour", "/description", "/enabled", "/types/0", "/types/1"],
             "one error each")
    got = world.api.call("POST", "/v1/webhooks", {"types": "reply.received"})
    problem(check, got, 422, "validation", "no url, types not an array")
    check.eq(sorted(errors(got)), ["/types", "/url"], "url is required; types is an array")
    made = create(world)
    got = world.api.call("PATCH", f"/v1/webhooks/{made['id']}", {"types": ["message.sent", "message.read"]})
    problem(check, got, 422, "validation", "a PATCH's type outside the catalogue")
    check.eq(list(errors(got)), ["/types/1"], "the PATCH's unknown type's pointer")
    got = world.api.call("PATCH", f"/v1/webhooks/{made['id']}", {"url": None, "secret": "whsec_x"})
    problem(check, got, 422, "validation", "a null url, and the secret is not a member")
    check.eq(sorted(errors(got)), ["/secret", "/url"], "one error each")
    for since in ("yesterday", "2026-02-30T00:00:00Z", "2026-03-01T00:00:0x1Z", "2026-+3-01T00:00:00Z",
                  "2026-03-01T00:00:00+99:00", "2026-03-01"):
        got = world.api.call("POST", f"/v1/webhooks/{made['id']}/replay", {"since": since})
        problem(check, got, 422, "validation", f"since {since}: not a time")
        check.eq(list(errors(got)), ["/since"], f"since {since}: its pointer")
    for since in ("2024-02-29T00:00Z", "2026-03-02T09:00:00.25+02:00", "2026-03-02T09:00:59-05:30"):
        st, _, got, _ = world.api.call("POST", f"/v1/webhooks/{made['id']}/replay", {"since": since})
        check.eq(st, 202, f"since {since}: a time")
    got = world.api.call("POST", f"/v1/webhooks/{made['id']}/replay", {})
    problem(check, got, 422, "validation", "a replay without since")
    check.eq(list(errors(got)), ["/since"], "since is required")


def test_patch_changes_only_what_it_is_given(world, check):
    made = create(world, types=["reply.received"], description="before")
    path = f"/v1/webhooks/{made['id']}"
    st, _, got, _ = world.api.call("PATCH", path, {"url": "https://crm2.invalid/h", "types": []})
    check.eq((st, got["url"], got["types"], got["description"]), (200, "https://crm2.invalid/h", [], "before"),
             "url and types changed, description kept")
    st, _, got, _ = world.api.call("PATCH", path, {"enabled": False})
    check.eq((got["enabled"], got["disabled_reason"]), (False, "disabled by the API"), "disabled, and why")
    world.db.psql(f"UPDATE webhooks SET failing_since = now() WHERE id = {made['id']}")
    st, _, got, _ = world.api.call("PATCH", path, {"enabled": True})
    check.eq((got["enabled"], got["disabled_reason"], got["failing_since"]), (True, None, None),
             "enabled again: why and the failing streak are cleared")
    st, _, got, _ = world.api.call("GET", path)
    check.eq((got["url"], got["enabled"]), ("https://crm2.invalid/h", True), "GET reads what PATCH wrote")
    problem(check, world.api.call("PATCH", "/v1/webhooks/999999", {"enabled": False}), 404, "not-found",
            "PATCH an unknown id")
    problem(check, world.api.call("GET", "/v1/webhooks/abc"), 404, "not-found", "GET an id that is no number")


def test_rotate_gives_a_new_secret_and_keeps_the_old_one_a_day(world, check):
    made = create(world)
    st, _, got, raw = world.api.call("POST", f"/v1/webhooks/{made['id']}/rotate-secret")
    check.eq(st, 200, "rotate")
    check.ok(SECRET.match(got.get("secret", "")) and got["secret"] != made["secret"], "a new secret", got)
    row = world.db.psql(f"SELECT secret, previous_secret, previous_until - now() > interval '23 hours', "
                        f"previous_until - now() < interval '25 hours' FROM webhooks WHERE id = {made['id']}")[0]
    check.eq(row, [got["secret"], made["secret"], "t", "t"], "the new one signs, the old one for about 24 hours")
    st, _, again, _ = world.api.call("POST", f"/v1/webhooks/{made['id']}/rotate-secret")
    check.ok(again["secret"] not in (made["secret"], got["secret"]), "each rotation draws a new one")
    st, _, one, raw = world.api.call("GET", f"/v1/webhooks/{made['id']}")
    check.ok(b"whsec_" not in raw, "GET shows neither secret")
    problem(check, world.api.call("POST", "/v1/webhooks/999999/rotate-secret"), 404, "not-found",
            "rotate an unknown id")


def events(w, *kinds):
    """Writes one event of each kind, in one statement; their ids."""
    values = ", ".join(f"('{k}', now(), '{{}}')" for k in kinds)
    return [r[0] for r in w.db.psql(f"INSERT INTO events (kind, occurred_at, data) VALUES {values} RETURNING id")]


def deliver(world, where):
    """Marks the deliveries matching where delivered, as a cycle of the
    delivery loop records them: out of the queue, noted in one row per
    endpoint."""
    world.db.psql(f"WITH d AS (DELETE FROM webhook_deliveries WHERE {where} RETURNING id, webhook_id, event_id) "
                  f"INSERT INTO webhook_delivered SELECT webhook_id, now(), max(id), array_agg(id), "
                  f"array_agg(event_id), array_agg(1), array_agg(200) FROM d GROUP BY webhook_id")


def test_events_are_owed_listed_and_replayed(world, check):
    made = create(world, types=["reply.received", "message.bounced"])
    path = f"/v1/webhooks/{made['id']}"
    ids = events(world, "reply.received", "message.sent", "message.bounced", "reply.received")
    st, _, got, _ = world.api.call("GET", f"{path}/deliveries")
    check.eq(st, 200, "deliveries")
    check.eq([(d["event_id"], d["type"]) for d in got["data"]],
             [(ids[3], "reply.received"), (ids[2], "message.bounced"), (ids[0], "reply.received")],
             "the events of its types are owed to it, latest first")
    d = got["data"][0]
    check.ok(d["state"] in ("pending", "delivered", "failed") and d["attempts"] >= 0, "a state and attempts", d)
    st, _, got, _ = world.api.call("GET", f"{path}/deliveries?limit=1")
    check.eq([x["event_id"] for x in got["data"]], [ids[3]], "limit=1: the latest")
    problem(check, world.api.call("GET", f"{path}/deliveries?limit=0"), 400, "bad-request", "limit=0")
    problem(check, world.api.call("GET", "/v1/webhooks/999999/deliveries"), 404, "not-found", "an unknown id")

    r = relance("webhooks", "deliveries", made["id"], "--limit", "2", env=world.env)
    lines = r.stdout.splitlines()
    check.ok(r.returncode == 0 and len(lines) == 2, "the CLI lists the 2 latest", r.stdout + r.stderr)
    check.ok(lines and f"event {ids[3]}\treply.received\t" in lines[0], "the CLI's first line", lines)
    r = relance("webhooks", "deliveries", "999999", env=world.env)
    check.ok(r.returncode == 1 and "no webhook 999999" in r.stderr, "the CLI: an unknown id exits 1", r.stderr)

    # delivered: the row leaves the queue for webhook_delivered, and is listed from there
    deliver(world, f"webhook_id = {made['id']}")
    st, _, got, _ = world.api.call("GET", f"{path}/deliveries")
    check.eq([(d["event_id"], d["type"], d["state"], d["attempts"], d["last_status"]) for d in got["data"]],
             [(i, t, "delivered", 1, 200) for i, t in ((ids[3], "reply.received"), (ids[2], "message.bounced"),
                                                       (ids[0], "reply.received"))],
             "the delivered ones are listed as delivered, latest first")
    check.ok(all(d["delivered_at"] and d["next_at"] is None for d in got["data"]), "with when", got["data"])

    # what was delivered is owed again, and due at once
    st, _, got, _ = world.api.call("POST", f"{path}/replay", {"since": "2000-01-01T00:00:00Z"})
    total = int(world.db.psql("SELECT count(*) FROM events WHERE kind IN ('reply.received', 'message.bounced')")[0][0])
    check.eq((st, got), (202, {"queued": total}), "every event of its types since then is queued")
    rows = world.db.psql(f"SELECT state, attempts, delivered_at IS NULL FROM webhook_deliveries "
                         f"WHERE webhook_id = {made['id']} AND event_id IN ({ids[0]}, {ids[2]}, {ids[3]})")
    check.ok(rows and all(r[0] == "pending" and r[2] == "t" for r in rows), "the delivered ones are pending again",
             rows)
    st, _, got, _ = world.api.call("POST", f"{path}/replay", {"since": "2999-01-01T00:00:00+02:00"})
    check.eq((st, got), (202, {"queued": 0}), "nothing since the future")
    problem(check, world.api.call("POST", "/v1/webhooks/999999/replay", {"since": "2000-01-01T00:00:00Z"}), 404,
            "not-found", "replay an unknown id")


def test_delete_removes_the_endpoint_and_what_it_was_owed(world, check):
    made = create(world)
    events(world, "contact.created", "contact.created")
    deliver(world, f"id = (SELECT min(id) FROM webhook_deliveries WHERE webhook_id = {made['id']})")
    counts = (f"SELECT (SELECT count(*) FROM webhook_deliveries WHERE webhook_id = {made['id']}), "
              f"(SELECT count(*) FROM webhook_delivered, unnest(ids) WHERE webhook_id = {made['id']})")
    check.eq(world.db.psql(counts), [["1", "1"]], "an event owed to it, and one delivered")
    st, _, got, raw = world.api.call("DELETE", f"/v1/webhooks/{made['id']}")
    check.eq((st, got["id"]), (200, made["id"]), "deleted: the endpoint as it was")
    check.ok(b"whsec_" not in raw, "DELETE shows no secret")
    problem(check, world.api.call("GET", f"/v1/webhooks/{made['id']}"), 404, "not-found", "gone")
    problem(check, world.api.call("DELETE", f"/v1/webhooks/{made['id']}"), 404, "not-found", "deleted twice")
    check.eq(world.db.psql(counts), [["0", "0"]], "its deliveries went with it, owed and delivered")


def test_a_key_without_webhooks_write_is_refused(world, check):
    api = Api(world.serve.base, new_key(world.env, "reader", "events:read,contacts:write"))
    made = create(world)
    problem(check, api.call("GET", "/v1/webhooks"), 403, "forbidden", "list")
    problem(check, api.call("POST", "/v1/webhooks", {"url": HOOK}), 403, "forbidden", "create")
    problem(check, api.call("GET", f"/v1/webhooks/{made['id']}/deliveries"), 403, "forbidden", "deliveries")
    problem(check, api.call("POST", f"/v1/webhooks/{made['id']}/rotate-secret"), 403, "forbidden", "rotate")


def test_a_config_endpoint_is_read_only_here(world, check):
    # the configuration's sync at serve start is the delivery engine's;
    # its row is what it writes
    cid = world.db.psql("INSERT INTO webhooks (source, name, url, types, created_at, updated_at) "
                        "VALUES ('config', 'hubspot', 'https://hubspot.invalid/in', '{reply.received}', now(), now()) "
                        "RETURNING id")[0][0]
    path = f"/v1/webhooks/{cid}"
    st, _, got, _ = world.api.call("GET", path)
    check.eq((st, got["source"], got["name"]), (200, "config", "hubspot"), "GET shows where it comes from")
    problem(check, world.api.call("PATCH", path, {"enabled": False}), 409, "conflict", "PATCH")
    problem(check, world.api.call("DELETE", path), 409, "conflict", "DELETE")
    problem(check, world.api.call("POST", f"{path}/rotate-secret"), 409, "conflict", "rotate")
    check.eq(world.db.psql(f"SELECT enabled FROM webhooks WHERE id = {cid}"), [["t"]], "nothing changed")

    world.db.psql(f"UPDATE webhooks SET enabled = false, disabled_at = '2026-03-01T10:00:00Z', "
                  f"disabled_reason = 'the endpoint answered 410 Gone' WHERE id = {cid}")
    made = create(world, types=["message.sent"])
    world.db.psql(f"UPDATE webhooks SET failing_since = '2026-03-02T09:00:00Z' WHERE id = {made['id']}")
    r = relance("webhooks", "list", env=world.env)
    check.ok(r.returncode == 0, "webhooks list", r.stderr)
    lines = {ln.split("\t")[0]: ln for ln in r.stdout.splitlines()}
    check.eq(lines.get(cid), f"{cid}\thubspot\thttps://hubspot.invalid/in\treply.received\t"
                             "disabled 2026-03-01T10:00:00Z: the endpoint answered 410 Gone",
             "the config endpoint: its name, url, types and why it is disabled")
    check.eq(lines.get(made["id"]), f"{made['id']}\tapi\t{HOOK}\tmessage.sent\tenabled\t"
                                    "failing since 2026-03-02T09:00:00Z", "an API endpoint failing")
    check.ok("whsec_" not in r.stdout, "no secret in the list")


def test_secret_prints_a_fresh_secret_without_a_database(check):
    a, b = relance("webhooks", "secret"), relance("webhooks", "secret")
    check.ok(a.returncode == 0 and b.returncode == 0, "exit 0", a.stderr + b.stderr)
    check.ok(SECRET.match(a.stdout.strip()) and len(a.stdout.strip()) == 6 + 44, "whsec_ and 32 bytes", a.stdout)
    check.ok(a.stdout != b.stdout, "fresh each time")
