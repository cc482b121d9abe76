"""relance stats against a real PostgreSQL: messages go out through the
scheduler's SQL (claim, then the SMTP outcome, one an SMTP-time 5.1.1),
inbound messages go through relance_inbound as the watcher hands them
in, and the figures of `relance stats` (table and --json, with and
without --since) are checked against a model this test keeps of what it
did: per step and A/B variant, sent, replied, auto-replied, bounced,
unsubscribed and the reply rate."""
import json

import pytest

import harness
from harness import relance


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    """Two sequences (ab with an A/B first step, other), their messages
    sent through the claim and outcome SQL and inbound mail handed in as
    the watcher does; returns env, the model of what was done and the
    contacts of each sequence."""
    db, tmp = module_db, module_tmp
    env = {"DATABASE_URL": db.url()}

    def check(got, want, what):
        assert got == want, f"{what}: got {got!r}, want {want!r}"

    def check_ok(cond, what, detail=""):
        assert cond, f"{what}: {detail}"

    def q(sql):
        return db.psql(sql)

    def lit(s):
        return "NULL" if s is None else "'" + str(s).replace("'", "''") + "'"

    steps = """  - id: one
    body: Hi.
    variants:
      - {weight: 50, subject: "Hello"}
      - {weight: 50, subject: "Hi there"}
  - {id: two, wait: 2 days, body: Again.}
  - {id: three, wait: 2 days, body: Last.}
"""
    for name in ("ab", "other"):
        path = harness.sequence(tmp, "custom_steps", name=name, pool="main", steps=steps)
        r = relance("apply", path, env=env)
        check(r.returncode, 0, f"apply {name}")
    cfg = {"pools": [{"name": "main", "accounts": [{"email": "alice@acme.example", "max_bounce_rate": 1}]}]}
    q(f"SELECT relance_sync_accounts({lit(json.dumps(cfg))})")
    q("INSERT INTO leases (name, holder, expires_at) SELECT 'account:' || id, 'test', now() + interval '1 day' "
      "FROM accounts")
    AB = [f"c{i}@p{i}.example" for i in range(12)]
    OTHER = ["o1@q1.example", "o2@q2.example"]
    q("INSERT INTO contacts (email) VALUES " + ", ".join(f"({lit(e)})" for e in AB + OTHER))
    DAY1, DAY3 = "2026-03-02T09:00:00Z", "2026-03-04T09:00:00Z"
    for seq, who in (("ab", AB), ("other", OTHER)):
        args = ["enroll", "--sequence", seq] + [x for w in who for x in ("--contact", w)]
        r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": DAY1})
        check_ok(f"enrolled {len(who)}," in r.stdout, f"enroll {seq}", r.stdout + r.stderr)

    # The model: (contact, step) -> {"variant": v, "flags": set()}
    sent = {}
    variant_of = {c: i % 2 for i, c in enumerate(AB + OTHER)}

    def send_due(now, outcomes=None):
        rows = q(f"SELECT m.message_id, c.email, m.step_id FROM relance_claim_account({lit(now)}, "
                 "(SELECT id FROM accounts WHERE email = 'alice@acme.example'), 1000, 'test') m "
                 "JOIN contacts c ON c.email = m.email")
        for mid, who, step in rows:
            outcome = (outcomes or {}).get(who, "sent")
            # what relance does with an SMTP outcome (a batch of one); a
            # message refused at SMTP time keeps its variant too
            v = variant_of[who] if step == "one" else None
            reply = '550 5.1.1 no such user' if outcome == 'rejected_hard' else '250 Ok'
            q(f"SELECT * FROM relance_step_outcomes(ARRAY[{lit(mid)}], ARRAY[{lit(now)}]::timestamptz[], "
              f"ARRAY[{lit(outcome)}], ARRAY[{lit(reply)}], ARRAY[true], ARRAY['Hello'], ARRAY['alice@acme.example'], "
              f"ARRAY[{'NULL' if v is None else v}]::int[])")
            sent[(who, step)] = {"variant": v, "flags": {"bounced"} if outcome == "rejected_hard" else set(), "mid": mid}
        return len(rows)

    check(send_due(DAY1, {"c0@p0.example": "rejected_hard"}), 14, "step one goes out (one refused at RCPT: 5.1.1)")

    uid = [0]

    def inbound(frm, kind, refs=(), now=DAY1.replace("09:", "12:"), **kw):
        uid[0] += 1
        r = q(f"SELECT relance_inbound('alice@acme.example', 'INBOX', 1, {uid[0]}, 'in{uid[0]}@x.example', "
              f"ARRAY[{', '.join(lit(x) for x in refs)}]::text[], {lit(frm)}, {lit(kind)}, {lit(kw.get('reason', 'none'))}, "
              f"false, ARRAY[{', '.join(lit(x) for x in kw.get('recipients', []))}]::text[], NULL, {lit(now)})")
        return json.loads(r[0][0])["effect"]

    def mid(who, step):
        return sent[(who, step)]["mid"]

    # (from, kind, refs, the message it is about, the flag it sets, extra)
    DAY1_IN = [
        ("c1@p1.example", "human_reply", [mid("c1@p1.example", "one")], ("c1@p1.example", "one"), "replied", {}),
        ("c2@p2.example", "human_reply", [mid("c2@p2.example", "one")], ("c2@p2.example", "one"), "replied", {}),
        ("c2@p2.example", "human_reply", [mid("c2@p2.example", "one")], ("c2@p2.example", "one"), "replied", {}),
        ("c3@p3.example", "auto_reply", [mid("c3@p3.example", "one")], ("c3@p3.example", "one"), "auto_replied", {}),
        ("mailer-daemon@p4.example", "hard_bounce", [mid("c4@p4.example", "one")], ("c4@p4.example", "one"), "bounced",
         {"reason": "user_unknown", "recipients": ["c4@p4.example"]}),
        ("c5@p5.example", "unsubscribe_request", [], ("c5@p5.example", "one"), "unsubscribed", {}),
        ("c6@p6.example", "auto_reply", [], ("c6@p6.example", "one"), "auto_replied", {}),
        ("o1@q1.example", "human_reply", [mid("o1@q1.example", "one")], ("o1@q1.example", "one"), "replied", {}),
    ]
    for frm, kind, refs, about, flag, kw in DAY1_IN:
        effect = inbound(frm, kind, refs, **kw)
        check_ok(effect in ("replied", "auto_reply", "bounced", "unsubscribed"), f"day 1: {kind} from {frm}: {effect}")
        sent[about]["flags"].add(flag)

    check(send_due(DAY3), 8, "step two goes out to the 8 enrollments still going")
    DAY3_IN = [
        # a reply matched by its sender counts for the last message it was sent
        ("c6@p6.example", "human_reply", [], ("c6@p6.example", "two"), "replied", {}),
        ("c7@p7.example", "human_reply", [mid("c7@p7.example", "two"), mid("c7@p7.example", "one")],
         ("c7@p7.example", "two"), "replied", {}),
        # a soft bounce is not a bounce (yet)
        ("mailer-daemon@p8.example", "soft_bounce", [mid("c8@p8.example", "two")], ("c8@p8.example", "two"), None,
         {"reason": "mailbox_full", "recipients": ["c8@p8.example"]}),
    ]
    for frm, kind, refs, about, flag, kw in DAY3_IN:
        inbound(frm, kind, refs, now=DAY3.replace("09:", "15:"), **kw)
        if flag:
            sent[about]["flags"].add(flag)
    return {"env": env, "sent": sent, "AB": AB, "OTHER": OTHER}


