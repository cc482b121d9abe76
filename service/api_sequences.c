/* api_sequences: the HTTP API's sequences (/v1/sequences). It owns the
 * checks of these requests and the two things C must do here: lint a
 * PUT's YAML body with lint.c's own checks (lint_source: the rules
 * `relance lint` and `relance apply` run), answering its problems with
 * the line, column and message lint prints, and hand a clean model to
 * SQL; and compose a preview with preview.c, as `relance preview` does,
 * from the stored source, contact and enrollment SQL finds. The apply
 * itself is `relance apply`'s relance_sequence_apply, the reads and the
 * figures are sql/functions/api_sequences.sql's (the figures through
 * `relance stats --json`'s relance_stats_json). */
#include "api_int.h"

#include "clock.h"
#include "keyring.h"
#include "contact.h"
#include "lint.h"
#include "preview.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NAME_MAX_LEN 64 /* sequence.c's longest name */

/* Whether the path's name can be a sequence's: anything else names none
 * (and never reaches SQL, which would refuse text that is not UTF-8). */
static int name_shaped(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static void not_found(struct api_call *c)
{
    api_problem(c, 404, "not-found", "Not found", "no such sequence", NULL);
}

/* ---- GET /v1/sequences, GET /v1/sequences/{name} ----------------------------- */

static void sequences_list(struct api_call *c)
{
    const char *after = api_arg(c, "after");
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    const char *p[2] = {lim, after};
    api_ask(c, "SELECT status, body FROM relance_api_sequences_list($1::int, $2)", 2, p);
}

static void sequence_get(struct api_call *c)
{
    if (!name_shaped(c->param)) {
        not_found(c);
        return;
    }
    const char *p[1] = {c->param};
    api_ask(c, "SELECT status, body FROM relance_api_sequence_get($1)", 1, p);
}

/* ---- PUT /v1/sequences/{name} -------------------------------------------------- */

static int content_type_yaml(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && strncasecmp(ct, "application/yaml", 16) == 0;
}

/* Appends {"pointer": "", "line", "column", "message"} (pointer only for
 * errors: the body as a whole, which is not JSON) to a JSON array. */
static void diag_add(struct buf *out, int pointer, int line, int col, const char *message)
{
    buf_adds(out, out->len > 1 ? ",{" : "{");
    if (pointer)
        buf_adds(out, "\"pointer\":\"\",");
    buf_addf(out, "\"line\":%d,\"column\":%d,\"message\":", line, col);
    json_add_string(out, message);
    buf_addc(out, '}');
}

/* Lint's problems of one severity as a JSON array. */
static void diags_json(const struct sequence_diags *d, enum sequence_severity severity, struct buf *out)
{
    buf_addc(out, '[');
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].severity == severity)
            diag_add(out, severity == SEQUENCE_ERROR, d->items[i].line, d->items[i].col, d->items[i].message);
    buf_addc(out, ']');
}

static void invalid(struct api_call *c, const char *detail, const char *errors, const char *warnings)
{
    struct buf b = {0};
    buf_addf(&b, "{\"request_id\":\"%s\",\"type\":\"urn:relance:problem:validation\",\"title\":\"Invalid sequence\","
                 "\"status\":422,\"detail\":", c->request_id);
    json_add_string(&b, detail);
    buf_addf(&b, ",\"errors\":%s,\"warnings\":%s}", errors, warnings);
    if (b.oom)
        api_unavailable(c);
    else
        api_reply(c, 422, b.p, b.len);
    buf_free(&b);
}

