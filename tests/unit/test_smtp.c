/* Unit tests for smtp's pure parts: the enhanced status code at the start
 * of a reply's text, and the classification of an outcome from libcurl's
 * result, the reply and whether the body had started — both as tables.
 * On the loop, against a port that refuses connections (no server, no
 * mock), the channel's lifecycle as its debug lines tell it: a send, a
 * quit, a close with a send in flight. What needs a server (RCPT, HELD,
 * BODY) is tested end to end in tests/integration. */
#include "log_capture.h"
#include "smtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct status_row {
    const char *text;
    const char *want; /* "" when there is none */
};

static const struct status_row status_rows[] = {
    {"5.1.1 <x@bad.example>: Recipient address rejected: User unknown", "5.1.1"},
    {"4.2.1 <x@slow.example>: Recipient address rejected: Try later", "4.2.1"},
    {"2.0.0 Ok: queued as 3C9A3A7C651", "2.0.0"},
    {"5.7.26 Unauthenticated email from example.com is not accepted", "5.7.26"},
    {"5.1.10 Recipient address has null MX", "5.1.10"},
    {"5.7.1", "5.7.1"},
    {"  4.7.0 Temporary authentication failure", "4.7.0"},
    {"\t5.2.2 Mailbox full", "5.2.2"},
    {"5.123.456 widest legal", "5.123.456"},
    {"5.1234.1 subject too long", ""},
    {"5.1.1234 detail too long", ""},
    {"5.1 missing detail", ""},
    {"5..1 empty subject", ""},
    {"3.1.1 no such class", ""},
    {"6.1.1 no such class", ""},
    {"5.1.1x glued to a word", ""},
    {"5.1.1.2 four parts", ""},
    {"User unknown", ""},
    {"Requested action not taken: mailbox unavailable", ""},
    {"", ""},
    {"<x@y> 5.1.1 not at the start", ""},
};

static void test_status_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof status_rows / sizeof status_rows[0]; i++) {
        const struct status_row *r = &status_rows[i];
        char out[16] = "junk";
        size_t n = smtp_status_parse(r->text, out, sizeof out);
        if (strcmp(out, r->want) != 0 || n != strlen(r->want)) {
            fprintf(stderr, "row %zu '%s': got '%s' (%zu), want '%s'\n", i, r->text, out, n, r->want);
            fail();
        }
    }
}

static void test_status_parse_edges(void **state)
{
    (void)state;
    char out[16] = "junk";
    assert_int_equal(smtp_status_parse(NULL, out, sizeof out), 0);
    assert_string_equal(out, "");
    char small[4] = "abc";
    assert_int_equal(smtp_status_parse("5.1.1 too small a buffer", small, sizeof small), 0);
    assert_string_equal(small, "");
}

/* The stored reply carries the enhanced status once, whether the server's
 * text begins with it (the usual case) or relance set it itself. */
static void test_reply_format(void **state)
{
    (void)state;
    struct smtp_result r;
    char out[600];
    memset(&r, 0, sizeof r);
    r.reply_code = 550;
    snprintf(r.status, sizeof r.status, "5.1.1");
    snprintf(r.text, sizeof r.text, "5.1.1 <nobody@example.org>: Recipient address rejected");
    smtp_reply_format(&r, out, sizeof out);
    assert_string_equal(out, "550 5.1.1 <nobody@example.org>: Recipient address rejected");

    snprintf(r.text, sizeof r.text, "not sent: SMTPUTF8 is not offered");
    smtp_reply_format(&r, out, sizeof out);
    assert_string_equal(out, "550 5.1.1 not sent: SMTPUTF8 is not offered");

    r.status[0] = '\0';
    snprintf(r.text, sizeof r.text, "Requested action not taken");
    smtp_reply_format(&r, out, sizeof out);
    assert_string_equal(out, "550 Requested action not taken");

    r.reply_code = 0;
    snprintf(r.text, sizeof r.text, "Couldn't connect to server");
    smtp_reply_format(&r, out, sizeof out);
    assert_string_equal(out, "Couldn't connect to server");

    char small[8];
    r.reply_code = 550;
    snprintf(r.status, sizeof r.status, "5.1.1");
    snprintf(r.text, sizeof r.text, "5.1.1 a long text");
    smtp_reply_format(&r, small, sizeof small);
    assert_string_equal(small, "550 5.1");
}

