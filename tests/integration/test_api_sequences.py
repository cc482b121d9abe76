"""The HTTP API's sequences (issue 19): list and show, PUT of a YAML file
(created, updated, unchanged: the same lint and apply as the command
line, lint's own line, column and message for a bad file), 415 for
anything but application/yaml, and the figures of `relance stats
--json`, against one `relance serve` and a real PostgreSQL. Every answer
goes through Api.call: it must be what api/openapi.json describes."""
import json
import os
import re

import pytest

import harness
from apiclient import Api, config, new_key, problem
from harness import relance

YAML = {"Content-Type": "application/yaml"}


def sequence_text(name, wait="1h", subject="Hello"):
    return (f"name: {name}\n"
            "sender_pool: main\n"
            "schedule: {timezone: UTC, window: \"00:00-24:00\", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}\n"
            "steps:\n"
            f"  - {{id: one, subject: \"{subject}\", body: \"Hi.\"}}\n"
            f"  - {{id: two, wait: {wait}, body: \"Again.\"}}\n")


@pytest.fixture(scope="module")
def world(module_db, module_tmp):
    env = {"DATABASE_URL": module_db.url(), "RELANCE_CONFIG": config(module_tmp, 100000, 100000)}
    serve = harness.Serve(env)
    serve.wait_status("/readyz", 200)
    w = type("World", (), {})()
    w.db, w.env, w.serve, w.tmp = module_db, env, serve, module_tmp
    w.api = Api(serve.base, new_key(env, "crm"))
    yield w
    assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()


def put(api, name, text, headers=YAML):
    return api.call("PUT", f"/v1/sequences/{name}", text.encode(), headers=headers)


def test_a_put_creates_then_updates_then_leaves_unchanged_as_apply_does(world, check):
    api = world.api
    st, _, body, _ = put(api, "put-cycle", sequence_text("put-cycle"))
    check.eq((st, body), (200, {"result": "created", "version": 1, "warnings": []}), "a new sequence: created at v1")
    st, _, body, _ = put(api, "put-cycle", sequence_text("put-cycle"))
    check.eq((st, body["result"], body["version"]), (200, "unchanged", 1), "the same file again: unchanged")
    st, _, body, _ = put(api, "put-cycle", sequence_text("put-cycle", wait="2 business days"))
    check.eq((st, body["result"], body["version"]), (200, "updated", 2), "a changed file: a new version")
    # one path: the command line sees the same model and hash
    path = os.path.join(world.tmp, "put-cycle.yaml")
    with open(path, "w") as f:
        f.write(sequence_text("put-cycle", wait="2 business days"))
    r = relance("apply", path, env=world.env)
    check.eq((r.returncode, r.stdout.strip()), (0, "put-cycle: unchanged"),
             "relance apply of the file the API applied: unchanged")
    r = relance("sequences", "show", "put-cycle", env=world.env)
    check.ok("v2  applied" in r.stdout and "from PUT /v1/sequences/put-cycle" in r.stdout,
             "relance sequences show names the API as the version's source", r.stdout)
    check.eq(world.db.psql("SELECT encode(convert_to(source, 'UTF8'), 'hex') FROM sequence_versions v "
                           "JOIN sequences s ON s.id = v.sequence_id WHERE s.name = 'put-cycle' AND v.version = 2"),
             [[sequence_text("put-cycle", wait="2 business days").encode().hex()]], "the YAML is stored as sent")
    # a warning of lint's does not stop the apply, and is said
    st, _, body, _ = put(api, "put-cycle", sequence_text("put-cycle", subject="x" * 100))
    check.eq((st, body["result"], body["version"]), (200, "updated", 3), "a file with a warning is applied")
    with open(path, "w") as f:
        f.write(sequence_text("put-cycle", subject="x" * 100))
    r = relance("lint", path)
    check.eq([(w["line"], w["column"], "warning: " + w["message"]) for w in body["warnings"]], lint_lines(r.stdout, path),
             "the warnings are relance lint's")


def lint_lines(out, path):
    """relance lint's problems as (line, column, message)."""
    got = []
    for line in out.splitlines():
        m = re.match(re.escape(path) + r":(\d+):(\d+): (.*)$", line)
        assert m, line
        got.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return got