static void sequence_put(struct api_call *c)
{
    const char *ct = c->content_type;
    if (!content_type_yaml(ct)) {
        api_problem(c, 415, "unsupported-media-type", "Unsupported media type",
                    "the body must be a sequence file sent as application/yaml", NULL);
        return;
    }
    char file[NAME_MAX_LEN + 32];
    snprintf(file, sizeof file, "PUT /v1/sequences/%.*s", NAME_MAX_LEN, c->param);
    struct sequence *seq = NULL;
    struct sequence_diags d;
    int clean = lint_source(file, c->body ? c->body : "", c->body_len, &seq, &d) == 0;
    struct buf errors = {0}, warnings = {0};
    diags_json(&d, SEQUENCE_WARNING, &warnings);
    int named = clean && strcmp(seq->name, c->param) == 0;
    if (!clean) {
        diags_json(&d, SEQUENCE_ERROR, &errors);
    } else if (!named) {
        char msg[200];
        snprintf(msg, sizeof msg, "name '%s' is not the path's '%.*s'", seq->name, NAME_MAX_LEN, c->param);
        buf_addc(&errors, '[');
        diag_add(&errors, 1, seq->name_line, seq->name_col, msg);
        buf_addc(&errors, ']');
    }
    char *model = named ? sequence_to_json(seq) : NULL, hash[65];
    if (d.nomem || errors.oom || warnings.oom || (named && (!model || sequence_hash(seq, hash) < 0))) {
        api_unavailable(c);
    } else if (!clean) {
        char detail[80];
        snprintf(detail, sizeof detail, "the sequence file has %zu error%s", d.errors, d.errors == 1 ? "" : "s");
        invalid(c, detail, errors.p, warnings.p);
    } else if (!named) {
        invalid(c, "the sequence file names another sequence", errors.p, warnings.p);
    } else {
        char now[40];
        api_now(now, sizeof now);
        const char *p[6] = {model, hash, file, c->body ? c->body : "", now, warnings.p};
        api_ask(c,
            "SELECT status, body FROM relance_api_sequence_put($1::jsonb, $2, $3, $4, $5::timestamptz, $6::jsonb)",
            6, p);
    }
    free(model);
    buf_free(&errors);
    buf_free(&warnings);
    sequence_free(seq);
    sequence_diags_free(&d);
}

/* ---- GET /v1/sequences/{name}/stats ------------------------------------------- */

/* YYYY-MM-DD naming a day that exists (PostgreSQL would refuse any other). */
static int date_ok(const char *s)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] && !(m == 2 && d == 29 && !leap);
}

static void sequence_stats(struct api_call *c)
{
    const char *since = api_arg(c, "since");
    if (since && !date_ok(since)) {
        api_bad_request(c, "since is a day written YYYY-MM-DD (UTC)");
        return;
    }
    if (!name_shaped(c->param)) {
        not_found(c);
        return;
    }
    const char *p[2] = {c->param, since};
    api_ask(c, "SELECT status, body FROM relance_api_sequence_stats($1, $2::date)", 2, p);
}

/* ---- POST /v1/sequences/{name}/preview ------------------------------------------ */

#define PREVIEW_VARS_MAX 200
#define PREVIEW_TEXT_MAX 10000 /* bytes of a value, as a contact's field */

/* The request, checked, kept while SQL finds the sequence and contact. */
struct preview_req {
    char *step, *account, *contact;
    const char **keys, **values; /* into the call's document */
    size_t n_vars;
    int oom;                     /* a copy failed */
};

static void preview_req_free(void *data)
{
    struct preview_req *r = data;
    if (!r)
        return;
    free(r->step);
    free(r->account);
    free(r->contact);
    free(r->keys);
    free(r->values);
    free(r);
}

/* A string member without U+0000 of 1 to max bytes, or NULL (an error
 * added). */
static const char *string_of(const struct json_doc *d, int v, const char *ptr, size_t max, struct api_errors *e)
{
    size_t len;
    if (json_type(d, v) != JSON_STRING) {
        api_error_add(e, ptr, "must be a string, not %s", json_type_names[json_type(d, v)]);
        return NULL;
    }
    const char *s = json_text(d, v, &len);
    if (strlen(s) != len || len == 0 || len > max) {
        api_error_add(e, ptr, "must be 1 to %zu bytes, without U+0000", max);
        return NULL;
    }
    return s;
}

/* The contact member as relance_api_contact_id reads it: its id, email:
 * (normalised) or ext:; a bare address means email:. */
static char *contact_ref(const char *s)
{
    char norm[CONTACT_EMAIL_MAX + 1], *out = NULL;
    if (strncmp(s, "ext:", 4) == 0 || (strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18))
        return strdup(s);
    const char *email = strncmp(s, "email:", 6) == 0 ? s + 6 : s;
    if (asprintf(&out, "email:%s", contact_email_key(email, norm)) < 0)
        return NULL;
    return out;
}

/* Checks the body's members into r; a repeated member: the last wins, as
 * json_get reads it. */
