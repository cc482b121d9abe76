"""A small OAuth2 authorization server for relance's integration tests.

OAuthServer runs in a thread of the test, Python's standard library only:

- `POST /token`: the refresh-token grant (RFC 6749 section 6), form-encoded,
  client_id and client_secret in the body. It answers a fresh access token
  with a short `expires_in` (`lifetime`, seconds), and, when `rotate` is
  set, a new refresh token that replaces the one used (reusing an old one is
  `invalid_grant`, as rotating providers do). A revoked grant, a wrong
  client or an unknown refresh token get 400/401 with RFC 6749 5.2's error
  codes (an unknown refresh token is echoed in error_description, as
  careless servers do). `down(True)` makes it answer 503 until
  `down(False)`.
- `POST /introspect` (and GET with `?token=`): token introspection (RFC
  7662) for Dovecot's oauth2 passdb: `{"active": true, "username": ...}`
  while a token is live, `{"active": false}` once it expired or its grant
  was revoked — or, after `refuse_next_introspections(n)`, for the next n
  live tokens.

It serves HTTPS with the certificate of tests/mailservers.py (`start_for(ms)`;
clients trust `ms.ca_file`) on `url` and, for Dovecot's HTTP client, plain HTTP on
`introspection_url`. Every request is counted (`token_requests(email)`),
and every secret it hands out or accepts is listed in `secrets()`, so a
test can check that none of them reached a log."""
import http.server
import json
import os
import secrets as _secrets
import socketserver
import ssl
import threading
import time
import urllib.parse

