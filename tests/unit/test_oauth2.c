/* Unit tests for oauth2's pure parts, as tables: the JSON reader behind
 * the token endpoint's answer, the verdict on an answer, the form
 * encoding of the request, the refresh and backoff schedules, and the
 * configuration checks of auth: xoauth2 accounts. Two loop tests check
 * the callback contract, and the token's lifecycle as its debug lines
 * tell it, against a port that refuses connections; the token endpoint's
 * answers themselves are tested end to end in
 * tests/integration/test_oauth2.py. */
#include "config.h"
#include "curl_uv.h"
#include "log_capture.h"
#include "oauth2.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NONE ((const char *)0)

struct parse_row {
    const char *body;
    int ok;
    const char *access_token, *refresh_token, *token_type, *error, *error_description;
    long expires_in;
    const char *err; /* the start of the error, when !ok */
};

static const struct parse_row parse_rows[] = {
    {"{\"access_token\":\"ya29.a0Af\",\"expires_in\":3599,\"token_type\":\"Bearer\"}", 1, "ya29.a0Af", NONE,
     "Bearer", NONE, NONE, 3599, NONE},
    {" \n{ \"access_token\" : \"t1\" , \"refresh_token\" : \"r2\", \"expires_in\" : 5 } \r\n", 1, "t1", "r2", NONE,
     NONE, NONE, 5, NONE},
    /* some servers send expires_in as a string, or with a fraction */
    {"{\"access_token\":\"t\",\"expires_in\":\"3600\"}", 1, "t", NONE, NONE, NONE, NONE, 3600, NONE},
    {"{\"access_token\":\"t\",\"expires_in\":59.9}", 1, "t", NONE, NONE, NONE, NONE, 59, NONE},
    {"{\"access_token\":\"t\",\"expires_in\":1e3}", 1, "t", NONE, NONE, NONE, NONE, 1000, NONE},
    {"{\"access_token\":\"t\",\"expires_in\":-5}", 1, "t", NONE, NONE, NONE, NONE, 0, NONE},
    {"{\"access_token\":\"t\",\"expires_in\":\"soon\"}", 1, "t", NONE, NONE, NONE, NONE, -1, NONE},
    {"{\"access_token\":\"t\",\"expires_in\":\"0x10\"}", 1, "t", NONE, NONE, NONE, NONE, -1, NONE},
    {"{\"access_token\":\"t\",\"expires_in\":null}", 1, "t", NONE, NONE, NONE, NONE, -1, NONE},
    /* other members, of every kind, are read and skipped */
    {"{\"scope\":\"https://mail.google.com/\",\"id_token\":{\"a\":[1,2,{\"b\":null}],\"c\":true},"
     "\"ok\":false,\"n\":-0.5e-3,\"access_token\":\"t\",\"list\":[]}",
     1, "t", NONE, NONE, NONE, NONE, -1, NONE},
    /* an error answer (RFC 6749 5.2) */
    {"{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired or revoked.\"}", 1, NONE, NONE,
     NONE, "invalid_grant", "Token has been expired or revoked.", -1, NONE},
    /* escapes, \u with a surrogate pair; a repeated member: the last wins */
    {"{\"error_description\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\",\"error\":\"x\",\"error\":\"y\"}", 1, NONE,
     NONE, NONE, "y", "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80", -1, NONE},
    {"{}", 1, NONE, NONE, NONE, NONE, NONE, -1, NONE},
    {"{\"access_token\":\"\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 16: a token must be"},
    {"{\"access_token\":\"a b\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 16: a token must be"},
    {"{\"access_token\":\"t\\u00e9\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 16: a token"},
    {"{\"error\":\"a\\u0000b\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 9: NUL in a string"},
    {"", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 0: expected an object"},
    {"[]", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 0: expected an object"},
    {"<html>Bad Gateway</html>", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 0: expected an object"},
    {"{\"access_token\":\"t\"", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 19: expected ','"},
    {"{\"access_token\":\"t\"} x", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 21: trailing data"},
    {"{\"access_token\":\"t\",}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 20: expected a member"},
    {"{\"access_token\" \"t\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 16: expected ':'"},
    {"{'access_token':'t'}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 1: expected a member"},
    {"{\"a\":\"unterminated}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 19: unterminated string"},
    {"{\"a\":\"tab\there\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 9: control character"},
    {"{\"a\":\"\\x\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 8: unknown escape"},
    {"{\"a\":\"\\u12\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 8: bad \\u escape"},
    {"{\"a\":\"\\ud83d\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 12: lone high surrogate"},
    {"{\"a\":\"\\ude00\"}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 12: lone low surrogate"},
    {"{\"a\":01}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 6: expected ',' or '}'"},
    {"{\"a\":1.}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 7: expected a digit after '.'"},
    {"{\"a\":+1}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 5: expected a digit"},
    {"{\"a\":tru}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 5: unexpected character"},
    {"{\"a\":[1,]}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 8: expected a digit"},
    {"{\"a\":[1 2]}", 0, NONE, NONE, NONE, NONE, NONE, -1, "invalid JSON at byte 8: expected ',' or ']'"},
    {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 0, NONE, NONE, NONE, NONE,
     NONE, -1, "invalid JSON at byte 37: nested too deeply"},
};

static void check_str(const char *got, const char *want, const char *what, size_t row)
{
    if (!want) {
        if (got)
            fail_msg("row %zu: %s: want none, got '%s'", row, what, got);
        return;
    }
    if (!got || strcmp(got, want) != 0)
        fail_msg("row %zu: %s: want '%s', got '%s'", row, what, want, got ? got : "(none)");
}

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_rows / sizeof parse_rows[0]; i++) {
        const struct parse_row *r = &parse_rows[i];
        struct oauth2_response out;
        char err[200] = "";
        int rc = oauth2_response_parse(r->body, strlen(r->body), &out, err, sizeof err);
        if (!r->ok) {
            if (rc != -1 || strncmp(err, r->err, strlen(r->err)) != 0)
                fail_msg("row %zu (%s): want error '%s...', got %d '%s'", i, r->body, r->err, rc, err);
            check_str(out.access_token, NONE, "access_token after an error", i);
            continue;
        }
        if (rc != 0)
            fail_msg("row %zu (%s): %s", i, r->body, err);
        check_str(out.access_token, r->access_token, "access_token", i);
        check_str(out.refresh_token, r->refresh_token, "refresh_token", i);
        check_str(out.token_type, r->token_type, "token_type", i);
        check_str(out.error, r->error, "error", i);
        check_str(out.error_description, r->error_description, "error_description", i);
        if (out.expires_in != r->expires_in)
            fail_msg("row %zu: expires_in: want %ld, got %ld", i, r->expires_in, out.expires_in);
        oauth2_response_free(&out);
    }
}

/* An answer cut anywhere is an error, never a crash or a read past it. */
static void test_parse_truncated(void **state)
{
    (void)state;
    const char *body = "{\"access_token\":\"t\\u00e9\\ud83d\\ude00x\",\"n\":[1.5e+3,{\"k\":null}],\"b\":true}";
    for (size_t n = 0; n < strlen(body); n++) {
        char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any overread */
        assert_non_null(copy);
        memcpy(copy, body, n);
        struct oauth2_response out;
        char err[200];
        if (oauth2_response_parse(copy, n, &out, err, sizeof err) == 0)
            fail_msg("a body cut at %zu bytes parsed", n);
        free(copy);
    }
}

struct verdict_row {
    CURLcode code;
    long status;
    const char *body; /* NULL: not JSON */
    enum oauth2_verdict want;
};

static const struct verdict_row verdict_rows[] = {
    {CURLE_OK, 200, "{\"access_token\":\"t\",\"token_type\":\"Bearer\",\"expires_in\":3600}", OAUTH2_GRANTED},
    {CURLE_OK, 200, "{\"access_token\":\"t\"}", OAUTH2_GRANTED},
    {CURLE_OK, 200, "{\"access_token\":\"t\",\"token_type\":\"bearer\"}", OAUTH2_GRANTED},
    {CURLE_OK, 200, "{\"access_token\":\"t\",\"token_type\":\"mac\"}", OAUTH2_UNAVAILABLE},
    {CURLE_OK, 200, "{\"expires_in\":3600}", OAUTH2_UNAVAILABLE},
    {CURLE_OK, 200, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_OK, 400, "{\"error\":\"invalid_grant\"}", OAUTH2_REFUSED},
    {CURLE_OK, 400, "{\"error\":\"invalid_request\"}", OAUTH2_REFUSED},
    {CURLE_OK, 401, "{\"error\":\"invalid_client\"}", OAUTH2_REFUSED},
    {CURLE_OK, 400, "{\"error\":\"unauthorized_client\"}", OAUTH2_REFUSED},
    {CURLE_OK, 401, NULL, OAUTH2_REFUSED},
    {CURLE_OK, 400, "{\"error\":\"temporarily_unavailable\"}", OAUTH2_UNAVAILABLE},
    {CURLE_OK, 400, "{\"error\":\"server_error\"}", OAUTH2_UNAVAILABLE},
    {CURLE_OK, 403, NULL, OAUTH2_REFUSED},
    {CURLE_OK, 404, NULL, OAUTH2_REFUSED},
    {CURLE_OK, 408, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_OK, 429, "{\"error\":\"rate_limited\"}", OAUTH2_UNAVAILABLE},
    {CURLE_OK, 500, "{\"error\":\"invalid_grant\"}", OAUTH2_UNAVAILABLE},
    {CURLE_OK, 502, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_OK, 503, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_OK, 302, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_COULDNT_CONNECT, 0, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_OPERATION_TIMEDOUT, 0, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_PEER_FAILED_VERIFICATION, 0, NULL, OAUTH2_UNAVAILABLE},
    {CURLE_WRITE_ERROR, 200, NULL, OAUTH2_UNAVAILABLE},
};

static void test_verdict(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof verdict_rows / sizeof verdict_rows[0]; i++) {
        const struct verdict_row *r = &verdict_rows[i];
        struct oauth2_response resp, *rp = NULL;
        char err[200];
        if (r->body) {
            assert_int_equal(oauth2_response_parse(r->body, strlen(r->body), &resp, err, sizeof err), 0);
            rp = &resp;
        }
        enum oauth2_verdict got = oauth2_verdict_of(r->code, r->status, rp);
        if (got != r->want)
            fail_msg("row %zu (curl %d, HTTP %ld, %s): want %d, got %d", i, (int)r->code, r->status,
                     r->body ? r->body : "no JSON", (int)r->want, (int)got);
        if (rp)
            oauth2_response_free(rp);
    }
}

struct form_row {
    const char *pairs[8]; /* key, value, ... NULL */
    const char *want;
};

static const struct form_row form_rows[] = {
    {{"grant_type", "refresh_token", NULL}, "grant_type=refresh_token"},
    {{"a", "1", "b", "2", NULL}, "a=1&b=2"},
    {{"refresh_token", "1//0gx-Y_z.~", NULL}, "refresh_token=1%2F%2F0gx-Y_z.~"},
    {{"client_secret", "a b+c&d=e%f", NULL}, "client_secret=a+b%2Bc%26d%3De%25f"},
    {{"client_id", "123.apps.googleusercontent.com", NULL}, "client_id=123.apps.googleusercontent.com"},
    {{"k", "\xc3\xa9\n", NULL}, "k=%C3%A9%0A"},
    {{"k", "", NULL}, "k="},
};

static void test_form(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof form_rows / sizeof form_rows[0]; i++) {
        struct buf b = {0};
        for (size_t k = 0; form_rows[i].pairs[k]; k += 2)
            oauth2_form_add(&b, form_rows[i].pairs[k], form_rows[i].pairs[k + 1]);
        assert_false(b.oom);
        if (strcmp(b.p, form_rows[i].want) != 0)
            fail_msg("row %zu: want '%s', got '%s'", i, form_rows[i].want, b.p);
        buf_free(&b);
    }
}

static void test_schedules(void **state)
{
    (void)state;
    static const struct {
        long expires_in;
        uint64_t want_ms;
    } refresh[] = {
        {3600, 2880000}, /* 80 % comes before 60 s before */
        {3599, 2879200},
        {300, 240000},   /* both the same */
        {200, 140000},   /* 60 s before comes first */
        {90, 45000},     /* 30 s before would be less than half: half */
        {60, 30000},
        {5, 2500},
        {1, 500},
        {0, 0},
        {-1, 0},
    };
    for (size_t i = 0; i < sizeof refresh / sizeof refresh[0]; i++) {
        uint64_t got = oauth2_refresh_after_ms(refresh[i].expires_in);
        if (got != refresh[i].want_ms)
            fail_msg("refresh after a %ld s token: want %llu ms, got %llu", refresh[i].expires_in,
                     (unsigned long long)refresh[i].want_ms, (unsigned long long)got);
    }
    static const struct {
        unsigned n;
        uint64_t want_ms;
    } backoff[] = {{1, 1000}, {2, 2000}, {3, 4000}, {9, 256000}, {10, 300000}, {40, 300000}, {4000000000u, 300000}};
    for (size_t i = 0; i < sizeof backoff / sizeof backoff[0]; i++)
        assert_int_equal(oauth2_backoff_ms(backoff[i].n), backoff[i].want_ms);
}

struct config_row {
    const char *account; /* the account's keys, indented for the list */
    const char *err;     /* NULL: valid; else the start of the error after "t.yaml:" */
};

static const struct config_row config_rows[] = {
    {"        auth: xoauth2\n        oauth2: {token_url: https://oauth2.example/token, client_id: c,"
     " client_secret_env: S, refresh_token_env: R}\n",
     NULL},
    /* a public client has no secret */
    {"        auth: xoauth2\n        oauth2: {token_url: https://oauth2.example/token, client_id: c,"
     " refresh_token_env: R}\n",
     NULL},
    {"        auth: xoauth2\n", "4:9: account a@x.example: auth xoauth2 needs 'oauth2.token_url'"},
    {"        auth: xoauth2\n        oauth2: {token_url: https://o.example/t, refresh_token_env: R}\n",
     "4:9: account a@x.example: auth xoauth2 needs 'oauth2.client_id'"},
    {"        auth: xoauth2\n        oauth2: {token_url: https://o.example/t, client_id: c}\n",
     "4:9: account a@x.example: auth xoauth2 needs 'oauth2.refresh_token_env'"},
    {"        auth: xoauth2\n        oauth2: {token_url: http://o.example/t, client_id: c, refresh_token_env: R}\n",
     "4:9: account a@x.example: 'oauth2.token_url' must be an https:// URL"},
    {"        password_env: P\n        oauth2: {token_url: https://o.example/t, client_id: c}\n",
     "4:9: account a@x.example has 'oauth2' settings but not 'auth: xoauth2'"},
    {"        auth: xoauth2\n        oauth2: {token_url: https://o.example/t, client_id: c, refresh_token: R}\n",
     "6:64: unknown key 'refresh_token'"},
};

static void test_config(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof config_rows / sizeof config_rows[0]; i++) {
        char yaml[1024], err[400] = "";
        snprintf(yaml, sizeof yaml, "pools:\n  p:\n    accounts:\n      - email: a@x.example\n%s",
                 config_rows[i].account);
        struct config *cfg = config_parse("t.yaml", yaml, strlen(yaml), err, sizeof err);
        if (!config_rows[i].err) {
            if (!cfg)
                fail_msg("row %zu: %s", i, err);
            config_free(cfg);
            continue;
        }
        char want[300];
        snprintf(want, sizeof want, "t.yaml:%s", config_rows[i].err);
        if (cfg || strncmp(err, want, strlen(want)) != 0)
            fail_msg("row %zu: want '%s...', got '%s'", i, want, cfg ? "(accepted)" : err);
        config_free(cfg);
    }
}

