/* api_webhooks: the HTTP API's webhook endpoints (/v1/webhooks). It owns
 * the checks of their requests — every body member known and of its
 * type, the URL judged by the delivery's own policy (webhook_url.c: https
 * unless the host is on webhook_allow_insecure, no private address
 * literal unless listed), a replay's since a time — and making an
 * endpoint's secret: 32 random bytes from OpenSSL as a whsec_ secret
 * (whsig.c), wiped once the statement holds it. The secret is in the
 * answer to a create and to a rotation, and in no other answer.
 *
 * SQL decides the rest (sql/functions/webhooks.sql): whether the types
 * are in the catalogue (event_types: a table, so it is checked there,
 * with the same 422 shape), a config endpoint refused (409), what a
 * replay owes. Sending the deliveries is webhooks.c's, not this file's. */
#include "api_int.h"

#include "clock.h"
#include "config.h"
#include "json.h"
#include "keyring.h"
#include "pgarray.h"
#include "webhook_url.h"
#include "webhooks.h"
#include "whsig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define URL_MAX 2000         /* bytes */
#define DESCRIPTION_MAX 1000 /* bytes */
#define TYPES_MAX 64         /* names in types */
#define TYPE_MAX 64          /* bytes of one */
#define SECRET_BYTES 32
#define DELIVERIES_DEFAULT "20"

static const char *const endpoint_members[] = {"url", "types", "description", "enabled", NULL};
static const char *const replay_members[] = {"since", NULL};

/* The members of a body, as checked: what SQL is given. */
struct webhook_input {
    const char *url, *description, *since;
    int has_types, enabled; /* enabled: -1 absent */
    struct buf types;       /* a PostgreSQL array literal, when has_types */
};

static int member_in(const char *const *list, const char *key, size_t klen)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == klen && memcmp(list[i], key, klen) == 0)
            return 1;
    return 0;
}

/* Checks the body's members — each one of allowed — adding one error
 * each to e. required: url (a create) or since (a replay) must be there. */
static void input_read(struct api_call *c, const char *const *allowed, const char *required,
                       struct webhook_input *in, struct api_errors *e)
{
    const struct json_doc *d = c->doc;
    in->enabled = -1;
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v)) {
        char p[JSON_PATH_MAX + 8];
        size_t klen;
        const char *key = json_key(d, v, &klen);
        json_path(d, v, p, sizeof p);
        if (strlen(key) != klen || !member_in(allowed, key, klen)) {
            api_error_add(e, p, "unknown member");
            continue;
        }
        if (strcmp(key, "url") == 0) {
            char why[300];
            const char *s = api_text(d, v, p, 1, URL_MAX, 0, e);
            if (s && webhook_url_check(s, api_config(c)->webhook_allow_insecure, NULL, why, sizeof why) < 0)
                api_error_add(e, p, "%s", why);
            else
                in->url = s;
        } else if (strcmp(key, "description") == 0) {
            in->description = api_text(d, v, p, 0, DESCRIPTION_MAX, 0, e);
        } else if (strcmp(key, "enabled") == 0) {
            if (json_type(d, v) == JSON_TRUE || json_type(d, v) == JSON_FALSE)
                in->enabled = json_type(d, v) == JSON_TRUE;
            else
                api_error_add(e, p, "must be a boolean, not %s", json_type_names[json_type(d, v)]);
        } else if (strcmp(key, "since") == 0) {
            const char *s = api_text(d, v, p, 1, 64, 0, e);
            double t;
            if (s && clock_parse_iso(s, &t) < 0)
                api_error_add(e, p, "must be an RFC 3339 time: 2026-03-02T09:00:00Z");
            else
                in->since = s;
        } else if (strcmp(key, "types") == 0) {
            if (json_type(d, v) != JSON_ARRAY) {
                api_error_add(e, p, "must be an array of event types ([] for all), not %s",
                              json_type_names[json_type(d, v)]);
                continue;
            }
            if (json_count(d, v) > TYPES_MAX) {
                api_error_add(e, p, "has %zu types; at most %d", json_count(d, v), TYPES_MAX);
                continue;
            }
            /* a repeated member: the last one counts, as in PostgreSQL's jsonb */
            buf_free(&in->types);
            in->types = (struct buf){0};
            in->has_types = 1;
            for (int t = json_first(d, v); t >= 0; t = json_next(d, t)) {
                char tp[JSON_PATH_MAX + 8];
                json_path(d, t, tp, sizeof tp);
                /* the shape here; whether it is in the catalogue, in SQL */
                const char *s = api_text(d, t, tp, 1, TYPE_MAX, 0, e);
                if (s && strspn(s, "abcdefghijklmnopqrstuvwxyz_.") != strlen(s))
                    api_error_add(e, tp, "%s is not an event type (reply.received, message.bounced...)", s);
                else if (s)
                    pgarray_add(&in->types, s);
            }
        }
    }
    if (required && json_get(d, 0, required) < 0) {
        char p[32];
        snprintf(p, sizeof p, "/%s", required);
        api_error_add(e, p, "is required");
    }
}

