"""OAuth2 sending accounts end to end: an account with `auth:
xoauth2` sends through `relance serve` to Postfix, whose AUTH is Dovecot's
oauth2 passdb checking every bearer token against tests/oauth_server.py's
introspection endpoint; relance gets its tokens from that server's token
endpoint over HTTPS, trusting the test CA through the account's
tls_ca_file. Tokens live 5 s and every refresh rotates the refresh token.

- Several messages spanning token expiries all arrive, each session
  authenticated with XOAUTH2; the token endpoint was asked again after the
  first token's end, and with the rotated refresh token each time.
- The token endpoint down (503) while no valid token is left: the messages
  are deferred with that reason, then sent once it is back; nothing lost,
  nothing twice.
- A token the SMTP server refuses (introspection says inactive once) is
  refreshed once and the message sent on the retry, without a deferral.
- The grant revoked (invalid_grant): that account pauses with the reason in
  `relance accounts list` and sends nothing more, while a password account
  keeps sending.
- No secret (client secret, refresh tokens, access tokens, password) in
  relance's output or in what it stores, even the refresh token a server
  echoes in its error."""
import os
import time

import pytest

import harness
import mailservers
import oauth_server
from harness import relance, wait_until

LIFETIME = 5
OA, PW = "oa@acme.example", "pw@acme.example"
START = "2026-03-02T09:00:00Z"
SCHED = 'schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}'
SEQS = {
    "oauth-three": ("oauth", '  - {id: one, subject: "Hello {{company}}", body: "Hi."}\n'
                             '  - {id: two, wait: 1h, body: "Again."}\n'
                             '  - {id: three, wait: 1h, body: "Last."}\n'),
    "oauth-one": ("oauth", '  - {id: one, subject: "Hello {{company}}", body: "Hi."}\n'),
    "pw-one": ("pw", '  - {id: one, subject: "Hello {{company}}", body: "Hi."}\n'),
}