def test_a_bad_file_gets_lint_s_own_lines_columns_and_messages_and_nothing_is_applied(world, check, tmp):
    api = world.api
    bad = ("name: bad-file\n"
           "sender_pool: main\n"
           "schedule: {timezone: Mars/Olympus, window: \"09:00-17:00\"}\n"
           "colour: blue\n"
           "steps:\n"
           "  - {id: one, subject: \"Hi\", body: \"Hello {{first_name}}.\"}\n"
           "  - {id: one, wait: soon, body: \"Again.\"}\n")
    path = os.path.join(tmp, "bad-file.yaml")
    with open(path, "w") as f:
        f.write(bad)
    r = relance("lint", path)
    check.eq(r.returncode, 1, "relance lint refuses the file")
    want = lint_lines(r.stdout, path)
    check.ok(len(want) >= 3, "lint finds several problems", r.stdout)
    got = put(api, "bad-file", bad)
    problem(check, got, 422, "validation", "a file lint refuses")
    body = got[2]
    check.eq([(e["line"], e["column"], e["message"]) for e in body["errors"]] +
             [(w["line"], w["column"], "warning: " + w["message"]) for w in body["warnings"]],
             [x for x in want if not x[2].startswith("warning: ")] + [x for x in want if x[2].startswith("warning: ")],
             "each error is relance lint's: line, column and message")
    problem(check, api.call("GET", "/v1/sequences/bad-file"), 404, "not-found", "nothing was applied")
    # not YAML at all: lint's own words too
    broken = "name: [unclosed\n"
    with open(path, "w") as f:
        f.write(broken)
    want = lint_lines(relance("lint", path).stdout, path)
    got = put(api, "bad-file", broken)
    problem(check, got, 422, "validation", "a file that is not YAML")
    check.eq([(e["line"], e["column"], e["message"]) for e in got[2]["errors"]], want, "a YAML syntax error as lint says it")
    # bytes no YAML file holds: lint's refusal too, never a 5xx
    for raw in (b"name: bad-file\xff\n", b"name: bad\x00file\n", b"\xef\xbb\xbf", b""):
        problem(check, api.call("PUT", "/v1/sequences/bad-file", raw, headers=YAML), 422, "validation", repr(raw))
    # the file's name must be the path's
    got = put(api, "other-name", sequence_text("bad-file"))
    problem(check, got, 422, "validation", "a name: that is not the path's")
    check.eq([(e["line"], e["column"]) for e in got[2]["errors"]], [(1, 7)], "the error points at the name's value")
    problem(check, api.call("GET", "/v1/sequences/bad-file"), 404, "not-found", "still nothing applied")


def test_a_body_not_sent_as_yaml_is_415_and_a_reader_cannot_put(world, check):
    api = world.api
    text = sequence_text("media")
    problem(check, put(api, "media", text, headers={"Content-Type": "application/json"}), 415,
            "unsupported-media-type", "application/json")
    problem(check, put(api, "media", text, headers={"Content-Type": "text/plain"}), 415, "unsupported-media-type",
            "text/plain")
    problem(check, put(api, "media", text, headers={}), 415, "unsupported-media-type", "no Content-Type")
    check.eq(put(api, "media", text, headers={"Content-Type": "application/yaml; charset=utf-8"})[0], 200,
             "application/yaml with a charset")
    reader = Api(world.serve.base, new_key(world.env, "seq-reader", "sequences:read"))
    problem(check, put(reader, "media", text), 403, "forbidden", "a key without sequences:write")
    check.eq(reader.call("GET", "/v1/sequences/media")[0], 200, "sequences:read reads")
    problem(check, reader.call("GET", "/v1/sequences/media/stats"), 403, "forbidden", "stats need stats:read")
    got = reader.call("POST", "/v1/sequences/media/preview", {"step": "one"})
    problem(check, got, 403, "forbidden", "a preview shows a contact's fields: it needs contacts:read too")
    check.eq(got[2]["detail"], "this key lacks the scope contacts:read", "the 403 names the scope the key lacks")