def letter(v):
    return "-" if v is None else "AB"[v]


def table_rows(model):
    order = sorted((k for k in model if k[0] != "total"), key=lambda k: (["one", "two", "three"].index(k[0]),
                                                                        -1 if k[1] is None else k[1]))
    out = []
    for k in order + [("total", None)]:
        m = model[k]
        out.append([k[0], letter(k[1]), str(m["sent"]), str(m["replied"]), str(m["auto_replied"]), str(m["bounced"]),
                    str(m["unsubscribed"]), f"{100.0 * m['replied'] / m['sent']:.1f}%"])
    return out


def expected(world, seq_contacts, since_step=None):
    rows = {}
    for (who, step), m in world["sent"].items():
        if who not in seq_contacts or (since_step and step != since_step):
            continue
        for key in ((step, m["variant"]), ("total", None)):
            row = rows.setdefault(key, {"sent": 0, "replied": 0, "auto_replied": 0, "bounced": 0, "unsubscribed": 0})
            row["sent"] += 1
            for f in m["flags"]:
                row[f] += 1
    return rows



def test_the_model_holds_what_the_test_did(world):
    model = expected(world, world["AB"])
    # c0's step one was refused at RCPT (5.1.1): its bounce counts under
    # its variant, beside the bounce reported later by a DSN
    assert model[("one", 0)]["bounced"] == 2 and ("one", None) not in model \
        and model[("two", None)]["replied"] == 2, model


