"""OAuth2 for the mailbox watcher (issue 6: xoauth2 "used for SMTP and
IMAP") end to end: one account with `auth: xoauth2` sends through Postfix
(AUTH by Dovecot's oauth2 passdb) and has its mailbox watched over IMAP
with STARTTLS, logging in with AUTHENTICATE XOAUTH2; Dovecot checks every
bearer token against tests/oauth_server.py's introspection endpoint, and
relance gets its tokens from that server's token endpoint over HTTPS.
Tokens live 5 s and each refresh rotates the refresh token; SMTP and IMAP
share them.

- A prospect's reply (In-Reply-To: our Message-ID) put in the sender's
  INBOX is detected: the enrollment is 'replied' and the follow-up never
  sent, while a contact who does not reply gets it; Dovecot's log shows
  the watcher's IMAP logins, every one XOAUTH2. The first pass waits for
  the first token rather than failing for want of one.
- Across a token expiry and an IMAP server restart (which forces a new
  login, which an expired token would not pass), the watcher keeps
  working: the token endpoint was asked again, the new login used a live
  token, a reply that came meanwhile is read.
- `relance imap-check` works with the xoauth2 account too.
- A live token the IMAP server refuses (dropped early): the watcher
  drops it, gets a fresh one and logs in again at once.
- The token endpoint down until the watcher's token lapses: the watcher
  says once that it has no token, and reads the reply that came
  meanwhile once the endpoint is back.
- No secret (client secret, refresh and access tokens) in relance's
  output; serve stops cleanly under the sanitizers."""
import email
import email.policy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import mailservers  # noqa: E402
import oauth_server  # noqa: E402
from harness import relance, wait_until  # noqa: E402

t = harness.Check("oauth2_imap")
LIFETIME = 5
OA = "oa@acme.example"
oa = oauth_server.OAuthServer(lifetime=LIFETIME, rotate=True)
ms = mailservers.MailServers(oauth2_introspection_url=oa.introspection_url)
oa.start_for(ms)
refresh_token = oa.grant(OA)
pg = harness.Postgres()
tmp = harness.short_tempdir("roi")
cfg = os.path.join(tmp, "relance.yaml")
with open(cfg, "w") as f:
    f.write(f"""pools:
  oauth:
    accounts:
      - email: {OA}
        smtp: smtp://127.0.0.1:{ms.submission_port}/relance.test
        imap: imap://127.0.0.1:{ms.imap_port}
{oa.account_yaml(8)}        tls_ca_file: {ms.ca_file}
        watch_interval: 1s
""")
env = {"DATABASE_URL": pg.url(), "RELANCE_CONFIG": cfg, "OA_CLIENT_SECRET": oa.client_secret,
       "OA_REFRESH_TOKEN": refresh_token}
t.eq(relance("migrate", env=env).returncode, 0, "migrate")
seq = os.path.join(tmp, "s.yaml")
with open(seq, "w") as f:
    f.write("""name: two-touch
sender_pool: oauth
stop_on: [reply, bounce, unsubscribe]
schedule: {timezone: UTC, window: "00:00-24:00", days: [mon, tue, wed, thu, fri, sat, sun], jitter: 0}
steps:
  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 12h
    body: "Bumping this, {{first_name | there}}."
""")
t.eq(relance("apply", seq, env=env).returncode, 0, "apply")
START = "2026-03-02T09:00:00Z"
SPEED = 600  # the 12 h wait before the follow-up passes in 72 s


def q1(sql):
    rows = pg.psql(sql)
    return rows[0][0] if rows else None


def state(addr):
    return q1(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id WHERE c.email = '{addr}'")


def first_step(addr, timeout=30):
    """Waits for step 1 to reach addr; returns its Message-ID."""
    msgs = ms.wait_for(addr, 1, timeout=timeout)
    if not msgs:
        return None
    return email.message_from_bytes(msgs[0], policy=email.policy.default)["Message-ID"]


def reply(prospect, mid, body):
    return (f"From: Zoé <{prospect}>\r\nTo: {OA}\r\nSubject: Re: An idea\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{os.urandom(6).hex()}@prospects.example>\r\n"
            f"In-Reply-To: {mid}\r\nReferences: {mid}\r\n\r\n{body}\r\n")


P = [f"p{i}@prospects.example" for i in range(1, 5)]  # p4 never replies: the control
pg.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
        ",".join(f"('{a}', 'Zoé', 'Acme {i}')" for i, a in enumerate(P)))
r = relance("enroll", "--sequence", "two-touch", *[x for a in P for x in ("--contact", a)],
            env={**env, "RELANCE_TEST_CLOCK": START})
t.ok(f"enrolled {len(P)}" in r.stdout, "enroll 4 contacts", r.stdout + r.stderr)

