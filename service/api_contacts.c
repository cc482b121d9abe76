/* api_contacts: the HTTP API's contacts (/v1/contacts). It owns the
 * checks of a contact's JSON — every member known, of its type, and
 * normalised by the CSV import's own rules (contact.c: the email, the
 * company domain, the time zone's canonical name) — and the assembly of
 * the answers. The upserts go through the CSV import's SQL
 * (relance_api_contacts_upsert stages the checked items into it), so the
 * two faces apply the same rules; reads and PATCH are api.sql's, the
 * erasure erasure.sql's. */
#include "api_int.h"

#include "capture.h"
#include "clock.h"
#include "contact.h"
#include "keyring.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX 1000       /* bytes of a name, title, company or external_id */
#define FIELD_NAME_MAX 200  /* bytes of a custom field's name */
#define FIELD_VALUE_MAX 10000

static const char *const text_members[] = {"external_id", "first_name", "last_name", "title", "company", NULL};

static int member_known(const char *name)
{
    static const char *const others[] = {"email", "company_domain", "timezone", "fields", NULL};
    for (size_t i = 0; text_members[i]; i++)
        if (strcmp(text_members[i], name) == 0)
            return 1;
    for (size_t i = 0; others[i]; i++)
        if (strcmp(others[i], name) == 0)
            return 1;
    return 0;
}

/* Checks the contact object at value obj (pointer prefix ptr) and writes
 * its normalised members, comma-led, into out for SQL. patch: every
 * member optional and null clears (email excepted); else email is
 * required and a null leaves the stored value. */
static void contact_input(const struct api_call *c, const struct json_doc *d, int obj, const char *ptr, int patch,
                          struct buf *out, struct api_errors *e)
{
    char p[JSON_PATH_MAX + 32], err[300];
    if (json_type(d, obj) != JSON_OBJECT) {
        api_error_add(e, ptr, "must be an object, not %s", json_type_names[json_type(d, obj)]);
        return;
    }
    int has_email = 0;
    for (int v = json_first(d, obj); v >= 0; v = json_next(d, v)) {
        size_t klen;
        const char *key = json_key(d, v, &klen);
        json_pointer_join(p, sizeof p, ptr, key, klen);
        if (strlen(key) != klen || !member_known(key)) {
            api_error_add(e, p, "unknown member");
            continue;
        }
        int null = json_type(d, v) == JSON_NULL;
        if (strcmp(key, "email") == 0) {
            char norm[CONTACT_EMAIL_MAX + 1];
            const char *s = null ? NULL : api_text(d, v, p, 0, 1000, 1, e);
            has_email = 1;
            if (null)
                api_error_add(e, p, "must be a string");
            if (!s)
                continue;
            if (contact_email_normalize(s, norm, err, sizeof err) < 0) {
                api_error_add(e, p, "%s", err);
                continue;
            }
            buf_adds(out, ",\"email\":");
            json_add_string(out, norm);
            if (!patch) {
                buf_adds(out, ",\"derived_domain\":");
                json_add_string(out, contact_email_company_domain(norm));
            }
        } else if (strcmp(key, "company_domain") == 0) {
            char norm[CONTACT_DOMAIN_MAX + 1];
            const char *s = null ? NULL : api_text(d, v, p, 0, 1000, 1, e);
            if (!null && !s)
                continue;
            if (s && contact_company_domain_normalize(s, norm, err, sizeof err) < 0) {
                api_error_add(e, p, "%s", err);
                continue;
            }
            buf_adds(out, ",\"company_domain\":");
            json_add_string(out, s && *norm ? norm : NULL);
        } else if (strcmp(key, "timezone") == 0) {
            const char *s = null ? NULL : api_text(d, v, p, 0, 100, 1, e);
            if (!null && !s)
                continue;
            size_t n;
            const char *const *zones = api_zones(c, &n);
            const char *canon = s && zones ? contact_zone_find(zones, n, s) : NULL;
            if (s && !canon) {
                api_error_add(e, p, "unknown time zone '%s' (an IANA name: Europe/Paris)", s);
                continue;
            }
            buf_adds(out, ",\"timezone\":");
            json_add_string(out, canon);
        } else if (strcmp(key, "fields") == 0) {
            if (json_type(d, v) != JSON_OBJECT) {
                api_error_add(e, p, "must be an object of strings, not %s", json_type_names[json_type(d, v)]);
                continue;
            }
            struct buf f = {0};
            size_t before = e->n;
            for (int fv = json_first(d, v); fv >= 0; fv = json_next(d, fv)) {
                size_t flen;
                const char *fkey = json_key(d, fv, &flen);
                char fp[sizeof p + 2 * FIELD_NAME_MAX + 8]; /* a name's ~ and / take two bytes */
                json_pointer_join(fp, sizeof fp, p, fkey, flen);
                if (strlen(fkey) != flen || flen == 0 || flen > FIELD_NAME_MAX) {
                    api_error_add(e, fp, "a field's name is 1 to %d bytes, without U+0000", FIELD_NAME_MAX);
                    continue;
                }
                const char *fs =
                    json_type(d, fv) == JSON_NULL ? NULL : api_text(d, fv, fp, 0, FIELD_VALUE_MAX, 1, e);
                if (json_type(d, fv) != JSON_NULL && !fs)
                    continue;
                buf_adds(&f, f.len ? "," : "{");
                json_add_string(&f, fkey);
                buf_addc(&f, ':');
                json_add_string(&f, fs);
            }
            if (e->n == before) {
                buf_adds(out, ",\"fields\":");
                buf_adds(out, f.len ? f.p : "{");
                buf_addc(out, '}');
            }
            buf_free(&f);
        } else {
            const char *s = null ? NULL : api_text(d, v, p, 0, TEXT_MAX, 1, e);
            if (!null && !s)
                continue;
            if (s && !*s && strcmp(key, "external_id") == 0) {
                api_error_add(e, p, "must not be empty (null: none)");
                continue;
            }
            buf_addf(out, ",\"%s\":", key);
            json_add_string(out, s);
        }
    }
    if (!patch && !has_email) {
        snprintf(p, sizeof p, "%s/email", ptr);
        api_error_add(e, p, "is required");
    }
}

