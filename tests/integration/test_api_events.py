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
  - a key without events:read gets 403.
Every answer goes through apiclient's Api.call: it must be what
api/openapi.json describes. Wall time: about 12 s."""
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
    db.psql("ALTER TABLE events DROP CONSTRAINT events_kind_catalogued; DROP TABLE event_types; "
            "ALTER TABLE events DROP COLUMN xid; "
            "DELETE FROM relance_migrations WHERE name LIKE '024\\_%';"
            "INSERT INTO events (kind, occurred_at, data) VALUES "
            "('reply.detected', now(), '{\"old\": 1}'), ('auto_reply.detected', now(), '{\"old\": 2}'), "
            "('unsubscribe.detected', now(), '{\"old\": 3}'), ('bounce.hard', now(), '{\"old\": 4}'), "
            "('bounce.soft', now(), '{\"old\": 5}'), ('bounce.block', now(), '{\"old\": 6}'), "
            "('message.soft_bounce', now(), '{\"old\": 7}'), ('message.blocked', now(), '{\"old\": 8}'), "
            "('message.bounced', now(), '{\"old\": 9, \"hard\": true}'), ('account.paused', now(), '{\"old\": 10}')")
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
