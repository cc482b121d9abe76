/* api_enrollments: the HTTP API's enrollments (/v1/enrollments and
 * /v1/contacts/{id}/stop). It owns the checks of the requests' JSON —
 * every member known and of its type, a contact given by reference (its
 * id, email:ADDRESS normalised as the CSV import does, ext:EXTERNAL_ID) or
 * inline (api_contacts.c's checks), start_at an RFC 3339 time, reasons
 * plain text — and the assembly of the answers. Every decision and write
 * is the command line's SQL, through api_enrollments.sql: enrolling is
 * relance_enroll_many's (`relance enroll`), pause/resume/stop
 * relance_enrollments_change's, why a step is not sooner
 * relance_enrollments_show's (`relance enrollments show`). The time passed
 * to SQL is clock.c's, so tests can move it. */
#include "api_int.h"

#include "clock.h"
#include "contact.h"
#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_MAX 1000
#define NAME_MAX_BYTES 200   /* a sequence's name */
#define REF_MAX 1000         /* a contact reference */
#define REASON_MAX 500

/* Writes a contact reference as relance_api_contact_id reads it (an
 * email: one normalised), or returns -1 when s is not one. */
static int contact_ref(const char *s, struct buf *out)
{
    char norm[CONTACT_EMAIL_MAX + 1];
    if (strncmp(s, "email:", 6) == 0 && s[6]) {
        buf_adds(out, "email:");
        buf_adds(out, contact_email_key(s + 6, norm));
        return 0;
    }
    size_t digits = strspn(s, "0123456789");
    if ((digits > 0 && digits <= 18 && !s[digits]) || (strncmp(s, "ext:", 4) == 0 && s[4])) {
        buf_adds(out, s);
        return 0;
    }
    return -1;
}

/* Checks one enrollment request (the object at value obj, pointer prefix
 * ptr) and writes it for relance_api_enrollments_create, comma-led:
 * ,"sequence":..,"start_at":..,"ref":.. or "contact":{..}. */
static void enrollment_input(const struct api_call *c, const struct json_doc *d, int obj, const char *ptr,
                             struct buf *out, struct api_errors *e)
{
    char p[JSON_PATH_MAX + 32];
    if (json_type(d, obj) != JSON_OBJECT) {
        api_error_add(e, ptr, "must be an object, not %s", json_type_names[json_type(d, obj)]);
        return;
    }
    int has_contact = 0, has_sequence = 0;
    for (int v = json_first(d, obj); v >= 0; v = json_next(d, v)) {
        size_t klen;
        const char *key = json_key(d, v, &klen);
        snprintf(p, sizeof p, "%s/%s", ptr, key);
        if (strlen(key) != klen) {
            api_error_add(e, p, "unknown member");
        } else if (strcmp(key, "contact") == 0) {
            has_contact = 1;
            if (json_type(d, v) == JSON_OBJECT) {
                struct buf item = {0};
                size_t before = e->n;
                api_contact_input(c, d, v, p, &item, e);
                if (e->n == before) {
                    buf_adds(out, ",\"contact\":{");
                    if (item.len)
                        buf_add(out, item.p + 1, item.len - 1);
                    buf_addc(out, '}');
                }
                buf_free(&item);
                continue;
            }
            if (json_type(d, v) != JSON_STRING) {
                api_error_add(e, p, "must be a contact's reference (a string) or a contact object, not %s",
                              json_type_names[json_type(d, v)]);
                continue;
            }
            const char *s = api_text(d, v, p, 1, REF_MAX, 0, e);
            struct buf ref = {0};
            if (s && contact_ref(s, &ref) < 0)
                api_error_add(e, p, "'%.200s' is not a contact's id, email:ADDRESS or ext:EXTERNAL_ID", s);
            else if (s) {
                buf_adds(out, ",\"ref\":");
                json_add_string(out, ref.p);
            }
            buf_free(&ref);
        } else if (strcmp(key, "sequence") == 0) {
            has_sequence = 1;
            const char *s = api_text(d, v, p, 1, NAME_MAX_BYTES, 0, e);
            if (s) {
                buf_adds(out, ",\"sequence\":");
                json_add_string(out, s);
            }
        } else if (strcmp(key, "start_at") == 0) {
            if (json_type(d, v) == JSON_NULL)
                continue;
            const char *s = api_text(d, v, p, 1, 64, 0, e);
            double t;
            if (s && clock_parse_iso(s, &t) < 0) {
                api_error_add(e, p, "must be an RFC 3339 time: 2026-03-02T09:00:00Z");
            } else if (s) {
                char iso[40];
                clock_format(t, iso, sizeof iso);
                buf_addf(out, ",\"start_at\":\"%s\"", iso);
            }
        } else {
            api_error_add(e, p, "unknown member");
        }
    }
    if (!has_contact) {
        snprintf(p, sizeof p, "%s/contact", ptr);
        api_error_add(e, p, "is required");
    }
    if (!has_sequence) {
        snprintf(p, sizeof p, "%s/sequence", ptr);
        api_error_add(e, p, "is required");
    }
}