void api_contact_input(const struct api_call *c, const struct json_doc *d, int obj, const char *ptr,
                       struct buf *out, struct api_errors *e)
{
    contact_input(c, d, obj, ptr, 0, out, e);
}

/* ---- POST /v1/contacts and /v1/contacts/bulk --------------------------------- */

static void single_answer(struct api_call *c, const PGresult *res)
{
    const char *status = PQgetvalue(res, 0, 1);
    if (strcmp(status, "created") == 0 || strcmp(status, "updated") == 0) {
        api_reply_sql(c, status[0] == 'c' ? 201 : 200, PQgetvalue(res, 0, 5));
        return;
    }
    struct api_errors e = {0};
    if (strcmp(status, "conflict") == 0) {
        struct buf ids = {0};
        api_contact_ids(&ids, PQgetvalue(res, 0, 4));
        api_problem_extra(c, 409, "conflict", "Conflict", PQgetvalue(res, 0, 3), NULL, ids.oom ? NULL : ids.p);
        buf_free(&ids);
        return;
    }
    api_error_add(&e, "", "%s", PQgetvalue(res, 0, 3));
    api_problem(c, 422, "validation", "Invalid contact", PQgetvalue(res, 0, 3), api_errors_json(&e));
    api_errors_free(&e);
}