s = harness.Serve({**env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
s.wait_status("/readyz", 200)
t.ok(wait_until(lambda: "watching mailbox" in s.output(), 15), "the xoauth2 account's mailbox is watched",
     s.output()[-3000:])
mids = {a: first_step(a) for a in P}
t.ok(all(mids.values()), "step 1 reached every contact, sent with a token", s.output()[-3000:])

# ---- a reply stops the sequence ------------------------------------------
ms.deliver(OA, reply(P[0], mids[P[0]], "Yes, let's talk on Thursday."))
t.ok(wait_until(lambda: state(P[0]) == "replied", 15), "the reply read over IMAP made the enrollment 'replied'",
     f"{state(P[0])}\n" + s.output()[-3000:])
methods = ms.imap_login_methods(OA)
t.ok(len(methods) >= 1 and set(methods) == {"XOAUTH2"}, f"the watcher logged in to IMAP with XOAUTH2 ({methods})",
     ms.dovecot_log_text()[-2000:])
t.ok("no OAuth2 access token" not in s.output(),
     "the first pass waited for the first token instead of failing without one", s.output()[-3000:])

# ---- across a token expiry and a new login ---------------------------------
requests_before = oa.token_requests(OA)
logins_before = len(methods)
time.sleep(LIFETIME + 1)  # the token the first login used has ended
t.ok(oa.token_requests(OA) > requests_before,
     f"the token endpoint was asked again as the token neared its end ({oa.token_requests(OA)} requests)")
log_mark = len(s.output())
ms.stop_imap()  # IMAP connections drop: the next pass must log in again
ms.start_imap()
ms.deliver(OA, reply(P[1], mids[P[1]], "Call me next week."))
t.ok(wait_until(lambda: state(P[1]) == "replied", 40), "after the expiry and a new login, a reply is still read",
     f"{state(P[1])}\n" + s.output()[-3000:])
methods = ms.imap_login_methods(OA)
t.ok(len(methods) > logins_before and set(methods) == {"XOAUTH2"},
     f"the new IMAP login was XOAUTH2 too ({len(methods) - logins_before} more)", ms.dovecot_log_text()[-2000:])
t.ok("mailbox login refused" not in s.output(), "no login with a stale token (Dovecot refused none)",
     s.output()[log_mark:][-3000:])
t.eq(set(oa.answers(OA)), {200}, "every refresh succeeded, each with the refresh token the previous one rotated in")

# ---- the token endpoint down: no token for a while -------------------------
log_mark = len(s.output())
oa.down(True)
t.ok(wait_until(lambda: "no OAuth2 access token" in s.output()[log_mark:], 40),
     "once its token lapsed with the endpoint down, the watcher says it has none", s.output()[log_mark:][-3000:])
ms.deliver(OA, reply(P[2], mids[P[2]], "Not now, but maybe in spring."))
time.sleep(3)  # a few passes that cannot log in
oa.down(False)
t.ok(wait_until(lambda: state(P[2]) == "replied", 40), "with the endpoint back, the reply that came meanwhile is read",
     f"{state(P[2])}\n" + s.output()[log_mark:][-3000:])
lines = [ln for ln in s.output()[log_mark:].splitlines() if "no OAuth2 access token" in ln]
t.eq(len([ln for ln in lines if " warn " in ln]), 1, "said once, not at every retry")
t.ok("mailbox reachable again" in s.output()[log_mark:], "the recovery is logged", s.output()[log_mark:][-2000:])

# ---- relance imap-check with an xoauth2 account ---------------------------
# its own grant: the server rotates refresh tokens, so serve's first one
# is spent (what a second process of a real deployment would have too)
r = relance("imap-check", OA, env={**env, "OA_REFRESH_TOKEN": oa.grant(OA)})
t.ok(r.returncode == 0 and r.stdout.startswith("INBOX\tuidnext="),
     "imap-check logs in to the xoauth2 account's mailbox with a token it fetched", r.stdout + r.stderr)
t.ok(not any(x in r.stdout + r.stderr for x in oa.secrets()), "imap-check shows no secret")

# ---- a live token the IMAP server refuses (revoked early) -----------------
log_mark = len(s.output())
seen = len(oa.introspected)
oa.refuse_next_introspections(1)
ms.stop_imap()  # the next pass must log in again, and that login is refused
ms.start_imap()
t.ok(wait_until(lambda: "refused the OAuth2 token" in s.output()[log_mark:], 30),
     "the watcher says the IMAP server refused its token", s.output()[log_mark:][-3000:])
t.ok(wait_until(lambda: "mailbox reachable again" in s.output()[log_mark:], 30),
     "and logs in again with a fresh one", s.output()[log_mark:][-3000:])
after = oa.introspected[seen:]
refused = [i for i, (_, active) in enumerate(after) if not active]
t.ok(refused and len(after) > refused[0] + 1 and after[refused[0] + 1][0] != after[refused[0]][0],
     "the login after the refusal used another token (the refused one was dropped, not tried again)",
     f"{len(after)} introspections, refused at {refused}")

# ---- the follow-ups ------------------------------------------------------
t.eq(len(ms.wait_for(P[3], 2, timeout=90)), 2, "the contact who did not reply got the follow-up")
time.sleep(2)
t.eq({a: len(ms.messages(a)) for a in P[:3]}, {a: 1 for a in P[:3]}, "the contacts who replied never got it")
t.eq(state(P[3]) != "replied", True, "the control's enrollment is not 'replied'")
t.eq(s.stop(), 0, "serve stops cleanly (uv_loop_close == 0)")

out = s.output()
leaked = [x for x in oa.secrets() if x in out]
t.eq(leaked, [], f"no secret in relance's output ({len(oa.secrets())} client secret and tokens checked)")
t.ok("AddressSanitizer" not in out and "runtime error" not in out and "handles left open" not in out,
     "no sanitizer report, no handle left open", out[-3000:])
t.done()
