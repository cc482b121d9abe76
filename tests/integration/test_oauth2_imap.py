"""OAuth2 for the mailbox watcher (xoauth2 "used for SMTP and IMAP") end
to end: one account with `auth: xoauth2` sends through Postfix
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
import time

import pytest

import harness
import mailservers
import oauth_server
from harness import relance, wait_until

LIFETIME = 5
OA = "oa@acme.example"
START = "2026-03-02T09:00:00Z"
SPEED = 600  # the 12 h wait before the follow-up passes in 72 s
P = [f"p{i}@prospects.example" for i in range(1, 5)]  # p4 never replies: the control


def reply(prospect, mid, body):
    return (f"From: Zoé <{prospect}>\r\nTo: {OA}\r\nSubject: Re: An idea\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{os.urandom(6).hex()}@prospects.example>\r\n"
            f"In-Reply-To: {mid}\r\nReferences: {mid}\r\n\r\n{body}\r\n")


class World:
    """The token server, Postfix and Dovecot that ask it, the oauth pool's
    one account sending and watched, four contacts enrolled and `relance
    serve` running until step 1 reached them. The cases run in order on
    it, as the token server's life goes on."""

    def __init__(self, db, tmp):
        self.db = db
        self.oa = oa = oauth_server.OAuthServer(lifetime=LIFETIME, rotate=True)
        self.ms = ms = mailservers.MailServers(oauth2_introspection_url=oa.introspection_url)
        oa.start_for(ms)
        refresh_token = oa.grant(OA)
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
        self.env = env = {"DATABASE_URL": db.url(), "RELANCE_CONFIG": cfg, "OA_CLIENT_SECRET": oa.client_secret,
                          "OA_REFRESH_TOKEN": refresh_token}
        seq = harness.sequence(tmp, "custom_steps", name="two-touch", pool="oauth",
                               extra="stop_on: [reply, bounce, unsubscribe]", steps="""  - id: intro
    subject: "An idea for {{company}}"
    body: "Hello {{first_name | there}}, an idea."
  - id: bump
    wait: 12h
    body: "Bumping this, {{first_name | there}}."
""")
        assert relance("apply", seq, env=env).returncode == 0, "apply"
        db.psql("INSERT INTO contacts (email, first_name, company) VALUES " +
                ",".join(f"('{a}', 'Zoé', 'Acme {i}')" for i, a in enumerate(P)))
        r = relance("enroll", "--sequence", "two-touch", *[x for a in P for x in ("--contact", a)],
                    env={**env, "RELANCE_TEST_CLOCK": START})
        assert f"enrolled {len(P)}" in r.stdout, f"enroll 4 contacts: {r.stdout + r.stderr}"
        self.s = None

    def state(self, addr):
        rows = self.db.psql(f"SELECT e.state FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                            f"WHERE c.email = '{addr}'")
        return rows[0][0] if rows else None

    def first_step(self, addr, timeout=30):
        """Waits for step 1 to reach addr; returns its Message-ID."""
        msgs = self.ms.wait_for(addr, 1, timeout=timeout)
        if not msgs:
            return None
        return email.message_from_bytes(msgs[0], policy=email.policy.default)["Message-ID"]


@pytest.fixture(scope="module")
def w(module_db, module_tmp):
    w = World(module_db, module_tmp)
    try:
        w.s = s = harness.Serve({**w.env, "RELANCE_TEST_CLOCK": f"{START}*{SPEED}"})
        s.wait_status("/readyz", 200)
        assert wait_until(lambda: "watching mailbox" in s.output(), 15), \
            f"the xoauth2 account's mailbox is watched: {s.output()[-3000:]}"
        w.mids = {a: w.first_step(a) for a in P}
        assert all(w.mids.values()), f"step 1 reached every contact, sent with a token: {s.output()[-3000:]}"
        yield w
    finally:
        if w.s:
            w.s.kill()
        w.ms.stop()
        w.oa.stop()


def test_a_reply_read_with_an_xoauth2_login_stops_the_sequence(w, check):
    w.ms.deliver(OA, reply(P[0], w.mids[P[0]], "Yes, let's talk on Thursday."))
    check.ok(wait_until(lambda: w.state(P[0]) == "replied", 15), "the reply read over IMAP made the enrollment 'replied'",
             f"{w.state(P[0])}\n" + w.s.output()[-3000:])
    methods = w.ms.imap_login_methods(OA)
    check.ok(len(methods) >= 1 and set(methods) == {"XOAUTH2"}, f"the watcher logged in to IMAP with XOAUTH2 ({methods})",
             w.ms.dovecot_log_text()[-2000:])
    check.ok("no OAuth2 access token" not in w.s.output(),
             "the first pass waited for the first token instead of failing without one", w.s.output()[-3000:])



def test_across_a_token_expiry_and_a_new_login_replies_are_still_read(w, check):
    requests_before = w.oa.token_requests(OA)
    logins_before = len(w.ms.imap_login_methods(OA))
    time.sleep(LIFETIME + 1)  # the token the first login used has ended
    check.ok(w.oa.token_requests(OA) > requests_before,
             f"the token endpoint was asked again as the token neared its end ({w.oa.token_requests(OA)} requests)")
    log_mark = len(w.s.output())
    w.ms.stop_imap()  # IMAP connections drop: the next pass must log in again
    w.ms.start_imap()
    w.ms.deliver(OA, reply(P[1], w.mids[P[1]], "Call me next week."))
    check.ok(wait_until(lambda: w.state(P[1]) == "replied", 40), "after the expiry and a new login, a reply is still read",
             f"{w.state(P[1])}\n" + w.s.output()[-3000:])
    methods = w.ms.imap_login_methods(OA)
    check.ok(len(methods) > logins_before and set(methods) == {"XOAUTH2"},
             f"the new IMAP login was XOAUTH2 too ({len(methods) - logins_before} more)", w.ms.dovecot_log_text()[-2000:])
    check.ok("mailbox login refused" not in w.s.output(), "no login with a stale token (Dovecot refused none)",
             w.s.output()[log_mark:][-3000:])
    check.eq(set(w.oa.answers(OA)), {200}, "every refresh succeeded, each with the refresh token the previous one rotated in")



def test_with_the_token_endpoint_down_the_watcher_says_so_once_and_catches_up(w, check):
    log_mark = len(w.s.output())
    w.oa.down(True)
    check.ok(wait_until(lambda: "no OAuth2 access token" in w.s.output()[log_mark:], 40),
             "once its token lapsed with the endpoint down, the watcher says it has none", w.s.output()[log_mark:][-3000:])
    w.ms.deliver(OA, reply(P[2], w.mids[P[2]], "Not now, but maybe in spring."))
    time.sleep(3)  # a few passes that cannot log in
    w.oa.down(False)
    check.ok(wait_until(lambda: w.state(P[2]) == "replied", 40), "with the endpoint back, the reply that came meanwhile is read",
             f"{w.state(P[2])}\n" + w.s.output()[log_mark:][-3000:])
    lines = [ln for ln in w.s.output()[log_mark:].splitlines() if "no OAuth2 access token" in ln]
    check.eq(len([ln for ln in lines if " warn " in ln]), 1, "said once, not at every retry")
    check.ok("mailbox reachable again" in w.s.output()[log_mark:], "the recovery is logged", w.s.output()[log_mark:][-2000:])



def test_imap_check_logs_in_with_a_token_it_fetched(w, check):
    # its own grant: the server rotates refresh tokens, so serve's first one
    # is spent (what a second process of a real deployment would have too)
    r = relance("imap-check", OA, env={**w.env, "OA_REFRESH_TOKEN": w.oa.grant(OA)})
    check.ok(r.returncode == 0 and r.stdout.startswith("INBOX\tuidnext="),
             "imap-check logs in to the xoauth2 account's mailbox with a token it fetched", r.stdout + r.stderr)
    check.ok(not any(x in r.stdout + r.stderr for x in w.oa.secrets()), "imap-check shows no secret")



def test_a_refused_token_is_dropped_and_a_fresh_one_logs_in(w, check):
    log_mark = len(w.s.output())
    w.ms.stop_imap()  # the next pass must log in again, and that login is refused
    # a pass that finds the server down first: the refusal that follows
    # is still the token's (the watcher once kept a token refused then)
    check.ok(wait_until(lambda: "mailbox unreachable" in w.s.output()[log_mark:], 30),
             "a pass finds the IMAP server down", w.s.output()[log_mark:][-3000:])
    # armed while Dovecot (and its auth service, which asks the token
    # endpoint) is down, so that no login cut by the stop can use the
    # refusal up unseen: the first login after the start gets it
    seen = len(w.oa.introspected)
    w.oa.refuse_next_introspections(1)
    w.ms.start_imap()
    check.ok(wait_until(lambda: "refused the OAuth2 token" in w.s.output()[log_mark:], 30),
             "the watcher says the IMAP server refused its token", w.s.output()[log_mark:][-3000:])
    check.ok(wait_until(lambda: "mailbox reachable again" in w.s.output()[log_mark:], 30),
             "and logs in again with a fresh one", w.s.output()[log_mark:][-3000:])
    after = w.oa.introspected[seen:]
    refused = [i for i, (_, active) in enumerate(after) if not active]
    check.ok(refused and len(after) > refused[0] + 1 and after[refused[0] + 1][0] != after[refused[0]][0],
             "the login after the refusal used another token (the refused one was dropped, not tried again)",
             f"{len(after)} introspections, refused at {refused}")



def test_only_the_contacts_who_did_not_reply_get_the_follow_up(w, check):
    check.eq(len(w.ms.wait_for(P[3], 2, timeout=90)), 2, "the contact who did not reply got the follow-up")
    time.sleep(2)
    # P[:3] replied in the cases before (each checked it); run alone, none did
    replied = [a for a in P[:3] if w.state(a) == "replied"]
    check.eq({a: len(w.ms.messages(a)) for a in replied}, {a: 1 for a in replied}, "the contacts who replied never got it")
    check.eq(w.state(P[3]) != "replied", True, "the control's enrollment is not 'replied'")
    check.eq(w.s.stop(), 0, "serve stops cleanly (uv_loop_close == 0)")

    out = w.s.output()
    leaked = [x for x in w.oa.secrets() if x in out]
    check.eq(leaked, [], f"no secret in relance's output ({len(w.oa.secrets())} client secret and tokens checked)")
    check.ok("AddressSanitizer" not in out and "runtime error" not in out and "handles left open" not in out,
             "no sanitizer report, no handle left open", out[-3000:])
