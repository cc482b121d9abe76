"""Webhook delivery (issue 20) against a CRM double (tests/crmdouble.py)
and a real PostgreSQL: every event reaches every endpoint at least once,
signed so that the npm `standardwebhooks` package (third-party code, the
library CRM developers use) verifies it, through a SIGKILL of relance and
a restart of PostgreSQL mid-stream; an endpoint that times out or answers
500 gets the event again later, one that answers 410 is disabled and gets
nothing after; the retry schedule holds under the test clock; the
payloads are the events the API feed shows."""
import base64
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import crmdouble
import harness
import npmtools
from harness import relance

STANDARDWEBHOOKS_VERSION = "1.3.0"
N = int(os.environ.get("RELANCE_TEST_WEBHOOK_EVENTS", "2000"))
KINDS = ("ok", "flaky", "slow", "gone")
VERIFY_JS = r"""
const { Webhook } = require("standardwebhooks");
const items = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const out = { ok: 0, bad: [] };
for (const it of items) {
  try {
    new Webhook(it.secret).verify(Buffer.from(it.body, "base64"), it.headers);
    out.ok++;
  } catch (e) {
    out.bad.push([it.headers["webhook-id"], String(e)]);
  }
}
console.log(JSON.stringify(out));
"""


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def verify_all(tmp, records, secrets):
    """Runs standardwebhooks' Webhook.verify over each (path, headers,
    body, ...) record; returns (verified, [(id, error)])."""
    prefix = npmtools.install("standardwebhooks", STANDARDWEBHOOKS_VERSION)
    items = [{"secret": secrets[r[0].strip("/").split("/")[0]], "headers": r[1],
              "body": base64.b64encode(r[2]).decode()} for r in records]
    data = os.path.join(tmp, f"sigs-{time.time()}.json")
    with open(data, "w") as f:
        json.dump(items, f)
    script = os.path.join(prefix, "verify.js")
    with open(script, "w") as f:
        f.write(VERIFY_JS)
    r = subprocess.run(["node", script, data], capture_output=True, text=True, timeout=120, cwd=prefix)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    return got["ok"], got["bad"]


def write_config(tmp, pg, crm, kinds, extra="", timeout="1s"):
    secrets = {k: new_secret() for k in kinds}
    path = os.path.join(tmp, "relance.yaml")
    hooks = "".join(f"  {k}:\n    url: {crm.url(k)}\n    secret_env: WH_{k.upper()}\n" for k in kinds)
    with open(path, "w") as f:
        f.write(f"database_url: \"{pg.url()}\"\ntransport: capture\ncapture_dir: {tmp}/capture\n"
                f"state_dir: {tmp}/state\nwebhook_allow_insecure: [127.0.0.1]\n"
                f"webhook_timeout: {timeout}\nwebhook_connect_timeout: 1s\nlog_level: debug\n{extra}webhooks:\n{hooks}")
    env = {"RELANCE_CONFIG": path, **{f"WH_{k.upper()}": s for k, s in secrets.items()}}
    return env, secrets


def rows(pg, sql):
    return pg.psql(sql)


def api_key(env, scopes):
    r = relance("api-keys", "create", f"k{time.time_ns()}", "--scopes", scopes, env=env)
    assert r.returncode == 0, r.stderr
    return next(w for w in r.stdout.split() if w.startswith("rl_"))


