"""relance_inbound (sql/functions/inbound.sql) against a real PostgreSQL: what a
fetched and classified inbound message does. Messages are sent by the
scheduler's own SQL (relance_claim_account, then relance_step_outcome
'sent'), then every kind of inbound message is handed in as the watcher
does and the enrollments, suppressions, accounts and events are checked:
replies (by Message-ID and by sender), stop_on without reply, company
stop on and off, unsubscribe, auto-reply return dates in the contact's
zone (also while the next step is in flight), hard bounces, three soft
bounces, blocks pausing the account, our own accounts and messages
ignored, idempotence, and a reply winning the race with the claim in
both orders."""
import json
import os
import subprocess
import time

import pytest

import harness
import pgcluster
from harness import relance

STATE = {}


def q(sql):
    return STATE["db"].psql(sql)


def one(sql):
    rows = q(sql)
    return rows[0][0] if rows else None


def lit(s):
    if s is None:
        return "NULL"
    return "'" + str(s).replace("'", "''") + "'"


def arr(xs):
    return "ARRAY[" + ", ".join(lit(x) for x in xs) + "]::text[]"


ALL_DAYS = "[mon, tue, wed, thu, fri, sat, sun]"
SEQS = {
    # name: (pool, schedule, stop_on)
    "plain": ("main", f'{{timezone: UTC, window: "00:00-24:00", days: {ALL_DAYS}, jitter: 0}}', None),
    "company": ("main", f'{{timezone: UTC, window: "00:00-24:00", days: {ALL_DAYS}, jitter: 0}}',
                "[reply, bounce, unsubscribe, company_reply]"),
    "noreply": ("main", f'{{timezone: UTC, window: "00:00-24:00", days: {ALL_DAYS}, jitter: 0}}',
                "[bounce, unsubscribe]"),
    "zoned": ("tokyo", '{timezone: contact, fallback_timezone: Europe/Paris, window: "09:00-17:00", '
              'days: [mon, tue, wed, thu, fri], jitter: 0}', None),
    "blk": ("blk", f'{{timezone: UTC, window: "00:00-24:00", days: {ALL_DAYS}, jitter: 0}}', None),
}
ACCOUNTS = {"main": "alice@acme.example", "tokyo": "tk@ours.example", "blk": "blk@ours.example",
            "other": "carol@ours.example"}
# a high max_bounce_rate: the hard bounces below must not pause alice
CONTACTS = {
    "reply@r.example": (["plain"], "r.example", None),
    "bysender@s.example": (["plain"], "s.example", None),
    "noreply@n.example": (["noreply"], "n.example", None),
    "ann@corp.example": (["company"], "corp.example", None),
    "ben@corp.example": (["company"], "corp.example", None),
    "cid@corp.example": (["company"], "corp.example", None),
    "dan@corp.example": (["plain"], "corp.example", None),
    "fay@free.example": (["company"], None, None),
    "gus@free.example": (["company"], None, None),
    "eva@firm.example": (["plain"], "firm.example", None),
    "eli@firm.example": (["plain"], "firm.example", None),
    "unsub@u.example": (["plain", "company"], "u.example", None),
    "hard@h.example": (["plain", "company"], "h.example", None),
    "hard2@h2.example": (["plain"], "h2.example", None),
    "soft@f.example": (["plain"], "f.example", None),
    "block@b.example": (["blk"], "b.example", None),
    "block2@b2.example": (["blk"], "b2.example", None),
    "own@o.example": (["plain"], "o.example", None),
    "other@x.example": (["plain"], "x.example", None),
    "stranger@other.example": ([], "other.example", None),
    "race1@race.example": (["plain"], "race1.example", None),
    "race2@race.example": (["plain"], "race2.example", None),
    "race3@race.example": (["plain"], "race3.example", None),
    "away1@tk.example": (["zoned"], "tk1.example", "Asia/Tokyo"),
    "away2@tk.example": (["zoned"], "tk2.example", "Asia/Tokyo"),
    "away3@tk.example": (["zoned"], "tk3.example", "Asia/Tokyo"),
    "away4@tk.example": (["zoned"], "tk4.example", "Asia/Tokyo"),
}
START = "2026-03-02T09:00:00Z"  # a Monday
TUE_TK = "2026-03-03T01:00:00Z"


