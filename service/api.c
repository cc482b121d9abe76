/* api: the HTTP API's way in. It owns the route table, and every step a
 * request takes before a resource's handler runs and after it answers:
 *
 *   route (404, 405) -> body size (413) -> key (401) -> scope (403) ->
 *   rate limit (429) -> query arguments, Idempotency-Key's form (400) ->
 *   content type (415) -> JSON (400, 422) -> Idempotency-Key's record
 *   (replay, 409, 422) -> handler
 *
 * and the answers' common form: X-Request-Id on every answer, problems
 * (RFC 9457, application/problem+json) with the request's id, and the
 * idempotency record of a POST written before its answer goes. The
 * resources (api_contacts.c, ...) decide and answer through SQL
 * (sql/functions/api.sql); keyring.c keeps the keys and rate limits.
 * /healthz and /readyz keep their own plain JSON: probes predate the API.
 *
 * Nothing here blocks the loop: a key not in the cache, the idempotency
 * record and every statement go through the API's own connection
 * (ready_api_db) and answer later; the connection is suspended meanwhile. */
#include "api.h"

#include "api_int.h"
#include "apikey.h"
#include "clock.h"
#include "config.h"
#include "contact.h"
#include "keyring.h"
#include "log.h"
#include "ready.h"
#include "utf8.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZONES_RETRY_MS 1000
#define PRUNE_EVERY_MS 60000
#define PRUNE_BATCH "1000"
#define IDEM_KEY_MAX 255

extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;

