"""The HTTP API's event feed, GET /v1/events (issue 20), against one
`relance serve` and a real PostgreSQL:
  - commit order: 8 writers, each a PostgreSQL session inserting events in
    transactions of random length (some long, some rolled back), while a
    reader pages through the feed as fast as it can until the writers are
    done and the feed is drained: every committed event is seen exactly
    once, none of a rolled-back transaction. Ids are taken before commit,
    so a reader paging by id alone would miss the late committers;
  - the catalogue: rows stored under the old names read, once migration
    024 ran, under the catalogue's; a type outside the catalogue is a 400
    and cannot be written;
  - a key without events:read gets 403;
  - the writers: an import writes contact.created, a changed one
    contact.updated, an unchanged one nothing, enroll enrollment.created,
    apply sequence.applied (an identical apply nothing), a rolled-back
    import nothing, and the API's POST and PATCH alike; each with the
    common shape (contact {id, external_id,
    email}, enrollment_id, sequence, ...) and the contact's seq counting
    1, 2, 3; a two-step sequence run to its end through the capture
    transport writes message.sent per step (step, account) and
    enrollment.completed.
Every answer goes through apiclient's Api.call: it must be what
api/openapi.json describes: each type's data schema. Wall time: about
15 s."""
import os
import random
import subprocess
import time

import pytest

import harness
import pgcluster
from apiclient import Api, config, new_key, problem
from harness import relance

WRITERS = 8
MARK = "feedtest"


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    env = {"DATABASE_URL": module_db.url(), "RELANCE_CONFIG": config(module_tmp, 100000, 100000)}
    serve = harness.Serve(env)
    serve.wait_status("/readyz", 200)
    w = type("World", (), {})()
    w.db, w.env, w.serve, w.tmp = module_db, env, serve, module_tmp
    w.api = Api(serve.base, new_key(env, "crm", "events:read"))
    yield w
    assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()


def writer_script(rng, w, seconds):
    """One writer's psql script: transactions of 1 to 3 events until
    about seconds of sleeping, a third of them long, some rolled back."""
    lines, spent, t = [], 0.0, 0
    while spent < seconds:
        t += 1
        lines.append("BEGIN;")
        for i in range(rng.randint(1, 3)):
            lines.append("INSERT INTO events (kind, occurred_at, data) VALUES ('sequence.applied', now(), "
                         f"jsonb_build_object('{MARK}', '{w}-{t}-{i}'));")
            pause = rng.uniform(0.3, 1.2) if rng.random() < 0.3 else rng.uniform(0, 0.03)
            lines.append(f"SELECT pg_sleep({pause:.3f});")
            spent += pause
        lines.append("ROLLBACK;" if rng.random() < 0.1 else "COMMIT;")
    return "\n".join(lines) + "\n"


def page(api, after, limit=100, types=None):
    q = f"/v1/events?limit={limit}" + (f"&after={after}" if after else "") + (f"&types={types}" if types else "")
    st, _, body, _ = api.call("GET", q)
    assert st == 200, body
    return body


