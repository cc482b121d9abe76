/* api_admin: the HTTP API's suppressions, accounts and messages
 * (/v1/suppressions, /v1/accounts, /v1/messages). It owns the checks of
 * their requests — every body member known and of its type, a pattern
 * normalised by the command line's own rule (contact_pattern_normalize),
 * query arguments in range — and hands the rest to api_admin.sql, whose
 * writes are the command line's functions (relance_suppress_add and
 * _remove, relance_account_pause_by_email and _resume_by_email), so
 * `relance suppress` and `relance accounts` can never disagree with the
 * API. It decides nothing about who is suppressed or which account sends. */
#include "api_int.h"

#include "contact.h"
#include "keyring.h"
#include "utf8.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 1000 /* bytes */
#define MEMBERS_MAX 4 /* of a body: members_read */

/* The body's members: each one of known[] (others are added to e as
 * unknown), a string (no U+0000, 1 to max bytes) or, when !required[i],
 * null. vals[i] gets each one's value, NULL when absent or null. */
static void members_read(const struct api_call *c, const char *const *known, const int *required, size_t max,
                         const char **vals, struct api_errors *e)
{
    const struct json_doc *d = c->doc;
    size_t n = 0;
    while (known[n])
        n++;
    assert(n <= MEMBERS_MAX);
    int seen[MEMBERS_MAX] = {0};
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v)) {
        char p[JSON_PATH_MAX];
        json_path(d, v, p, sizeof p);
        size_t klen, i;
        const char *key = json_key(d, v, &klen);
        for (i = 0; i < n; i++)
            if (strlen(key) == klen && strcmp(known[i], key) == 0)
                break;
        if (i == n) {
            api_error_add(e, p, "unknown member");
            continue;
        }
        seen[i] = 1;
        if (json_type(d, v) == JSON_NULL && !required[i])
            continue;
        if (json_type(d, v) != JSON_STRING) {
            api_error_add(e, p, "must be a string%s, not %s", required[i] ? "" : " or null",
                          json_type_names[json_type(d, v)]);
            continue;
        }
        size_t len;
        const char *s = json_text(d, v, &len);
        if (strlen(s) != len)
            api_error_add(e, p, "must not contain U+0000");
        else if (len == 0 || len > max)
            api_error_add(e, p, "is %zu bytes long; 1 to %zu", len, max);
        else
            vals[i] = s;
    }
    for (size_t i = 0; i < n; i++) {
        if (required[i] && !seen[i]) {
            char p[64];
            snprintf(p, sizeof p, "/%s", known[i]);
            api_error_add(e, p, "is required");
        }
    }
}

/* ---- /v1/suppressions ------------------------------------------------------ */

static void suppressions_list(struct api_call *c)
{
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    const char *p[2] = {lim, api_arg(c, "after")};
    api_ask(c, "SELECT status, body FROM relance_api_suppressions_list($1::int, $2)", 2, p);
}

static void suppression_add(struct api_call *c)
{
    static const char *const known[] = {"pattern", "reason", NULL};
    static const int required[] = {1, 0};
    const char *vals[2] = {NULL, NULL};
    struct api_errors e = {0};
    char norm[CONTACT_EMAIL_MAX + 1], err[300];
    members_read(c, known, required, REASON_MAX, vals, &e);
    if (vals[0] && contact_pattern_normalize(vals[0], norm, err, sizeof err) < 0)
        api_error_add(&e, "/pattern", "%s", err);
    if (e.n) {
        api_problem(c, 422, "validation", "Invalid suppression", "the suppression has invalid members",
                    api_errors_json(&e));
        api_errors_free(&e);
        return;
    }
    api_errors_free(&e);
    const char *p[2] = {norm, vals[1] ? vals[1] : "manual"};
    api_ask(c, "SELECT status, body FROM relance_api_suppression_add($1, $2)", 2, p);
}