/* 0, or -1 answered (422 with e's errors); e is freed either way. */
static int input_answer(struct api_call *c, struct api_errors *e, const char *title)
{
    if (!e->n) {
        api_errors_free(e);
        return 0;
    }
    api_problem(c, 422, "validation", title, "the request has invalid members", api_errors_json(e));
    api_errors_free(e);
    return -1;
}

/* The path's {id}: 0 when it is one (digits), or -1 answered (404: no
 * endpoint can have that id). */
static int id_param(struct api_call *c)
{
    size_t n = strlen(c->param);
    if (n >= 1 && n <= 18 && strspn(c->param, "0123456789") == n)
        return 0;
    char detail[80];
    snprintf(detail, sizeof detail, "no webhook %.40s", c->param);
    api_problem(c, 404, "not-found", "Not found", detail, NULL);
    return -1;
}

/* A fresh secret into out (WHSIG_SECRET_MAX): 0, or -1. */
static int secret_make(char *out)
{
    unsigned char random[SECRET_BYTES];
    int rc = RAND_bytes(random, (int)sizeof random) == 1 ? whsig_secret_format(random, sizeof random, out,
                                                                                 WHSIG_SECRET_MAX)
                                                         : -1;
    OPENSSL_cleanse(random, sizeof random);
    return rc;
}

/* ---- /v1/webhooks ---------------------------------------------------------- */

static void webhooks_list(struct api_call *c)
{
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    const char *p[2] = {lim, api_arg(c, "after")};
    api_ask(c, "SELECT status, body FROM relance_api_webhooks_list($1::int, $2)", 2, p);
}

static void webhook_create(struct api_call *c)
{
    struct webhook_input in = {0};
    struct api_errors e = {0};
    input_read(c, endpoint_members, "url", &in, &e);
    const char *types = in.has_types ? pgarray_end(&in.types) : "{}";
    if (input_answer(c, &e, "Invalid webhook") < 0) {
        buf_free(&in.types);
        return;
    }
    char secret[WHSIG_SECRET_MAX], now[40];
    if (!types || secret_make(secret) < 0) {
        buf_free(&in.types);
        api_unavailable(c);
        return;
    }
    api_now(now, sizeof now);
    const char *p[6] = {in.url, types, in.description ? in.description : "", in.enabled == 0 ? "false" : "true",
                        secret, now};
    api_ask(c,
            "SELECT status, body FROM relance_api_webhook_create($1, $2::text[], $3, $4::boolean, $5, "
            "$6::timestamptz)",
            6, p);
    OPENSSL_cleanse(secret, sizeof secret);
    buf_free(&in.types);
}

static void webhook_get(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    const char *p[1] = {c->param};
    api_ask(c, "SELECT status, body FROM relance_api_webhook_get($1::bigint)", 1, p);
}

static void webhook_patch(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    struct webhook_input in = {0};
    struct api_errors e = {0};
    input_read(c, endpoint_members, NULL, &in, &e);
    buf_free(&in.types);
    if (input_answer(c, &e, "Invalid webhook") < 0)
        return;
    /* every member checked: the body is the patch as it came */
    char now[40];
    api_now(now, sizeof now);
    const char *p[3] = {c->param, c->body, now};
    api_ask(c, "SELECT status, body FROM relance_api_webhook_patch($1::bigint, $2::jsonb, $3::timestamptz)", 3,
            p);
}

static void webhook_delete(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    const char *p[1] = {c->param};
    api_ask(c, "SELECT status, body FROM relance_api_webhook_delete($1::bigint)", 1, p);
}

/* No body: nothing to say but which endpoint. */
static void webhook_rotate(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    char secret[WHSIG_SECRET_MAX], now[40];
    if (secret_make(secret) < 0) {
        api_unavailable(c);
        return;
    }
    api_now(now, sizeof now);
    const char *p[3] = {c->param, secret, now};
    api_ask(c, "SELECT status, body FROM relance_api_webhook_rotate($1::bigint, $2, $3::timestamptz)", 3, p);
    OPENSSL_cleanse(secret, sizeof secret);
}

static void webhook_replay(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    struct webhook_input in = {0};
    struct api_errors e = {0};
    input_read(c, replay_members, "since", &in, &e);
    buf_free(&in.types);
    if (input_answer(c, &e, "Invalid replay") < 0)
        return;
    const char *p[2] = {c->param, in.since};
    api_ask(c, "SELECT status, body FROM relance_api_webhook_replay($1::bigint, $2::timestamptz)", 2, p);
}