def test_concurrent_writers_every_event_is_seen_exactly_once(world, check):
    seed = int(os.environ.get("FEED_SEED", random.randrange(1 << 30)))
    print(f"     seed {seed} (FEED_SEED reruns it)")
    rng = random.Random(seed)
    writers = [subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", world.db.url(), "-f", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=pgcluster.tool_env())
               for _ in range(WRITERS)]
    for w, p in enumerate(writers):
        p.stdin.write(writer_script(rng, w, 5.0))
        p.stdin.close()
    seen, after, pages, drained, done_at, committed = [], None, 0, False, None, None
    started = time.monotonic()
    while time.monotonic() - started < 30:
        body = page(world.api, after)
        pages += 1
        seen += [(e["id"], e["data"].get(MARK)) for e in body["data"]]
        after = body["next"] or after
        if done_at is None and all(p.poll() is not None for p in writers):
            done_at = time.monotonic()
            committed = {r[0]: r[1] for r in world.db.psql(f"SELECT id, data->>'{MARK}' FROM events "
                                                           f"WHERE data ? '{MARK}'")}
        elif done_at is not None and not body["data"] and set(committed) <= {i for i, _ in seen}:
            # drained: a transaction of another database of the cluster
            # may hold the feed back a while (xids are the cluster's),
            # so an empty page alone does not say it
            drained = True
            break
    errors = [p.stderr.read() for p in writers if p.wait() != 0]
    assert not errors, errors
    if committed is None:
        committed = {r[0]: r[1] for r in world.db.psql(f"SELECT id, data->>'{MARK}' FROM events "
                                                       f"WHERE data ? '{MARK}'")}
    ids = [i for i, _ in seen]
    late = world.db.psql(f"SELECT count(*) FROM events a JOIN events b ON a.id < b.id AND a.xid > b.xid "
                         f"WHERE a.data ? '{MARK}' AND b.data ? '{MARK}'")[0][0]
    print(f"     {len(committed)} events by {WRITERS} writers, {pages} pages, {late} pairs committed out of id order, "
          f"drained {time.monotonic() - (done_at or started):.1f}s after the writers")
    check.ok(int(late) > 0, "the writers committed events out of id order (else this test proves nothing)", late)
    check.ok(drained, "the feed drained within 30 s")
    check.eq(len(ids), len(set(ids)), "no event is handed out twice")
    missed = sorted(set(committed) - set(ids), key=int)
    check.eq(missed, [], "every committed event is handed out")
    check.eq(sorted(set(m for _, m in seen if m) - set(committed.values())), [],
             "no event of a rolled-back transaction is handed out")