/* One valid item's result in a bulk answer. */
static void result_write(struct buf *out, const PGresult *res, int row, size_t i)
{
    const char *status = row >= 0 ? PQgetvalue(res, row, 1) : "invalid";
    if (strcmp(status, "created") == 0 || strcmp(status, "updated") == 0) {
        buf_addf(out, "\"status\":\"%s\",\"id\":\"%s\"}", status, PQgetvalue(res, row, 2));
        return;
    }
    char ptr[64];
    snprintf(ptr, sizeof ptr, "/contacts/%zu", i);
    api_batch_invalid(out, ptr, row >= 0 ? PQgetvalue(res, row, 3) : "not applied");
}

static void item_check(const struct api_call *c, const struct json_doc *d, int v, const char *ptr, struct buf *out,
                       struct api_errors *e)
{
    contact_input(c, d, v, ptr, 0, out, e);
}

static const struct api_batch_kind contacts_batch = {"contacts", "Invalid contact", item_check, result_write,
                                                     single_answer};

/* Checks the items (the body when single, else the array at items) and
 * sends the valid ones to SQL in one statement. */
static void upsert(struct api_call *c, int items, int single)
{
    struct buf sql = {0};
    if (api_batch_check(c, &contacts_batch, items, single, &sql)) {
        const char *p[2] = {sql.p, single ? "true" : "false"};
        struct db *db = api_db(c);
        if (!db || db_query(db,
                            "SELECT idx, status, id, detail, conflict_ids, contact "
                            "FROM relance_api_contacts_upsert($1::jsonb, $2::boolean)",
                            2, p, api_batch_answer, c) < 0)
            api_unavailable(c);
    }
    buf_free(&sql);
}

static void contact_post(struct api_call *c)
{
    upsert(c, 0, 1);
}

static void contacts_bulk(struct api_call *c)
{
    int items = api_batch_items(c, "contacts");
    if (items >= 0)
        upsert(c, items, 0);
}

/* ---- GET /v1/contacts, GET and PATCH /v1/contacts/{id} -------------------------- */

static void contacts_list(struct api_call *c)
{
    const char *since = api_arg(c, "updated_since"), *email = api_arg(c, "email");
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    double t;
    if (since && clock_parse_iso(since, &t) < 0) {
        api_bad_request(c, "updated_since is an RFC 3339 time: 2026-03-02T09:00:00Z");
        return;
    }
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *p[6] = {lim, api_arg(c, "after"), email ? contact_email_key(email, norm) : NULL,
                        api_arg(c, "external_id"), api_arg(c, "company_domain"), since};
    api_ask(c, "SELECT status, body FROM relance_api_contacts_list($1::int, $2, $3, $4, $5, $6::timestamptz)", 6, p);
}

/* The path's {id} as relance_api_contact_id reads it: an email: one normalised. */
static const char *contact_ref(const struct api_call *c, char *buf, size_t size)
{
    if (strncmp(c->param, "email:", 6) != 0)
        return c->param;
    char norm[CONTACT_EMAIL_MAX + 1];
    snprintf(buf, size, "email:%s", contact_email_key(c->param + 6, norm));
    return buf;
}

static void contact_get(struct api_call *c)
{
    char ref[CONTACT_EMAIL_MAX + 16];
    const char *p[1] = {contact_ref(c, ref, sizeof ref)};
    api_ask(c, "SELECT status, body FROM relance_api_contact_get($1)", 1, p);
}

static void contact_patch(struct api_call *c)
{
    struct api_errors e = {0};
    struct buf patch = {0};
    contact_input(c, c->doc, 0, "", 1, &patch, &e);
    if (e.n) {
        api_problem(c, 422, "validation", "Invalid contact", "the patch has invalid members", api_errors_json(&e));
        api_errors_free(&e);
        buf_free(&patch);
        return;
    }
    api_errors_free(&e);
    /* ",\"a\":1,..." -> "{\"a\":1,...}" */
    struct buf json = {0};
    buf_addc(&json, '{');
    if (patch.len)
        buf_add(&json, patch.p + 1, patch.len - 1);
    buf_addc(&json, '}');
    buf_free(&patch);
    char ref[CONTACT_EMAIL_MAX + 16];
    const char *p[2] = {contact_ref(c, ref, sizeof ref), json.p};
    if (json.oom)
        api_unavailable(c);
    else
        api_ask(c, "SELECT status, body FROM relance_api_contact_patch($1, $2::jsonb)", 2, p);
    buf_free(&json);
}