def test_list_and_show_say_what_the_command_line_says(world, check):
    api = world.api
    names = ["list-a", "list-b", "list-c"]
    for n in names:
        check.eq(put(api, n, sequence_text(n, wait="3 days"))[0], 200, f"put {n}")
    check.eq(put(api, "list-b", sequence_text("list-b", wait="90m"))[0], 200, "list-b v2")
    seen, after, pages = [], None, 0
    while True:
        st, _, page, _ = api.call("GET", "/v1/sequences?limit=2" + (f"&after={after}" if after else ""))
        check.eq(st, 200, "a page")
        seen += page["data"]
        pages += 1
        after = page["next"]
        if not after or pages > 20:
            break
    cli = {}
    for line in relance("sequences", "list", env=world.env).stdout.splitlines():
        name, version, steps, pool, active = line.split("\t")
        cli[name] = (int(version[1:]), int(steps.split()[0]), pool.split()[1], int(active.split()[0]))
    check.eq(sorted(s["name"] for s in seen), sorted(cli), "the pages hold every sequence once")
    check.eq({s["name"]: (s["current_version"], s["steps"], s["sender_pool"], s["active_enrollments"]) for s in seen},
             cli, "each as relance sequences list shows it")
    st, _, s, _ = api.call("GET", "/v1/sequences/list-b")
    check.eq(st, 200, "show")
    check.eq((s["name"], s["current_version"], [v["version"] for v in s["versions"]]), ("list-b", 2, [1, 2]),
             "every version, oldest first")
    v1, v2 = s["versions"]
    check.eq([(t["position"], t["id"], t["wait"], t["thread"]) for t in v1["steps"]],
             [(0, "one", {"seconds": 0, "days": 0, "business_days": 0}, False),
              (1, "two", {"seconds": 0, "days": 3, "business_days": 0}, True)], "v1's steps and waits")
    check.eq(v2["steps"][1]["wait"], {"seconds": 5400, "days": 0, "business_days": 0}, "v2's wait")
    check.eq(v2["schedule"], {"timezone": "UTC", "fallback_timezone": None, "window": {"start": "00:00", "end": "24:00"},
                              "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "jitter_seconds": 0},
             "the schedule")
    show = relance("sequences", "show", "list-b", env=world.env).stdout
    check.ok("2. two  wait 3 days, threaded" in show and "2. two  wait 1h 30m, threaded" in show,
             "the command line shows the same waits", show)
    problem(check, api.call("GET", "/v1/sequences/no-such"), 404, "not-found", "an unknown sequence")
    problem(check, api.call("GET", "/v1/sequences/%C3%28"), 400, "bad-request", "a name that is not UTF-8")
    problem(check, api.call("GET", "/v1/sequences?after=bogus"), 400, "bad-request", "a cursor we never gave")
    problem(check, api.call("GET", "/v1/sequences?limit=0"), 400, "bad-request", "limit 0")


def test_stats_are_relance_stats_json_figures(world, check):
    api, q, env = world.api, world.db.psql, world.env
    check.eq(put(api, "figures", sequence_text("figures"))[0], 200, "put figures")
    q("SELECT relance_sync_accounts('" + json.dumps(
        {"pools": [{"name": "main", "accounts": [{"email": "alice@acme.example", "max_bounce_rate": 1}]}]}) + "')")
    q("INSERT INTO leases (name, holder, expires_at) SELECT 'account:' || id, 'test', now() + interval '1 day' "
      "FROM accounts")
    who = ["f1@p1.example", "f2@p2.example", "f3@p3.example"]
    q("INSERT INTO contacts (email) VALUES " + ", ".join(f"('{w}')" for w in who))
    day1 = "2026-03-02T09:00:00Z"
    r = relance("enroll", "--sequence", "figures", *[x for w in who for x in ("--contact", w)],
                env={**env, "RELANCE_TEST_CLOCK": day1})
    check.ok("enrolled 3," in r.stdout, "enroll", r.stdout + r.stderr)
    rows = q(f"SELECT m.message_id, c.email FROM relance_claim_account('{day1}', "
             "(SELECT id FROM accounts WHERE email = 'alice@acme.example'), 1000, 'test') m "
             "JOIN contacts c ON c.email = m.email")
    check.eq(len(rows), 3, "three first steps claimed")
    mids = {}
    for mid, email in rows:
        bad = email == "f3@p3.example"
        q(f"SELECT * FROM relance_step_outcomes(ARRAY['{mid}'], ARRAY['{day1}']::timestamptz[], "
          f"ARRAY['{'rejected_hard' if bad else 'sent'}'], "
          f"ARRAY['{'550 5.1.1 no such user' if bad else '250 Ok'}'], ARRAY[true], ARRAY['Hello'], "
          "ARRAY['alice@acme.example'], ARRAY[NULL]::int[])")
        mids[email] = mid
    q("SELECT relance_inbound('alice@acme.example', 'INBOX', 1, 1, 'in1@x.example', "
      f"ARRAY['{mids['f1@p1.example']}'], 'f1@p1.example', 'human_reply', 'none', false, ARRAY[]::text[], NULL, "
      "'2026-03-02T12:00:00Z')")
    for since in (None, "2026-03-02", "2026-03-03"):
        args = ["stats", "figures", "--json"] + (["--since", since] if since else [])
        r = relance(*args, env=env)
        check.eq(r.returncode, 0, f"relance stats --json (since {since})")
        st, _, body, _ = api.call("GET", "/v1/sequences/figures/stats" + (f"?since={since}" if since else ""))
        check.eq((st, body), (200, json.loads(r.stdout)), f"the API's figures are relance stats --json's (since {since})")
    st, _, body, _ = api.call("GET", "/v1/sequences/figures/stats")
    check.eq((body["total"]["sent"], body["total"]["replied"], body["total"]["bounced"]), (3, 1, 1),
             "three sent, one reply, one hard bounce")
    problem(check, api.call("GET", "/v1/sequences/no-such/stats"), 404, "not-found", "stats of an unknown sequence")
    problem(check, api.call("GET", "/v1/sequences/figures/stats?since=2026-02-30"), 400, "bad-request",
            "a day that does not exist")
    problem(check, api.call("GET", "/v1/sequences/figures/stats?since=yesterday"), 400, "bad-request",
            "not a date")


PREVIEWED = """name: previewed
sender_pool: main
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - id: intro
    body: "Bonjour {{first_name}}, un mot sur {{company | votre équipe}}."
    html: "<p>Bonjour {{first_name}}</p>"
    variants:
      - {weight: 50, subject: "Une question, {{first_name}}"}
      - {weight: 50, subject: "Rapide : {{first_name}}"}
  - {id: bump, wait: 2 days, body: "Je relance, {{first_name}}."}
"""


def without_date(raw):
    return "\r\n".join(ln for ln in raw.split("\r\n") if not ln.startswith("Date: "))


def test_a_preview_is_relance_preview_s_message(world, check):
    api, env = world.api, world.env
    check.eq(put(api, "previewed", PREVIEWED)[0], 200, "put previewed")
    check.eq(api.call("POST", "/v1/contacts", {"email": "Zoé@Studio.example", "first_name": "Zoé",
                                               "company": "Studio Z"})[0], 201, "a contact")
    for step in ("intro", "bump"):
        st, _, got, _ = api.call("POST", "/v1/sequences/previewed/preview",
                                 {"step": step, "contact": "email:zoé@studio.example"})
        check.eq(st, 200, f"preview of {step}")
        raw = relance("preview", "--raw", "previewed", "--step", step, "--contact", "zoé@studio.example", env=env,
                      raw=True)
        check.ok(raw.returncode == 0, "relance preview --raw", raw.stderr)
        check.eq(without_date(got["raw"]), without_date(raw.stdout.decode()),
                 f"{step}: raw is relance preview --raw's bytes (the Date aside)")
        view = relance("preview", "previewed", "--step", step, "--contact", "zoé@studio.example", env=env).stdout
        head, _, text = view.partition("\n\n")
        lines = dict(ln.split(": ", 1) for ln in head.splitlines())
        check.eq({k: v for k, v in got["headers"].items() if k != "Date"},
                 {k: v for k, v in lines.items() if k not in ("Date", "variant", "account", "html")},
                 f"{step}: the headers, decoded, as relance preview shows them")
        # the command line ends the view with a line break the text part may lack
        check.eq(got["text"] + ("" if got["text"].endswith("\n") else "\n"), text,
                 f"{step}: the text, decoded, as relance preview shows it")
        check.eq(got["variant"] or "-", lines["variant"][0], f"{step}: the variant relance preview names")
        check.eq((got["account"], got["account_reason"]), (None, lines["account"].split(" (", 1)[1][:-1]),
                 f"{step}: a placeholder sender, for the reason relance preview gives")
    check.eq(got["html"], None, "a step without HTML has none")
    st, _, got, _ = api.call("POST", "/v1/sequences/previewed/preview",
                             {"step": "intro", "contact": "email:zoé@studio.example"})
    check.ok("Bonjour Zoé" in got["html"] and "Studio Z" in got["text"], "the HTML part, decoded", got)
    st, _, got, _ = api.call("POST", "/v1/sequences/previewed/preview",
                             {"step": "intro", "vars": {"first_name": "Ana", "email": "ana@x.example"}})
    check.ok(st == 200 and "Bonjour Ana, un mot sur votre équipe." in got["text"] and got["headers"]["To"]
             .endswith("ana@x.example"), "vars alone, and a fallback", got)
    st, _, got, _ = api.call("POST", "/v1/sequences/previewed/preview",
                             {"step": "intro", "contact": "email:zoé@studio.example", "vars": {"first_name": "Ana"}})
    check.ok("Bonjour Ana" in got["text"], "vars win over the contact's fields", got)
    for body, pointer, what in (({"step": "intro"}, "/vars", "a field with no value and no fallback"),
                                ({"step": "nope", "vars": {"first_name": "A"}}, "/step", "an unknown step"),
                                ({"step": "intro", "contact": "email:nobody@x.example"}, "/contact", "an unknown contact"),
                                ({"step": "intro", "vars": {"first_name": "A"}, "account": "who@x.example"}, "/account",
                                 "an account the configuration lacks"),
                                ({"step": "intro", "colour": "blue"}, "/colour", "an unknown member"),
                                ({"vars": {"first_name": "A"}}, "/step", "no step"),
                                ({"step": "intro", "vars": {"first_name": 3}}, "/vars/first_name", "a var not a string")):
        got = api.call("POST", "/v1/sequences/previewed/preview", body)
        problem(check, got, 422, "validation", what)
        check.ok(any(e["pointer"] == pointer for e in got[2].get("errors", [])), f"{what}: pointer {pointer}", got[2])
    problem(check, api.call("POST", "/v1/sequences/no-such/preview", {"step": "intro"}), 404, "not-found",
            "an unknown sequence")


def test_a_preview_sends_from_the_configured_account_as_relance_preview_does(db, tmp, check):
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        # capture: nothing is sent, and no account needs a password
        f.write("transport: capture\npools:\n  main:\n    accounts:\n"
                "      - {email: ann@acme.example, smtp: smtps://mail.acme.example, first_name: Ann}\n"
                "      - {email: bob@acme.example, smtp: smtps://mail.acme.example, first_name: Bob}\n")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "RELANCE_CAPTURE_DIR": os.path.join(tmp, "capture")}
    serve = harness.Serve(env)
    try:
        serve.wait_status("/readyz", 200)
        api = Api(serve.base, new_key(env, "crm"))
        text = sequence_text("signed").replace('body: "Hi."', 'body: "Hi.\\n{{sender.first_name}}"')
        check.eq(put(api, "signed", text)[0], 200, "put signed")
        for account, who, why in ((None, "ann@acme.example", "the first of pool main; a new enrollment gets the "
                                   "pool's least-used account, the request's account chooses"),
                                  ("bob@acme.example", "bob@acme.example", "the request's account")):
            body = {"step": "one", "vars": {"email": "p@x.example"}}
            if account:
                body["account"] = account
            st, _, got, _ = api.call("POST", "/v1/sequences/signed/preview", body)
            check.eq((st, got["account"], got["account_reason"]), (200, who, why), f"sent from {who}")
            check.eq(got["text"], "Hi.\n" + who[:3].capitalize() + "\n", "sender.first_name is the account's")
            args = ["preview", "--raw", "signed", "--step", "one", "--var", "email=p@x.example"]
            raw = relance(*args + (["--account", account] if account else []), env=env, raw=True)
            check.eq(without_date(got["raw"]), without_date(raw.stdout.decode()),
                     f"raw is relance preview --raw's, from {who}")
        problem(check, api.call("POST", "/v1/sequences/signed/preview",
                                {"step": "one", "vars": {"email": "p@x.example"}, "account": "eve@acme.example"}),
                422, "validation", "an account the configuration lacks")
    finally:
        assert serve.stop() == 0, serve.output()[-2000:]
    assert serve.sanitizer_report() is None, serve.sanitizer_report()