static void suppression_delete(struct api_call *c)
{
    char norm[CONTACT_EMAIL_MAX + 1], err[300], detail[400];
    if (contact_pattern_normalize(c->param, norm, err, sizeof err) < 0) {
        snprintf(detail, sizeof detail, "not an address or @domain: %s", err);
        api_bad_request(c, detail);
        return;
    }
    const char *p[1] = {norm};
    api_ask(c, "SELECT status, body FROM relance_api_suppression_delete($1)", 1, p);
}

/* ---- /v1/accounts --------------------------------------------------------- */

static void accounts_list(struct api_call *c)
{
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    const char *p[2] = {lim, api_arg(c, "after")};
    api_ask(c, "SELECT status, body FROM relance_api_accounts_list($1::int, $2)", 2, p);
}

static void account_set(struct api_call *c, int pause)
{
    static const char *const known[] = {"reason", NULL};
    static const int required[] = {0};
    const char *vals[1] = {NULL};
    struct api_errors e = {0};
    size_t n = strlen(c->param);
    if (n > CONTACT_EMAIL_MAX || !utf8_valid(c->param, n)) {
        api_bad_request(c, "the account is its email address");
        return;
    }
    members_read(c, known, required, REASON_MAX, vals, &e);
    if (e.n) {
        api_problem(c, 422, "validation", "Invalid request", "the request has invalid members",
                    api_errors_json(&e));
        api_errors_free(&e);
        return;
    }
    api_errors_free(&e);
    /* the reason `relance accounts list` shows when none is given */
    const char *reason = vals[0] ? vals[0] : pause ? "paused through the API" : "resumed through the API";
    const char *p[3] = {c->param, pause ? "true" : "false", reason};
    api_ask(c, "SELECT status, body FROM relance_api_account_set($1, $2::boolean, $3)", 3, p);
}

static void account_pause(struct api_call *c)
{
    account_set(c, 1);
}

static void account_resume(struct api_call *c)
{
    account_set(c, 0);
}

/* ---- /v1/messages --------------------------------------------------------- */

static void messages_list(struct api_call *c)
{
    static const char *const states[] = {"sending", "sent", "deferred", "bounced", "unknown", "failed", NULL};
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    const char *after = api_arg(c, "after");
    const char *enrollment = api_arg(c, "enrollment"), *state = api_arg(c, "state");
    size_t n = enrollment ? strlen(enrollment) : 0;
    if (enrollment && (n == 0 || n > 18 || strspn(enrollment, "0123456789") != n)) {
        api_bad_request(c, "enrollment is an enrollment's id: digits");
        return;
    }
    int known = !state;
    for (size_t i = 0; state && states[i]; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known) {
        api_bad_request(c, "state is one of sending, sent, deferred, bounced, unknown, failed");
        return;
    }
    const char *p[4] = {lim, after, enrollment, state};
    api_ask(c, "SELECT status, body FROM relance_api_messages_list($1::int, $2, $3::bigint, $4)", 4, p);
}

static const char *const page_args[] = {"limit", "after", NULL};
static const char *const message_args[] = {"limit", "after", "enrollment", "state", NULL};

const struct api_route api_admin_routes[] = {
    {"GET", "/v1/suppressions", SCOPE_SUPPRESSIONS_READ, 0, page_args, suppressions_list, 0},
    {"POST", "/v1/suppressions", SCOPE_SUPPRESSIONS_WRITE, 1, NULL, suppression_add, 0},
    {"DELETE", "/v1/suppressions/{}", SCOPE_SUPPRESSIONS_WRITE, 0, NULL, suppression_delete, 0},
    {"GET", "/v1/accounts", SCOPE_ACCOUNTS_READ, 0, page_args, accounts_list, 0},
    {"POST", "/v1/accounts/{}/pause", SCOPE_ACCOUNTS_WRITE, 1, NULL, account_pause, 0},
    {"POST", "/v1/accounts/{}/resume", SCOPE_ACCOUNTS_WRITE, 1, NULL, account_resume, 0},
    {"GET", "/v1/messages", SCOPE_ENROLLMENTS_READ, 0, message_args, messages_list, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};
