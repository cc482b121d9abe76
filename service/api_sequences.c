/* api_sequences: the HTTP API's sequences (/v1/sequences). It owns the
 * checks of these requests and the one thing C must do here: lint a PUT's
 * YAML body with lint.c's own checks (lint_source: the rules `relance
 * lint` and `relance apply` run), answering its problems with the line,
 * column and message lint prints, and hand a clean model to SQL. The
 * apply itself is `relance apply`'s relance_sequence_apply, the reads and
 * the figures are sql/functions/api_sequences.sql's (the figures through
 * `relance stats --json`'s relance_stats_json). */
#include "api_int.h"

#include "clock.h"
#include "keyring.h"
#include "lint.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_LIMIT_MAX 500
#define LIST_LIMIT_DEFAULT "100"
#define NAME_MAX_LEN 64 /* sequence.c's longest name */

static void on_row(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    api_reply_row(arg, res);
}

static void bad_arg(struct api_call *c, const char *detail)
{
    api_problem(c, 400, "bad-request", "Bad request", detail, NULL);
}

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

/* Sends query (parameters p) for a (status, body) row, or answers 503. */
static void ask(struct api_call *c, const char *query, int n, const char *const *p)
{
    struct db *db = api_db(c);
    if (!db || db_query(db, query, n, p, on_row, c) < 0)
        api_unavailable(c);
}

/* ---- GET /v1/sequences, GET /v1/sequences/{name} ----------------------------- */

static void sequences_list(struct api_call *c)
{
    const char *limit = api_arg(c, "limit"), *after = api_arg(c, "after");
    char *end;
    long n = strtol(limit ? limit : LIST_LIMIT_DEFAULT, &end, 10);
    if (!*(limit ? limit : "1") || *end || n < 1 || n > LIST_LIMIT_MAX) {
        bad_arg(c, "limit is a number from 1 to 500");
        return;
    }
    /* a cursor is base64url: anything else is not one of ours */
    size_t alen = after ? strlen(after) : 0;
    if (after && (alen == 0 || alen > 40 ||
                  strspn(after, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != alen)) {
        bad_arg(c, "after is not a cursor this list gave");
        return;
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%ld", n);
    const char *p[2] = {lim, after};
    ask(c, "SELECT status, body FROM relance_api_sequences_list($1::int, $2)", 2, p);
}

static void sequence_get(struct api_call *c)
{
    if (!name_shaped(c->param)) {
        not_found(c);
        return;
    }
    const char *p[1] = {c->param};
    ask(c, "SELECT status, body FROM relance_api_sequence_get($1)", 1, p);
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
    char *model = NULL, hash[65];
    if (d.nomem || errors.oom || warnings.oom) {
        api_unavailable(c);
    } else if (!clean) {
        diags_json(&d, SEQUENCE_ERROR, &errors);
        char detail[80];
        snprintf(detail, sizeof detail, "the sequence file has %zu error%s", d.errors, d.errors == 1 ? "" : "s");
        invalid(c, detail, errors.oom ? "[]" : errors.p, warnings.p);
    } else if (strcmp(seq->name, c->param) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "name '%s' is not the path's '%.*s'", seq->name, NAME_MAX_LEN, c->param);
        buf_addc(&errors, '[');
        diag_add(&errors, 1, seq->name_line, seq->name_col, msg);
        buf_addc(&errors, ']');
        invalid(c, "the sequence file names another sequence", errors.oom ? "[]" : errors.p, warnings.p);
    } else if (!(model = sequence_to_json(seq)) || sequence_hash(seq, hash) < 0) {
        api_unavailable(c);
    } else {
        char now[40];
        clock_format(clock_now(), now, sizeof now);
        const char *p[6] = {model, hash, file, c->body ? c->body : "", now, warnings.p};
        ask(c,
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
        bad_arg(c, "since is a day written YYYY-MM-DD (UTC)");
        return;
    }
    if (!name_shaped(c->param)) {
        not_found(c);
        return;
    }
    const char *p[2] = {c->param, since};
    ask(c, "SELECT status, body FROM relance_api_sequence_stats($1, $2::date)", 2, p);
}

static const char *const list_args[] = {"limit", "after", NULL};
static const char *const stats_args[] = {"since", NULL};

const struct api_route api_sequence_routes[] = {
    {"GET", "/v1/sequences", SCOPE_SEQUENCES_READ, 0, list_args, sequences_list},
    {"GET", "/v1/sequences/{}", SCOPE_SEQUENCES_READ, 0, NULL, sequence_get},
    {"PUT", "/v1/sequences/{}", SCOPE_SEQUENCES_WRITE, 0, NULL, sequence_put},
    {"GET", "/v1/sequences/{}/stats", SCOPE_STATS_READ, 0, stats_args, sequence_stats},
    {NULL, NULL, 0, 0, NULL, NULL},
};