struct class_row {
    CURLcode code;
    long reply;
    const char *status;
    const char *text;
    int body_started, final_reply;
    enum smtp_outcome want;
};

static const struct class_row class_rows[] = {
    /* sent */
    {CURLE_OK, 250, "2.0.0", "2.0.0 Ok: queued", 1, 1, SMTP_SENT},
    /* before the body: 4xx at any phase is deferred */
    {CURLE_SEND_ERROR, 450, "4.2.1", "4.2.1 Try later", 0, 0, SMTP_DEFERRED},
    {CURLE_WEIRD_SERVER_REPLY, 421, "4.3.2", "4.3.2 Service shutting down", 0, 0, SMTP_DEFERRED},
    {CURLE_WEIRD_SERVER_REPLY, 421, "4.3.2", "4.3.2 Service shutting down", 1, 1, SMTP_UNKNOWN},
    {CURLE_WEIRD_SERVER_REPLY, 451, "4.3.0", "4.3.0 Not now", 0, 0, SMTP_DEFERRED},
    /* 4.7.x: throttling, temporary authentication refusals, counted
     * against the account; greylisting is only deferred */
    {CURLE_LOGIN_DENIED, 454, "4.7.0", "4.7.0 Temporary authentication failure", 0, 0, SMTP_DEFERRED_POLICY},
    {CURLE_SEND_ERROR, 421, "4.7.26", "4.7.26 This mail has been rate limited because it is unauthenticated", 0, 0,
     SMTP_DEFERRED_POLICY},
    {CURLE_SEND_ERROR, 451, "4.7.1", "4.7.1 Service temporarily unavailable", 0, 0, SMTP_DEFERRED_POLICY},
    {CURLE_SEND_ERROR, 451, "4.7.1", "4.7.1 <x@y.example>: Recipient address rejected: Greylisted", 0, 0,
     SMTP_DEFERRED},
    {CURLE_WEIRD_SERVER_REPLY, 421, "4.7.0", "4.7.0 Try again later, closing connection", 1, 1, SMTP_UNKNOWN},
    /* connection, TLS, timeouts before the body: deferred */
    {CURLE_COULDNT_CONNECT, 0, "", "", 0, 0, SMTP_DEFERRED},
    {CURLE_PEER_FAILED_VERIFICATION, 220, "", "2.0.0 Ready to start TLS", 0, 0, SMTP_DEFERRED},
    {CURLE_SSL_CONNECT_ERROR, 0, "", "", 0, 0, SMTP_DEFERRED},
    {CURLE_OPERATION_TIMEDOUT, 250, "2.1.5", "2.1.5 Ok", 0, 0, SMTP_DEFERRED},
    {CURLE_ABORTED_BY_CALLBACK, 0, "", "", 0, 0, SMTP_DEFERRED},
    {CURLE_USE_SSL_FAILED, 250, "", "STARTTLS not offered", 0, 0, SMTP_DEFERRED},
    /* authentication */
    {CURLE_LOGIN_DENIED, 535, "5.7.8", "5.7.8 Error: authentication failed", 0, 0, SMTP_AUTH_FAILED},
    {CURLE_LOGIN_DENIED, 0, "", "", 0, 0, SMTP_AUTH_FAILED},
    {CURLE_SEND_ERROR, 530, "5.7.0", "5.7.0 Authentication required", 0, 0, SMTP_AUTH_FAILED},
    {CURLE_LOGIN_DENIED, 534, "5.7.9", "5.7.9 Please log in with your web browser", 0, 0, SMTP_AUTH_FAILED},
    /* hard: the address or its domain does not exist */
    {CURLE_SEND_ERROR, 550, "5.1.1", "5.1.1 <x@bad.example>: Recipient address rejected: User unknown", 0, 0,
     SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "5.1.1", "5.1.1 The email account that you tried to reach does not exist", 0, 0,
     SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 553, "5.1.3", "5.1.3 Bad recipient address syntax", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 556, "5.1.10", "5.1.10 Recipient address has null MX", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "5.1.2", "5.1.2 Host unknown", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "Requested action not taken: User unknown", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "5.0.0", "5.0.0 <x@y>... No such user", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "mailbox not found", 0, 0, SMTP_REJECTED_HARD},
    /* "no such user" without an enhanced status, in each MTA's words
     * (mta_words' table): hard at once */
    {CURLE_SEND_ERROR, 550, "", "Unrouteable address", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "unrouteable ADDRESS", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "5.0.0", "5.0.0 <x@y>: Recipient address rejected: Unrouteable address", 0, 0,
     SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "<x@y>: Recipient address rejected: User unknown in local recipient table", 0, 0,
     SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "<x@y>... User unknown", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "sorry, no mailbox here by that name. (#5.1.1)", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "RESOLVER.ADR.RecipNotFound; not found", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "The email account that you tried to reach does not exist", 0, 0,
     SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "", "Unrouteable mail domain \"nowhere.example\"", 0, 0, SMTP_REJECTED_HARD},
    /* ambiguous wordings are not hard on first sight: OpenSMTPD says
     * "Invalid recipient" for routing-rule refusals too */
    {CURLE_SEND_ERROR, 550, "", "Invalid recipient", 0, 0, SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 550, "5.0.0", "5.0.0 <x@y>: Recipient address rejected: Invalid recipient", 0, 0,
     SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 550, "", "Requested action not taken: mailbox unavailable", 0, 0, SMTP_REJECTED_OTHER},
    /* ...but a precise status still decides */
    {CURLE_SEND_ERROR, 550, "5.1.1", "5.1.1 Invalid recipient", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 552, "", "Mailbox full", 0, 0, SMTP_REJECTED_OTHER},
    /* sender-side 5.1.x and "sender" words never make the recipient unknown */
    {CURLE_SEND_ERROR, 553, "5.1.8", "5.1.8 <a@acme.example>: Sender address rejected: Domain not found", 0, 0,
     SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 553, "5.1.7", "5.1.7 Bad sender address syntax", 0, 0, SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 550, "", "Sender unknown user", 0, 0, SMTP_REJECTED_OTHER},
    /* policy: blocks, spam, reputation */
    {CURLE_SEND_ERROR, 554, "5.7.1", "5.7.1 <x@blocked.example>: Recipient address rejected: Rejected for policy "
                                     "reasons",
     0, 0, SMTP_REJECTED_POLICY},
    /* the receiver refuses the sending account itself: pauses it at once */
    {CURLE_SEND_ERROR, 550, "5.7.26", "5.7.26 Unauthenticated email is not accepted", 0, 0,
     SMTP_REJECTED_UNAUTHENTICATED},
    {CURLE_SEND_ERROR, 550, "5.7.515", "5.7.515 Access denied, sending domain example.com doesn't meet the required "
                                       "authentication level",
     0, 0, SMTP_REJECTED_UNAUTHENTICATED},
    {CURLE_SEND_ERROR, 550, "5.7.25", "5.7.25 The IP address sending this message does not have a PTR record", 0, 0,
     SMTP_REJECTED_UNAUTHENTICATED},
    {CURLE_SEND_ERROR, 550, "5.7.27", "5.7.27 SPF check failed", 0, 0, SMTP_REJECTED_UNAUTHENTICATED},
    {CURLE_WEIRD_SERVER_REPLY, 550, "5.7.30", "5.7.30 The sender is unauthenticated", 1, 1,
     SMTP_REJECTED_UNAUTHENTICATED},
    {CURLE_SEND_ERROR, 554, "5.7.1", "5.7.1 Relay access denied", 0, 0, SMTP_REJECTED_POLICY},
    {CURLE_SEND_ERROR, 554, "", "Message rejected as spam", 0, 0, SMTP_REJECTED_POLICY},
    {CURLE_SEND_ERROR, 550, "", "Your IP is listed on Spamhaus", 0, 0, SMTP_REJECTED_POLICY},
    {CURLE_SEND_ERROR, 550, "5.0.0", "5.0.0 Blocked due to poor reputation", 0, 0, SMTP_REJECTED_POLICY},
    /* a precise status wins over words */
    {CURLE_SEND_ERROR, 550, "5.1.1", "5.1.1 user unknown (policy)", 0, 0, SMTP_REJECTED_HARD},
    {CURLE_SEND_ERROR, 550, "5.7.1", "5.7.1 user unknown to our policy", 0, 0, SMTP_REJECTED_POLICY},
    /* other 5xx */
    {CURLE_SEND_ERROR, 552, "5.2.2", "5.2.2 Mailbox full", 0, 0, SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 552, "5.3.4", "5.3.4 Message too big", 1, 1, SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 500, "", "Syntax error", 0, 0, SMTP_REJECTED_OTHER},
    {CURLE_SEND_ERROR, 554, "5.6.0", "5.6.0 Malformed message", 1, 1, SMTP_REJECTED_OTHER},
    /* after the point of no return */
    {CURLE_RECV_ERROR, 354, "", "End data with <CR><LF>.<CR><LF>", 1, 0, SMTP_UNKNOWN},
    {CURLE_OPERATION_TIMEDOUT, 354, "", "go ahead", 1, 0, SMTP_UNKNOWN},
    {CURLE_SEND_ERROR, 0, "", "", 1, 0, SMTP_UNKNOWN},
    {CURLE_WEIRD_SERVER_REPLY, 452, "4.3.1", "4.3.1 Insufficient system storage", 1, 1, SMTP_DEFERRED},
    {CURLE_WEIRD_SERVER_REPLY, 554, "5.7.1", "5.7.1 Message content rejected", 1, 1, SMTP_REJECTED_POLICY},
    {CURLE_WEIRD_SERVER_REPLY, 550, "5.1.1", "5.1.1 No such user here", 1, 1, SMTP_REJECTED_HARD},
    {CURLE_WEIRD_SERVER_REPLY, 250, "2.0.0", "2.0.0 Ok", 1, 1, SMTP_SENT},
    {CURLE_WEIRD_SERVER_REPLY, 354, "", "odd", 1, 1, SMTP_UNKNOWN},
};