struct api {
    uv_loop_t *loop;
    const struct ready *ready;
    const struct config *cfg;
    struct keyring *keys;
    uv_timer_t timer;       /* reads the time zones until it has them; prunes idempotency records */
    char **zones;           /* pg_timezone_names, sorted for contact_zone_find */
    size_t n_zones;
    int zones_loading;
    struct zone_wait *zone_waits; /* requests waiting for them */
    char *capture_dir;      /* the capture transport's Maildir, or NULL */
    struct webhooks *webhooks; /* the deliveries, for a test request; NULL until set */
    size_t queries;         /* own statements in flight (zones, prune) */
    int by_account;         /* the sender claims per account (api_by_account) */
    int closing, parts_open;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

/* ---- answers ------------------------------------------------------------- */

static void call_free(struct api_call *c)
{
    if (c->data_free)
        c->data_free(c->data);
    free(c->param);
    for (size_t i = 0; i < API_ARGS_MAX; i++)
        free(c->args[i]);
    free(c->body);
    json_free(c->doc);
    free(c->idem_key);
    free(c->unknown_arg);
    free(c->content_type);
    free(c);
}

static void send_now(struct api_call *c, int status, const char *body, size_t len, const char *const *extra)
{
    const char *h[8];
    size_t n = 0;
    h[n++] = "X-Request-Id";
    h[n++] = c->request_id;
    for (size_t i = 0; extra && extra[i] && n + 2 < sizeof h / sizeof h[0]; i += 2) {
        h[n++] = extra[i];
        h[n++] = extra[i + 1];
    }
    h[n] = NULL;
    http_respond_headers(c->req, status, status >= 400 ? "application/problem+json" : "application/json", body,
                         len, h);
}

struct recording {
    struct api_call *c;
    int status;
    char *body;
    size_t len;
};

static void on_recorded(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res; /* not recorded: a retry runs the request again, as without a key */
    struct recording *r = arg;
    send_now(r->c, r->status, r->body, r->len, NULL);
    call_free(r->c);
    free(r->body);
    free(r);
}

void api_reply(struct api_call *c, int status, const char *body, size_t len)
{
    struct db *db = c->idem_recorded ? ready_api_db(c->api->ready) : NULL;
    struct recording *r = db ? calloc(1, sizeof *r) : NULL;
    if (r && (r->body = malloc(len + 1))) {
        memcpy(r->body, body, len);
        r->body[len] = '\0';
        r->c = c;
        r->status = status;
        r->len = len;
        char st[16];
        snprintf(st, sizeof st, "%d", status);
        const char *p[5] = {c->key_id, c->idem_key, st,
                            status >= 400 ? "application/problem+json" : "application/json", r->body};
        if (db_query(db, "SELECT relance_api_idempotency_end($1, $2, $3::int, $4, $5)", 5, p, on_recorded, r) == 0)
            return;
        free(r->body);
    }
    free(r);
    send_now(c, status, body, len, NULL);
    call_free(c);
}

/* Puts "request_id" first in the object body (a problem without one). */
static void with_request_id(struct buf *out, const struct api_call *c, const char *body)
{
    const char *rest = body + 1;
    buf_addf(out, "{\"request_id\":\"%s\"", c->request_id);
    while (*rest == ' ')
        rest++;
    if (*rest != '}')
        buf_addc(out, ',');
    buf_adds(out, rest);
}

void api_reply_sql(struct api_call *c, int status, const char *body)
{
    if (status < 400 || body[0] != '{') {
        api_reply(c, status, body, strlen(body));
        return;
    }
    struct buf b = {0};
    with_request_id(&b, c, body);
    if (b.oom)
        api_reply(c, status, body, strlen(body));
    else
        api_reply(c, status, b.p, b.len);
    buf_free(&b);
}

static void problem_build(struct buf *b, const struct api_call *c, int status, const char *slug, const char *title,
                          const char *detail, const char *errors_json, const char *extra)
{
    buf_addf(b, "{\"request_id\":\"%s\",\"type\":\"urn:relance:problem:%s\",\"title\":", c->request_id, slug);
    json_add_string(b, title);
    buf_addf(b, ",\"status\":%d", status);
    if (detail) {
        buf_adds(b, ",\"detail\":");
        json_add_string(b, detail);
    }
    if (errors_json) {
        buf_adds(b, ",\"errors\":");
        buf_adds(b, errors_json);
    }
    if (extra) {
        buf_addc(b, ',');
        buf_adds(b, extra);
    }
    buf_addc(b, '}');
}

void api_problem(struct api_call *c, int status, const char *slug, const char *title, const char *detail,
                 const char *errors_json)
{
    api_problem_extra(c, status, slug, title, detail, errors_json, NULL);
}

void api_problem_extra(struct api_call *c, int status, const char *slug, const char *title, const char *detail,
                       const char *errors_json, const char *extra)
{
    struct buf b = {0};
    problem_build(&b, c, status, slug, title, detail, errors_json, extra);
    if (b.oom)
        api_reply(c, 503, "{}", 2);
    else
        api_reply(c, status, b.p, b.len);
    buf_free(&b);
}

/* A problem answered with extra headers, never recorded (before the
 * idempotency step, or a replay's refusal). */
static void problem_with(struct api_call *c, int status, const char *slug, const char *title, const char *detail,
                         const char *const *extra)
{
    struct buf b = {0};
    problem_build(&b, c, status, slug, title, detail, NULL, NULL);
    send_now(c, status, b.oom ? "{}" : b.p, b.oom ? 2 : b.len, extra);
    buf_free(&b);
    call_free(c);
}

void api_unavailable(struct api_call *c)
{
    api_problem(c, 503, "unavailable", "Service unavailable", "the database cannot be reached; retry later",
                NULL);
}

void api_reply_row(struct api_call *c, const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
            log_event(LOG_ERROR, "api", "statement failed", "request_id", c->request_id, "error",
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), NULL);
        api_unavailable(c);
        return;
    }
    api_reply_sql(c, atoi(PQgetvalue(res, 0, 0)), PQgetvalue(res, 0, 1));
}

void api_error_add(struct api_errors *e, const char *pointer, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_adds(&e->json, e->n++ ? ",{\"pointer\":" : "[{\"pointer\":");
    json_add_string(&e->json, pointer);
    buf_adds(&e->json, ",\"message\":");
    json_add_string(&e->json, msg);
    buf_addc(&e->json, '}');
}

const char *api_errors_json(struct api_errors *e)
{
    if (!e->n)
        return "[]";
    buf_addc(&e->json, ']');
    e->n = 0; /* closed: a later add would start over */
    return e->json.oom ? "[]" : e->json.p;
}

void api_errors_free(struct api_errors *e)
{
    buf_free(&e->json);
}

const char *api_arg(const struct api_call *c, const char *name)
{
    for (size_t i = 0; c->route->args && c->route->args[i] && i < API_ARGS_MAX; i++)
        if (strcmp(c->route->args[i], name) == 0)
            return c->args[i];
    return NULL;
}

struct db *api_db(const struct api_call *c)
{
    return ready_api_db(c->api->ready);
}

