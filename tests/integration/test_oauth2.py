"""OAuth2 sending accounts (issue 6) end to end: an account with `auth:
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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
import oauth_server  # noqa: E402
from harness import relance, wait_until  # noqa: E402

t = harness.Check("oauth2")
LIFETIME = 5
OA, PW = "oa@acme.example", "pw@acme.example"
oa = oauth_server.OAuthServer(lifetime=LIFETIME, rotate=True)
ms = mailservers.MailServers(users=[(PW, "pw-secret-7")], oauth2_introspection_url=oa.introspection_url)
oa.start_for(ms)
refresh_token = oa.grant(OA)
pg = harness.Postgres()
tmp = harness.short_tempdir("roa")
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
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "OA_CLIENT_SECRET": oa.client_secret,
       "OA_REFRESH_TOKEN": refresh_token, "PW_PASSWORD": "pw-secret-7"}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
SCHED = 'schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}'
SEQS = {
    "oauth-three": ("oauth", '  - {id: one, subject: "Hello {{company}}", body: "Hi."}\n'
                             '  - {id: two, wait: 1h, body: "Again."}\n'
                             '  - {id: three, wait: 1h, body: "Last."}\n'),
    "oauth-one": ("oauth", '  - {id: one, subject: "Hello {{company}}", body: "Hi."}\n'),
    "pw-one": ("pw", '  - {id: one, subject: "Hello {{company}}", body: "Hi."}\n'),
}
for name, (pool, steps) in SEQS.items():
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"name: {name}\nsender_pool: {pool}\n{SCHED}\nsteps:\n{steps}")
    t.eq(relance("apply", path, env=env).returncode, 0, f"apply {name}")

START = "2026-03-02T09:00:00Z"


def enroll(seq, who):
    pg.psql("INSERT INTO contacts (email, company) VALUES " + ",".join(f"('{w}', 'Co {w[:2]}')" for w in who))
    args = ["enroll", "--sequence", seq]
    for w in who:
        args += ["--contact", w]
    r = relance(*args, env={**env, "RELANCE_TEST_CLOCK": START})
    t.ok(f"enrolled {len(who)}" in r.stdout, f"enroll {len(who)} into {seq}", r.stdout + r.stderr)


def q(sql):
    return pg.psql(sql)


def xoauth2_logins():
    """Messages Postfix queued from an XOAUTH2 session of the account."""
    return ms.smtp_log().count(f"sasl_method=XOAUTH2, sasl_username={OA}")


# ---- A: several messages across token expiries --------------------------
A = [f"a{i}@prospects.example" for i in range(4)]
enroll("oauth-three", A)
# 600x: the 1h waits between steps pass in 6 s, more than a token's life
s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*600"})
s.wait_status("/readyz", 200)
first = time.time()
got = {a: ms.wait_for(a, 3, timeout=max(1, first + 90 - time.time())) for a in A}
t.ok(all(len(m) == 3 for m in got.values()), "every contact got its 3 steps from the xoauth2 account",
     str({a: len(m) for a, m in got.items()}) + s.output()[-3000:])
span = time.time() - first
requests_a = oa.token_requests(OA)
t.ok(span > LIFETIME and requests_a >= 2,
     f"the token endpoint was asked again after the first token's {LIFETIME} s ({requests_a} requests over {span:.0f} s)")
t.eq(set(oa.answers(OA)), {200}, "every refresh succeeded, each with the refresh token the previous one rotated in")
t.eq(xoauth2_logins(), 12, "each of the 12 messages went through a session authenticated with XOAUTH2")
t.ok(oa.introspections >= 2, f"Dovecot checked the tokens ({oa.introspections} introspections)")
t.eq(q(f"SELECT m.state, count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.email = '{OA}' "
       "GROUP BY 1"), [["sent", "12"]],
     "12 messages recorded as sent")

# ---- B: the token endpoint down, then back -------------------------------
oa.down(True)
time.sleep(LIFETIME + 1)  # every token relance holds has ended
B = ["b0@prospects.example", "b1@prospects.example"]
enroll("oauth-one", B)
deferred = wait_until(lambda: int(q("SELECT count(*) FROM events WHERE kind = 'message.deferred' "
                                    "AND data->>'reply' LIKE '%OAuth2 token endpoint unavailable: HTTP 503%'")[0][0])
                      >= 3, 40)
t.ok(deferred, "with the token endpoint answering 503, the messages are deferred with that reason",
     str(q("SELECT kind, data->>'reply' FROM events WHERE kind LIKE 'message.%' ORDER BY id DESC LIMIT 5")))
t.eq([m for b in B for m in ms.messages(b)], [], "nothing was sent without a token")
t.ok(503 in oa.answers(OA), "the endpoint was asked while down")
oa.down(False)
got_b = {b: ms.wait_for(b, 1, timeout=60) for b in B}
time.sleep(1)
t.eq({b: len(ms.messages(b)) for b in B}, {b: 1 for b in B}, "once it is back, each deferred message arrives once")
t.eq(q("SELECT state, attempts::int > 1 FROM messages m JOIN contacts c ON c.email = m.recipient "
       "WHERE c.email LIKE 'b_@prospects.example' ORDER BY c.email"), [["sent", "t"], ["sent", "t"]],
     "both recorded sent after at least one deferred attempt")
t.eq(q(f"SELECT state FROM accounts WHERE email = '{OA}'"), [["active"]], "an endpoint outage never pauses")

# ---- C: a token refused by the SMTP server is refreshed once --------------
time.sleep(LIFETIME + 1)  # the next send needs a new token, so a new session and AUTH
before_requests, before_refused = oa.token_requests(OA), oa.introspections_refused
oa.refuse_next_introspections(1)
enroll("oauth-one", ["c0@prospects.example"])
t.eq(len(ms.wait_for("c0@prospects.example", 1, timeout=30)), 1, "the message arrives")
t.eq(oa.introspections_refused - before_refused, 1, "the SMTP server refused one token")
t.eq(q("SELECT state, attempts FROM messages WHERE recipient = 'c0@prospects.example'"), [["sent", "1"]],
     "sent on the first attempt: the refused token was refreshed and the send retried at once")
t.ok(oa.token_requests(OA) - before_requests >= 2, "a new token after the refusal")
t.ok("a server refused the access token" in s.output(), "the refusal is logged")

# ---- D: the grant revoked; the password account goes on -------------------
oa.revoke(OA)
# An SMTP session already authenticated stays usable for as long as the
# token relance holds is: the revocation shows at the next refresh.
time.sleep(LIFETIME + 1)
D = ["d0@prospects.example", "d1@prospects.example"]
P = ["p0@prospects.example", "p1@prospects.example"]
enroll("oauth-one", D)
enroll("pw-one", P)
paused = wait_until(lambda: q(f"SELECT state FROM accounts WHERE email = '{OA}'") == [["paused"]], 30)
t.ok(paused, "the xoauth2 account pauses after invalid_grant", s.output()[-3000:])
got_p = {p: ms.wait_for(p, 1, timeout=30) for p in P}
t.eq({p: len(m) for p, m in got_p.items()}, {p: 1 for p in P}, "the password account keeps sending")
r = relance("accounts", "list", env=env)
line = next((ln for ln in r.stdout.splitlines() if ln.startswith(OA)), "")
t.ok("\tpaused: authentication failed:" in line and "OAuth2 token refresh refused: HTTP 400 invalid_grant" in line,
     "accounts list shows the account paused with the reason", r.stdout)
t.ok("(Token *** has been expired or revoked.)" in line,
     "the refresh token the server echoed in its error is masked", line)
t.ok(next((ln for ln in r.stdout.splitlines() if ln.startswith(PW)), "").split("\t")[2:3] == ["active"],
     "the password account stays active", r.stdout)
requests_d = oa.token_requests(OA)
time.sleep(6)  # an hour at 600x: far past any backoff
t.eq([m for d in D for m in ms.messages(d)], [], "nothing is sent from the paused account")
t.eq(oa.token_requests(OA), requests_d, "and its token endpoint is not asked again")
t.eq(s.stop(), 0, "serve stops cleanly")

out = s.output()
leaked = [x for x in oa.secrets() + ["pw-secret-7"] if x in out]
t.eq(leaked, [], f"no secret in relance's output ({len(oa.secrets())} client secret and tokens checked)")
stored = "\n".join(row[0] for row in q("SELECT data::text FROM events UNION ALL SELECT coalesce(reply, '') FROM messages "
                                      "UNION ALL SELECT coalesce(state_reason, '') FROM accounts"))
t.eq([x for x in oa.secrets() if x in stored], [], "nor in the database (events, replies, account reasons)")
t.ok("runtime error" not in out and "AddressSanitizer" not in out, "sanitizers quiet", out[-2000:])
t.done()