static void test_classify(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof class_rows / sizeof class_rows[0]; i++) {
        const struct class_row *r = &class_rows[i];
        enum smtp_outcome got =
            smtp_outcome_classify(r->code, r->reply, r->status, r->text, r->body_started, r->final_reply);
        if (got != r->want) {
            fprintf(stderr, "row %zu (curl %d, %ld %s '%s', body %d/%d): got %s, want %s\n", i, (int)r->code,
                    r->reply, r->status, r->text, r->body_started, r->final_reply, smtp_outcome_name(got),
                    smtp_outcome_name(r->want));
            fail();
        }
    }
}

static void test_outcome_names(void **state)
{
    (void)state;
    static const char *const want[SMTP_OUTCOME_COUNT] = {
        "sent", "deferred", "rejected_hard", "rejected_policy", "rejected_other", "auth_failed", "unknown",
        "rejected_unauthenticated", "deferred_policy",
    };
    for (int i = 0; i < SMTP_OUTCOME_COUNT; i++)
        assert_string_equal(smtp_outcome_name((enum smtp_outcome)i), want[i]);
    assert_string_equal(smtp_outcome_name((enum smtp_outcome)SMTP_OUTCOME_COUNT), "?");
}

/* ---- on the loop: a port nobody listens at ---- */