void api_bad_request(struct api_call *c, const char *detail)
{
    api_problem(c, 400, "bad-request", "Bad request", detail, NULL);
}

int api_limit(struct api_call *c, char out[16])
{
    const char *s = api_arg(c, "limit");
    long n = API_LIMIT_DEFAULT;
    if (s) {
        char *end;
        n = strtol(s, &end, 10);
        if (!*s || *end || n < 1 || n > API_LIMIT_MAX) {
            api_bad_request(c, "limit is a number from 1 to 500");
            return -1;
        }
    }
    snprintf(out, 16, "%ld", n);
    return 0;
}

void api_on_row(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    api_reply_row(arg, res);
}

void api_ask(struct api_call *c, const char *sql, int n, const char *const *params)
{
    struct db *db = api_db(c);
    if (!db || db_query(db, sql, n, params, api_on_row, c) < 0)
        api_unavailable(c);
}

void api_now(char *buf, size_t len)
{
    clock_format(clock_now(), buf, len);
}

const char *api_text(const struct json_doc *d, int v, const char *ptr, size_t min, size_t max, int nullable,
                     struct api_errors *e)
{
    size_t len;
    if (json_type(d, v) != JSON_STRING) {
        api_error_add(e, ptr, nullable ? "must be a string or null, not %s" : "must be a string, not %s",
                      json_type_names[json_type(d, v)]);
        return NULL;
    }
    const char *s = json_text(d, v, &len);
    if (strlen(s) != len)
        api_error_add(e, ptr, "must not contain U+0000");
    else if (len < min || len > max)
        api_error_add(e, ptr, "is %zu bytes long; %zu to %zu", len, min, max);
    else
        return s;
    return NULL;
}

const struct config *api_config(const struct api_call *c)
{
    return c->api->cfg;
}

const char *api_capture_dir(const struct api_call *c)
{
    return c->api->capture_dir;
}

struct webhooks *api_webhooks(const struct api_call *c)
{
    return c->api->webhooks;
}

void api_set_webhooks(struct api *api, struct webhooks *wh)
{
    api->webhooks = wh;
}

void api_set_capture_dir(struct api *api, const char *dir)
{
    free(api->capture_dir);
    api->capture_dir = dir ? strdup(dir) : NULL;
}

struct off_loop {
    uv_work_t req;
    struct api_call *c;
    void (*work)(struct api_call *c);
    void (*done)(struct api_call *c);
};

static void maybe_closed(struct api *api);

static void off_loop_work(uv_work_t *req)
{
    struct off_loop *o = req->data;
    o->work(o->c);
}

static void off_loop_done(uv_work_t *req, int status)
{
    (void)status;
    struct off_loop *o = req->data;
    struct api *api = o->c->api;
    o->done(o->c);
    free(o);
    api->queries--;
    maybe_closed(api);
}

void api_off_loop(struct api_call *c, void (*work)(struct api_call *c), void (*done)(struct api_call *c))
{
    struct off_loop *o = calloc(1, sizeof *o);
    if (!o) {
        api_unavailable(c);
        return;
    }
    o->req.data = o;
    o->c = c;
    o->work = work;
    o->done = done;
    if (uv_queue_work(c->api->loop, &o->req, off_loop_work, off_loop_done) < 0) {
        free(o);
        api_unavailable(c);
        return;
    }
    c->api->queries++;
}

int api_by_account(const struct api_call *c)
{
    return c->api->by_account;
}

const char *const *api_zones(const struct api_call *c, size_t *n)
{
    *n = c->api->n_zones;
    return c->api->zones ? (const char *const *)c->api->zones : NULL;
}

struct zone_wait {
    struct zone_wait *next;
    struct api_call *c;
    void (*then)(struct api_call *c);
};

static void zones_load(struct api *api);

void api_with_zones(struct api_call *c, void (*then)(struct api_call *c))
{
    struct api *api = c->api;
    struct zone_wait *w;
    if (api->zones) {
        then(c);
        return;
    }
    if (!(w = calloc(1, sizeof *w))) {
        api_unavailable(c);
        return;
    }
    w->c = c;
    w->then = then;
    w->next = api->zone_waits;
    api->zone_waits = w;
    zones_load(api);
}

/* ---- batches ------------------------------------------------------------------ */