class World:
    """The token server, Postfix whose AUTH asks it, the oauth and pw pools,
    the sequences, and one `relance serve` at 600x (the 1h waits between
    steps pass in 6 s, more than a token's life). The cases run in order
    on it, as the token server's life goes on: expiries, an outage, a
    refused token, a revoked grant."""

    def __init__(self, db, tmp):
        self.db = db
        self.oa = oa = oauth_server.OAuthServer(lifetime=LIFETIME, rotate=True)
        self.ms = ms = mailservers.MailServers(users=[(PW, "pw-secret-7")],
                                               oauth2_introspection_url=oa.introspection_url)
        oa.start_for(ms)
        refresh_token = oa.grant(OA)
        cfg = os.path.join(tmp, "relance.yaml")
        with open(cfg, "w") as f:
            f.write(f"""pools:
  oauth:
    accounts:
      - email: {OA}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
{oa.account_yaml(8)}        tls_ca_file: {ms.ca_file}
  pw:
    accounts:
      - email: {PW}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        password_env: PW_PASSWORD
        tls_ca_file: {ms.ca_file}
""")
        self.env = env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "OA_CLIENT_SECRET": oa.client_secret,
                          "OA_REFRESH_TOKEN": refresh_token, "PW_PASSWORD": "pw-secret-7"}
        for name, (pool, steps) in SEQS.items():
            path = harness.sequence(tmp, "custom_steps", name=name, pool=pool, steps=steps)
            assert relance("apply", path, env=env).returncode == 0, f"apply {name}"
        self.s = None

    def enroll(self, seq, who):
        self.db.psql("INSERT INTO contacts (email, company) VALUES " +
                     ",".join(f"('{w}', 'Co {w[:2]}')" for w in who))
        args = ["enroll", "--sequence", seq]
        for w in who:
            args += ["--contact", w]
        r = relance(*args, env={**self.env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(who)}" in r.stdout, f"enroll {len(who)} into {seq}: {r.stdout + r.stderr}"

    def q(self, sql):
        return self.db.psql(sql)

    def xoauth2_logins(self):
        """Messages Postfix queued from an XOAUTH2 session of the account."""
        return self.ms.smtp_log().count(f"sasl_method=XOAUTH2, sasl_username={OA}")


@pytest.fixture(scope="module")
def w(module_db, module_tmp):
    w = World(module_db, module_tmp)
    try:
        w.s = harness.Serve({**w.env, "RELANCE_TEST_CLOCK": f"{START}*600"})
        w.s.wait_status("/readyz", 200)
        yield w
    finally:
        if w.s:
            w.s.kill()
        w.ms.stop()
        w.oa.stop()


def test_messages_spanning_token_expiries_all_go_with_rotated_refresh_tokens(w, check):
    A = [f"a{i}@prospects.example" for i in range(4)]
    w.enroll("oauth-three", A)
    first = time.time()
    got = {a: w.ms.wait_for(a, 3, timeout=max(1, first + 90 - time.time())) for a in A}
    check.ok(all(len(m) == 3 for m in got.values()), "every contact got its 3 steps from the xoauth2 account",
             str({a: len(m) for a, m in got.items()}) + w.s.output()[-3000:])
    span = time.time() - first
    requests_a = w.oa.token_requests(OA)
    check.ok(span > LIFETIME and requests_a >= 2,
             f"the token endpoint was asked again after the first token's {LIFETIME} s ({requests_a} requests over {span:.0f} s)")
    check.eq(set(w.oa.answers(OA)), {200}, "every refresh succeeded, each with the refresh token the previous one rotated in")
    check.eq(w.xoauth2_logins(), 12, "each of the 12 messages went through a session authenticated with XOAUTH2")
    check.ok(w.oa.introspections >= 2, f"Dovecot checked the tokens ({w.oa.introspections} introspections)")
    check.eq(w.q(f"SELECT m.state, count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.email = '{OA}' "
               "GROUP BY 1"), [["sent", "12"]],
             "12 messages recorded as sent")



def test_a_token_endpoint_outage_defers_then_sends_once_it_is_back(w, check):
    w.oa.down(True)
    time.sleep(LIFETIME + 1)  # every token relance holds has ended
    B = ["b0@prospects.example", "b1@prospects.example"]
    w.enroll("oauth-one", B)
    deferred = wait_until(lambda: int(w.q("SELECT count(*) FROM events WHERE kind = 'message.deferred' "
                                        "AND data->>'reply' LIKE '%OAuth2 token endpoint unavailable: HTTP 503%'")[0][0])
                          >= 3, 40)
    check.ok(deferred, "with the token endpoint answering 503, the messages are deferred with that reason",
             str(w.q("SELECT kind, data->>'reply' FROM events WHERE kind LIKE 'message.%' ORDER BY id DESC LIMIT 5")))
    check.eq([m for b in B for m in w.ms.messages(b)], [], "nothing was sent without a token")
    check.ok(503 in w.oa.answers(OA), "the endpoint was asked while down")
    w.oa.down(False)
    got_b = {b: w.ms.wait_for(b, 1, timeout=60) for b in B}
    time.sleep(1)
    check.eq({b: len(w.ms.messages(b)) for b in B}, {b: 1 for b in B}, "once it is back, each deferred message arrives once")
    check.eq(w.q("SELECT state, attempts::int > 1 FROM messages m JOIN contacts c ON c.email = m.recipient "
               "WHERE c.email LIKE 'b_@prospects.example' ORDER BY c.email"), [["sent", "t"], ["sent", "t"]],
             "both recorded sent after at least one deferred attempt")
    check.eq(w.q(f"SELECT state FROM accounts WHERE email = '{OA}'"), [["active"]], "an endpoint outage never pauses")



def test_a_token_the_smtp_server_refuses_is_refreshed_once_and_sent(w, check):
    time.sleep(LIFETIME + 1)  # the next send needs a new token, so a new session and AUTH
    before_requests, before_refused = w.oa.token_requests(OA), w.oa.introspections_refused
    w.oa.refuse_next_introspections(1)
    w.enroll("oauth-one", ["c0@prospects.example"])
    check.eq(len(w.ms.wait_for("c0@prospects.example", 1, timeout=30)), 1, "the message arrives")
    check.eq(w.oa.introspections_refused - before_refused, 1, "the SMTP server refused one token")
    check.eq(w.q("SELECT state, attempts FROM messages WHERE recipient = 'c0@prospects.example'"), [["sent", "1"]],
             "sent on the first attempt: the refused token was refreshed and the send retried at once")
    check.ok(w.oa.token_requests(OA) - before_requests >= 2, "a new token after the refusal")
    check.ok("a server refused the access token" in w.s.output(), "the refusal is logged")



def test_a_revoked_grant_pauses_that_account_only(w, check):
    w.oa.revoke(OA)
    # An SMTP session already authenticated stays usable for as long as the
    # token relance holds is: the revocation shows at the next refresh.
    time.sleep(LIFETIME + 1)
    D = ["d0@prospects.example", "d1@prospects.example"]
    P = ["p0@prospects.example", "p1@prospects.example"]
    w.enroll("oauth-one", D)
    w.enroll("pw-one", P)
    paused = wait_until(lambda: w.q(f"SELECT state FROM accounts WHERE email = '{OA}'") == [["paused"]], 30)
    check.ok(paused, "the xoauth2 account pauses after invalid_grant", w.s.output()[-3000:])
    got_p = {p: w.ms.wait_for(p, 1, timeout=30) for p in P}
    check.eq({p: len(m) for p, m in got_p.items()}, {p: 1 for p in P}, "the password account keeps sending")
    r = relance("accounts", "list", env=w.env)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith(OA)), "")
    check.ok("\tpaused: authentication failed:" in line and "OAuth2 token refresh refused: HTTP 400 invalid_grant" in line,
             "accounts list shows the account paused with the reason", r.stdout)
    check.ok("(Token *** has been expired or revoked.)" in line,
             "the refresh token the server echoed in its error is masked", line)
    check.ok(next((ln for ln in r.stdout.splitlines() if ln.startswith(PW)), "").split("\t")[2:3] == ["active"],
             "the password account stays active", r.stdout)
    requests_d = w.oa.token_requests(OA)
    time.sleep(6)  # an hour at 600x: far past any backoff
    check.eq([m for d in D for m in w.ms.messages(d)], [], "nothing is sent from the paused account")
    check.eq(w.oa.token_requests(OA), requests_d, "and its token endpoint is not asked again")


def test_no_secret_in_the_output_or_the_database(w, check):
    check.eq(w.s.stop(), 0, "serve stops cleanly")

    out = w.s.output()
    leaked = [x for x in w.oa.secrets() + ["pw-secret-7"] if x in out]
    check.eq(leaked, [], f"no secret in relance's output ({len(w.oa.secrets())} client secret and tokens checked)")
    stored = "\n".join(row[0] for row in w.q("SELECT data::text FROM events UNION ALL SELECT coalesce(reply, '') FROM messages "
                                          "UNION ALL SELECT coalesce(state_reason, '') FROM accounts"))
    check.eq([x for x in w.oa.secrets() if x in stored], [], "nor in the database (events, replies, account reasons)")
    check.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