static void webhook_deliveries(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    char lim[16];
    if (api_arg(c, "limit") && api_limit(c, lim) < 0)
        return;
    const char *p[2] = {c->param, api_arg(c, "limit") ? lim : DELIVERIES_DEFAULT};
    api_ask(c, "SELECT status, body FROM relance_api_webhook_deliveries($1::bigint, $2::int)", 2, p);
}

/* ---- POST /v1/webhooks/{id}/test ------------------------------------------- */

/* A test request in flight: the call waits for webhooks.c's answer. */
struct test_call {
    struct api_call *c;
    char *event;
};

static void on_test_sent(void *arg, int status, const char *error, double seconds)
{
    struct test_call *t = arg;
    struct buf b = {0};
    buf_addf(&b, "{\"delivered\":%s,\"status\":", status >= 200 && status <= 299 ? "true" : "false");
    if (status > 0)
        buf_addf(&b, "%d", status);
    else
        buf_adds(&b, "null");
    buf_adds(&b, ",\"error\":");
    if (error)
        json_add_string(&b, error);
    else
        buf_adds(&b, "null");
    buf_addf(&b, ",\"duration_ms\":%.0f,\"event\":%s}", seconds * 1000.0, t->event);
    if (b.oom)
        api_unavailable(t->c);
    else
        api_reply(t->c, 200, b.p, b.len);
    buf_free(&b);
    free(t->event);
    free(t);
}

static void on_test_event(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        api_reply_row(c, res);
        return;
    }
    int status = atoi(PQgetvalue(res, 0, 0));
    if (status != 200) {
        api_reply_row(c, res);
        return;
    }
    struct test_call *t = calloc(1, sizeof *t);
    if (!t || !(t->event = strdup(PQgetvalue(res, 0, 1)))) {
        free(t);
        api_unavailable(c);
        return;
    }
    t->c = c;
    const char *name = PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3);
    const char *secret = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
    char why[300];
    const char *previous = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 5);
    if (webhooks_send(api_webhooks(c), PQgetvalue(res, 0, 2), name, secret, previous, PQgetvalue(res, 0, 6), t->event,
                      on_test_sent, t, why, sizeof why) < 0)
        on_test_sent(t, 0, why, 0);
}

/* Sends an example event to the endpoint now and answers how it went:
 * what an integrator runs while wiring the CRM up. */
static void webhook_test(struct api_call *c)
{
    if (id_param(c) < 0)
        return;
    const char *type = api_arg(c, "type");
    if (type && (strlen(type) > TYPE_MAX || strspn(type, "abcdefghijklmnopqrstuvwxyz_.") != strlen(type))) {
        api_bad_request(c, "type is not an event type");
        return;
    }
    if (!api_webhooks(c)) {
        api_unavailable(c);
        return;
    }
    unsigned char r[12];
    char test_id[32] = "test_", now[40];
    if (RAND_bytes(r, sizeof r) != 1) {
        api_unavailable(c);
        return;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(test_id + 5 + 2 * i, 3, "%02x", r[i]);
    api_now(now, sizeof now);
    const char *p[4] = {c->param, type, test_id, now};
    struct db *db = api_db(c);
    if (!db || db_query(db, "SELECT status, body, url, name, secret, previous_secret, $3 FROM relance_api_webhook_test($1::bigint, $2, $3,"
                            " $4::timestamptz)", 4, p, on_test_event, c) < 0)
        api_unavailable(c);
}

static const char *const page_args[] = {"limit", "after", NULL};
static const char *const type_args[] = {"type", NULL};
static const char *const limit_args[] = {"limit", NULL};

const struct api_route api_webhook_routes[] = {
    {"GET", "/v1/webhooks", SCOPE_WEBHOOKS_WRITE, 0, page_args, webhooks_list, 0},
    {"POST", "/v1/webhooks", SCOPE_WEBHOOKS_WRITE, 1, NULL, webhook_create, 0},
    {"GET", "/v1/webhooks/{}", SCOPE_WEBHOOKS_WRITE, 0, NULL, webhook_get, 0},
    {"PATCH", "/v1/webhooks/{}", SCOPE_WEBHOOKS_WRITE, 1, NULL, webhook_patch, 0},
    {"DELETE", "/v1/webhooks/{}", SCOPE_WEBHOOKS_WRITE, 0, NULL, webhook_delete, 0},
    {"POST", "/v1/webhooks/{}/rotate-secret", SCOPE_WEBHOOKS_WRITE, 0, NULL, webhook_rotate, 0},
    {"POST", "/v1/webhooks/{}/replay", SCOPE_WEBHOOKS_WRITE, 1, NULL, webhook_replay, 0},
    {"GET", "/v1/webhooks/{}/deliveries", SCOPE_WEBHOOKS_WRITE, 0, limit_args, webhook_deliveries, 0},
    {"POST", "/v1/webhooks/{}/test", SCOPE_WEBHOOKS_WRITE, 0, type_args, webhook_test, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};