/* A batch between its check and its answer. */
struct batch {
    const struct api_batch_kind *kind;
    size_t n;
    char **errors; /* per item: its errors as a JSON array, NULL when it went to SQL */
    int single;    /* one item, answered as the thing itself */
};

static void batch_free(void *data)
{
    struct batch *b = data;
    for (size_t i = 0; b && i < b->n; i++)
        free(b->errors[i]);
    if (b)
        free(b->errors);
    free(b);
}

int api_batch_items(struct api_call *c, const char *member)
{
    const struct json_doc *d = c->doc;
    struct api_errors e = {0};
    char at[64], detail[96];
    snprintf(at, sizeof at, "/%s", member);
    int items = json_get(d, 0, member);
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v)) {
        size_t klen;
        const char *key = json_key(d, v, &klen);
        if (strlen(key) != klen || strcmp(key, member) != 0) {
            char p[JSON_PATH_MAX];
            json_path(d, v, p, sizeof p);
            api_error_add(&e, p, "unknown member");
        }
    }
    if (items < 0)
        api_error_add(&e, at, "is required");
    else if (json_type(d, items) != JSON_ARRAY)
        api_error_add(&e, at, "must be an array, not %s", json_type_names[json_type(d, items)]);
    else if (json_count(d, items) == 0 || json_count(d, items) > API_BATCH_MAX)
        api_error_add(&e, at, "holds 1 to %d %s, not %zu", API_BATCH_MAX, member, json_count(d, items));
    if (e.n) {
        snprintf(detail, sizeof detail, "the body is not a list of %s", member);
        api_problem(c, 422, "validation", "Invalid request", detail, api_errors_json(&e));
        api_errors_free(&e);
        return -1;
    }
    api_errors_free(&e);
    return items;
}

int api_batch_check(struct api_call *c, const struct api_batch_kind *kind, int items, int single, struct buf *sql)
{
    const struct json_doc *d = c->doc;
    struct batch *b = calloc(1, sizeof *b);
    size_t n = single ? 1 : json_count(d, items);
    if (!b || !(b->errors = calloc(n ? n : 1, sizeof *b->errors))) {
        free(b);
        api_unavailable(c);
        return 0;
    }
    b->kind = kind;
    b->n = n;
    b->single = single;
    c->data = b;
    c->data_free = batch_free;
    buf_addc(sql, '[');
    size_t valid = 0;
    int v = single ? items : json_first(d, items);
    for (size_t i = 0; i < n; i++, v = single ? -1 : json_next(d, v)) {
        char p[64] = "";
        struct api_errors e = {0};
        struct buf item = {0};
        if (!single)
            snprintf(p, sizeof p, "/%s/%zu", kind->member, i);
        kind->check(c, d, v, p, &item, &e);
        if (e.n && single) {
            api_problem(c, 422, "validation", kind->title, "the request has invalid members", api_errors_json(&e));
            api_errors_free(&e);
            buf_free(&item);
            return 0;
        }
        if (e.n) {
            b->errors[i] = strdup(api_errors_json(&e));
        } else {
            buf_addf(sql, "%s{\"index\":%zu", valid++ ? "," : "", i);
            buf_add(sql, item.p ? item.p : "", item.len);
            buf_addc(sql, '}');
        }
        api_errors_free(&e);
        buf_free(&item);
    }
    buf_addc(sql, ']');
    if (sql->oom) {
        api_unavailable(c);
        return 0;
    }
    if (!valid)
        api_batch_answer(NULL, NULL, c); /* every item invalid: nothing to write */
    return valid > 0;
}

void api_contact_ids(struct buf *out, const char *pgarray)
{
    long long a = 0, b = 0;
    if (sscanf(pgarray ? pgarray : "", "{%lld,%lld}", &a, &b) != 2)
        a = b = 0;
    buf_addf(out, "\"contact_ids\":[\"%lld\",\"%lld\"]", a, b);
}

void api_batch_invalid(struct buf *out, const char *pointer, const char *message)
{
    buf_adds(out, "\"status\":\"invalid\",\"errors\":[{\"pointer\":");
    json_add_string(out, pointer);
    buf_adds(out, ",\"message\":");
    json_add_string(out, message);
    buf_adds(out, "}]}");
}

