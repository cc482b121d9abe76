"""A CRM double for the webhook tests: a small HTTP receiver on
127.0.0.1 that records every request it gets and answers by the path's
first segment:

    /ok/...     200
    /flaky/...  500 to the first request of each webhook-id that is a
                multiple of `every` (a number), then 200
    /slow/...   the first request of each webhook-id that is a multiple
                of `every` waits `hang` seconds (past relance's timeout)
                before its 200; 200 at once otherwise
    /gone/...   200 to the first `gone_after` requests, then 410 for ever
    /fail/...   500 always
    /moved/...  302 to /ok/hook (a redirect relance must not follow)

It also counts, per path kind, the requests it is answering at once and
the most it ever answered at once (max_in_flight).

Each record: (path, headers as a dict with lower-case names, body bytes,
arrival time.time(), status answered, time answered). Standard library only."""
import http.server
import threading
import time

import harness


class CrmDouble:
    def __init__(self, hang=3.0, gone_after=50, every=1):
        self.hang = hang
        self.every = every
        self.gone_after = gone_after
        self.lock = threading.Lock()
        self.records = []
        self._seen = {}
        self._gone_count = 0
        self._in_flight = {}
        self.max_in_flight = {}
        self.port = harness.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                arrived = time.time()
                kind = self.path.strip("/").split("/")[0]
                with double.lock:
                    n = double._in_flight[kind] = double._in_flight.get(kind, 0) + 1
                    double.max_in_flight[kind] = max(double.max_in_flight.get(kind, 0), n)
                status, wait = double._decide(self.path, self.headers.get("webhook-id"))
                if wait:
                    time.sleep(wait)
                if status == 200 and kind == "ok":
                    time.sleep(0.002)  # a CRM takes a moment: requests overlap
                with double.lock:
                    double.records.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                           arrived, status, time.time()))
                # answered from here on: counted out before the answer
                # leaves, or the client's next request could be counted
                # while this one's thread has not yet been
                with double.lock:
                    double._in_flight[kind] -= 1
                try:
                    self.send_response(status)
                    if status == 302:
                        self.send_header("Location", f"{double.base}/ok/hook")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # relance gave up waiting: the connection is gone

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            # socketserver's default backlog of 5 drops the SYNs of a burst
            # of new connections: relance would see connect timeouts the
            # CRM never caused
            request_queue_size = 128

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        harness.at_exit(self.close)

    def _decide(self, path, wid):
        kind = path.strip("/").split("/")[0]
        with self.lock:
            first = (kind, wid) not in self._seen
            self._seen[(kind, wid)] = True
            if kind == "gone":
                self._gone_count += 1
                return (200 if self._gone_count <= self.gone_after else 410), 0
        if kind == "ok":
            return 200, 0
        if kind == "moved":
            return 302, 0
        first = first and self.picked(wid)
        if kind == "flaky":
            return (500 if first else 200), 0
        if kind == "slow":
            return 200, (self.hang if first else 0)
        return 500, 0

    def picked(self, wid):
        """Whether /flaky and /slow fail webhook-id wid's first request."""
        return wid is not None and wid.isdigit() and int(wid) % self.every == 0

    def url(self, kind):
        return f"{self.base}/{kind}/hook"

    def received(self, kind):
        with self.lock:
            return [r for r in self.records if r[0].strip("/").split("/")[0] == kind]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