/* A TCP port on 127.0.0.1 bound but not listening: connecting to it is
 * refused at once, and no one else can take it while fd is open. */
static int refusing_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

struct sent {
    int calls;
    struct smtp_result r;
};

static void on_sent(struct smtp *s, const struct smtp_result *r, void *arg)
{
    (void)s;
    struct sent *x = arg;
    x->calls++;
    x->r = *r;
}

static void on_quit(struct smtp *s, void *arg)
{
    (void)s;
    ++*(int *)arg;
}

static void run_until(uv_loop_t *loop, const int *calls, int want)
{
    uint64_t deadline = uv_now(loop) + 10000;
    while (*calls < want && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
}

static void check_lines(const char *got, const char *want, const char *what)
{
    if (!got || strcmp(got, want) != 0)
        fail_msg("%s: the channel's debug lines were\n%s\nwant\n%s", what, got ? got : "(out of memory)", want);
}

static void test_lifecycle_refused(void **state)
{
    (void)state;
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    int port_fd, port = refusing_port(&port_fd);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d/relance.test", port);
    static const char msg[] = "Subject: hi\r\n\r\nHello.\r\n";
    struct smtp_job job = {
        .url = url, .tls = SMTP_TLS_NONE, .auth = SMTP_AUTH_NONE, .mail_from = "a@x.example",
        .rcpt_to = "b@y.example", .data = msg, .len = sizeof msg - 1, .hold_body = 1,
    };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct xfer_pool *pool = xfer_pool_new(2);
    assert_non_null(pool);
    struct smtp *s = smtp_new(&loop, pool);
    assert_non_null(s);
    struct log_capture cap;

    /* a send: refused before anything was said, deferred, from the loop */
    assert_int_equal(log_capture_begin(&cap), 0);
    struct sent x = {0};
    int send_rc = smtp_send(s, &job, on_sent, &x);
    int calls_inside = x.calls;
    int held = smtp_body_held(s), in_body = smtp_in_body(s), release_rc = smtp_body_release(s, 1);
    int busy_rc = smtp_send(s, &job, on_sent, &x);
    run_until(&loop, &x.calls, 1);
    char *lines = log_capture_end(&cap, "smtp", "channel");
    assert_int_equal(send_rc, 0);
    assert_int_equal(calls_inside, 0);
    assert_int_equal(held, 0);
    assert_int_equal(in_body, 0);
    assert_int_equal(release_rc, -1); /* nothing held */
    assert_int_equal(busy_rc, -EBUSY);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.r.outcome, SMTP_DEFERRED);
    assert_int_equal(x.r.mail_accepted, 0);
    assert_int_equal(x.r.body_started, 0);
    check_lines(lines,
                "channel IDLE -> ENVELOPE account=a@x.example\n"
                "channel ENVELOPE -> IDLE account=a@x.example\n",
                "a refused send");
    free(lines);

    /* a quit: its callback once, from the loop; sends wait meanwhile */
    assert_int_equal(log_capture_begin(&cap), 0);
    int quits = 0;
    int quit_rc = smtp_quit(s, &job, on_quit, &quits);
    busy_rc = smtp_send(s, &job, on_sent, &x);
    int quits_inside = quits;
    run_until(&loop, &quits, 1);
    lines = log_capture_end(&cap, "smtp", "channel");
    assert_int_equal(quit_rc, 0);
    assert_int_equal(busy_rc, -EBUSY);
    assert_int_equal(quits_inside, 0);
    assert_int_equal(quits, 1);
    check_lines(lines,
                "channel IDLE -> QUITTING account=a@x.example\n"
                "channel QUITTING -> IDLE account=a@x.example\n",
                "a quit");
    free(lines);

    /* a close with a send in flight: its callback inside smtp_close. The
     * server listens and never greets (the connection waits in its
     * backlog), so the transfer is surely still running on its thread when
     * the close comes: the close ends it at once. */
    assert_int_equal(listen(port_fd, 4), 0);
    assert_int_equal(log_capture_begin(&cap), 0);
    memset(&x, 0, sizeof x);
    send_rc = smtp_send(s, &job, on_sent, &x);
    usleep(100 * 1000); /* connected and waiting for the greeting */
    uint64_t t0 = uv_hrtime();
    smtp_close(s);
    uint64_t close_ms = (uv_hrtime() - t0) / 1000000;
    lines = log_capture_end(&cap, "smtp", "channel");
    assert_int_equal(send_rc, 0);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.r.outcome, SMTP_DEFERRED);
    assert_int_equal(x.r.body_started, 0);
    assert_string_equal(x.r.text, "send abandoned: the channel was closed");
    if (close_ms > 2000)
        fail_msg("smtp_close took %llu ms to end a transfer waiting for a greeting", (unsigned long long)close_ms);
    check_lines(lines,
                "channel IDLE -> ENVELOPE account=a@x.example\n"
                "channel ENVELOPE -> IDLE account=a@x.example\n",
                "a close with a send in flight");
    free(lines);

    uv_run(&loop, UV_RUN_DEFAULT); /* the channel's handle closes */
    xfer_pool_close(pool);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(port_fd);
    curl_global_cleanup();
}