void api_batch_answer(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    const struct batch *b = c->data;
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        api_reply_row(c, res); /* logs and answers 503 */
        return;
    }
    if (b->single) {
        if (!res || PQntuples(res) != 1)
            api_unavailable(c);
        else
            b->kind->single(c, res);
        return;
    }
    struct buf out = {0};
    buf_adds(&out, "{\"results\":[");
    int row = 0, rows = res ? PQntuples(res) : 0;
    for (size_t i = 0; i < b->n; i++) {
        buf_addf(&out, "%s{\"index\":%zu,", i ? "," : "", i);
        if (b->errors[i]) {
            buf_addf(&out, "\"status\":\"invalid\",\"errors\":%s}", b->errors[i]);
            continue;
        }
        while (row < rows && (size_t)atoll(PQgetvalue(res, row, 0)) < i)
            row++;
        b->kind->write(&out, res, row < rows && (size_t)atoll(PQgetvalue(res, row, 0)) == i ? row : -1, i);
    }
    buf_adds(&out, "]}");
    if (out.oom)
        api_unavailable(c);
    else
        api_reply(c, 200, out.p, out.len);
    buf_free(&out);
}

/* ---- the probes and the document ------------------------------------------ */

static void healthz(struct api_call *c)
{
    send_now(c, 200, "{\"status\":\"ok\"}", 15, NULL);
    call_free(c);
}

static void readyz(struct api_call *c)
{
    const struct ready *ready = c->api->ready;
    if (ready_db(ready) && !ready->stopping) {
        send_now(c, 200, "{\"status\":\"ready\"}", 18, NULL);
        call_free(c);
        return;
    }
    struct buf body = {0};
    buf_adds(&body, "{\"status\":\"not ready\",\"reason\":");
    json_add_string(&body, ready->stopping ? "shutting down" : ready->reason);
    buf_addc(&body, '}');
    /* not a problem document: the probes' answers predate the API */
    const char *h[] = {"X-Request-Id", c->request_id, NULL};
    const char *text = body.oom ? "{\"status\":\"not ready\"}" : body.p;
    http_respond_headers(c->req, 503, "application/json", text, strlen(text), h);
    buf_free(&body);
    call_free(c);
}

static void openapi(struct api_call *c)
{
    send_now(c, 200, (const char *)openapi_json, openapi_json_len, NULL);
    call_free(c);
}

static const struct api_route probe_routes[] = {
    {"GET", "/healthz", 0, 0, NULL, healthz, 0},
    {"GET", "/readyz", 0, 0, NULL, readyz, 0},
    {"GET", "/v1/openapi.json", 0, 0, NULL, openapi, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};

static const struct api_route *const route_tables[] = {probe_routes, api_contact_routes, api_enrollment_routes,
                                                       api_sequence_routes, api_admin_routes, api_event_routes,
                                                       api_webhook_routes};

/* ---- routing -------------------------------------------------------------- */

/* Whether path matches pattern; *param gets the {} segment (malloc'd). */
static int matches(const char *pattern, const char *path, char **param)
{
    const char *p = pattern, *s = path;
    *param = NULL;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");
            if (n == 0)
                return 0;
            free(*param);
            *param = strndup(s, n);
            s += n;
            p += 2;
            continue;
        }
        if (*p != *s)
            break;
        p++;
        s++;
    }
    if (*p || *s) {
        free(*param);
        *param = NULL;
        return 0;
    }
    return 1;
}

/* The route for method and path; *known when the path exists with another method. */
static const struct api_route *route_find(const char *method, const char *path, char **param, int *known)
{
    *known = 0;
    for (size_t t = 0; t < sizeof route_tables / sizeof route_tables[0]; t++)
        for (const struct api_route *r = route_tables[t]; r->method; r++) {
            char *got;
            if (!matches(r->pattern, path, &got))
                continue;
            if (strcmp(r->method, method) == 0 || (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
                free(*param);
                *param = got;
                return r;
            }
            free(got);
            *known = 1;
        }
    return NULL;
}

/* ---- the steps before the handler ------------------------------------------ */

static void run_handler(struct api_call *c)
{
    if (c->route->zones)
        api_with_zones(c, c->route->run);
    else
        c->route->run(c);
}

static void on_idempotency(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        api_unavailable(c);
        return;
    }
    const char *state = PQgetvalue(res, 0, 0);
    if (strcmp(state, "new") == 0) {
        c->idem_recorded = 1;
        run_handler(c);
    } else if (strcmp(state, "done") == 0) {
        /* the first answer, byte for byte */
        const char *h[] = {"X-Request-Id", c->request_id, "Idempotent-Replayed", "true", NULL};
        http_respond_headers(c->req, atoi(PQgetvalue(res, 0, 1)), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                             (size_t)PQgetlength(res, 0, 3), h);
        call_free(c);
    } else if (strcmp(state, "running") == 0) {
        problem_with(c, 409, "idempotency-in-progress", "Request in progress",
                     "a request with this Idempotency-Key is still running; retry once it has answered", NULL);
    } else {
        problem_with(c, 422, "idempotency-mismatch", "Idempotency-Key reused",
                     "this Idempotency-Key was used with another request", NULL);
    }
}