/* ---- POST /v1/enrollments and /v1/enrollments/bulk -------------------------- */

/* What a create keeps between its check and its answer. */
struct bulk {
    size_t n;
    char **errors; /* per item: its errors as a JSON array, NULL when it went to SQL */
    int single;    /* POST /v1/enrollments: one item, answered as the enrollment */
};

static void bulk_free(void *data)
{
    struct bulk *b = data;
    for (size_t i = 0; b && i < b->n; i++)
        free(b->errors[i]);
    if (b)
        free(b->errors);
    free(b);
}

/* Result columns of relance_api_enrollments_create. */
enum { R_IDX, R_STATUS, R_ID, R_REASON, R_FIELD, R_CONFLICT, R_ENROLLMENT };

static void single_answer(struct api_call *c, const PGresult *res)
{
    const char *status = PQgetvalue(res, 0, R_STATUS), *reason = PQgetvalue(res, 0, R_REASON);
    if (strcmp(status, "created") == 0) {
        api_reply_sql(c, 201, PQgetvalue(res, 0, R_ENROLLMENT));
        return;
    }
    struct buf body = {0};
    if (strcmp(status, "skipped") == 0 || strcmp(status, "conflict") == 0) {
        int skipped = status[0] == 's';
        buf_addf(&body, "{\"request_id\":\"%s\",\"type\":\"urn:relance:problem:%s\",\"title\":\"%s\","
                        "\"status\":409,\"detail\":",
                 c->request_id, skipped ? "not-enrolled" : "conflict", skipped ? "Not enrolled" : "Conflict");
        json_add_string(&body, reason);
        if (skipped) {
            buf_adds(&body, ",\"reason\":");
            json_add_string(&body, reason);
        } else {
            /* {"1","2"} -> ["1","2"] */
            long long a = 0, b = 0;
            if (sscanf(PQgetvalue(res, 0, R_CONFLICT), "{%lld,%lld}", &a, &b) != 2)
                a = b = 0;
            buf_addf(&body, ",\"contact_ids\":[\"%lld\",\"%lld\"]", a, b);
        }
        buf_addc(&body, '}');
        if (body.oom)
            api_unavailable(c);
        else
            api_reply(c, 409, body.p, body.len);
        buf_free(&body);
        return;
    }
    char ptr[32];
    struct api_errors e = {0};
    snprintf(ptr, sizeof ptr, "/%s", PQgetvalue(res, 0, R_FIELD));
    api_error_add(&e, ptr, "%s", reason);
    api_problem(c, 422, "validation", "Invalid enrollment", reason, api_errors_json(&e));
    api_errors_free(&e);
}

static void on_created(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    struct bulk *b = c->data;
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        api_reply_row(c, res); /* logs and answers 503 */
        return;
    }
    if (b->single) {
        if (!res || PQntuples(res) != 1)
            api_unavailable(c);
        else
            single_answer(c, res);
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
        while (row < rows && (size_t)atoll(PQgetvalue(res, row, R_IDX)) < i)
            row++;
        const char *status = row < rows ? PQgetvalue(res, row, R_STATUS) : "invalid";
        const char *reason = row < rows ? PQgetvalue(res, row, R_REASON) : "not applied";
        if (strcmp(status, "created") == 0) {
            buf_addf(&out, "\"status\":\"created\",\"id\":\"%s\"}", PQgetvalue(res, row, R_ID));
        } else if (strcmp(status, "skipped") == 0) {
            buf_adds(&out, "\"status\":\"skipped\",\"reason\":");
            json_add_string(&out, reason);
            buf_addc(&out, '}');
        } else {
            char ptr[64];
            snprintf(ptr, sizeof ptr, "/enrollments/%zu/%s", i,
                     row < rows && !PQgetisnull(res, row, R_FIELD) ? PQgetvalue(res, row, R_FIELD) : "contact");
            buf_adds(&out, "\"status\":\"invalid\",\"errors\":[{\"pointer\":");
            json_add_string(&out, ptr);
            buf_adds(&out, ",\"message\":");
            json_add_string(&out, reason);
            buf_adds(&out, "}]}");
        }
    }
    buf_adds(&out, "]}");
    if (out.oom)
        api_unavailable(c);
    else
        api_reply(c, 200, out.p, out.len);
    buf_free(&out);
}

