"""GET /metrics (README "Metrics"): one serve sends a step to a few
contacts over the real Postfix, one contact replies (read by the mailbox
watcher), and the scrape says so — sends by account and outcome equal to
what Postfix took, claims, enrollments by state, the reply-to-stop
latency, no send after a reply — in a form `promtool check metrics`
(Debian's prometheus package) accepts; the token set in the configuration
is required; and a real Prometheus server started here scrapes relance
and answers relance_sends_total through its HTTP API. A second, bare serve
answers /metrics on the API's own listener, without a token."""
import email.utils
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import harness
from harness import parsed, relance, wait_until

SENDER = "sender@acme.example"
N = 4
START = "2026-03-02T09:00:00Z"
TOKEN = "scrape-me-7f3a"
pytestmark = pytest.mark.mail(users=[(SENDER, "pw-sender")])


def scrape(port, token=None, path="/metrics"):
    """(status, body text, headers) of GET path on 127.0.0.1:port."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def samples(text):
    """{'name{labels}': value} of an exposition (comments left out)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def run(mail, module_db, module_tmp):
    """N contacts get step 1, p0 replies and its enrollment stops; serve
    goes on running (metrics on a listener of their own, with a token)
    while the cases scrape it."""
    ms, db, tmp = mail, module_db, module_tmp
    metrics_port = harness.free_port()
    cfg = os.path.join(tmp, "relance.yaml")
    with open(cfg, "w") as f:
        f.write(f"""tls_ca_file: {ms.ca_file}
http:
  metrics_listen: 127.0.0.1:{metrics_port}
  metrics_token_env: METRICS_TOKEN
pools:
  main:
    accounts:
      - email: {SENDER}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
        password_env: PW
        watch_interval: 1h
""")
    env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "PW": "pw-sender", "METRICS_TOKEN": TOKEN}
    seq = harness.sequence(tmp, "custom_steps", name="m", pool="main", extra="stop_on: [reply]", steps="""  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello, an idea."
  - id: bump
    wait: 3h
    body: "Bumping this."
""")
    assert relance("apply", seq, env=env).returncode == 0, "apply"
    db.psql("INSERT INTO contacts (email, company) VALUES " +
            ",".join(f"('p{i}@prospects.example', 'Co {i}')" for i in range(N)))
    r = relance("enroll", "--sequence", "m", "--where", "true", env={**env, "RELANCE_TEST_CLOCK": START})
    assert f"enrolled {N}" in r.stdout, f"enroll: {r.stdout + r.stderr}"

    s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*10"})
    try:
        s.wait_status("/readyz", 200)
        firsts = {i: ms.wait_for(f"p{i}@prospects.example", 1, timeout=20) for i in range(N)}
        assert all(firsts.values()), f"step 1 reached every contact: {s.output()[-3000:]}"
        # p0 replies; the Received field is what the delivering MTA writes,
        # the arrival the latency is measured from
        first = parsed(firsts[0][0])
        ms.deliver(SENDER, f"Received: from mx.prospects.example by mail.acme.example with LMTP id x1; "
                           f"{email.utils.formatdate(time.time())}\r\n"
                           f"From: p0@prospects.example\r\nTo: {SENDER}\r\nSubject: Re: {first['Subject']}\r\n"
                           f"Date: {email.utils.formatdate(time.time())}\r\nMessage-ID: <answer-p0@prospects.example>\r\n"
                           f"In-Reply-To: {first['Message-ID']}\r\n\r\nTell me more.\r\n")
        s.proc.send_signal(10)  # SIGUSR1: every mailbox is read now
        stopped = wait_until(lambda: db.psql("SELECT state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                                             "WHERE c.email = 'p0@prospects.example'") == [["replied"]], 20)
        assert stopped, f"p0's reply stopped its enrollment: {s.output()[-3000:]}"
        yield {"serve": s, "port": metrics_port, "db": db, "ms": ms, "tmp": tmp}
    finally:
        s.kill()


def settled_scrape(run, want, timeout=15):
    """The first scrape (with the token) where want(samples) holds; the
    database's figures are cached for 5 s, so a change shows within that."""
    last = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, text, _ = scrape(run["port"], TOKEN)
        assert status == 200, f"scrape: {status} {text}"
        last = samples(text)
        if want(last):
            return text, last
        time.sleep(0.5)
    raise AssertionError(f"the scrape never showed what happened: {last}")


SENT = f'relance_sends_total{{account="{SENDER}",outcome="sent"}}'


def test_the_scrape_counts_what_happened(run, check):
    text, m = settled_scrape(run, lambda m: m.get('relance_enrollments{state="replied"}') == 1)
    check.eq(m.get(SENT), float(N), "relance_sends_total{outcome=sent} equals the messages Postfix took")
    check.eq(sorted(k for k in m if k.startswith("relance_sends_total")), [SENT], "no other outcome was counted")
    check.ok(m.get("relance_claims_total", 0) >= 1, "claims counted", str(m.get("relance_claims_total")))
    check.ok(m.get("relance_claim_duration_seconds_count", 0) >= 1, "claim latency observed")
    check.eq(m.get('relance_enrollments{state="active"}'), float(N - 1), "the others are still active")
    check.eq(m.get('relance_enrollments{state="completed"}'), 0.0, "every state is listed, 0 included")
    check.eq(m.get("relance_due_messages"), 0.0, "nothing due now: the follow-ups are hours away")
    check.eq(m.get("relance_sends_after_reply_total"), 0.0, "nothing sent after a reply")
    check.eq(m.get("relance_reply_to_stop_seconds_count"), 1.0, "one reply stopped an enrollment")
    check.ok(0 <= m.get("relance_reply_to_stop_seconds_sum", -1) < 30, "its latency is seconds, from its arrival",
             str(m.get("relance_reply_to_stop_seconds_sum")))
    check.ok(m.get("relance_imap_pass_duration_seconds_count", 0) >= 1, "mailbox passes timed")
    check.eq(sum(v for k, v in m.items() if k.startswith("relance_imap_mailboxes{")), 1.0,
             "the one watched mailbox, in one state")
    check.eq(m.get("relance_imap_mailboxes_leased"), 1.0, "and this replica holds its lease")
    check.eq(m.get('relance_db_connections{state="up"}'), 5.0, "every database connection is up (five)")
    check.eq(m.get("relance_db_up"), 1.0, "the database is up")
    check.ok(any(k.startswith("relance_build_info{version=") and v == 1 for k, v in m.items()), "build info")
    check.ok(m.get("process_start_time_seconds", 0) > time.time() - 600, "process start time")


def test_promtool_accepts_the_scrape(run):
    text, _ = settled_scrape(run, lambda m: SENT in m)
    r = promtool(text)
    assert r.returncode == 0, f"promtool check metrics: {r.stdout.decode()}{r.stderr.decode()}\n{text}"


def test_promtool_is_not_a_rubber_stamp():
    r = promtool("# TYPE relance_thing counter\nrelance_thing{a=\"x\"} 1\n")
    assert r.returncode != 0, "a counter without _total and without HELP is refused"


def test_the_token_is_required(run):
    port = run["port"]
    status, _, headers = scrape(port)
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer", "no token: 401"
    assert scrape(port, "wrong")[0] == 401, "a wrong token: 401"
    assert scrape(port, TOKEN + "x")[0] == 401, "a longer token: 401"
    assert scrape(port, TOKEN)[0] == 200, "the token: 200"
    assert scrape(port, TOKEN, "/healthz")[0] == 404, "the metrics listener answers /metrics only"
    api = run["serve"].get("/metrics")
    assert api[0] == 404, f"with a listener of their own, the API's listener has no /metrics: {api}"


def test_a_real_prometheus_scrapes_relance(run):
    tmp = run["tmp"]
    port = harness.free_port()
    conf = os.path.join(tmp, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: relance
    authorization: {{type: Bearer, credentials: {TOKEN}}}
    static_configs: [{{targets: ["127.0.0.1:{run['port']}"]}}]
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w+")
    p = subprocess.Popen(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                          f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    harness.at_exit(p.kill)
    try:
        query = urllib.parse.urlencode({"query": f'relance_sends_total{{outcome="sent"}}'})
        got = []

        def answered():
            status, body = harness.http_get(f"http://127.0.0.1:{port}/api/v1/query?{query}")
            if status == 200 and body.get("status") == "success" and body["data"]["result"]:
                got[:] = body["data"]["result"]
                return True
            return False
        ok = wait_until(answered, 30)
        log.seek(0)
        assert ok, f"Prometheus answered relance_sends_total: {log.read()[-3000:]}"
        assert [(r["metric"].get("account"), float(r["value"][1])) for r in got] == [(SENDER, float(N))], got
    finally:
        p.kill()
        p.wait()
        log.close()


def test_metrics_are_on_the_api_listener_by_default(serve, db):
    """No metrics_listen, no token: /metrics is answered by the API's
    listener to anyone, the database's figures included."""
    s = serve({"DATABASE_URL": db.url(), "RELANCE_TRANSPORT": "capture"})
    s.wait_status("/readyz", 200)
    status, text, headers = scrape(s.port)
    assert status == 200, f"{status} {text}"
    assert headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers
    m = samples(text)
    assert m.get('relance_enrollments{state="active"}') == 0.0 and m.get("relance_claims_total") is not None, text
    assert re.search(r"^# TYPE relance_claim_duration_seconds histogram$", text, re.M), text
    r = promtool(text)
    assert r.returncode == 0, f"promtool: {r.stdout.decode()}{r.stderr.decode()}\n{text}"
