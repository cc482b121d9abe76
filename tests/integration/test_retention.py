"""Retention of personal data against a real PostgreSQL: a sequence's
messages go out through the scheduler's SQL at three times (older than
every retention, between the events' and the messages', recent), replies
come in through relance_inbound as the watcher hands them in, and then
`relance prune` (and serve, by itself) applies the default retention
(events 30 days, messages 365, inbound 90) under the test clock: old
events are gone, old messages and inbound messages keep their rows but
no address nor subject, the recent ones are untouched, a live
enrollment keeps what its follow-ups thread on, `relance stats` and GET
/v1/sequences/{name}/stats say the same before and after, batches hold
at most 1,000 rows, and a pg_dump holds no pruned address."""
import json
import subprocess

import pytest

import harness
from harness import relance

NOW = "2026-03-01T12:00:00Z"
OLD = "2025-01-05T09:00:00Z"   # past every retention
MID = "2025-10-01T09:00:00Z"   # events and inbound past theirs, messages not
NEW = "2026-02-25T09:00:00Z"   # past none
SUBJECT = "Quarterly numbers for Acme"
RENAMED = "old-reply@p1.example"  # the contact's address since changed: only what pruning strips held it


def lit(s):
    return "NULL" if s is None else "'" + str(s).replace("'", "''") + "'"


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    """Sequence ret sent at OLD, MID and NEW, with replies; stats taken
    before pruning; then `relance prune` at NOW. Returns what the tests
    compare."""
    db, tmp = module_db, module_tmp
    env = {"DATABASE_URL": db.url()}
    q = db.psql
    steps = """  - {id: one, subject: "%s", body: Hi.}
  - {id: two, wait: 2 days, body: Again.}
  - {id: three, wait: 2 days, body: Once more.}
  - {id: four, wait: 2 days, body: Last.}
""" % SUBJECT
    path = harness.sequence(tmp, "custom_steps", name="ret", pool="main", steps=steps)
    r = relance("apply", path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = {"pools": [{"name": "main", "accounts": [{"email": "alice@acme.example", "max_bounce_rate": 1}]}]}
    q(f"SELECT relance_sync_accounts({lit(json.dumps(cfg))})")
    q("INSERT INTO leases (name, holder, expires_at) SELECT 'account:' || id, 'test', '2030-01-01' FROM accounts")
    groups = {OLD: [RENAMED, "old-bounce@p2.example", "live@p3.example"],
              MID: ["mid-reply@p4.example", "mid-other@p5.example"],
              NEW: ["new-reply@p6.example", "new-other@p7.example"]}
    q("INSERT INTO contacts (email) VALUES " + ", ".join(f"({lit(e)})" for g in groups.values() for e in g))
    mids = {}

    def send_due(now):
        rows = q(f"SELECT m.message_id, c.email, m.step_id FROM relance_claim_account({lit(now)}, "
                 "(SELECT id FROM accounts WHERE email = 'alice@acme.example'), 1000, 'test') m "
                 "JOIN contacts c ON c.email = m.email")
        for mid, who, step in rows:
            q(f"SELECT * FROM relance_step_outcomes(ARRAY[{lit(mid)}], ARRAY[{lit(now)}]::timestamptz[], "
              f"ARRAY['sent'], ARRAY[{lit('250 2.0.0 Ok: queued for <' + who + '>')}], ARRAY[true], "
              f"ARRAY[{lit(SUBJECT if step == 'one' else 'Re: ' + SUBJECT)}], ARRAY['alice@acme.example'], "
              "ARRAY[NULL]::int[])")
            mids[(who, step)] = mid
        return len(rows)

    uid = [0]

    def inbound(frm, kind, refs, now, **kw):
        uid[0] += 1
        r = q(f"SELECT relance_inbound('alice@acme.example', 'INBOX', 1, {uid[0]}, 'in{uid[0]}.{frm}', "
              f"ARRAY[{', '.join(lit(x) for x in refs)}]::text[], {lit(frm)}, {lit(kind)}, "
              f"{lit(kw.get('reason', 'none'))}, false, "
              f"ARRAY[{', '.join(lit(x) for x in kw.get('recipients', []))}]::text[], NULL, {lit(now)})")
        return json.loads(r[0][0])["effect"]

    def at(t, h):
        return t.replace("T09:", f"T{h:02d}:")

    for t in (OLD, MID, NEW):
        r = relance("enroll", "--sequence", "ret", *[x for w in groups[t] for x in ("--contact", w)],
                    env={**env, "RELANCE_TEST_CLOCK": t})
        assert f"enrolled {len(groups[t])}," in r.stdout, r.stdout + r.stderr
        send_due(t)
        if t == OLD:
            assert inbound(RENAMED, "human_reply", [mids[(RENAMED, "one")]], at(t, 11)) == "replied"
            assert inbound("mailer-daemon@p2.example", "hard_bounce", [mids[("old-bounce@p2.example", "one")]],
                           at(t, 12), reason="user_unknown", recipients=["old-bounce@p2.example"]) == "bounced"
        elif t == MID:
            # a colleague answers for mid-reply: matched by its references
            assert inbound("assistant@p4.example", "human_reply", [mids[("mid-reply@p4.example", "one")]],
                           at(t, 11)) == "replied"
            assert inbound("mid-other@p5.example", "auto_reply", [mids[("mid-other@p5.example", "one")]],
                           at(t, 12)) == "auto_reply"
        else:
            assert inbound("new-reply@p6.example", "human_reply", [mids[("new-reply@p6.example", "one")]],
                           at(t, 11)) == "replied"
    live = q("SELECT e.state, count(m.*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
             "JOIN messages m ON m.enrollment_id = e.id WHERE c.email = 'live@p3.example' GROUP BY 1")
    assert live == [["active", "3"]], f"live@ is still active with three steps sent: {live}"
    # the replier's address changes: the old one is left only where retention prunes
    q(f"UPDATE contacts SET email = 'renamed@p1.example' WHERE email = {lit(RENAMED)}")

    def stats():
        r = relance("stats", "ret", "--json", env=env)
        assert r.returncode == 0, r.stderr
        api = q("SELECT status, body FROM relance_api_sequence_stats('ret', NULL)")
        return json.loads(r.stdout), (api[0][0], json.loads(api[0][1]))

    def snapshot():
        return {
            "events": q("SELECT id, kind, occurred_at FROM events ORDER BY id"),
            "messages": q("SELECT m.id, c.email, m.step_id, m.state, m.message_id, m.recipient, m.sender, m.subject, "
                          "m.reply, m.created_at, m.sent_at, m.pruned_at FROM messages m "
                          "JOIN enrollments e ON e.id = m.enrollment_id JOIN contacts c ON c.id = e.contact_id "
                          "ORDER BY m.id"),
            "inbound": q("SELECT id, sender, message_id, kind, effect, effect_reason, enrollment_id, matched_message, "
                         "detected_at, pruned_at FROM inbound_messages ORDER BY id"),
        }

    def dump():
        return subprocess.run(["pg_dump", "--data-only", db.url()], capture_output=True, text=True,
                              check=True).stdout.lower()

    before = {"stats": stats(), "rows": snapshot(), "dump": dump()}
    r = relance("prune", env={**env, "RELANCE_TEST_CLOCK": NOW})
    assert r.returncode == 0, r.stdout + r.stderr
    after = {"stats": stats(), "rows": snapshot(), "dump": dump(), "out": r.stdout}
    return {"env": env, "db": db, "before": before, "after": after, "mids": mids}


def older(ts, than):
    return ts.replace(" ", "T")[:19] < than[:19]


def test_events_past_their_retention_are_deleted_and_newer_ones_kept(world):
    b, a = world["before"]["rows"]["events"], world["after"]["rows"]["events"]
    # 30 days before NOW
    cut = "2026-01-30T12:00:00Z"
    old = [e for e in b if older(e[2], cut)]
    assert old and len(old) < len(b), f"the fixture has events on both sides: {len(old)} of {len(b)}"
    assert a == [e for e in b if not older(e[2], cut)], "exactly the events older than 30 days went"
    assert f"{len(old)} events deleted" in world["after"]["out"], world["after"]["out"]


def test_old_messages_keep_their_row_but_lose_addresses_subject_and_reply(world):
    b, a = world["before"]["rows"]["messages"], world["after"]["rows"]["messages"]
    assert [m[0] for m in a] == [m[0] for m in b], "every message keeps its row"
    pruned = [m for m in a if m[11]]
    want = {(RENAMED.replace("old-reply", "renamed"), "one"), ("old-bounce@p2.example", "one")}
    assert {(m[1], m[2]) for m in pruned} == want, "the messages of OLD's ended enrollments are pruned"
    for m in pruned:
        before = next(x for x in b if x[0] == m[0])
        assert (m[5], m[6], m[7], m[8]) == ("pruned@pruned.invalid", "", "", ""), \
            f"message {m[0]}: no recipient, sender, subject nor reply left: {m}"
        assert (m[2], m[3], m[4], m[9], m[10]) == (before[2], before[3], before[4], before[9], before[10]), \
            f"message {m[0]}: step, state, Message-ID and times kept"
    for m in a:
        if not m[11]:
            assert m == next(x for x in b if x[0] == m[0]), f"message {m[0]} not pruned is untouched"


def test_a_live_enrollments_old_message_keeps_what_its_follow_ups_thread_on(world):
    a = world["after"]["rows"]["messages"]
    live = [m for m in a if m[1] == "live@p3.example"]
    first = next(m for m in live if m[2] == "one")
    assert older(first[9], "2025-03-01T12:00:00Z"), "live@'s first message is past the messages' retention"
    assert first[11] == "" and first[5] == "live@p3.example" and first[7] == SUBJECT, \
        f"kept whole: the follow-ups use its Message-ID and subject: {first}"
    # what the claim hands the sender for live@'s next step
    row = world["db"].psql("SELECT thread_ids, first_subject FROM relance_claim_account("
                           f"{lit(NOW)}, (SELECT id FROM accounts), 10, 'test') WHERE email = 'live@p3.example'")
    assert row and first[4] in row[0][0] and row[0][1] == SUBJECT, f"step four threads on step one: {row}"


def test_old_inbound_messages_keep_their_row_but_lose_sender_and_message_id(world):
    b, a = world["before"]["rows"]["inbound"], world["after"]["rows"]["inbound"]
    assert [i[0] for i in a] == [i[0] for i in b], "every inbound message keeps its row"
    cut = "2025-12-01T12:00:00Z"  # 90 days before NOW
    for i in a:
        before = next(x for x in b if x[0] == i[0])
        if older(i[8], cut):
            assert i[9] and (i[1], i[2], i[5]) == ("pruned@pruned.invalid", "", ""), \
                f"inbound {i[0]} from {before[1]}: pruned: {i}"
            assert (i[3], i[4], i[6], i[7]) == (before[3], before[4], before[6], before[7]), \
                f"inbound {i[0]}: kind, effect and what it matched kept"
        else:
            assert i == before, f"inbound {i[0]} newer than 90 days is untouched"
    assert sum(1 for i in a if i[9]) == 4, "OLD's two and MID's two are pruned"


def test_stats_are_the_same_before_and_after(world):
    (cli_b, api_b), (cli_a, api_a) = world["before"]["stats"], world["after"]["stats"]
    assert api_b[0] == "200" and cli_b["total"]["replied"] == 3 and cli_b["total"]["bounced"] == 1 \
        and cli_b["total"]["auto_replied"] == 1, f"the fixture counts replies and bounces: {cli_b}"
    assert cli_a == cli_b, "relance stats: the same figures after pruning"
    assert api_a == api_b, "GET /v1/sequences/ret/stats: the same document after pruning"


def test_a_pg_dump_holds_no_pruned_address(world):
    before, after = world["before"]["dump"], world["after"]["dump"]
    for s in (RENAMED, "assistant@p4.example", "mailer-daemon@p2.example"):
        assert s in before, f"before: the dump holds {s}"
        assert s not in after, f"after: {s} is nowhere in the database: " + \
            str([ln for ln in after.splitlines() if s in ln][:5])
    assert "new-reply@p6.example" in after and "live@p3.example" in after, "what is kept is still there"


def old_events(db, n, when=OLD):
    db.psql(f"INSERT INTO events (kind, occurred_at, data) SELECT 'contact.created', {lit(when)}, "
            f"jsonb_build_object('contact_id', g) FROM generate_series(1, {n}) g")


def test_prune_works_in_batches_of_at_most_a_thousand(db):
    env = {"DATABASE_URL": db.url(), "RELANCE_TEST_CLOCK": NOW}
    old_events(db, 2500)
    old_events(db, 3, NEW)
    r = relance("prune", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pruned in 3 batches: 2500 events deleted;"), r.stdout
    batch = db.psql(f"SELECT events, more FROM relance_retention_prune({lit(NOW)}, 30 * 86400, 0, 0, 1000)")
    assert batch == [["0", "f"]], f"nothing left: {batch}"
    assert db.psql("SELECT count(*) FROM events")[0][0] == "3", "the recent ones stay"
    r = relance("prune", env=env)
    assert r.stdout.startswith("pruned in 1 batch: 0 events deleted;"), r.stdout


def test_delivered_webhooks_notes_go_with_the_events_retention(db):
    """webhook_delivered has no foreign key to its events: it is pruned by
    its own time, under the events' retention, in batches."""
    rows = [(OLD, 1200), (NEW, 3)]
    for at, n in rows:
        db.psql(f"INSERT INTO webhook_delivered SELECT 1, {lit(at)}, g, ARRAY[g], ARRAY[g], ARRAY[1], ARRAY[200] "
                f"FROM generate_series(1, {n}) g")
    r = relance("prune", env={"DATABASE_URL": db.url(), "RELANCE_TEST_CLOCK": NOW})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pruned in 2 batches:"), f"a second batch for the rest: {r.stdout}"
    left = db.psql("SELECT delivered_at = " + lit(NEW) + ", count(*) FROM webhook_delivered GROUP BY 1")
    assert left == [["t", "3"]], f"the old notes went, the recent ones stay: {left}"


def test_forever_keeps_everything(db, tmp):
    old_events(db, 5)
    config = f"{tmp}/relance.yaml"
    with open(config, "w") as f:
        f.write("retention:\n  events: forever\n  messages: 0\n  inbound: 2 weeks\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_TEST_CLOCK": NOW, "RELANCE_CONFIG": config}
    r = relance("config", env=env)
    assert "retention: events forever, messages forever, inbound 14 days" in r.stdout, r.stdout + r.stderr
    r = relance("prune", env=env)
    assert r.returncode == 0 and "0 events deleted" in r.stdout, r.stdout + r.stderr
    assert db.psql("SELECT count(*) FROM events")[0][0] == "5"


def test_serve_prunes_by_itself_under_the_test_clock(db, tmp, serve):
    old_events(db, 1200)
    old_events(db, 2, NEW)
    s = serve({"DATABASE_URL": db.url(), "RELANCE_STATE_DIR": tmp, "RELANCE_TEST_CLOCK": NOW})
    s.wait_status("/readyz", 200)
    assert harness.wait_until(lambda: db.psql("SELECT count(*) FROM events")[0][0] == "2", 15), \
        "serve pruned the old events within 15 s: " + s.output()[-2000:]
    assert harness.wait_until(lambda: "pruned" in s.output(), 5), s.output()
    line = next(ln for ln in s.output().splitlines() if "pruned" in ln)
    assert "events=1200" in line and "batches=2" in line, line
    assert s.stop() == 0, s.output()