/* Checks items (the body for a single create, else the array value at
 * ptr) and sends the valid ones to SQL in one statement; answers at once
 * when none is. */
static void create(struct api_call *c, int items, const char *ptr, int single)
{
    const struct json_doc *d = c->doc;
    struct bulk *b = calloc(1, sizeof *b);
    size_t n = single ? 1 : json_count(d, items);
    if (!b || !(b->errors = calloc(n ? n : 1, sizeof *b->errors))) {
        free(b);
        api_unavailable(c);
        return;
    }
    b->n = n;
    b->single = single;
    c->data = b;
    c->data_free = bulk_free;
    struct buf sql = {0};
    buf_addc(&sql, '[');
    size_t valid = 0;
    int v = single ? items : json_first(d, items);
    for (size_t i = 0; i < n; i++, v = single ? -1 : json_next(d, v)) {
        char p[64];
        struct api_errors e = {0};
        struct buf item = {0};
        if (single)
            p[0] = '\0';
        else
            snprintf(p, sizeof p, "%s/%zu", ptr, i);
        enrollment_input(c, d, v, p, &item, &e);
        if (e.n) {
            if (single) {
                api_problem(c, 422, "validation", "Invalid enrollment", "the enrollment has invalid members",
                            api_errors_json(&e));
                api_errors_free(&e);
                buf_free(&item);
                buf_free(&sql);
                return;
            }
            b->errors[i] = strdup(api_errors_json(&e));
        } else {
            buf_addf(&sql, "%s{\"index\":%zu", valid++ ? "," : "", i);
            buf_add(&sql, item.p ? item.p : "", item.len);
            buf_addc(&sql, '}');
        }
        api_errors_free(&e);
        buf_free(&item);
    }
    buf_addc(&sql, ']');
    if (sql.oom) {
        buf_free(&sql);
        api_unavailable(c);
        return;
    }
    if (valid == 0) {
        buf_free(&sql);
        on_created(NULL, NULL, c); /* every item invalid: nothing to write */
        return;
    }
    char now[40];
    api_now(now, sizeof now);
    struct db *db = api_db(c);
    const char *p[3] = {sql.p, now, single ? "true" : "false"};
    if (!db || db_query(db,
                        "SELECT idx, status, id, reason, field, conflict_ids, enrollment "
                        "FROM relance_api_enrollments_create($1::jsonb, $2::timestamptz, $3::boolean)",
                        3, p, on_created, c) < 0)
        api_unavailable(c);
    buf_free(&sql);
}

static void enrollment_post(struct api_call *c)
{
    create(c, 0, "", 1);
}

static void enrollments_bulk(struct api_call *c)
{
    const struct json_doc *d = c->doc;
    struct api_errors e = {0};
    int items = json_get(d, 0, "enrollments");
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v)) {
        size_t klen;
        const char *key = json_key(d, v, &klen);
        if (strlen(key) != klen || strcmp(key, "enrollments") != 0) {
            char p[JSON_PATH_MAX];
            json_path(d, v, p, sizeof p);
            api_error_add(&e, p, "unknown member");
        }
    }
    if (items < 0)
        api_error_add(&e, "/enrollments", "is required");
    else if (json_type(d, items) != JSON_ARRAY)
        api_error_add(&e, "/enrollments", "must be an array, not %s", json_type_names[json_type(d, items)]);
    else if (json_count(d, items) == 0 || json_count(d, items) > BULK_MAX)
        api_error_add(&e, "/enrollments", "holds 1 to %d enrollments, not %zu", BULK_MAX, json_count(d, items));
    if (e.n) {
        api_problem(c, 422, "validation", "Invalid request", "the body is not a list of enrollments",
                    api_errors_json(&e));
        api_errors_free(&e);
        return;
    }
    api_errors_free(&e);
    create(c, items, "/enrollments", 0);
}

/* ---- GET /v1/enrollments, GET /v1/enrollments/{id} ------------------------------ */

/* What a state filter accepts: every state enrollments.state may hold. */
static const char *const states[] = {"active",       "paused",    "held",   "replied", "bounced",
                                     "unsubscribed", "completed", "failed", "stopped", NULL};