/* ---- on the loop: a token endpoint nobody listens at ---- */

struct got {
    int calls, status;
    char reason[800];
};

static void on_token(int status, const char *token, const char *reason, void *arg)
{
    struct got *g = arg;
    g->calls++;
    g->status = status;
    snprintf(g->reason, sizeof g->reason, "%s", reason ? reason : "");
    (void)token;
}

static void on_closed(void *arg)
{
    ++*(int *)arg;
}

static void run_until(uv_loop_t *loop, const int *calls, int want)
{
    uint64_t deadline = uv_now(loop) + 10000;
    while (*calls < want && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
}

/* Several callers, one request; each callback once, from the loop, never
 * from inside oauth2_token_get; a failure backs off instead of asking
 * again at once; its reason holds no secret; close cancels what waits and
 * leaves a loop that closes. Port 1 on 127.0.0.1 refuses at once: no
 * server, no mock. */
static void test_loop_unreachable(void **state)
{
    (void)state;
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    setenv("RELANCE_T_REFRESH", "rt-unit-secret-0123456789", 1);
    setenv("RELANCE_T_CLIENT", "cs-unit-secret-abcdefghij", 1);
    const char *yaml = "pools:\n  p:\n    accounts:\n      - email: a@x.example\n        auth: xoauth2\n"
                       "        oauth2: {token_url: https://127.0.0.1:1/token, client_id: c,"
                       " client_secret_env: RELANCE_T_CLIENT, refresh_token_env: RELANCE_T_REFRESH}\n"
                       "      - email: b@x.example\n        password_env: NOT_READ_HERE\n";
    char err[300] = "";
    struct config *cfg = config_parse("t.yaml", yaml, strlen(yaml), err, sizeof err);
    assert_non_null(cfg);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct curl_uv *cu = curl_uv_new(&loop);
    assert_non_null(cu);
    struct oauth2 *o = oauth2_new(&loop, cu, cfg, err, sizeof err);
    if (!o)
        fail_msg("oauth2_new: %s", err);
    assert_int_equal(oauth2_has(o, "A@X.example"), 1);
    assert_int_equal(oauth2_has(o, "b@x.example"), 0);

    struct got g[6];
    memset(g, 0, sizeof g);
    assert_int_equal(oauth2_token_get(o, "b@x.example", on_token, &g[0]), -ENOENT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(oauth2_token_get(o, "a@x.example", on_token, &g[i]), 0);
    oauth2_token_cancel(o, on_token, &g[3]);
    for (int i = 0; i < 4; i++)
        assert_int_equal(g[i].calls, 0); /* never from inside the call */
    run_until(&loop, &g[2].calls, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, -EAGAIN);
        if (!strstr(g[i].reason, "OAuth2 token endpoint unavailable: ") || strstr(g[i].reason, "unit-secret"))
            fail_msg("reason: %s", g[i].reason);
    }
    assert_int_equal(g[3].calls, 0); /* taken back */
    assert_int_equal(oauth2_refresh_count(o, "a@x.example"), 1); /* one request for three callers */

    /* within the backoff: an answer at once, no new request */
    assert_int_equal(oauth2_token_get(o, "a@x.example", on_token, &g[4]), 0);
    run_until(&loop, &g[4].calls, 1);
    assert_int_equal(g[4].status, -EAGAIN);
    assert_int_equal(oauth2_refresh_count(o, "a@x.example"), 1);

    /* close: what still waits is cancelled, inside the call */
    assert_int_equal(oauth2_token_get(o, "a@x.example", on_token, &g[5]), 0);
    int closed = 0;
    oauth2_close(o, on_closed, &closed);
    assert_int_equal(g[5].calls, 1);
    assert_int_equal(g[5].status, -ECANCELED);
    curl_uv_close(cu, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
    config_free(cfg);
    curl_global_cleanup();
}

/* The token's lifecycle on the same refusing port: asked, fetched, failed
 * for now; asked again within the backoff, no change; closed. Secrets
 * never reach a debug line. */
static void test_lifecycle_unreachable(void **state)
{
    (void)state;
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    setenv("RELANCE_T_REFRESH", "rt-unit-secret-0123456789", 1);
    const char *yaml = "pools:\n  p:\n    accounts:\n      - email: a@x.example\n        auth: xoauth2\n"
                       "        oauth2: {token_url: https://127.0.0.1:1/token, client_id: c,"
                       " refresh_token_env: RELANCE_T_REFRESH}\n";
    char err[300] = "";
    struct config *cfg = config_parse("t.yaml", yaml, strlen(yaml), err, sizeof err);
    assert_non_null(cfg);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct curl_uv *cu = curl_uv_new(&loop);
    assert_non_null(cu);
    struct oauth2 *o = oauth2_new(&loop, cu, cfg, err, sizeof err);
    if (!o)
        fail_msg("oauth2_new: %s", err);

    struct log_capture cap;
    assert_int_equal(log_capture_begin(&cap), 0);
    struct got g[2];
    memset(g, 0, sizeof g);
    int rc0 = oauth2_token_get(o, "a@x.example", on_token, &g[0]);
    run_until(&loop, &g[0].calls, 1);
    int rc1 = oauth2_token_get(o, "a@x.example", on_token, &g[1]);
    run_until(&loop, &g[1].calls, 1);
    int closed = 0;
    oauth2_close(o, on_closed, &closed);
    curl_uv_close(cu, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    char *lines = log_capture_end(&cap, "oauth2", "token");

    assert_int_equal(rc0, 0);
    assert_int_equal(rc1, 0);
    assert_int_equal(g[0].status, -EAGAIN);
    assert_int_equal(g[1].status, -EAGAIN);
    assert_int_equal(closed, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
    const char *want = "token EMPTY -> FETCHING account=a@x.example\n"
                       "token FETCHING -> BACKOFF account=a@x.example\n"
                       "token BACKOFF -> CLOSED account=a@x.example\n";
    if (!lines || strcmp(lines, want) != 0 || strstr(lines, "unit-secret"))
        fail_msg("the token's debug lines were\n%s\nwant\n%s", lines ? lines : "(out of memory)", want);
    free(lines);
    config_free(cfg);
    curl_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),   cmocka_unit_test(test_parse_truncated), cmocka_unit_test(test_verdict),
        cmocka_unit_test(test_form),    cmocka_unit_test(test_schedules),       cmocka_unit_test(test_config),
        cmocka_unit_test(test_loop_unreachable), cmocka_unit_test(test_lifecycle_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