static void preview_check(const struct json_doc *d, struct preview_req *r, struct api_errors *e)
{
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v)) {
        size_t klen;
        const char *key = json_key(d, v, &klen);
        char p[JSON_PATH_MAX];
        json_path(d, v, p, sizeof p);
        const char *s;
        if (strlen(key) != klen) {
            api_error_add(e, p, "unknown member");
        } else if (strcmp(key, "step") == 0) {
            s = string_of(d, v, p, 200, e);
            free(r->step);
            r->step = s ? strdup(s) : NULL;
            r->oom |= s && !r->step;
        } else if (strcmp(key, "account") == 0) {
            s = json_type(d, v) == JSON_NULL ? NULL : string_of(d, v, p, CONTACT_EMAIL_MAX, e);
            free(r->account);
            r->account = s ? strdup(s) : NULL;
            r->oom |= s && !r->account;
        } else if (strcmp(key, "contact") == 0) {
            s = json_type(d, v) == JSON_NULL ? NULL : string_of(d, v, p, 1000, e);
            free(r->contact);
            r->contact = s ? contact_ref(s) : NULL;
            r->oom |= s && !r->contact;
        } else if (strcmp(key, "vars") == 0) {
            if (json_type(d, v) != JSON_OBJECT || json_count(d, v) > PREVIEW_VARS_MAX) {
                api_error_add(e, p, "must be an object of at most %d strings", PREVIEW_VARS_MAX);
                continue;
            }
            size_t n = json_count(d, v);
            free(r->keys);
            free(r->values);
            r->n_vars = 0;
            r->keys = calloc(n + 1, sizeof *r->keys);
            r->values = calloc(n + 1, sizeof *r->values);
            if (!r->keys || !r->values) {
                r->oom = 1;
                continue;
            }
            for (int f = json_first(d, v); f >= 0; f = json_next(d, f)) {
                size_t flen;
                const char *fkey = json_key(d, f, &flen);
                char fp[JSON_PATH_MAX];
                json_path(d, f, fp, sizeof fp);
                s = string_of(d, f, fp, PREVIEW_TEXT_MAX, e);
                if (strlen(fkey) != flen || flen == 0 || flen > 200) {
                    api_error_add(e, fp, "a field's name is 1 to 200 bytes, without U+0000");
                } else if (s) {
                    r->keys[r->n_vars] = fkey;
                    r->values[r->n_vars++] = s;
                }
            }
        } else {
            api_error_add(e, p, "unknown member");
        }
    }
    if (json_get(d, 0, "step") < 0)
        api_error_add(e, "/step", "is required");
}

static void preview_invalid(struct api_call *c, const char *pointer, const char *message)
{
    struct api_errors e = {0};
    api_error_add(&e, pointer, "%s", message);
    api_problem(c, 422, "validation", "Invalid request", message, api_errors_json(&e));
    api_errors_free(&e);
}

/* The 200 answer: the account, the variant, the reader's view and the
 * bytes. */
static void preview_reply(struct api_call *c, const struct compose_result *out, const struct config_account *acct,
                          const char *why)
{
    struct preview_view view;
    struct buf b = {0};
    int parsed = preview_view_parse(out->text, out->len, &view) == 0;
    buf_adds(&b, "{\"account\":");
    json_add_string(&b, acct ? acct->email : NULL);
    buf_adds(&b, ",\"account_reason\":");
    json_add_string(&b, why);
    if (out->variant >= 0)
        buf_addf(&b, ",\"variant\":\"%c\"", (char)('A' + out->variant));
    else
        buf_adds(&b, ",\"variant\":null");
    buf_adds(&b, ",\"headers\":{");
    for (size_t i = 0, n = 0; i < PREVIEW_HEADERS; i++) {
        if (!view.headers[i])
            continue;
        buf_adds(&b, n++ ? "," : "");
        json_add_string(&b, preview_header_names[i]);
        buf_addc(&b, ':');
        json_add_string(&b, view.headers[i]);
    }
    buf_adds(&b, "},\"text\":");
    if (view.text)
        json_add_stringn(&b, view.text, view.text_len);
    else
        buf_adds(&b, "null");
    buf_adds(&b, ",\"html\":");
    if (view.html)
        json_add_stringn(&b, view.html, view.html_len);
    else
        buf_adds(&b, "null");
    buf_adds(&b, ",\"raw\":");
    json_add_stringn(&b, out->text, out->len);
    buf_addc(&b, '}');
    if (!parsed || b.oom)
        api_unavailable(c);
    else
        api_reply(c, 200, b.p, b.len);
    buf_free(&b);
    preview_view_free(&view);
}

/* Composes the message from the row SQL found, as relance preview does,
 * and answers. */