def test_old_names_read_under_the_catalogue_after_the_migration(db, tmp, check):
    # Migration 024 undone on a database of this test's own, rows written
    # under the old names, then `relance migrate` applies it again: the
    # stored rows read under the catalogue's names, through a serve started
    # afterwards. (Not the module's serve: the undo drops a column its
    # sessions have plans for, a state no real upgrade goes through.)
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": config(tmp, 100000, 100000)}
    # (the catalogue's check, a trigger since 025, is off while there is
    # no catalogue)
    db.psql("ALTER TABLE events DROP CONSTRAINT IF EXISTS events_kind_catalogued; "
            "ALTER TABLE events DISABLE TRIGGER events_kind_catalogued; DROP TABLE event_types; "
            "ALTER TABLE events DROP COLUMN xid; "
            "DELETE FROM relance_migrations WHERE name LIKE '024\\_%';"
            "INSERT INTO events (kind, occurred_at, data) VALUES "
            "('reply.detected', now(), '{\"old\": 1}'), ('auto_reply.detected', now(), '{\"old\": 2}'), "
            "('unsubscribe.detected', now(), '{\"old\": 3}'), ('bounce.hard', now(), '{\"old\": 4}'), "
            "('bounce.soft', now(), '{\"old\": 5}'), ('bounce.block', now(), '{\"old\": 6}'), "
            "('message.soft_bounce', now(), '{\"old\": 7}'), ('message.blocked', now(), '{\"old\": 8}'), "
            "('message.bounced', now(), '{\"old\": 9, \"hard\": true}'), ('account.paused', now(), '{\"old\": 10}'); "
            "ALTER TABLE events ENABLE TRIGGER events_kind_catalogued")
    r = harness.relance("migrate", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    serve = harness.Serve(env)
    serve.wait_status("/readyz", 200)
    api = Api(serve.base, new_key(env, "crm", "events:read"))
    got, after = {}, None

    def all_ten():
        # polled: the feed holds rows back while an older transaction of
        # the cluster (another test's) is still open
        nonlocal after
        body = page(api, after, limit=500)
        for e in body["data"]:
            if "old" in e["data"]:
                d = {k: v for k, v in e["data"].items() if k != "old"}
                got[e["data"]["old"]] = (e["type"], d)
        after = body["next"] or after
        return len(got) >= 10

    harness.wait_until(all_ten, 30, step=0.3)
    hard, soft, block = ({"bounce": {"kind": k}} for k in ("hard", "soft", "block"))
    check.eq(got, {1: ("reply.received", {}), 2: ("auto_reply.received", {}),
                   3: ("contact.unsubscribed", {"source": "reply"}), 4: ("message.bounced", hard),
                   5: ("message.bounced", soft), 6: ("message.bounced", block), 7: ("message.bounced", soft),
                   8: ("message.bounced", block), 9: ("message.bounced", hard), 10: ("account.paused", {})},
             "each old row under its catalogue name")
    bounced = page(api, None, limit=500, types="message.bounced,contact.unsubscribed")["data"]
    assert serve.stop() == 0
    check.eq(sorted(e["data"]["old"] for e in bounced if "old" in e["data"]), [3, 4, 5, 6, 7, 8, 9],
             "types= keeps only those types")
    r = subprocess.run(["psql", "-X", "-q", db.url(), "-c",
                        "INSERT INTO events (kind, occurred_at) VALUES ('reply.detected', now())"],
                       capture_output=True, text=True, env=pgcluster.tool_env())
    check.ok(r.returncode != 0 and "events_kind_catalogued" in r.stderr, "a type outside the catalogue is refused",
             r.stderr)


def test_bad_arguments_are_400_and_the_scope_is_needed(world, check):
    api = world.api
    problem(check, api.call("GET", "/v1/events?types=reply.detected"), 400, "bad-request", "a type not in the catalogue")
    problem(check, api.call("GET", "/v1/events?types=reply.received,,message.sent"), 400, "bad-request",
            "an empty type")
    problem(check, api.call("GET", "/v1/events?types=Reply%20Received"), 400, "bad-request", "not a type's shape")
    problem(check, api.call("GET", "/v1/events?limit=0"), 400, "bad-request", "limit 0")
    problem(check, api.call("GET", "/v1/events?after=bm90LWEtY3Vyc29y"), 400, "bad-request", "not a feed cursor")
    problem(check, api.call("GET", "/v1/events?after=ZXZlbnRzOnh5eg"), 400, "bad-request",
            "a feed cursor without a position")
    other = Api(world.serve.base, new_key(world.env, "no-events", "contacts:read"))
    problem(check, other.call("GET", "/v1/events"), 403, "forbidden", "a key without events:read")
    st, _, body, _ = api.call("GET", "/v1/events?types=reply.received,message.sent&limit=1")
    check.eq(st, 200, "known types are fine")


def test_pause_resume_and_stop_each_write_their_event(world, check):
    """The command line and the API change enrollments through the same
    SQL (relance_enrollments_change), which writes each change's event in
    the same transaction: the feed shows them, in order."""
    seq = harness.sequence(world.tmp, "two_step", name="feed-changes", pool="main", wait="30d")
    assert relance("apply", seq, env=world.env).returncode == 0
    world.db.psql("INSERT INTO contacts (email) VALUES ('changes@feed.example')")
    r = relance("enroll", "--sequence", "feed-changes", "--contact", "changes@feed.example", env=world.env)
    assert "enrolled 1" in r.stdout, r.stdout + r.stderr
    ident = world.db.psql("SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                          "WHERE c.email = 'changes@feed.example'")[0][0]
    for verb in ("pause", "resume", "stop"):
        r = relance(verb, "--enrollment", ident, env=world.env)
        check.eq(r.returncode, 0, f"relance {verb}")
    # the feed hands an event out once every transaction older than it
    # has ended, in the whole cluster (other tests share it): poll
    seen, after = [], None

    def three_seen():
        nonlocal after
        body = page(world.api, after, limit=500, types="enrollment.paused,enrollment.resumed,enrollment.stopped")
        seen.extend((e["type"], str(e["data"].get("enrollment_id"))) for e in body["data"])
        after = body["next"] or after
        return sum(eid == ident for _, eid in seen) >= 3

    harness.wait_until(three_seen, 30, step=0.3)
    mine = [t for t, eid in seen if eid == ident]
    check.eq(mine, ["enrollment.paused", "enrollment.resumed", "enrollment.stopped"],
             "one event a change, in the order they happened")


def feed_until(api, done, types=None, timeout=30):
    """Every event the feed hands out until done(events) holds: polled,
    since an open transaction anywhere in the cluster holds it back."""
    seen, after = [], None

    def more():
        nonlocal after
        body = page(api, after, limit=500, types=types)
        seen.extend(body["data"])
        after = body["next"] or after
        return done(seen)

    assert harness.wait_until(more, timeout, step=0.2), [(e["type"], e["data"]) for e in seen][-20:]
    return seen


def about(events, contact_id):
    return [e for e in events if e["data"].get("contact", {}).get("id") == contact_id]


def test_import_enroll_and_apply_write_their_events_in_shape(world, check):
    env, db = world.env, world.db
    seq = harness.sequence(world.tmp, "two_step", name="feed-shape", pool="main", wait="30d")
    assert relance("apply", seq, env=env).returncode == 0
    assert relance("apply", seq, env=env).returncode == 0  # unchanged: no event

    csv = os.path.join(world.tmp, "shape.csv")

    def imp(first_name):
        with open(csv, "w") as f:
            f.write(f"email,first_name,crm_id\nshape@feed.example,{first_name},crm-shape\n")
        r = relance("contacts", "import", csv, env=env)
        assert r.returncode == 0, r.stdout + r.stderr

    imp("Ann")
    imp("Ann")  # unchanged: no event
    imp("Anne")
    # a rolled-back import: its change and its event go together
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db.url(), "-c",
                        "BEGIN; SELECT relance_contacts_import_stage(); "
                        "INSERT INTO contacts_import (line, email, fields) VALUES (2, 'undone@feed.example', '{}'), "
                        "(3, 'shape@feed.example', '{\"x\": 1}'); "
                        "SELECT relance_contacts_import_apply(); ROLLBACK;"],
                       capture_output=True, text=True, env=pgcluster.tool_env())
    assert r.returncode == 0, r.stderr
    r = relance("enroll", "--sequence", "feed-shape", "--contact", "shape@feed.example", env=env)
    assert "enrolled 1" in r.stdout, r.stdout + r.stderr
    cid = db.psql("SELECT id FROM contacts WHERE email = 'shape@feed.example'")[0][0]
    eid = db.psql(f"SELECT id FROM enrollments WHERE contact_id = {cid}")[0][0]

    events = feed_until(world.api, lambda ev: any(e["type"] == "enrollment.created" for e in about(ev, cid)))
    mine = about(events, cid)
    contact = {"id": cid, "external_id": "crm-shape", "email": "shape@feed.example"}
    check.eq([(e["type"], e.get("seq")) for e in mine],
             [("contact.created", 1), ("contact.updated", 2), ("enrollment.created", 3)],
             "created, changed (the unchanged import and the rolled-back one write nothing), enrolled: seq 1, 2, 3")
    check.eq([e["data"] for e in mine[:2]], [{"contact": contact}] * 2, "contact.*: the contact")
    check.eq(mine[-1]["data"], {"contact": contact, "enrollment_id": eid, "sequence": "feed-shape", "version": 1},
             "enrollment.created: contact, enrollment_id (a string), sequence, version")
    check.eq([e for e in events if e["data"].get("contact", {}).get("email") == "undone@feed.example"], [],
             "a rolled-back import leaves no event")
    applied = [e for e in feed_until(world.api, lambda ev: any(e["data"].get("sequence") == "feed-shape" for e in ev),
                                     types="sequence.applied")
               if e["data"].get("sequence") == "feed-shape"]
    check.eq(len(applied), 1, "one sequence.applied: an identical apply writes none")
    check.eq({k: applied[0]["data"].get(k) for k in ("sequence", "version", "steps", "result")},
             {"sequence": "feed-shape", "version": 1, "steps": 2, "result": "created"},
             "sequence.applied: name, version, steps")
    check.ok("seq" not in applied[0] and len(applied[0]["data"].get("checksum", "")) >= 32,
             "sequence.applied: a checksum, no seq (no contact)", applied[0])