def test_stats_prints_an_aligned_table_per_step_and_variant(world):
    model = expected(world, world["AB"])
    r = relance("stats", "ab", env=world["env"])
    assert r.returncode == 0, f"stats ab: {r.stderr}"
    lines = r.stdout.splitlines()
    assert lines[0] == "ab: all messages sent", "stats: the title line"
    assert lines[1].split() == ["step", "variant", "sent", "replied", "auto-replied", "bounced", "unsubscribed",
                                "reply", "rate"], "stats: the header"
    assert [line.split() for line in lines[2:]] == table_rows(model), "stats: per step and variant, and the total"
    assert len({len(line) for line in lines[1:]}) == 1, \
        "stats: an aligned table (every line as wide):\n" + "\n".join(lines)


def json_stats(world, *args):
    r = relance("stats", *args, "--json", env=world["env"])
    return json.loads(r.stdout) if r.returncode == 0 else {}


def test_stats_json_gives_the_same_figures_and_reply_rates(world):
    model = expected(world, world["AB"])
    doc = json_stats(world, "ab")
    got = {(s["step"], s["variant"]): {k: s[k] for k in ("sent", "replied", "auto_replied", "bounced",
                                                         "unsubscribed")}
           for s in doc.get("steps", [])}
    got[("total", None)] = {k: doc.get("total", {}).get(k) for k in ("sent", "replied", "auto_replied", "bounced",
                                                                     "unsubscribed")}
    assert got == model, "stats --json: the same figures"
    assert doc.get("sequence") == "ab", "stats --json: the sequence"
    assert [s["reply_rate"] for s in doc.get("steps", [])] == \
        [round(model[(s["step"], s["variant"])]["replied"] / model[(s["step"], s["variant"])]["sent"], 4)
         for s in doc.get("steps", [])], "stats --json: reply_rate is replied / sent"


def test_stats_since_counts_only_the_messages_sent_from_that_day(world):
    model = expected(world, world["AB"])
    doc = json_stats(world, "ab", "--since", "2026-03-03")
    assert [(s["step"], s["sent"], s["replied"]) for s in doc.get("steps", [])] == \
        [("two", model[("two", None)]["sent"], model[("two", None)]["replied"])], \
        "stats --since: only the messages sent from that day"
    assert doc.get("since") == "2026-03-03", "stats --since: echoed"
    r = relance("stats", "ab", "--since", "2026-03-03", env=world["env"])
    assert [line.split() for line in r.stdout.splitlines()[2:]] == table_rows(expected(world, world["AB"], "two")), \
        "stats --since: the table"
    doc = json_stats(world, "ab", "--since", "2027-01-01")
    assert (doc.get("steps"), doc.get("total", {}).get("sent"), doc.get("total", {}).get("reply_rate")) == \
        ([], 0, None), "nothing sent since: no steps, a zero total"


def test_another_sequence_counts_only_its_own(world):
    doc = json_stats(world, "other")
    other = expected(world, world["OTHER"])[("total", None)]
    assert (doc.get("total", {}).get("sent"), doc.get("total", {}).get("replied")) == \
        (other["sent"], other["replied"]), "another sequence counts only its own"


@pytest.mark.parametrize("args, code, msg", [
    (("stats", "nosuch"), 1, "no sequence named nosuch"),
    (("stats", "ab", "--since", "March"), 1, "--since takes a date written YYYY-MM-DD"),
    (("stats", "ab", "--since", "2026-02-30"), 1, "2026-02-30"),
    (("stats",), 2, "usage: relance stats"),
    (("stats", "ab", "--frobnicate"), 2, "unexpected argument '--frobnicate'"),
])
def test_stats_refuses_bad_arguments(world, args, code, msg):
    r = relance(*args, env=world["env"])
    assert r.returncode == code and msg in r.stderr, f"{' '.join(args)}: exit {code}, says so: {r.stderr}"