def claim(now, account):
    return [row[0] for row in q(f"SELECT message_id FROM relance_claim_account({lit(now)}, (SELECT id FROM accounts "
                                f"WHERE email = {lit(account)}), 1000, 'test')")]


def send_due(now, account, variant="NULL"):
    """Claims and sends what is due, as the scheduler would."""
    mids = claim(now, account)
    for mid in mids:
        q(f"SELECT relance_step_outcome({lit(mid)}, {lit(now)}, 'sent', '250 2.0.0 Ok', true, 'Hello', "
          f"{lit(account)}, {variant})")
    return mids


@pytest.fixture(scope="module", autouse=True)
def world(module_db, module_tmp):
    """The sequences applied, the accounts synced and leased to 'test', the
    contacts enrolled and every step one sent. The cases below hand in
    inbound messages in this one world, in order: later ones read what
    earlier ones did (replied enrollments stay unclaimed, events counted)."""
    STATE["db"], STATE["env"] = module_db, {"DATABASE_URL": module_db.url()}
    tmp, env = module_tmp, STATE["env"]
    check = harness.Checks()
    for name, (pool, sched, stop_on) in SEQS.items():
        path = os.path.join(tmp, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(f"name: {name}\nsender_pool: {pool}\nschedule: {sched}\n"
                    + (f"stop_on: {stop_on}\n" if stop_on else "")
                    + "steps:\n  - {id: one, subject: Hello, body: Hi.}\n  - {id: two, wait: 2 days, body: Again.}\n"
                    "  - {id: three, wait: 2 days, body: Last.}\n")
        r = relance("apply", path, env=env)
        check.eq(r.returncode, 0, f"apply {name}")

    cfg = {"pools": [{"name": p, "accounts": [{"email": a, "max_policy_blocks": 2, "max_bounce_rate": 0.5}]}
                     for p, a in ACCOUNTS.items()]}
    q(f"SELECT relance_sync_accounts({lit(json.dumps(cfg))})")
    q("INSERT INTO leases (name, holder, expires_at) SELECT 'account:' || id, 'test', now() + interval '1 day' "
      "FROM accounts")

    # contact -> (sequences, company_domain, timezone)
    q("INSERT INTO contacts (email, company_domain, timezone) VALUES "
      + ", ".join(f"({lit(e)}, {lit(d)}, {lit(z)})" for e, (_, d, z) in CONTACTS.items()))
    for seq in SEQS:
        who = [e for e, (seqs, _, _) in CONTACTS.items() if seq in seqs]
        args = ["enroll", "--sequence", seq, "--allow-parallel"]
        for w in who:
            args += ["--contact", w]
        r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
        check.ok(f"enrolled {len(who)}," in r.stdout, f"enroll into {seq}", r.stdout + r.stderr)


    n_main = sum(len([x for x in seqs if SEQS[x][0] == "main"]) for seqs, _, _ in CONTACTS.values())
    check.eq(len(send_due(START, "alice@acme.example")), n_main, f"step one goes out from alice to the {n_main} enrollments")
    check.eq(len(send_due(START, "blk@ours.example")), 2, "and from blk")
    # Tokyo: Monday 09:00Z is 18:00 there; step one goes Tuesday 10:00 JST
    check.eq(send_due(START, "tk@ours.example"), [], "nothing in Tokyo's evening")
    check.eq(len(send_due(TUE_TK, "tk@ours.example")), 4, "step one goes out in Tokyo on Tuesday morning")


    assert not check.failures, f"setting the world up: {check.failures}"


def mid_of(email, position=0):
    return one(f"SELECT m.message_id FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
               f"JOIN contacts c ON c.id = e.contact_id WHERE c.email = {lit(email)} AND m.position = {position} "
               f"ORDER BY e.id LIMIT 1")


def enrollment_states(email):
    return [r[0] for r in q(f"SELECT e.state || ':' || e.state_reason FROM enrollments e JOIN contacts c "
                            f"ON c.id = e.contact_id WHERE c.email = {lit(email)} ORDER BY e.id")]


uid = [100]


def inbound(frm, kind, refs=(), account="alice@acme.example", message_id=None, reason="none", block=False,
            recipients=(), return_date=None, now="2026-03-02T12:00:00Z", folder="INBOX", uidvalidity=1, the_uid=None):
    uid[0] += 1
    if message_id is None:
        message_id = f"in{uid[0]}@prospect.example"
    sql = (f"SELECT relance_inbound({lit(account)}, {lit(folder)}, {uidvalidity}, "
           f"{the_uid if the_uid is not None else uid[0]}, {lit(message_id)}, {arr(refs)}, {lit(frm)}, {lit(kind)}, "
           f"{lit(reason)}, {'true' if block else 'false'}, {arr(recipients)}, "
           f"{lit(return_date)}::date, {lit(now)})")
    return json.loads(one(sql))


def events(kind, email):
    """Events of kind ("message.bounced:hard": of that bounce kind) about email."""
    kind, _, bounce = kind.partition(":")
    where = f" AND data->'bounce'->>'kind' = {lit(bounce)}" if bounce else ""
    return int(one(f"SELECT count(*) FROM events WHERE kind = {lit(kind)} AND data->'contact'->>'email' = {lit(email)}{where}"))


def suppressed(email):
    return one(f"SELECT reason FROM suppressions WHERE pattern = {lit(email)}")


def test_each_kind_of_inbound_message_does_what_it_must(check):
    # (what, whose enrollments, from, kind, refs, extra args, effect, matched_by,
    #  their enrollment states after, suppression reason, event)
    CASES = [
        ("a reply by Message-ID stops the enrollment", "reply@r.example", "reply@r.example", "human_reply",
         [mid_of("reply@r.example")], {}, "replied", "message-id", ["replied:reply"], None, "reply.received"),
        ("a reply matched by its sender alone", "bysender@s.example", "bysender@s.example", "human_reply", [], {},
         "replied", "sender", ["replied:reply"], None, "reply.received"),
        ("stop_on without reply: recorded, the sequence goes on", "noreply@n.example", "noreply@n.example",
         "human_reply", [mid_of("noreply@n.example")], {}, "replied", "message-id", ["active:enrolled"], None,
         "reply.received"),
        ("unsubscribe: suppressed, every enrollment of the contact stops", "unsub@u.example", "unsub@u.example",
         "unsubscribe_request", [], {}, "unsubscribed", "sender",
         ["unsubscribed:address suppressed: unsubscribe request", "unsubscribed:unsubscribe request"],
         "unsubscribe request", "contact.unsubscribed"),
        ("an auto-reply without a return date changes nothing", "other@x.example", "other@x.example", "auto_reply",
         [mid_of("other@x.example")], {}, "auto_reply", "message-id", ["active:enrolled"], None, "auto_reply.received"),
        ("a hard bounce by the returned Message-ID", "hard@h.example", "mailer-daemon@mx.h.example", "hard_bounce",
         [mid_of("hard@h.example")], {"reason": "user_unknown", "recipients": ["hard@h.example"]}, "bounced",
         "message-id", ["bounced:hard bounce (user_unknown)", "bounced:address suppressed: hard bounce (user_unknown)"],
         "hard bounce (user_unknown)", "message.bounced:hard"),
        ("a hard bounce by its failed recipient", "hard2@h2.example", "postmaster@h2.example", "hard_bounce", [],
         {"reason": "host_unknown", "recipients": ["hard2@h2.example"]}, "bounced", "recipient",
         ["bounced:hard bounce (host_unknown)"], "hard bounce (host_unknown)", "message.bounced:hard"),
        ("a block: counted against the account, the address is kept", "block@b.example", "mailer-daemon@mx.b.example",
         "soft_bounce", [mid_of("block@b.example")],
         {"account": "blk@ours.example", "reason": "spam", "block": True, "recipients": ["block@b.example"]},
         "blocked", "message-id", ["active:enrolled"], None, "message.bounced:block"),
        ("mail from the account itself is never a reply", "own@o.example", "alice@acme.example", "human_reply",
         [mid_of("own@o.example")], {}, "ignored", None, ["active:enrolled"], None, None),
        ("mail from another of our accounts is never a reply", "own@o.example", "tk@ours.example", "human_reply",
         [mid_of("own@o.example")], {}, "ignored", None, ["active:enrolled"], None, None),
        ("our own follow-up copied into the mailbox is not a reply", "own@o.example", "own@o.example", "human_reply",
         [mid_of("own@o.example")], {"message_id": mid_of("own@o.example")}, "ignored", None, ["active:enrolled"],
         None, None),
        ("'other' is recorded and does nothing", "other@x.example", "other@x.example", "other",
         [mid_of("other@x.example")], {}, "ignored", None, ["active:enrolled"], None, None),
        ("a stranger's mail matches nothing", "stranger@other.example", "stranger@other.example", "human_reply",
         ["nope@nowhere.example"], {}, "unmatched", None, [], None, None),
        ("a Message-ID sent from another account does not match", "other@x.example", "other@x.example", "human_reply",
         [mid_of("block2@b2.example")], {"account": "tk@ours.example"}, "unmatched", None, ["active:enrolled"], None,
         None),
    ]
    for what, who, frm, kind, refs, extra, effect, by, states, supp, event in CASES:
        before = events(event, who) if event else 0
        got = inbound(frm, kind, refs, **extra)
        check.eq((got["effect"], got.get("matched_by")), (effect, by), f"{what}: effect {effect}")
        check.eq(enrollment_states(who), states, f"{what}: enrollment states")
        check.eq(suppressed(who), supp, f"{what}: suppression")
        if event:
            check.eq(events(event, who) - before, 1, f"{what}: one {event} event")
        if by:
            check.ok(got["message"] is not None and got["enrollment"] is not None, f"{what}: names the message and enrollment",
                     got)

    # the returned message of a hard bounce is bounced; the enrollment is out of the due index
    check.eq(q("SELECT m.state FROM messages m WHERE m.message_id = " + lit(mid_of("hard@h.example"))), [["bounced"]],
             "hard bounce: the returned message is bounced")
    check.eq(one("SELECT count(*) FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE c.email IN "
             "('reply@r.example', 'hard@h.example', 'unsub@u.example') AND e.next_send_at IS NOT NULL"), "0",
             "stopped enrollments have no next send time")
    r = relance("enroll", "--sequence", "noreply", "--contact", "unsub@u.example", "--verbose",
                env=STATE["env"])
    check.ok("skipped unsub@u.example: suppressed" in r.stdout, "an unsubscribed address is never enrolled again", r.stdout)

    # the event carries what the CRM needs
    ev = json.loads(one("SELECT data FROM events WHERE kind = 'reply.received' AND data->'contact'->>'email' = 'reply@r.example'"))
    check.eq({k: ev.get(k) for k in ("message_id", "contact", "account", "sequence", "step", "position", "detected_at")},
             {"message_id": mid_of("reply@r.example"),
              "contact": {"id": one("SELECT id FROM contacts WHERE email = 'reply@r.example'"), "external_id": None,
                          "email": "reply@r.example"}, "account": "alice@acme.example",
              "sequence": "plain", "step": "one", "position": 0, "detected_at": "2026-03-02T12:00:00+00:00"},
             "reply.received: message, contact, account, sequence, step, detected at")
    check.ok(isinstance(ev.get("enrollment_id"), str) and "variant" in ev, "reply.received: enrollment id and variant", ev)
    check.eq(one("SELECT data->>'source' FROM events WHERE kind = 'contact.unsubscribed' "
                 "AND data->'contact'->>'email' = 'unsub@u.example'"), "reply", "contact.unsubscribed: source reply")
    check.eq(q("SELECT data->'bounce'->>'kind', count(*) FROM events WHERE kind = 'message.bounced' "
               "AND data->'contact'->>'email' IN ('hard@h.example', 'hard2@h2.example', 'block@b.example') GROUP BY 1 ORDER BY 1"),
             [["block", "1"], ["hard", "2"]], "message.bounced: bounce.kind hard or block")



def test_a_company_reply_stops_the_colleagues_only_where_asked(check):
    got = inbound("ann@corp.example", "human_reply", [mid_of("ann@corp.example")])
    check.eq(got["effect"], "replied", "company: ann's reply")
    check.eq({e: enrollment_states(e) for e in ("ann@corp.example", "ben@corp.example", "cid@corp.example",
                                            "dan@corp.example")},
             {"ann@corp.example": ["replied:reply"], "ben@corp.example": ["replied:company reply"],
              "cid@corp.example": ["replied:company reply"], "dan@corp.example": ["active:enrolled"]},
             "company_reply: colleagues in a company_reply sequence stop; one in a sequence without it goes on")
    check.eq(int(one("SELECT count(*) FROM events WHERE kind = 'enrollment.stopped' AND data->>'reason' = 'company reply'")),
             2, "company_reply: one enrollment.stopped event per colleague")
    got = inbound("fay@free.example", "human_reply", [mid_of("fay@free.example")])
    check.eq((enrollment_states("fay@free.example"), enrollment_states("gus@free.example")),
             (["replied:reply"], ["active:enrolled"]), "company_reply with free mail (no company domain): only the contact")
    got = inbound("eva@firm.example", "human_reply", [mid_of("eva@firm.example")])
    check.eq((enrollment_states("eva@firm.example"), enrollment_states("eli@firm.example")),
             (["replied:reply"], ["active:enrolled"]), "without company_reply a colleague's reply stops only its sender")



def test_an_inbound_message_counts_once(check):
    n_events = one("SELECT count(*) FROM events")
    n_inbound = one("SELECT count(*) FROM inbound_messages")
    first = inbound("reply@r.example", "human_reply", [mid_of("reply@r.example")], message_id="dup1@prospect.example",
                    the_uid=9001)
    DUPS = [
        ("the same message again", dict(message_id="dup1@prospect.example", the_uid=9001)),
        ("after a UIDVALIDITY change (new place, same Message-ID)",
         dict(message_id="dup1@prospect.example", the_uid=3, uidvalidity=2)),
        ("in another folder", dict(message_id="dup1@prospect.example", folder="Junk", the_uid=9001)),
    ]
    for what, kw in DUPS:
        got = inbound("reply@r.example", "human_reply", [mid_of("reply@r.example")], **kw)
        check.eq(got["effect"], "duplicate", f"duplicate: {what}")
    B = [mid_of("bysender@s.example")]
    nomid = inbound("bysender@s.example", "human_reply", B, message_id="", the_uid=9100)
    again = inbound("bysender@s.example", "human_reply", B, message_id="", the_uid=9100)
    other = inbound("bysender@s.example", "human_reply", B, message_id="", the_uid=9101)
    check.eq((nomid["effect"], again["effect"], other["effect"]), ("replied", "duplicate", "replied"),
             "without a Message-ID the mailbox place dedupes")
    check.eq(int(one("SELECT count(*) FROM inbound_messages")) - int(n_inbound), 3, "duplicates are not recorded again")
    check.eq(int(one("SELECT count(*) FROM events")) - int(n_events), 3, "duplicates write no event")



def test_the_third_soft_bounce_is_hard(check):
    effects = [inbound("mailer-daemon@mx.f.example", "soft_bounce", [mid_of("soft@f.example")], reason="mailbox_full",
                       recipients=["soft@f.example"])["effect"] for _ in range(3)]
    check.eq(effects, ["soft_bounce", "soft_bounce", "bounced"], "soft bounces: two counted, the third is hard")
    check.eq(suppressed("soft@f.example"), "third soft bounce (mailbox_full)", "the third soft bounce suppresses")
    check.eq(enrollment_states("soft@f.example"), ["bounced:third soft bounce (mailbox_full)"], "and bounces the enrollment")
    check.eq(events("message.bounced:soft", "soft@f.example"), 2, "two message.bounced events of kind soft")



def test_blocks_pause_the_account_never_the_address(check):
    # the account pauses after max_policy_blocks (2): the table's case
    # handed the first block in; run alone, this case hands it in itself
    if events("message.bounced:block", "block@b.example") == 0:
        inbound("mailer-daemon@mx.b.example", "soft_bounce", [mid_of("block@b.example")], account="blk@ours.example",
                reason="spam", block=True, recipients=["block@b.example"])
    got = inbound("mailer-daemon@mx.b2.example", "soft_bounce", [mid_of("block2@b2.example")], account="blk@ours.example",
                  reason="policy", block=True)
    check.eq(got["effect"], "blocked", "second block")
    check.eq(q("SELECT state, state_reason LIKE '2 policy blocks within 24 h%' FROM accounts WHERE email = 'blk@ours.example'"),
             [["paused", "t"]], "two DSN blocks pause the account (max_policy_blocks 2)")
    check.eq(one("SELECT count(*) FROM suppressions WHERE pattern LIKE '%b.example' OR pattern LIKE '%b2.example'"), "0",
             "blocks never suppress")
    check.eq(q("SELECT state FROM accounts WHERE email = 'alice@acme.example'"), [["active"]], "other accounts go on")



def test_an_auto_reply_return_date_moves_the_next_step_in_the_contacts_zone(check):
    # Step two of the zoned sequence is due Thursday 2026-03-05 10:00 JST.
    AUTO = [
        # contact, return date, next step not before (UTC): 09:00 JST is 00:00Z
        ("away1@tk.example", "2026-03-09", "2026-03-09T00:00:00Z"),      # a Monday: its window opening
        ("away2@tk.example", "2026-03-07", "2026-03-09T00:00:00Z"),      # a Saturday: Monday's
        ("away3@tk.example", "2026-03-04", "2026-03-05T01:00:00Z"),      # earlier than planned: unchanged
    ]
    for who, ret, want in AUTO:
        got = inbound(who, "auto_reply", [mid_of(who)], account="tk@ours.example", return_date=ret,
                      now="2026-03-03T05:00:00Z")
        check.eq(got["effect"], "auto_reply", f"auto-reply from {who}")
        check.eq(one("SELECT to_char(e.next_send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM enrollments e "
                 f"JOIN contacts c ON c.id = e.contact_id WHERE c.email = {lit(who)}"), want,
                 f"back on {ret}: next step at {want}")
        check.eq(enrollment_states(who), ["active:enrolled"], f"an auto-reply is not a reply ({who})")
    THU_TK = "2026-03-05T01:00:00Z"
    taken = claim(THU_TK, "tk@ours.example")
    check.eq(sorted(one(f"SELECT c.email FROM messages m JOIN enrollments e ON e.id = m.enrollment_id JOIN contacts c "
                    f"ON c.id = e.contact_id WHERE m.message_id = {lit(x)}") for x in taken),
             ["away3@tk.example", "away4@tk.example"], "the claim holds back the contacts who are away")
    # away4's step two is in flight when its auto-reply (back Thursday 12th) arrives
    got = inbound("away4@tk.example", "auto_reply", [mid_of("away4@tk.example")], account="tk@ours.example",
                  return_date="2026-03-12", now=THU_TK)
    for x in taken:
        q(f"SELECT relance_step_outcome({lit(x)}, {lit(THU_TK)}, 'sent', '250 Ok', true, 'Hello', 'tk@ours.example', NULL)")
    got_at = one("SELECT to_char(e.next_send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM enrollments e "
                 "JOIN contacts c ON c.id = e.contact_id WHERE c.email = 'away4@tk.example'")
    check.eq(got_at, "2026-03-12T00:00:00Z", "a step in flight: the next one still waits for the return (not Monday the 9th)")
    check.eq(one("SELECT to_char(e.next_send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM enrollments e "
             "JOIN contacts c ON c.id = e.contact_id WHERE c.email = 'away3@tk.example'"), "2026-03-09T00:00:00Z",
             "an earlier return date does not hold anything back")



def psql_bg(sql):
    return subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", STATE["db"].url(), "-c", sql],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pgcluster.tool_env())


def race_inbound_sql(who, now):
    uid[0] += 1
    return (f"relance_inbound('alice@acme.example', 'INBOX', 1, {uid[0]}, 'race-{who}', "
            f"{arr([mid_of(who)])}, {lit(who)}, 'human_reply', 'none', false, '{{}}', NULL, {lit(now)})")


def test_a_reply_wins_the_race_with_the_claim_in_both_orders(check):
    # Step two of plain is due 2026-03-04 09:00Z.
    DUE = "2026-03-04T10:00:00Z"
    got = inbound("race1@race.example", "human_reply", [mid_of("race1@race.example")], now="2026-03-04T09:30:00Z")
    check.eq(got["effect"], "replied", "race 1: the reply is recorded before the claim")


    # race 2: the reply's transaction is open while the claim runs. (Recording
    # it also holds a key-share lock on the account row, so the claim waits
    # for it rather than skipping the enrollment: either way it sees 'replied'.)
    hold = psql_bg(f"BEGIN; SELECT {race_inbound_sql('race2@race.example', '2026-03-04T09:59:00Z')}; "
                   "SELECT pg_sleep(2); COMMIT;")
    time.sleep(0.7)
    # race 3: the claim's transaction then holds race3 while its reply comes in
    claim_hold = psql_bg(f"BEGIN; SELECT count(*) FROM relance_claim_account({lit(DUE)}, "
                         "(SELECT id FROM accounts WHERE email = 'alice@acme.example'), 1000, 'test'); "
                         "SELECT pg_sleep(3); COMMIT;")
    out_hold, err_hold = hold.communicate(timeout=30)
    time.sleep(0.7)
    t0 = time.time()
    got3 = json.loads(one(f"SELECT {race_inbound_sql('race3@race.example', '2026-03-04T10:00:01Z')}"))
    waited = time.time() - t0
    out_claim, err_claim = claim_hold.communicate(timeout=30)
    check.ok(hold.returncode == 0 and claim_hold.returncode == 0, "race: both transactions commit", err_hold + err_claim)
    check.ok(waited > 0.5, f"race 3: the reply waited for the claim's transaction ({waited:.1f} s)")
    check.eq(got3["effect"], "replied", "race 3: the reply is recorded after the claim")
    claimed = {row[0] for row in q("SELECT c.email FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                                    "JOIN contacts c ON c.id = e.contact_id WHERE m.position = 1")}
    check.ok("race1@race.example" not in claimed, "race 1: a replied enrollment is never claimed", claimed)
    check.ok("race2@race.example" not in claimed, "race 2: a reply in progress is never claimed",
             claimed)
    check.ok("race3@race.example" in claimed, "race 3: the claim that came first took the step")
    # the claimed step of race3 goes out; its enrollment stays replied and nothing follows
    for mid, in q("SELECT m.message_id FROM messages m WHERE m.state = 'sending'"):
        q(f"SELECT relance_step_outcome({lit(mid)}, {lit(DUE)}, 'sent', '250 Ok', true, 'Hello', 'alice@acme.example', "
          "NULL)")
    check.eq(enrollment_states("race3@race.example"), ["replied:reply"], "race 3: sending the claimed step keeps it replied")
    later = claim("2026-03-20T10:00:00Z", "alice@acme.example")
    who_later = {one(f"SELECT c.email FROM messages m JOIN enrollments e ON e.id = m.enrollment_id JOIN contacts c "
                     f"ON c.id = e.contact_id WHERE m.message_id = {lit(x)}") for x in later}
    # the races' three, and the replies of the cases before when they ran
    replied = {r[0] for r in q("SELECT c.email FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                               "WHERE e.state = 'replied'")}
    check.ok({"race1@race.example", "race2@race.example", "race3@race.example"} <= replied
             and not who_later & replied, "no replied enrollment is claimed later", f"{who_later} {replied}")
    check.ok("noreply@n.example" in who_later and "dan@corp.example" in who_later,
             "enrollments a reply did not stop go on", who_later)



def test_bad_input_is_refused(check):
    out = subprocess.run(["psql", "-X", "-q", "-At", STATE["db"].url(), "-c",
                          "SELECT relance_inbound('alice@acme.example', 'INBOX', 1, 77777, 'x@y', '{}', 'a@b.example', "
                          "'nonsense', 'none', false, '{}', NULL, now())"], capture_output=True, text=True, env=pgcluster.tool_env())
    check.ok(out.returncode != 0 and 'unknown inbound message kind "nonsense"' in out.stderr, "an unknown kind is refused",
             out.stderr)
    out = subprocess.run(["psql", "-X", "-q", "-At", STATE["db"].url(), "-c",
                          "SELECT relance_inbound('nobody@acme.example', 'INBOX', 1, 77777, 'x@y', '{}', 'a@b.example', "
                          "'human_reply', 'none', false, '{}', NULL, now())"], capture_output=True, text=True, env=pgcluster.tool_env())
    check.ok(out.returncode != 0 and "no sender account nobody@acme.example" in out.stderr, "an unknown account is refused",
             out.stderr)