def test_a_sequence_run_to_its_end_writes_each_send_and_the_completion(db, tmp, check):
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write("transport: capture\nhttp:\n  api_rate_limit: 100000\n  api_rate_burst: 100000\n"
                "pools:\n  main:\n    accounts:\n      - email: bob@acme.example\n        from_name: Bob\n"
                "        smtp: smtps://mail.acme.example\n")
    start = "2026-03-02T09:00:00Z"
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "RELANCE_CAPTURE_DIR": os.path.join(tmp, "capture")}
    seq = harness.sequence(tmp, "two_step", name="feed-run", pool="main", wait="10m")
    assert relance("apply", seq, env=env).returncode == 0
    db.psql("INSERT INTO contacts (email) VALUES ('run@feed.example')")
    r = relance("enroll", "--sequence", "feed-run", "--contact", "run@feed.example",
                env={**env, "RELANCE_TEST_CLOCK": start})
    assert "enrolled 1" in r.stdout, r.stdout + r.stderr
    cid = db.psql("SELECT id FROM contacts WHERE email = 'run@feed.example'")[0][0]
    eid = db.psql(f"SELECT id FROM enrollments WHERE contact_id = {cid}")[0][0]
    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{start}*600"})
    try:
        s.wait_status("/readyz", 200)
        api = Api(s.base, new_key(env, "crm", "events:read"))
        events = about(feed_until(api, lambda ev: any(e["type"] == "enrollment.completed" for e in about(ev, cid))),
                       cid)
    finally:
        assert s.stop() == 0, s.output()[-2000:]
    contact = {"id": cid, "external_id": None, "email": "run@feed.example"}
    check.eq([(e["type"], e["data"].get("step"), e.get("seq")) for e in events],
             [("enrollment.created", None, 1), ("message.sent", "one", 2), ("message.sent", "two", 3),
              ("enrollment.completed", None, 4)],
             "enrolled, each step sent, completed: in order, seq 1 to 4")
    sent = events[1]["data"]
    check.eq({k: sent.get(k) for k in ("contact", "enrollment_id", "sequence", "step", "variant", "account",
                                       "position")},
             {"contact": contact, "enrollment_id": eid, "sequence": "feed-run", "step": "one", "variant": None,
              "account": "bob@acme.example", "position": 0},
             "message.sent: contact, enrollment, sequence, step, variant, the sender account")
    check.eq([e["data"].get("message_id") for e in events[1:3]],
             [r[0] for r in db.psql(f"SELECT message_id FROM messages WHERE enrollment_id = {eid} ORDER BY position")],
             "message.sent: each its Message-ID")
    check.eq({k: events[3]["data"].get(k) for k in ("contact", "enrollment_id", "sequence", "account", "state")},
             {"contact": contact, "enrollment_id": eid, "sequence": "feed-run", "account": "bob@acme.example",
              "state": "completed"}, "enrollment.completed: the enrollment, its sender account")


