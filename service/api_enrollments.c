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
        json_pointer_join(p, sizeof p, ptr, key, klen);
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

/* Result columns of relance_api_enrollments_create. */
enum { R_IDX, R_STATUS, R_ID, R_REASON, R_FIELD, R_CONFLICT, R_ENROLLMENT };

static void single_answer(struct api_call *c, const PGresult *res)
{
    const char *status = PQgetvalue(res, 0, R_STATUS), *reason = PQgetvalue(res, 0, R_REASON);
    if (strcmp(status, "created") == 0) {
        api_reply_sql(c, 201, PQgetvalue(res, 0, R_ENROLLMENT));
        return;
    }
    if (strcmp(status, "skipped") == 0 || strcmp(status, "conflict") == 0) {
        struct buf extra = {0};
        if (status[0] == 's') {
            buf_adds(&extra, "\"reason\":");
            json_add_string(&extra, reason);
            api_problem_extra(c, 409, "not-enrolled", "Not enrolled", reason, NULL, extra.oom ? NULL : extra.p);
        } else {
            api_contact_ids(&extra, PQgetvalue(res, 0, R_CONFLICT));
            api_problem_extra(c, 409, "conflict", "Conflict", reason, NULL, extra.oom ? NULL : extra.p);
        }
        buf_free(&extra);
        return;
    }
    char ptr[32];
    struct api_errors e = {0};
    snprintf(ptr, sizeof ptr, "/%s", PQgetvalue(res, 0, R_FIELD));
    api_error_add(&e, ptr, "%s", reason);
    api_problem(c, 422, "validation", "Invalid enrollment", reason, api_errors_json(&e));
    api_errors_free(&e);
}

/* One valid item's result in a bulk answer. */
static void result_write(struct buf *out, const PGresult *res, int row, size_t i)
{
    const char *status = row >= 0 ? PQgetvalue(res, row, R_STATUS) : "invalid";
    const char *reason = row >= 0 ? PQgetvalue(res, row, R_REASON) : "not applied";
    if (strcmp(status, "created") == 0) {
        buf_addf(out, "\"status\":\"created\",\"id\":\"%s\"}", PQgetvalue(res, row, R_ID));
    } else if (strcmp(status, "skipped") == 0) {
        buf_adds(out, "\"status\":\"skipped\",\"reason\":");
        json_add_string(out, reason);
        buf_addc(out, '}');
    } else {
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/enrollments/%zu/%s", i,
                 row >= 0 && !PQgetisnull(res, row, R_FIELD) ? PQgetvalue(res, row, R_FIELD) : "contact");
        api_batch_invalid(out, ptr, reason);
    }
}

static const struct api_batch_kind enrollments_batch = {"enrollments", "Invalid enrollment", enrollment_input,
                                                        result_write, single_answer};

/* Checks the items (the body when single, else the array at items) and
 * sends the valid ones to SQL in one statement. */
static void create(struct api_call *c, int items, int single)
{
    struct buf sql = {0};
    if (api_batch_check(c, &enrollments_batch, items, single, &sql)) {
        char now[40];
        api_now(now, sizeof now);
        const char *p[3] = {sql.p, now, single ? "true" : "false"};
        struct db *db = api_db(c);
        if (!db || db_query(db,
                            "SELECT idx, status, id, reason, field, conflict_ids, enrollment "
                            "FROM relance_api_enrollments_create($1::jsonb, $2::timestamptz, $3::boolean)",
                            3, p, api_batch_answer, c) < 0)
            api_unavailable(c);
    }
    buf_free(&sql);
}

static void enrollment_post(struct api_call *c)
{
    create(c, 0, 1);
}

static void enrollments_bulk(struct api_call *c)
{
    int items = api_batch_items(c, "enrollments");
    if (items >= 0)
        create(c, items, 0);
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
    {"POST", "/v1/enrollments", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_post, 1},
    {"POST", "/v1/enrollments/bulk", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollments_bulk, 1},
    {"GET", "/v1/enrollments", SCOPE_ENROLLMENTS_READ, 0, list_args, enrollments_list, 0},
    {"GET", "/v1/enrollments/{}", SCOPE_ENROLLMENTS_READ, 0, NULL, enrollment_get, 0},
    {"POST", "/v1/enrollments/{}/pause", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_pause, 0},
    {"POST", "/v1/enrollments/{}/resume", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_resume, 0},
    {"POST", "/v1/enrollments/{}/stop", SCOPE_ENROLLMENTS_WRITE, 1, NULL, enrollment_stop, 0},
    {"POST", "/v1/contacts/{}/stop", SCOPE_ENROLLMENTS_WRITE, 1, NULL, contact_stop, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};