static void preview_answer(struct api_call *c, const PGresult *res)
{
    struct preview_req *r = c->data;
    struct sequence *seq = NULL;
    struct sequence_diags d;
    char msg[600];
    int clean = lint_source(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3), &seq,
                            &d) == 0;
    sequence_diags_free(&d);
    if (!clean) {
        /* it was applied clean: the tz database changed since */
        api_problem(c, 409, "conflict", "Conflict", "the applied sequence no longer passes lint: apply it again",
                    NULL);
        return;
    }
    const struct sequence_step *step = sequence_step_find(seq, r->step);
    if (!step) {
        struct buf b = {0};
        buf_addf(&b, "sequence %s has no step '%.200s' (steps:", seq->name, r->step);
        for (size_t i = 0; i < seq->n_steps; i++)
            buf_addf(&b, " %s", seq->steps[i].id);
        buf_addc(&b, ')');
        preview_invalid(c, "/step", b.oom ? "no such step" : b.p);
        buf_free(&b);
        sequence_free(seq);
        return;
    }
    char why[300];
    int failed;
    const char *enrolled = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 5);
    const struct config_account *acct = preview_account(api_config(c), seq, r->account, "the request's account",
                                                        enrolled, r->contact, why, sizeof why, &failed);
    if (failed) {
        snprintf(msg, sizeof msg, "no account %s in the configuration", r->account);
        preview_invalid(c, "/account", msg);
        sequence_free(seq);
        return;
    }
    const char *fields = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
    struct preview_input in = {seq, step, r->keys, r->values, r->n_vars, fields, acct, time(NULL), api_config(c)};
    struct compose_result out;
    char err[300];
    int rc = preview_compose(&in, &out, err, sizeof err);
    if (rc == COMPOSE_MISSING_FIELD && strncmp(out.missing, "sender.", 7) == 0) {
        snprintf(msg, sizeof msg,
                 "the account %s has no %s (add '%s:' to its configuration, or give vars.%s); its enrollments "
                 "would be held as missing_field:%s",
                 acct ? acct->email : "sender@example.invalid", out.missing + 7, out.missing + 7, out.missing,
                 out.missing);
        preview_invalid(c, "/vars", msg);
    } else if (rc == COMPOSE_MISSING_FIELD) {
        snprintf(msg, sizeof msg,
                 "the field '%s' has no value and no fallback: give vars.%s (a contact without it would be held "
                 "as missing_field:%s)",
                 out.missing, out.missing, out.missing);
        preview_invalid(c, "/vars", msg);
    } else if (rc < 0) {
        preview_invalid(c, "", err);
    } else {
        preview_reply(c, &out, acct, why);
        compose_result_free(&out);
    }
    sequence_free(seq);
}

static void on_preview_source(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct api_call *c = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strcmp(PQgetvalue(res, 0, 0), "200") != 0) {
        api_reply_row(c, res); /* a problem, or 503 */
        return;
    }
    preview_answer(c, res);
}

static void sequence_preview(struct api_call *c)
{
    if (!name_shaped(c->param)) {
        not_found(c);
        return;
    }
    struct preview_req *r = calloc(1, sizeof *r);
    if (!r) {
        api_unavailable(c);
        return;
    }
    c->data = r;
    c->data_free = preview_req_free;
    struct api_errors e = {0};
    preview_check(c->doc, r, &e);
    if (e.n) {
        api_problem(c, 422, "validation", "Invalid request", "the preview request has invalid members",
                    api_errors_json(&e));
        api_errors_free(&e);
        return;
    }
    api_errors_free(&e);
    if (r->oom) {
        api_unavailable(c);
        return;
    }
    struct db *db = api_db(c);
    const char *p[2] = {c->param, r->contact};
    if (!db || db_query(db,
                        "SELECT status, body, source_file, source, fields, enrolled "
                        "FROM relance_api_sequence_preview_source($1, $2)",
                        2, p, on_preview_source, c) < 0)
        api_unavailable(c);
}

static const char *const list_args[] = {"limit", "after", NULL};
static const char *const stats_args[] = {"since", NULL};

const struct api_route api_sequence_routes[] = {
    {"GET", "/v1/sequences", SCOPE_SEQUENCES_READ, 0, list_args, sequences_list, 0},
    {"GET", "/v1/sequences/{}", SCOPE_SEQUENCES_READ, 0, NULL, sequence_get, 0},
    {"PUT", "/v1/sequences/{}", SCOPE_SEQUENCES_WRITE, 0, NULL, sequence_put, 0},
    {"GET", "/v1/sequences/{}/stats", SCOPE_STATS_READ, 0, stats_args, sequence_stats, 0},
    /* the contact's fields show in the message: reading them is contacts:read */
    {"POST", "/v1/sequences/{}/preview", SCOPE_SEQUENCES_READ | SCOPE_CONTACTS_READ, 1, NULL, sequence_preview, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};