def test_the_catalogue_is_checked_per_statement(world, check):
    """Since 025 a statement-level trigger, not a foreign key, keeps types
    outside the catalogue out: inserted or updated, one row among good
    ones is enough to refuse the statement."""
    for sql in ("INSERT INTO events (kind, occurred_at) VALUES ('reply.received', now()), ('reply.detected', now())",
                "INSERT INTO events (kind, occurred_at, data) VALUES ('reply.received', now(), '{\"cat\": 1}'); "
                "UPDATE events SET kind = 'bounce.hard' WHERE data ? 'cat'"):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", world.db.url(), "-c", sql],
                           capture_output=True, text=True, env=pgcluster.tool_env())
        check.ok(r.returncode != 0 and "events_kind_catalogued" in r.stderr, f"refused: {sql}", r.stderr)
    check.eq(world.db.psql("SELECT count(*) FROM events WHERE kind NOT IN (SELECT type FROM event_types) "
                           "OR data ? 'cat'"), [["0"]], "nothing of either statement was written")


def test_an_event_about_a_held_contact_does_not_wake_it(world, check):
    """Numbering a contact's event bumps its counter on the contact's row;
    that is no change of the contact, so an enrollment held for a missing
    field stays held, until a value really changes."""
    seq = harness.sequence(world.tmp, "two_step", name="feed-held", pool="main", wait="30d")
    assert relance("apply", seq, env=world.env).returncode == 0
    db = world.db
    cid = db.psql("INSERT INTO contacts (email) VALUES ('held@feed.example') RETURNING id")[0][0]
    db.psql("INSERT INTO enrollments (contact_id, sequence_id, version, state, state_reason, state_changed_at, "
            f"created_at) SELECT {cid}, id, current_version, 'held', 'missing_field:first_name', now(), now() "
            "FROM sequences WHERE name = 'feed-held'")
    db.psql(f"SELECT relance_event('contact.updated', now(), {cid}, NULL, NULL, NULL)")
    state = f"SELECT state, (SELECT event_seq FROM contacts WHERE id = {cid}) FROM enrollments WHERE contact_id = {cid}"
    check.eq(db.psql(state), [["held", "1"]], "an event numbered for the contact leaves its enrollment held")
    db.psql(f"UPDATE contacts SET first_name = 'Held', updated_at = now() WHERE id = {cid}")
    check.eq(db.psql(state)[0][0], "active", "a changed value wakes it")
    eid = db.psql(f"SELECT id FROM enrollments WHERE contact_id = {cid}")[0][0]
    resumed = [e for e in about(feed_until(world.api, lambda ev: any(e["type"] == "enrollment.resumed"
                                                                     for e in about(ev, cid))), cid)
               if e["type"] == "enrollment.resumed"]
    check.eq([(e["seq"], e["data"].get("enrollment_id"), e["data"].get("reason")) for e in resumed],
             [(2, eid, "contact updated")], "waking it writes enrollment.resumed, numbered after the first event")