import harness


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class OAuthServer:
    def __init__(self, client_id="relance-test", client_secret=None, lifetime=5, rotate=False):
        self.client_id = client_id
        self.client_secret = client_secret or "cs-" + _secrets.token_urlsafe(16)
        self.lifetime = lifetime
        self.rotate = rotate
        self.port = harness.free_port()
        self.http_port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}/token"
        self.introspection_url = f"http://127.0.0.1:{self.http_port}/introspect"
        self._lock = threading.Lock()
        self._grants = {}     # refresh token -> email (live ones)
        self._owners = {}     # refresh token -> email (every one ever issued)
        self._revoked = set()  # emails whose grants were revoked
        self._tokens = {}     # access token -> (email, expires_at)
        self._issued = []     # every secret handed out or configured
        self._requests = {}   # email -> token requests, answered or not
        self._answers = []    # (email or None, status) per token request
        self._down = False
        self.introspections = 0
        self.introspections_refused = 0  # live tokens answered inactive on purpose
        self.introspected = []  # (token, active) in the order asked
        self._refuse_next = 0
        self._servers = []
        harness.at_exit(self.stop)

    # ---- set-up

    def grant(self, email):
        """A refresh token for email (what a user's consent would give)."""
        token = "rt-" + _secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = self._owners[token] = email.lower()
            self._issued.append(token)
        return token

    def account_yaml(self, indent, secret_env="OA_CLIENT_SECRET", refresh_env="OA_REFRESH_TOKEN"):
        """The lines that make an account of relance's configuration log in
        with this server's tokens (`auth: xoauth2` and its `oauth2` block),
        each indented by indent spaces; the secrets come from the two
        environment variables named."""
        pad = " " * indent
        return (f"{pad}auth: xoauth2\n{pad}oauth2:\n{pad}  token_url: {self.url}\n"
                f"{pad}  client_id: {self.client_id}\n{pad}  client_secret_env: {secret_env}\n"
                f"{pad}  refresh_token_env: {refresh_env}\n")

    def start_for(self, ms):
        """Starts with the certificate of mailservers.MailServers ms."""
        return self.start(os.path.join(ms.tls, "server.crt"), os.path.join(ms.tls, "server.key"))

    def start(self, cert_file, key_file):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        handler = self._handler()
        tls = _Server(("127.0.0.1", self.port), handler)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        plain = _Server(("127.0.0.1", self.http_port), handler)
        for srv in (tls, plain):
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self._servers.append(srv)
        return self

    def stop(self):
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers = []

    # ---- control and observation

    def down(self, flag):
        with self._lock:
            self._down = flag

    def refuse_next_introspections(self, n):
        """Answers the next n introspections of live tokens inactive, as a
        server would for a token it dropped early."""
        with self._lock:
            self._refuse_next = n

    def revoke(self, email):
        """Revokes every grant of email and the access tokens issued from them."""
        email = email.lower()
        with self._lock:
            self._revoked.add(email)
            for rt in [rt for rt, e in self._grants.items() if e == email]:
                del self._grants[rt]

    def token_requests(self, email=None):
        with self._lock:
            if email is None:
                return sum(self._requests.values())
            return self._requests.get(email.lower(), 0)

    def answers(self, email=None):
        """The HTTP status of each token request, oldest first."""
        with self._lock:
            return [s for e, s in self._answers if email is None or e == email.lower()]

    def secrets(self):
        """The client secret, every refresh token and every access token."""
        with self._lock:
            return [self.client_secret] + list(self._issued)

    # ---- the endpoints

    def _token(self, form):
        """(status, JSON object) for a token request."""
        rt = form.get("refresh_token", "")
        with self._lock:
            email = self._grants.get(rt)
            owner = self._owners.get(rt, "?")
            self._requests[owner] = self._requests.get(owner, 0) + 1
            if self._down:
                return 503, {"error": "temporarily_unavailable"}, owner
            if form.get("grant_type") != "refresh_token":
                return 400, {"error": "unsupported_grant_type"}, owner
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed."}, owner
            if email is None:
                # echoing what was presented, as careless servers do: the
                # client must keep it out of its logs all the same
                return 400, {"error": "invalid_grant",
                             "error_description": f"Token {rt} has been expired or revoked."}, owner
            access = "at-" + _secrets.token_urlsafe(24)
            self._tokens[access] = (email, time.time() + self.lifetime)
            self._issued.append(access)
            body = {"access_token": access, "token_type": "Bearer", "expires_in": self.lifetime,
                    "scope": "https://mail.example/"}
            if self.rotate:
                new_rt = "rt-" + _secrets.token_urlsafe(24)
                del self._grants[rt]
                self._grants[new_rt] = self._owners[new_rt] = email
                self._issued.append(new_rt)
                body["refresh_token"] = new_rt
            return 200, body, email

    def _introspect(self, token):
        with self._lock:
            self.introspections += 1
            email, expires = self._tokens.get(token, (None, 0))
            if email is None or email in self._revoked or time.time() >= expires:
                return {"active": False}
            if self._refuse_next > 0:
                self._refuse_next -= 1
                self.introspections_refused += 1
                self.introspected.append((token, False))
                return {"active": False}
            self.introspected.append((token, True))
            return {"active": True, "username": email, "token_type": "Bearer",
                    "exp": int(expires), "client_id": self.client_id}

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass  # quiet: and no token in the test's output

            def _reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def _form(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n).decode() if n else ""
                return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

            def _bearer(self):
                auth = self.headers.get("Authorization") or ""
                return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

            def do_POST(self):
                path = urllib.parse.urlsplit(self.path).path
                form = self._form()
                if path == "/token":
                    status, obj, email = server._token(form)
                    with server._lock:
                        server._answers.append((email, status))
                    self._reply(status, obj)
                elif path == "/introspect":
                    self._reply(200, server._introspect(form.get("token") or self._bearer()))
                else:
                    self._reply(404, {"error": "not_found"})

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                if parts.path.startswith("/introspect"):
                    q = urllib.parse.parse_qs(parts.query)
                    token = (q.get("token") or q.get("access_token") or [""])[0] or self._bearer()
                    self._reply(200, server._introspect(token))
                else:
                    self._reply(404, {"error": "not_found"})

        return Handler