def feed(base, key):
    """Every event of GET /v1/events, by id."""
    import urllib.request
    got, after = {}, None
    while True:
        url = base + "/v1/events?limit=500" + (f"&after={after}" if after else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            page = json.loads(r.read())
        for e in page["data"]:
            got[e["id"]] = e
        if not page["data"]:
            return got
        after = page["next"]


def test_every_event_reaches_every_endpoint_signed_through_a_crash_and_a_database_restart(own_postgres, tmp, serve,
                                                                                         check):
    pg = own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0
    # one event in 25 fails its first request to /flaky (500) and /slow
    # (no answer within webhook_timeout): each endpoint has at most 4
    # requests in flight, so a hang on every event would take minutes
    crm = crmdouble.CrmDouble(hang=2.0, gone_after=40, every=25)
    env, secrets = write_config(tmp, pg, crm, KINDS)
    s = serve(env)
    s.wait_status("/readyz", 200)

    written = [0]

    def writer():
        i = 0
        while i < N:
            n = min(20, N - i)
            sql = ("INSERT INTO events (kind, occurred_at, data) SELECT 'reply.received', now(), "
                   f"jsonb_build_object('n', g) FROM generate_series({i}, {i + n - 1}) g")
            try:
                pg.psql(sql)
            except RuntimeError:
                pass  # PostgreSQL is restarting: again
            else:
                i += n
                written[0] = i
            time.sleep(0.03)

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    assert harness.wait_until(lambda: len(crm.received("ok")) >= N // 5, 60), "deliveries did not start"
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    check.ok(True, f"killed relance with SIGKILL after {len(crm.received('ok'))} deliveries to /ok")
    s = serve(env)  # a new replica: the dead one's claims went with its connection
    assert harness.wait_until(lambda: written[0] >= N * 3 // 5, 60)
    pg.stop()
    time.sleep(0.5)
    pg.start()
    check.ok(True, f"restarted PostgreSQL after {written[0]} events were written")
    w.join(120)
    assert not w.is_alive(), "the event writer did not finish"

    def pending():
        return int(rows(pg, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                            " WHERE w.enabled AND d.state <> 'delivered'")[0][0])

    harness.wait_until(lambda: pending() == 0, 90, step=0.5)
    left = rows(pg, "SELECT w.name, d.state, d.attempts, d.next_at, d.last_error, now()"
                    " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                    " WHERE w.enabled AND d.state <> 'delivered' ORDER BY d.id LIMIT 5")
    check.eq(left, [], "every delivery to an enabled endpoint ended delivered")
    events = {r[0] for r in rows(pg, "SELECT id FROM events")}
    check.ok(len(events) >= N + 1, f"{len(events)} events: {N} written and webhook.disabled")
    noted = rows(pg, "SELECT w.name, count(DISTINCT u.event_id), count(*) FROM webhook_delivered l"
                     " CROSS JOIN unnest(l.event_ids) u(event_id)"
                     " JOIN webhooks w ON w.id = l.webhook_id WHERE w.enabled GROUP BY 1 ORDER BY 1")
    check.eq(noted, [[k, str(len(events)), str(len(events))] for k in ("flaky", "ok", "slow")],
             "each endpoint's every event noted delivered once, and left the queue")
    # a claim is a session advisory lock of the replica's background
    # connection: every one is given back once its outcome is in
    check.ok(harness.wait_until(lambda: rows(pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                                 " AND classid = (1 << 30)")[0][0] == "0", 10),
             "no claim is held once everything is delivered",
             rows(pg, "SELECT l.objid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                      " WHERE l.locktype = 'advisory' LIMIT 5"))

    # every event reached each endpoint that stayed enabled, nothing foreign
    for kind in ("ok", "flaky", "slow"):
        seen = {r[1]["webhook-id"] for r in crm.received(kind)}
        check.eq((sorted(events - seen)[:5], sorted(seen - events)[:5]), ([], []),
                 f"/{kind} got every event, and only events")
        ok200 = {r[1]["webhook-id"] for r in crm.received(kind) if r[4] == 200}
        check.eq(sorted(events - ok200)[:5], [], f"/{kind} answered 200 to each event at least once")
    # the picked events failed first, then were sent again and taken
    for kind, failed in (("flaky", lambda r: r[4] == 500), ("slow", lambda r: r[3] + 1.5 < r[5])):
        picked = {e for e in events if crm.picked(e)}
        retried = set()
        firsts = {}
        # in the order requests arrived: a request sent again by the next
        # replica (a dead one's claims are free at once) may end before
        # the first one, still hanging
        for r in sorted(crm.received(kind), key=lambda r: r[3]):
            wid = r[1]["webhook-id"]
            if wid in picked and wid not in firsts:
                firsts[wid] = r
            elif wid in firsts and failed(firsts[wid]) and r[4] == 200 and r[3] > firsts[wid][3]:
                retried.add(wid)
        check.eq(sorted(picked - retried)[:5], [], f"each of the {len(picked)} picked events was sent to /{kind} "
                                                   "again after its first request failed")
    check.ok(2 <= crm.max_in_flight.get("ok", 0) <= 4,
             f"at most webhook_max_in_flight (4) requests at once to /ok, and more than one "
             f"(at most {crm.max_in_flight.get('ok')})")

    # 410: disabled at once, nothing sent after
    gone = rows(pg, "SELECT enabled, disabled_reason, extract(epoch FROM disabled_at) FROM webhooks"
                    " WHERE name = 'gone'")[0]
    check.eq(gone[0], "f", "/gone is disabled")
    check.ok("410" in gone[1], f"why: {gone[1]}")
    disabled_at = float(gone[2])
    late = [r for r in crm.received("gone") if r[3] > disabled_at + 0.5]
    check.eq(len(late), 0, f"no request reached /gone after it was disabled ({len(crm.received('gone'))} in all)")
    check.eq(rows(pg, "SELECT count(*) FROM events WHERE kind = 'webhook.disabled'")[0][0], "1",
                "one webhook.disabled event")

    # the third party verifies every signature, and refuses a forged one
    records = [r for k in KINDS for r in crm.received(k)]
    verified, bad = verify_all(tmp, records, secrets)
    check.eq(bad[:3], [], "standardwebhooks verifies every request")
    check.eq(verified, len(records), f"{len(records)} requests verified")
    forged = [(r[0], r[1], r[2].replace(b"reply", b"REPLY"), *r[3:]) for r in records[:5]]
    verified, bad = verify_all(tmp, forged, secrets)
    check.eq((verified, len(bad)), (0, 5), "a changed body fails verification")

    # the payloads are the events of the API feed
    key = api_key(env, "events:read")
    by_id = feed(s.base, key)
    bodies = {r[1]["webhook-id"]: json.loads(r[2]) for r in crm.received("ok")}
    check.eq(set(by_id), events, "the feed has every event")
    differ = [i for i in bodies if bodies[i] != by_id.get(i)]
    check.eq(differ[:3], [], "each webhook body is the feed's event")
    check.ok(all(r[1].get("content-type") == "application/json" for r in records[:50]), "JSON content type")

    # the metrics: this replica's requests by endpoint and outcome, and
    # nothing owed any more (no lag)
    st, text = s.get("/metrics")
    ids = {name: i for i, name in rows(pg, "SELECT id, name FROM webhooks")}
    figures = {}
    for line in text.splitlines():
        if line.startswith("relance_webhook_"):
            key, value = line.rsplit(" ", 1)
            figures[key] = float(value)
    delivered = figures.get(f'relance_webhook_requests_total{{webhook="{ids["ok"]}",outcome="delivered"}}', 0)
    check.ok(0 < delivered <= len(crm.received("ok")), f"/ok's delivered requests counted: {delivered}")
    check.ok(figures.get(f'relance_webhook_requests_total{{webhook="{ids["slow"]}",outcome="unreachable"}}', 0) > 0,
             "/slow's timeouts counted as unreachable")
    check.eq([figures.get(f'relance_webhook_outbox_lag_seconds{{webhook="{ids[k]}"}}') for k in ("ok", "flaky")],
             [0.0, 0.0], "no outbox lag once drained")
    check.eq(figures.get(f'relance_webhook_pending_deliveries{{webhook="{ids["slow"]}"}}'), 0.0, "nothing pending")
    assert s.stop() == 0
    assert "whsec_" not in s.output(), "a secret reached the log"


SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


def delivered_by(s):
    """The deliveries serve s counts as delivered (its /metrics)."""
    status, text = s.get("/metrics")
    assert status == 200, text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("relance_webhook_requests_total{") and 'outcome="delivered"' in line)


def test_two_replicas_share_the_deliveries_and_send_each_once(own_postgres, tmp, serve, check):
    """A claim is a session advisory lock: two replicas delivering at once
    never claim the same delivery, so with no crash nor timeout each event
    goes out exactly once, and both take a share."""
    pg = own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0
    crm = crmdouble.CrmDouble()
    env, _ = write_config(tmp, pg, crm, ("ok",), timeout="30s")
    replicas = [serve(env), serve(env)]
    for s in replicas:
        s.wait_status("/readyz", 200)
    time.sleep(0.5)  # both synced the configuration's endpoint
    n = 1000
    pg.psql("INSERT INTO events (kind, occurred_at, data) SELECT 'reply.received', now(), jsonb_build_object('n', g) "
            f"FROM generate_series(1, {n}) g")
    check.ok(harness.wait_until(lambda: rows(pg, "SELECT count(*) FROM webhook_deliveries")[0][0] == "0", 60,
                                step=0.2), "every delivery left the queue")
    ids = [r[1]["webhook-id"] for r in crm.received("ok")]
    check.eq((len(set(ids)), len(ids)), (n, n), "each event reached the endpoint once")
    shares = [delivered_by(s) for s in replicas]
    check.ok(all(x > 0 for x in shares) and sum(shares) == n, f"both replicas delivered, {shares} of {n}")
    check.eq(rows(pg, "SELECT count(*) FROM webhook_delivered, unnest(ids)"), [[str(n)]], "each noted once")
    check.ok(harness.wait_until(lambda: rows(pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                                 " AND classid = (1 << 30)")[0][0] == "0", 10),
             "every claim given back")


def test_retries_follow_the_schedule_then_fail_and_five_days_of_failures_disable(own_postgres, tmp, serve,
                                                                                check):
    pg = own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0
    crm = crmdouble.CrmDouble()
    env, _ = write_config(tmp, pg, crm, ["fail"])
    speed = 20000
    start = "2026-03-02T09:00:00Z"
    s = serve({**env, "RELANCE_TEST_CLOCK": f"{start}*{speed}"})
    s.wait_status("/readyz", 200)
    pg.psql("INSERT INTO events (kind, occurred_at, data) VALUES ('reply.received', now(), '{}')")
    # 8 attempts over ~27.6 h of relance's time: ~5 s here
    assert harness.wait_until(
        lambda: rows(pg, "SELECT state FROM webhook_deliveries")[0][0] == "failed", 60, step=0.2), \
        "the delivery did not fail after its last attempt"
    arrivals = [r[3] for r in crm.received("fail")]
    check.eq(len(arrivals), 8, "1 attempt and 7 retries")
    # the receiver's real times scaled to relance's: generous bounds, the
    # loop's own latency (~0.3 s real) is thousands of relance seconds
    slack = 0.3 * speed
    for k, (a, b) in enumerate(zip(arrivals, arrivals[1:])):
        gap = (b - a) * speed
        want = SCHEDULE[k]
        check.ok(0.85 * want <= gap + 0.02 * speed <= 1.15 * want + slack,
                 f"retry {k + 1}: {gap:.0f} s of relance's time after the last, want about {want} s")
    attempts, status = rows(pg, "SELECT attempts, last_status FROM webhook_deliveries")[0]
    check.eq((attempts, status), ("8", "500"), "8 attempts recorded, the last status 500")

    # an endpoint failing for 5 days on end: the next failure disables it
    pg.psql("UPDATE webhooks SET failing_since = failing_since - interval '5 days'")
    pg.psql("INSERT INTO events (kind, occurred_at, data) VALUES ('reply.received', now(), '{}')")
    assert harness.wait_until(lambda: rows(pg, "SELECT enabled FROM webhooks")[0][0] == "f", 30, step=0.2), \
        "the endpoint was not disabled"
    check.ok("5 days" in rows(pg, "SELECT disabled_reason FROM webhooks")[0][0], "disabled for 5 days of failures")
    check.eq(rows(pg, "SELECT count(*) FROM events WHERE kind = 'webhook.disabled'")[0][0], "1",
                "its webhook.disabled event")
    n = len(crm.received("fail"))
    pg.psql("INSERT INTO events (kind, occurred_at, data) VALUES ('reply.received', now(), '{}')")
    time.sleep(1.5)
    check.eq(len(crm.received("fail")), n, "nothing is sent to a disabled endpoint")
    assert s.stop() == 0


def loopback_name():
    """A host name other than localhost that resolves to a non-public
    address here (the machine's own name does, through /etc/hosts)."""
    import ipaddress
    import socket
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(name, None)}
        except OSError:
            continue
        if addrs and all(not ipaddress.ip_address(a.split("%")[0]).is_global for a in addrs):
            return name
    raise AssertionError("no host name here resolves to a private address")


def test_a_private_address_is_refused_unless_listed(own_postgres, tmp, serve, check):
    """The configuration refuses http://localhost unlisted; a name that
    only resolves to a private address passes the URL check (https) but
    its socket is refused when libcurl opens it, before a byte is sent."""
    pg = own_postgres
    assert relance("migrate", env={"DATABASE_URL": pg.url()}).returncode == 0
    crm = crmdouble.CrmDouble()
    path = os.path.join(tmp, "bad.yaml")
    with open(path, "w") as f:
        f.write(f"database_url: \"{pg.url()}\"\nwebhooks:\n  x:\n    url: https://localhost.:{crm.port}/ok/h\n"
                f"    secret_env: WH_X\n")
    r = relance("config", env={"RELANCE_CONFIG": path, "WH_X": new_secret()})
    check.ok(r.returncode != 0 and "webhook_allow_insecure" in r.stderr, f"config refuses it: {r.stderr.strip()}")
    env, _ = write_config(tmp, pg, crm, ["ok"])
    name = loopback_name()
    with open(env["RELANCE_CONFIG"]) as f:
        text = f.read().replace(crm.url("ok"), f"https://{name}:{crm.port}/ok/h")
    with open(env["RELANCE_CONFIG"], "w") as f:
        f.write(text)
    s = serve(env)
    s.wait_status("/readyz", 200)
    pg.psql("INSERT INTO events (kind, occurred_at, data) VALUES ('reply.received', now(), '{}')")
    assert harness.wait_until(lambda: rows(pg, "SELECT attempts FROM webhook_deliveries")[0][0] != "0", 20, step=0.2)
    err = rows(pg, "SELECT last_error FROM webhook_deliveries")[0][0]
    check.ok("non-public address" in err, f"{name}: refused at connect: {err}")
    check.eq(len(crm.received("ok")), 0, "nothing reached the private address")
    assert s.stop() == 0


def test_a_test_request_is_signed_and_says_what_the_endpoint_answered(db, tmp, serve, check):
    """POST /v1/webhooks/{id}/test and `relance webhooks test ID`: an
    example event, signed with the endpoint's secret, sent at once; the
    answer (and the command's exit) says whether it was taken."""
    from apiclient import Api, new_key
    crm = crmdouble.CrmDouble()
    env, _ = write_config(tmp, db, crm, [])
    s = serve(env)
    s.wait_status("/readyz", 200)
    api = Api(s.base, new_key(env, "crm", "webhooks:write"))
    st, _, ok, raw = api.call("POST", "/v1/webhooks", {"url": crm.url("ok"), "types": ["contact.unsubscribed"]})
    assert st == 201, raw
    st, _, fail, raw = api.call("POST", "/v1/webhooks", {"url": crm.url("fail")})
    assert st == 201, raw

    st, _, got, raw = api.call("POST", f"/v1/webhooks/{ok['id']}/test")
    check.eq((st, got.get("delivered"), got.get("status"), got.get("error")), (200, True, 200, None),
             "the endpoint took it")
    check.eq(got["event"]["type"], "contact.unsubscribed", "the endpoint's first type by default")
    sent = crm.received("ok")
    check.eq(len(sent), 1, "one request")
    verified, bad = verify_all(tmp, sent, {"ok": ok["secret"]})
    check.eq((verified, bad), (1, []), "signed with the endpoint's secret (standardwebhooks)")
    check.eq(sent[0][1]["webhook-id"], got["event"]["id"], "webhook-id is the example's id")
    check.eq(json.loads(sent[0][2]), got["event"], "the body is the event the answer shows")

    st, _, got, raw = api.call("POST", f"/v1/webhooks/{fail['id']}/test?type=message.bounced")
    check.eq((st, got.get("delivered"), got.get("status"), got.get("error")), (200, False, 500, "HTTP 500"),
             "a 500 is reported as it came")
    check.eq(got["event"]["type"], "message.bounced", "the type asked for")
    st, _, got, raw = api.call("POST", f"/v1/webhooks/{ok['id']}/test?type=nope.nope")
    check.eq(st, 400, "a type outside the catalogue")
    st, _, got, raw = api.call("POST", "/v1/webhooks/999999/test")
    check.eq(st, 404, "an unknown endpoint")
    check.eq(int(db.psql("SELECT count(*) FROM events")[0][0]), 0, "a test event is stored nowhere")

    r = relance("webhooks", "test", ok["id"], "--type", "reply.received", env=env)
    check.ok(r.returncode == 0 and "delivered: HTTP 200" in r.stdout, f"the command: {r.stdout}{r.stderr}")
    check.eq(len(crm.received("ok")), 2, "the command sent one more")
    check.eq(json.loads(crm.received("ok")[-1][2])["type"], "reply.received", "of the type asked for")
    r = relance("webhooks", "test", fail["id"], env=env)
    check.ok(r.returncode == 1 and "not delivered: HTTP 500" in r.stdout, f"a failure exits 1: {r.stdout}{r.stderr}")
    r = relance("webhooks", "test", "999999", env=env)
    check.ok(r.returncode == 1 and "no webhook 999999" in r.stderr, f"unknown id: {r.stderr}")

    # a redirect is an answer, never followed
    st, _, moved, raw = api.call("POST", "/v1/webhooks", {"url": crm.url("moved")})
    assert st == 201, raw
    n_ok = len(crm.received("ok"))
    st, _, got, raw = api.call("POST", f"/v1/webhooks/{moved['id']}/test")
    check.eq((st, got.get("delivered"), got.get("status")), (200, False, 302), "a 302 is reported, not followed")
    check.eq(len(crm.received("ok")), n_ok, "nothing reached where it pointed")

    # for a day after a rotation both secrets sign: a test request, and a
    # delivery of the outbox, each verify with the old and the new
    st, _, rot, raw = api.call("POST", f"/v1/webhooks/{ok['id']}/rotate-secret")
    assert st == 200, raw
    st, _, got, raw = api.call("POST", f"/v1/webhooks/{ok['id']}/test")
    check.eq((st, got.get("delivered")), (200, True), "a test request during the rotation")
    db.psql("INSERT INTO events (kind, occurred_at, data) VALUES ('contact.unsubscribed', now(), '{}')")
    assert harness.wait_until(lambda: len(crm.received("ok")) >= n_ok + 2, 20), "the delivery did not arrive"
    signed = crm.received("ok")[-2:]
    check.eq([len(r[1]["webhook-signature"].split()) for r in signed], [2, 2], "two signatures each")
    check.eq(verify_all(tmp, signed, {"ok": ok["secret"]}), (2, []), "each verifies with the old secret")
    check.eq(verify_all(tmp, signed, {"ok": rot["secret"]}), (2, []), "and with the new one")
    assert s.stop() == 0


def test_an_outcome_is_recorded_only_by_the_claims_holder_or_when_nobody_holds_it(db, check):
    """relance_webhooks_record takes the claim's lock for its transaction:
    granted to the session holding the claim, or when nobody does (a claim
    lost with an earlier connection). An outcome of a replica whose claim
    another replica took since is that other's to record."""
    db.psql("INSERT INTO webhooks (source, url, secret, created_at, updated_at) "
            "VALUES ('api', 'https://crm.example/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())")
    db.psql("INSERT INTO events (kind, occurred_at, data) "
            "SELECT 'reply.received', now(), '{}' FROM generate_series(1, 2)")
    first, second = (r[0] for r in db.psql("SELECT id FROM webhook_deliveries ORDER BY id"))
    # another replica: a session holding the first delivery's claim
    holder = subprocess.Popen(["psql", "-X", "-q", "-t", "-A", db.url()], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    holder.stdin.write(f"SELECT 'held' FROM (SELECT pg_advisory_lock(relance_webhook_lock_key({first}))) x;\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "held", "the other session holds the claim"
    try:
        db.psql(f"SELECT relance_webhooks_record(now(), ARRAY[{first}, {second}]::bigint[], ARRAY[200, 500], "
                "ARRAY[NULL, 'HTTP 500'])")
        owed = db.psql("SELECT id, attempts, last_status FROM webhook_deliveries ORDER BY id")
        check.eq(owed, [[first, "0", ""], [second, "1", "500"]],
                 "the claim held elsewhere is left as it was; the one nobody holds is recorded")
    finally:
        holder.stdin.close()
        holder.wait(10)
    db.psql(f"SELECT relance_webhooks_record(now(), ARRAY[{first}]::bigint[], ARRAY[200], ARRAY[NULL]::text[])")
    check.eq(db.psql("SELECT id FROM webhook_deliveries ORDER BY id"), [[second]],
             "once its holder's connection ended, the delivery is recorded: delivered, out of the queue")
    check.eq(db.psql("SELECT ids FROM webhook_delivered"), [["{" + first + "}"]], "and noted delivered")


def test_a_cycle_claims_each_endpoints_share_after_what_it_holds(db, check):
    """relance_webhooks_cycle's claim, statement by statement (each psql
    session's locks end with it): an endpoint's share less what it holds,
    never a claim this session holds (p_held), from after its own fresh
    claims (p_after) or from the start (0), the endpoint rows first, the
    share in the trailer."""
    for name in ("a", "b"):
        db.psql("INSERT INTO webhooks (source, url, secret, created_at, updated_at) "
                f"VALUES ('api', 'https://crm.example/{name}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())")
    db.psql("INSERT INTO events (kind, occurred_at, data) "
            "SELECT 'reply.received', now(), jsonb_build_object('n', g) FROM generate_series(1, 5) g")
    hooks = [r[0] for r in db.psql("SELECT id FROM webhooks ORDER BY id")]
    owed = {h: [r[0] for r in db.psql(f"SELECT id FROM webhook_deliveries WHERE webhook_id = {h} ORDER BY id")]
            for h in hooks}
    a, b = hooks

    def cycle(held=(), busy=(), per=2, total=100, minimum=1):
        """Runs one cycle as a replica holding held, with busy [(endpoint,
        count, after)]; returns (endpoint rows, claims by endpoint, trailer)."""
        keys = "{" + ",".join(f'"{i}":0' for i in held) + "}"
        ids = "{" + ",".join(str(x[0]) for x in busy) + "}"
        counts = "{" + ",".join(str(x[1]) for x in busy) + "}"
        after = "{" + ",".join(str(x[2]) for x in busy) + "}"
        out = db.psql("SELECT delivery_id, webhook_id, url, body IS NOT NULL, hold, fresh "
                      "FROM relance_webhooks_cycle(now(), '{}', '{}', '{}', '{}', "
                      f"'{keys}', '{ids}', '{counts}', '{after}', {per}, {total}, {minimum})")
        eps = [r[1] for r in out if not r[0] and r[1]]
        claims = {}
        for r in out:
            if r[0]:
                claims.setdefault(r[1], []).append(r[0])
                check.eq((r[3], r[5]), ("t", "t"), f"claim {r[0]} comes with its body, fresh")
        check.ok(all(not r[0] for r in out[:len(eps)]), "the endpoint rows come first", out)
        return eps, claims, out[-1][4]

    eps, claims, hold = cycle()
    check.eq((sorted(eps), claims, hold), (hooks, {a: owed[a][:2], b: owed[b][:2]}, "2"),
             "each endpoint's share (2), its first due deliveries")
    eps, claims, _ = cycle(held=owed[a][:2], busy=[(a, 1, 0)])
    check.eq(claims.get(a), owed[a][2:3], "held claims are passed over; the share less what it holds (1)")
    _, claims, _ = cycle(busy=[(a, 1, owed[a][1])])
    check.eq(claims.get(a), owed[a][2:3], "from after its own fresh claims (p_after), even past a free one")
    _, claims, _ = cycle(busy=[(a, 2, 0), (b, 1, 0)])
    check.eq((claims.get(a), claims.get(b)), (None, owed[b][:1]), "nothing for a full endpoint")
    _, claims, hold = cycle(per=2, total=3, minimum=2)
    check.eq((hold, sum(len(c) for c in claims.values())), ("2", 3),
             "shares of at least 2 (p_min), but no more claims in all than p_total (3)")
    _, claims, _ = cycle(busy=[(a, 1, 0)], per=2, total=3, minimum=2)
    check.eq(sum(len(c) for c in claims.values()), 2, "what a replica holds counts against p_total")