/* Takes the idempotency record when the request is a POST with a key. */
static void idempotency(struct api_call *c)
{
    if (!c->idem_key || strcmp(c->route->method, "POST") != 0) {
        run_handler(c);
        return;
    }
    struct db *db = ready_api_db(c->api->ready);
    char hex[65];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", c->req_hash[i]);
    char hash[70];
    snprintf(hash, sizeof hash, "\\x%s", hex);
    const char *p[3] = {c->key_id, c->idem_key, hash};
    if (!db || db_query(db,
                        "SELECT state, status, content_type, body FROM relance_api_idempotency_begin($1, $2, "
                        "$3::bytea)",
                        3, p, on_idempotency, c) < 0)
        api_unavailable(c);
}

static int content_type_json(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* The body: application/json, well formed, an object. */
static int body_check(struct api_call *c)
{
    if (!c->route->json_body)
        return 0;
    struct json_error err;
    if (json_parse(c->body ? c->body : "", c->body_len, &c->doc, &err) < 0) {
        char text[200];
        json_error_text(&err, text, sizeof text);
        struct api_errors e = {0};
        api_error_add(&e, err.path, "%s", text);
        api_problem(c, 400, "malformed-json", "Malformed JSON", text, api_errors_json(&e));
        api_errors_free(&e);
        return -1;
    }
    if (json_type(c->doc, 0) != JSON_OBJECT) {
        struct api_errors e = {0};
        api_error_add(&e, "", "must be an object, not %s", json_type_names[json_type(c->doc, 0)]);
        api_problem(c, 422, "validation", "Invalid request", "the body must be a JSON object", api_errors_json(&e));
        api_errors_free(&e);
        return -1;
    }
    return 0;
}

static int request_check(struct api_call *c);

static void after_key(struct api_call *c, unsigned scopes)
{
    if ((scopes & c->route->scope) != c->route->scope) {
        char detail[96];
        for (size_t i = 0; apikey_scopes[i]; i++)
            if (c->route->scope & ~scopes & (1u << i)) /* a scope the key lacks */
                snprintf(detail, sizeof detail, "this key lacks the scope %s", apikey_scopes[i]);
        problem_with(c, 403, "forbidden", "Forbidden", detail, NULL);
        return;
    }
    unsigned wait = keyring_take(c->api->keys, c->key_id);
    if (wait) {
        char s[16];
        snprintf(s, sizeof s, "%u", wait);
        const char *h[] = {"Retry-After", s, NULL};
        problem_with(c, 429, "rate-limited", "Too many requests", "this key's rate limit is reached", h);
        return;
    }
    if (request_check(c) < 0 || body_check(c) < 0)
        return;
    idempotency(c);
}

static void on_key(void *arg, enum keyring_verdict v, unsigned scopes)
{
    struct api_call *c = arg;
    if (v == KEYRING_UNAVAILABLE) {
        problem_with(c, 503, "unavailable", "Service unavailable", "keys cannot be checked now; retry later", NULL);
        return;
    }
    if (v != KEYRING_OK) {
        const char *h[] = {"WWW-Authenticate", "Bearer", NULL};
        problem_with(c, 401, "unauthorized", "Unauthorized", "unknown or revoked API key", h);
        return;
    }
    after_key(c, scopes);
}

static int content_type_json(const char *ct);

/* Copies what the handler may read of the request; 0, or -1 answered. */
static int copy_request(struct api_call *c)
{
    struct http_request *req = c->req;
    for (size_t i = 0; c->route->args && c->route->args[i] && i < API_ARGS_MAX; i++) {
        size_t len;
        const char *v = http_request_arg_n(req, c->route->args[i], &len);
        if (v && !(c->args[i] = strdup(v)))
            return -1;
        c->bad_arg |= v && strlen(v) != len; /* a %00 inside */
    }
    size_t len;
    const char *body = http_request_body(req, &len);
    if (len) {
        if (!(c->body = malloc(len + 1)))
            return -1;
        memcpy(c->body, body, len);
        c->body[len] = '\0';
        c->body_len = len;
    }
    const char *unknown = http_request_unknown_arg(req, c->route->args);
    if (unknown && !(c->unknown_arg = strndup(unknown, 100)))
        return -1;
    const char *ct = http_request_header(req, "Content-Type");
    c->json_type = content_type_json(ct);
    if (ct && !(c->content_type = strndup(ct, 200)))
        return -1;
    const char *idem = http_request_header(req, "Idempotency-Key");
    if (idem && !(c->idem_key = strdup(idem)))
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned n = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, c->route->method, strlen(c->route->method) + 1) == 1 &&
             EVP_DigestUpdate(md, http_request_path(req), strlen(http_request_path(req)) + 1) == 1 &&
             EVP_DigestUpdate(md, c->body ? c->body : "", c->body_len) == 1 &&
             EVP_DigestFinal_ex(md, c->req_hash, &n) == 1;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* Refuses query arguments the route does not read, bad idempotency keys
 * and bodies that are not JSON (by their content type). */
static int request_check(struct api_call *c)
{
    int bad = c->bad_arg || (c->param && !utf8_valid(c->param, strlen(c->param)));
    for (size_t i = 0; i < API_ARGS_MAX; i++)
        bad |= c->args[i] && !utf8_valid(c->args[i], strlen(c->args[i]));
    if (bad) {
        problem_with(c, 400, "bad-request", "Bad request",
                     "a query argument or the path is not UTF-8 text (or holds U+0000)", NULL);
        return -1;
    }
    if (c->unknown_arg) {
        char detail[160];
        snprintf(detail, sizeof detail, "unknown query argument '%.100s'", c->unknown_arg);
        problem_with(c, 400, "bad-request", "Bad request", detail, NULL);
        return -1;
    }
    if (c->idem_key) {
        size_t n = strlen(c->idem_key);
        bad = n == 0 || n > IDEM_KEY_MAX;
        for (size_t i = 0; i < n && !bad; i++)
            bad = c->idem_key[i] < 0x20 || c->idem_key[i] > 0x7e;
        if (bad) {
            problem_with(c, 400, "bad-request", "Bad request",
                         "Idempotency-Key must be 1 to 255 printable ASCII characters", NULL);
            return -1;
        }
    }
    if (c->route->json_body && !c->json_type) {
        problem_with(c, 415, "unsupported-media-type", "Unsupported media type", "the body must be application/json",
                     NULL);
        return -1;
    }
    return 0;
}

void api_handle(struct http_request *req, void *arg)
{
    struct api *api = arg;
    struct api_call *c = calloc(1, sizeof *c);
    unsigned char rnd[16];
    if (!c || RAND_bytes(rnd, sizeof rnd) != 1) {
        free(c);
        http_respond_json(req, 503, "{}");
        return;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(c->request_id + 2 * i, 3, "%02x", rnd[i]);
    c->api = api;
    c->req = req;
    int known;
    c->route = route_find(http_request_method(req), http_request_path(req), &c->param, &known);
    if (!c->route) {
        static const struct api_route none = {"", "", 0, 0, NULL, NULL, 0};
        c->route = &none;
        if (known) {
            problem_with(c, 405, "method-not-allowed", "Method not allowed",
                         "this path does not take this method", NULL);
        } else {
            problem_with(c, 404, "not-found", "Not found", "no such endpoint", NULL);
        }
        return;
    }
    if (http_request_too_large(req)) {
        problem_with(c, 413, "body-too-large", "Body too large", "a request body is at most 1 MiB", NULL);
        return;
    }
    if (copy_request(c) < 0) {
        problem_with(c, 503, "unavailable", "Service unavailable", "out of memory", NULL);
        return;
    }
    if (!c->route->scope) {
        c->route->run(c);
        return;
    }
    const char *auth = http_request_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        const char *h[] = {"WWW-Authenticate", "Bearer", NULL};
        problem_with(c, 401, "unauthorized", "Unauthorized", "an API key is needed: Authorization: Bearer <key>", h);
        return;
    }
    const char *key = auth + 7;
    while (*key == ' ')
        key++;
    keyring_check(api->keys, key, c->key_id, on_key, c);
}

/* ---- set-up, time zones, pruning ------------------------------------------- */

static void maybe_closed(struct api *api)
{
    if (!api->closing || api->parts_open || api->queries)
        return;
    for (size_t i = 0; i < api->n_zones; i++)
        free(api->zones[i]);
    free(api->zones);
    free(api->capture_dir);
    void (*cb)(void *) = api->on_closed;
    void *arg = api->closed_arg;
    free(api);
    if (cb)
        cb(arg);
}

static void on_zones(struct db *db, const PGresult *res, void *arg);

/* The requests waiting for the zone names: on with them, or 503. */
static void zones_waiting_go(struct api *api)
{
    struct zone_wait *w = api->zone_waits;
    api->zone_waits = NULL;
    while (w) {
        struct zone_wait *next = w->next;
        if (api->zones)
            w->then(w->c);
        else
            api_unavailable(w->c);
        free(w);
        w = next;
    }
}

/* Reads the zone names, unless that is under way; the requests waiting
 * for them go on when they come, or get 503 when they cannot. */
static void zones_load(struct api *api)
{
    struct db *db = ready_api_db(api->ready);
    if (api->zones_loading)
        return;
    if (db && !api->closing && db_query(db, "SELECT name FROM pg_timezone_names", 0, NULL, on_zones, api) == 0) {
        api->queries++;
        api->zones_loading = 1;
        return;
    }
    zones_waiting_go(api);
}

static void on_zones(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api *api = arg;
    api->queries--;
    api->zones_loading = 0;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && !api->closing && !api->zones) {
        size_t n = (size_t)PQntuples(res);
        char **z = calloc(n ? n : 1, sizeof *z);
        size_t m = 0;
        for (size_t i = 0; z && i < n; i++)
            if ((z[m] = strdup(PQgetvalue(res, (int)i, 0))))
                m++;
        if (z) {
            contact_zones_sort((const char **)z, m);
            api->zones = z;
            api->n_zones = m;
        }
    }
    zones_waiting_go(api);
    maybe_closed(api);
}