static void enrollments_list(struct api_call *c)
{
    const char *state = api_arg(c, "state"), *contact = api_arg(c, "contact");
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    int known = !state;
    for (size_t i = 0; state && states[i]; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known) {
        api_bad_request(c, "state is one of active, paused, held, replied, bounced, unsubscribed, completed, "
                           "failed, stopped");
        return;
    }
    struct buf ref = {0};
    if (contact && (strlen(contact) > REF_MAX || contact_ref(contact, &ref) < 0)) {
        buf_free(&ref);
        api_bad_request(c, "contact is a contact's id, email:ADDRESS or ext:EXTERNAL_ID");
        return;
    }
    const char *p[5] = {lim, api_arg(c, "after"), contact ? ref.p : NULL, api_arg(c, "sequence"), state};
    if (ref.oom)
        api_unavailable(c);
    else
        api_ask(c, "SELECT status, body FROM relance_api_enrollments_list($1::int, $2, $3, $4, $5)", 5, p);
    buf_free(&ref);
}

static void enrollment_get(struct api_call *c)
{
    char now[40];
    api_now(now, sizeof now);
    const char *p[3] = {c->param, now, api_by_account(c) ? "true" : "false"};
    api_ask(c, "SELECT status, body FROM relance_api_enrollment_get($1, $2::timestamptz, $3::boolean)", 3, p);
}

/* ---- pause, resume, stop ------------------------------------------------------ */

/* The body {reason}: 0 with *reason the text (NULL when absent and not
 * required), or -1 answered. */
static int reason_input(struct api_call *c, int required, const char **reason)
{
    const struct json_doc *d = c->doc;
    struct api_errors e = {0};
    *reason = NULL;
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v)) {
        size_t klen;
        const char *key = json_key(d, v, &klen);
        char p[JSON_PATH_MAX];
        json_path(d, v, p, sizeof p);
        if (strlen(key) != klen || strcmp(key, "reason") != 0)
            api_error_add(&e, p, "unknown member");
        else if (json_type(d, v) != JSON_NULL)
            *reason = api_text(d, v, p, 1, REASON_MAX, 0, &e);
    }
    if (required && !*reason && !e.n)
        api_error_add(&e, "/reason", "is required");
    if (e.n) {
        api_problem(c, 422, "validation", "Invalid request", "the body is not {\"reason\": TEXT}",
                    api_errors_json(&e));
        api_errors_free(&e);
        return -1;
    }
    api_errors_free(&e);
    return 0;
}

static void change(struct api_call *c, const char *verb)
{
    const char *reason;
    if (reason_input(c, 0, &reason) < 0)
        return;
    char now[40];
    api_now(now, sizeof now);
    const char *p[4] = {verb, c->param, reason, now};
    api_ask(c, "SELECT status, body FROM relance_api_enrollment_change($1, $2, $3, $4::timestamptz)", 4, p);
}

static void enrollment_pause(struct api_call *c)
{
    change(c, "pause");
}

static void enrollment_resume(struct api_call *c)
{
    change(c, "resume");
}

static void enrollment_stop(struct api_call *c)
{
    change(c, "stop");
}

static void contact_stop(struct api_call *c)
{
    const char *reason;
    if (reason_input(c, 1, &reason) < 0)
        return;
    struct buf ref = {0};
    if (contact_ref(c->param, &ref) < 0 || ref.oom) {
        buf_free(&ref);
        api_problem(c, 404, "not-found", "Not found", "no such contact", NULL);
        return;
    }
    char now[40];
    api_now(now, sizeof now);
    const char *p[3] = {ref.p, reason, now};
    api_ask(c, "SELECT status, body FROM relance_api_contact_stop($1, $2, $3::timestamptz)", 3, p);
    buf_free(&ref);
}

static const char *const list_args[] = {"limit", "after", "contact", "sequence", "state", NULL};

const struct api_route api_enrollment_routes[] = {
    {"POST", "/v1/enrollments", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_post},
    {"POST", "/v1/enrollments/bulk", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollments_bulk},
    {"GET", "/v1/enrollments", SCOPE_ENROLLMENTS_READ, 0, list_args, enrollments_list},
    {"GET", "/v1/enrollments/{}", SCOPE_ENROLLMENTS_READ, 0, NULL, enrollment_get},
    {"POST", "/v1/enrollments/{}/pause", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_pause},
    {"POST", "/v1/enrollments/{}/resume", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_resume},
    {"POST", "/v1/enrollments/{}/stop", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_stop},
    {"POST", "/v1/contacts/{}/stop", SCOPE_ENROLLMENTS_WRITE, 1, NULL, contact_stop},
    {NULL, NULL, 0, 0, NULL, NULL},
};
