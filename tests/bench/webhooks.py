"""The webhooks benchmark for tests/bench/run (issue 20): relance serve
delivering N events (20,000) to a local receiver over 4 endpoints (each
subscribed to its own event type, a quarter of the events each), against a
bare libcurl multi POST loop to the same receiver with the same
concurrency as the bound.

- the receiver: relance-webhook-sink (tests/bench/webhook_sink.c, built
  beside relance): libmicrohttpd answering 200 at once and noting when each
  request arrived.
- relance: the events are written in one transaction (the outbox's
  trigger writes their deliveries in it); the clock runs from its commit
  to the last request's arrival. events/s = N / that time; the outbox lag
  of an event is its request's arrival less its commit, and p95 is over
  all N (with every event written at once, the lag is mostly the queue:
  the last event waits for the N - 1 before it).
- the bound: relance-webhook-bound POSTing an event's body N times with 4
  endpoints x webhook_max_in_flight (4) = 16 requests in flight.

Standard library, the harness and what relance's build makes."""
import os
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

TYPES = ("reply.received", "message.bounced", "contact.unsubscribed", "auto_reply.received")
IN_FLIGHT = 4


def tool(name):
    path = os.path.join(os.path.dirname(os.path.abspath(harness.RELANCE)), name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} not found: build it (cmake --build; it is built beside relance)")
    return path


class Sink:
    def __init__(self, workdir, expect=0):
        self.port = harness.free_port()
        self.out = os.path.join(workdir, f"sink-{time.monotonic_ns()}.txt")
        self.proc = subprocess.Popen([tool("relance-webhook-sink"), str(self.port), self.out, str(expect)],
                                     stdout=subprocess.PIPE, text=True)
        harness.at_exit(self.stop)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("relance-webhook-sink did not start")

    def url(self, i):
        return f"http://127.0.0.1:{self.port}/hook/{i}"

    def wait_received(self, timeout):
        """Waits (on the pipe, taking no CPU) until the expected number
        of requests came; whether they did."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return bool(ready) and self.proc.stdout.readline().startswith("received")

    def stop(self):
        """Stops the receiver; returns [(webhook-id, arrival)]."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [(a, float(b)) for a, b in (line.split() for line in f if line.strip())]


def secret():
    import base64
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def one_round(db, env, workdir, n):
    """Returns (events/s, lag p95 seconds) of relance delivering n events."""
    sink = Sink(workdir, expect=n)
    path = os.path.join(workdir, "webhooks-bench.yaml")
    hooks = "".join(f"  e{i}:\n    url: {sink.url(i)}\n    types: [{t}]\n    secret_env: WH_{i}\n"
                    for i, t in enumerate(TYPES))
    with open(path, "w") as f:
        f.write(f"webhook_allow_insecure: [127.0.0.1]\nwebhook_max_in_flight: {IN_FLIGHT}\nwebhooks:\n{hooks}")
    serve_env = {**env, "RELANCE_CONFIG": path, **{f"WH_{i}": secret() for i in range(len(TYPES))}}
    db.psql("TRUNCATE events CASCADE")
    s = harness.Serve(serve_env)
    s.wait_status("/readyz", 200)
    time.sleep(0.5)  # the endpoints synced
    kinds = "ARRAY[" + ",".join(f"'{t}'" for t in TYPES) + "]"
    db.psql(f"INSERT INTO events (kind, occurred_at, data) SELECT ({kinds})[1 + g % 4], now(), "
            f"jsonb_build_object('n', g) FROM generate_series(1, {n}) g")
    committed = time.time()
    deadline = committed + 600
    # no polling of the database while relance delivers: each psql took
    # CPU from the two cores relance, PostgreSQL and the receiver share
    sink.wait_received(600)
    pending = None
    while time.time() < deadline:
        pending = int(db.psql("SELECT count(*) FROM webhook_deliveries")[0][0])
        if pending == 0:
            break
        time.sleep(0.2)
    s.stop()
    hits = sink.stop()
    if pending != 0 or len({h[0] for h in hits}) != n:
        raise RuntimeError(f"{pending} deliveries pending, {len(hits)} requests received for {n} events")
    last = max(at for _, at in hits)
    lags = sorted(at - committed for _, at in hits)
    return n / (last - committed), lags[int(0.95 * (len(lags) - 1))]


def bound_round(workdir, n):
    sink = Sink(workdir)
    body = ('{"id":"12345","type":"reply.received","occurred_at":"2026-03-02T09:00:00.000000Z",'
            '"data":{"n":12345}}')
    r = subprocess.run([tool("relance-webhook-bound"), sink.url(0), str(n), str(IN_FLIGHT * len(TYPES)), body],
                       capture_output=True, text=True, timeout=600)
    sink.stop()
    if r.returncode != 0:
        raise RuntimeError(f"relance-webhook-bound failed: {r.stdout}{r.stderr}")
    return float(r.stdout.split()[5])


def run(db, env, workdir, rounds, n):
    res = {"relance": [], "lag": [], "bound": []}
    for _ in range(rounds):
        rate, lag = one_round(db, env, workdir, n)
        res["relance"].append(rate)
        res["lag"].append(lag)
        res["bound"].append(bound_round(workdir, n))
    return res