static void on_pruned(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res;
    struct api *api = arg;
    api->queries--;
    maybe_closed(api);
}

static void on_timer(uv_timer_t *t)
{
    struct api *api = t->data;
    struct db *db = ready_api_db(api->ready);
    if (!db || api->closing)
        return;
    if (!api->zones) {
        zones_load(api);
        return;
    }
    if (api->zones && uv_timer_get_repeat(t) != PRUNE_EVERY_MS) {
        uv_timer_set_repeat(t, PRUNE_EVERY_MS);
        return;
    }
    const char *p[1] = {PRUNE_BATCH};
    if (api->zones && db_query(db, "SELECT relance_api_idempotency_prune($1::int)", 1, p, on_pruned, api) == 0)
        api->queries++;
}

struct api *api_new(uv_loop_t *loop, const struct ready *ready, const struct config *cfg)
{
    struct api *api = calloc(1, sizeof *api);
    if (!api)
        return NULL;
    api->loop = loop;
    api->ready = ready;
    api->cfg = cfg;
    api->by_account = config_claims_by_account(cfg);
    api->keys = keyring_new(loop, ready, (double)cfg->api_rate_limit, (double)cfg->api_rate_burst);
    if (!api->keys) {
        free(api);
        return NULL;
    }
    uv_timer_init(loop, &api->timer);
    api->timer.data = api;
    uv_timer_start(&api->timer, on_timer, ZONES_RETRY_MS, ZONES_RETRY_MS);
    return api;
}

static void on_part_closed(void *arg)
{
    struct api *api = arg;
    api->parts_open--;
    maybe_closed(api);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

void api_close(struct api *api, void (*on_closed)(void *arg), void *arg)
{
    api->closing = 1;
    zones_waiting_go(api);
    api->on_closed = on_closed;
    api->closed_arg = arg;
    api->parts_open = 2;
    keyring_close(api->keys, on_part_closed, api);
    uv_close((uv_handle_t *)&api->timer, on_timer_closed);
}