/* DELETE /v1/contacts/{id}: the person erased (relance_contact_erase),
 * then, with the capture transport, the messages capture wrote to them
 * (off the loop: file reads); the answer comes once both are done. */
struct erasure {
    char *address;  /* read before the erasure: the SQL removes it */
    int status;
    char *body;
    long removed;
};

static void erasure_free(void *data)
{
    struct erasure *x = data;
    if (!x)
        return;
    free(x->address);
    free(x->body);
    free(x);
}

static void erase_captured(struct api_call *c)
{
    struct erasure *x = c->data;
    x->removed = capture_erase(api_capture_dir(c), x->address);
}

static void erased_captured(struct api_call *c)
{
    struct erasure *x = c->data;
    if (x->removed < 0)
        log_event(LOG_WARN, "api", "erasure: the capture Maildir could not be read", "request_id", c->request_id,
                  NULL);
    api_reply_sql(c, x->status, x->body);
}

static void on_erased(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    struct erasure *x = c->data;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || !x->address ||
        atoi(PQgetvalue(res, 0, 0)) != 200 || !api_capture_dir(c)) {
        api_reply_row(c, res);
        return;
    }
    x->status = 200;
    if (!(x->body = strdup(PQgetvalue(res, 0, 1)))) {
        api_unavailable(c);
        return;
    }
    api_off_loop(c, erase_captured, erased_captured);
}

static void on_erasing(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    struct erasure *x = c->data;
    char ref[CONTACT_EMAIL_MAX + 16], now[40];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        api_unavailable(c);
        return;
    }
    if (PQntuples(res) == 1 && !(x->address = strdup(PQgetvalue(res, 0, 0)))) {
        api_unavailable(c);
        return;
    }
    api_now(now, sizeof now);
    const char *p[2] = {contact_ref(c, ref, sizeof ref), now};
    db = api_db(c);
    if (!db ||
        db_query(db, "SELECT status, body FROM relance_contact_erase($1, $2::timestamptz)", 2, p, on_erased, c) < 0)
        api_unavailable(c);
}

static void contact_delete(struct api_call *c)
{
    char ref[CONTACT_EMAIL_MAX + 16];
    struct erasure *x = calloc(1, sizeof *x);
    if (!x) {
        api_unavailable(c);
        return;
    }
    c->data = x;
    c->data_free = erasure_free;
    const char *p[1] = {contact_ref(c, ref, sizeof ref)};
    struct db *db = api_db(c);
    if (!db || db_query(db, "SELECT email_key FROM contacts WHERE id = relance_api_contact_id($1)", 1, p, on_erasing,
                        c) < 0)
        api_unavailable(c);
}

static const char *const list_args[] = {"limit", "after", "email", "external_id", "company_domain",
                                        "updated_since", NULL};

const struct api_route api_contact_routes[] = {
    {"POST", "/v1/contacts", SCOPE_CONTACTS_WRITE, 1, NULL, contact_post, 1},
    {"POST", "/v1/contacts/bulk", SCOPE_CONTACTS_WRITE, 1, NULL, contacts_bulk, 1},
    {"GET", "/v1/contacts", SCOPE_CONTACTS_READ, 0, list_args, contacts_list, 0},
    {"GET", "/v1/contacts/{}", SCOPE_CONTACTS_READ, 0, NULL, contact_get, 0},
    {"PATCH", "/v1/contacts/{}", SCOPE_CONTACTS_WRITE, 1, NULL, contact_patch, 1},
    {"DELETE", "/v1/contacts/{}", SCOPE_CONTACTS_WRITE, 0, NULL, contact_delete, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};