/* Two sends queued while one pool thread idles (woken for the first but
 * not yet running) get two threads: the second never waits behind the
 * first, which here waits for a greeting that never comes, as a stuck
 * server's transfer would. */
static void test_pool_gives_each_transfer_its_thread(void **state)
{
    (void)state;
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    int silent_fd, silent = refusing_port(&silent_fd), refused_fd, refused = refusing_port(&refused_fd);
    assert_int_equal(listen(silent_fd, 4), 0); /* accepts into its backlog, never greets */
    char silent_url[64], refused_url[64];
    snprintf(silent_url, sizeof silent_url, "smtp://127.0.0.1:%d/relance.test", silent);
    snprintf(refused_url, sizeof refused_url, "smtp://127.0.0.1:%d/relance.test", refused);
    static const char msg[] = "Subject: hi\r\n\r\nHello.\r\n";
    struct smtp_job stuck = {.url = silent_url, .tls = SMTP_TLS_NONE, .auth = SMTP_AUTH_NONE,
                             .mail_from = "a@x.example", .rcpt_to = "b@y.example", .data = msg, .len = sizeof msg - 1};
    struct smtp_job quick = stuck;
    quick.url = refused_url;
    quick.mail_from = "c@x.example";
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct xfer_pool *pool = xfer_pool_new(4);
    assert_non_null(pool);
    struct smtp *a = smtp_new(&loop, pool), *b = smtp_new(&loop, pool);
    assert_non_null(a);
    assert_non_null(b);
    /* one thread, idle once this send is over */
    struct sent warm = {0};
    assert_int_equal(smtp_send(b, &quick, on_sent, &warm), 0);
    run_until(&loop, &warm.calls, 1);
    assert_int_equal(warm.calls, 1);
    usleep(50 * 1000);
    /* the stuck one, then the quick one, before the idle thread can run */
    struct sent sa = {0}, sb = {0};
    assert_int_equal(smtp_send(a, &stuck, on_sent, &sa), 0);
    assert_int_equal(smtp_send(b, &quick, on_sent, &sb), 0);
    uint64_t t0 = uv_now(&loop);
    run_until(&loop, &sb.calls, 1);
    uint64_t took = uv_now(&loop) - t0;
    assert_int_equal(sb.calls, 1);
    assert_int_equal(sa.calls, 0); /* still waiting for its greeting */
    if (took > 2000)
        fail_msg("the quick send waited %llu ms", (unsigned long long)took);
    smtp_close(a);
    assert_int_equal(sa.calls, 1);
    smtp_close(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    xfer_pool_close(pool);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(silent_fd);
    close(refused_fd);
    curl_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_parse),
        cmocka_unit_test(test_status_parse_edges),
        cmocka_unit_test(test_reply_format),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_lifecycle_refused),
        cmocka_unit_test(test_pool_gives_each_transfer_its_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