def test_the_api_writes_contact_events_as_the_import_does(world, check):
    """POST /v1/contacts (the import's SQL), PATCH: created, updated only
    when a value changes."""
    api = Api(world.serve.base, new_key(world.env, "crm-writer", "*"))
    st, _, c, _ = api.call("POST", "/v1/contacts", {"email": "api@feed.example", "external_id": "crm-api"})
    assert st == 201, c
    for patch in ({"first_name": "Api"}, {"first_name": "Api"}, {"title": "CTO"}):
        st, _, body, _ = api.call("PATCH", f"/v1/contacts/{c['id']}", patch)
        assert st == 200, body
    st, _, body, _ = api.call("POST", "/v1/contacts", {"email": "api@feed.example", "title": "CTO"})
    assert st in (200, 201), body  # the same values again: no event
    mine = about(feed_until(api, lambda ev: len(about(ev, c["id"])) >= 3), c["id"])
    check.eq(world.db.psql(f"SELECT count(*) FROM events WHERE contact_id = {c['id']}"), [["3"]],
             "three events about the contact in all")
    contact = {"id": c["id"], "external_id": "crm-api", "email": "api@feed.example"}
    check.eq([(e["type"], e.get("seq"), e["data"]) for e in mine],
             [("contact.created", 1, {"contact": contact}), ("contact.updated", 2, {"contact": contact}),
              ("contact.updated", 3, {"contact": contact})],
             "created, then one update per PATCH that changed a value (the same PATCH again and the same "
             "upsert write none)")


def test_a_suppressed_address_is_an_unsubscribed_contact_from_its_source(world, check):
    """relance suppress add (a list: source import) and POST
    /v1/suppressions (source api) write contact.unsubscribed for the
    contact whose own address it is, once; a domain pattern writes none."""
    api = Api(world.serve.base, new_key(world.env, "crm-suppress", "*"))
    ids = {}
    for who in ("cli", "api", "dom"):
        st, _, c, _ = api.call("POST", "/v1/contacts", {"email": f"{who}@unsub-{who}.example"})
        assert st == 201, c
        ids[who] = c["id"]
    r = relance("suppress", "add", "cli@unsub-cli.example", "--reason", "asked by phone", env=world.env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = relance("suppress", "add", "cli@unsub-cli.example", env=world.env)  # already there: no second event
    assert r.returncode == 0, r.stdout + r.stderr
    st, _, body, _ = api.call("POST", "/v1/suppressions", {"pattern": "api@unsub-api.example"})
    assert st == 201, body
    st, _, body, _ = api.call("POST", "/v1/suppressions", {"pattern": "@unsub-dom.example"})
    assert st == 201, body
    events = feed_until(api, lambda ev: about(ev, ids["api"]) and about(ev, ids["cli"]),
                        types="contact.unsubscribed")
    check.eq([(e["data"]["source"], e["data"].get("reason")) for e in about(events, ids["cli"])],
             [("import", "asked by phone")], "the command line's: source import, its reason, once")
    check.eq([e["data"]["source"] for e in about(events, ids["api"])], ["api"], "the API's: source api")
    check.eq(about(events, ids["api"])[0]["data"]["contact"],
             {"id": ids["api"], "external_id": None, "email": "api@unsub-api.example"}, "with the contact")
    check.eq(about(events, ids["dom"]), [], "a domain pattern is a block, not the contact's request")
