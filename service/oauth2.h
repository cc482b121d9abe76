/* oauth2: access tokens for accounts with `auth: xoauth2`.
 *
 * Each such account has an `oauth2:` block (token_url, client_id,
 * client_secret_env, refresh_token_env). Its access token comes from the
 * token endpoint with the refresh-token grant (RFC 6749 section 6: a
 * form-encoded POST over HTTPS, client_secret in the body, a JSON
 * answer), fetched through the caller's struct curl_uv on the loop, so
 * nothing blocks. Anyone holding an account's email asks for its token —
 * the SMTP sender with a callback, the IMAP watcher by peeking — and all
 * of them share one token and one request in flight per account.
 *
 * Lifetimes: a token is refreshed before it expires (at 80 % of
 * expires_in, or 60 s before, whichever comes first, never earlier than
 * half its life) as long as someone used it since the last refresh; an
 * idle account lets its token lapse and fetches on the next request.
 * Failures: a token endpoint that refuses the grant (invalid_grant, a
 * revoked or expired refresh token, a wrong client: a person must act)
 * gives -EACCES, and the next request tries again only after a minute; an
 * endpoint that is down, slow or answering 5xx gives -EAGAIN and is tried
 * again with exponential backoff (1 s doubling to 5 min) — a token still
 * valid meanwhile keeps being handed out.
 *
 * Secrets (client secret, refresh token, access tokens) are read from the
 * environment at oauth2_new, kept in memory only, wiped when freed, and
 * never put in a log line or an error string. A refresh token the server
 * rotates replaces the old one in memory (not in the environment).
 *
 * Callback contract (as libuv's): if oauth2_token_get returns an error
 * its callback never fires; otherwise it fires exactly once, from the
 * loop, never from inside oauth2_token_get — unless oauth2_token_cancel
 * takes it back first. oauth2_close makes pending callbacks fire with
 * -ECANCELED inside it. */
#ifndef RELANCE_OAUTH2_H
#define RELANCE_OAUTH2_H

#include "buf.h"
#include "config.h"
#include "curl_uv.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct oauth2;

/* status 0: token is the account's bearer token, valid only during the
 * call (copy it). -EACCES: the token endpoint refused the grant; reason
 * says why and a person must act. -EAGAIN: no token for now (the endpoint
 * is unreachable or failing); try later. -ECANCELED: oauth2_close.
 * reason is NULL when status is 0; it never holds a secret. */
typedef void (*oauth2_token_cb)(int status, const char *token, const char *reason, void *arg);

/* Reads the secrets of every account of cfg with auth xoauth2 (none is a
 * valid case: the object then knows no account). cu and cfg are borrowed
 * and must outlive the object. NULL with a reason in err that names the
 * account and the variable, never a value. */
struct oauth2 *oauth2_new(uv_loop_t *loop, struct curl_uv *cu, const struct config *cfg, char *err,
                          size_t errlen);

/* Checks what oauth2_new would refuse for one xoauth2 account (settings
 * missing, token_url not https://, a variable unset, a refresh token with
 * spaces) without keeping a secret. Returns 0, or -1 with a reason in err
 * naming the account and the setting, never a value; -ENOENT when it is a
 * variable that is unset. */
int oauth2_account_check(const struct config_account *account, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* 1 when email (any case) is an xoauth2 account known here, else 0. */
int oauth2_has(const struct oauth2 *o, const char *email);

/* Asks for email's access token: the current one when it is still good,
 * else the result of a refresh (started now, or the one in flight).
 * Returns 0, -ENOENT (no such xoauth2 account), -ECANCELED (closing) or
 * -ENOMEM. */
int oauth2_token_get(struct oauth2 *o, const char *email, oauth2_token_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* The synchronous way, for callers that cannot wait on a callback (the
 * IMAP watcher sets its bearer as a command starts): email's access token
 * when one is good now, else NULL (no such account, none yet, a refused
 * grant, closing). With none, or one due for renewal, it starts a refresh
 * from the loop as oauth2_token_get would (the same single request, the
 * same backoff and refusal rules); call again later. A token returned
 * counts as used, so it is renewed before it ends. The string is a copy
 * owned here, valid until the next oauth2_token_peek for that account or
 * oauth2_close, whichever comes first. */
const char *oauth2_token_peek(struct oauth2 *o, const char *email);

/* Takes back every pending request made with cb and arg: their callbacks
 * never fire. */
void oauth2_token_cancel(struct oauth2 *o, oauth2_token_cb cb, void *arg);

/* A server refused token (expired early, revoked): when it is still
 * email's current token it is dropped, so that the next request
 * refreshes. */
void oauth2_token_reject(struct oauth2 *o, const char *email, const char *token);

/* Token endpoint requests made for email so far (0 when unknown). */
unsigned long oauth2_refresh_count(const struct oauth2 *o, const char *email);

/* Ends everything: a request in flight to a token endpoint is abandoned,
 * pending callbacks fire with -ECANCELED inside this call, secrets are
 * wiped. on_closed (may be NULL) fires once the handles are closed (inside
 * this call when no account uses xoauth2); o is freed then. Call it before
 * closing the curl_uv. */
void oauth2_close(struct oauth2 *o, void (*on_closed)(void *arg), void *arg);

/* ---- pure parts, exposed for tests ---- */

/* A token endpoint's JSON answer (RFC 6749 sections 5.1 and 5.2). Strings
 * are malloc'd (NULL when absent); expires_in is -1 when absent. */
struct oauth2_response {
    char *access_token, *refresh_token, *token_type, *error, *error_description;
    long expires_in;
};

/* Parses body, which must be one JSON object (RFC 8259; other members and
 * nested values are read and skipped). Returns 0, or -1 with a reason in
 * err (a position and what was expected, never the body's contents) and
 * out emptied. A string member with a NUL, or an access or refresh token
 * outside printable ASCII, is an error. */
int oauth2_response_parse(const char *body, size_t len, struct oauth2_response *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void oauth2_response_free(struct oauth2_response *r);

enum oauth2_verdict {
    OAUTH2_GRANTED,     /* a usable access token */
    OAUTH2_REFUSED,     /* the grant or the client was refused: permanent */
    OAUTH2_UNAVAILABLE, /* transport failure, 5xx, 429, a garbled answer: retry */
};

/* What a token endpoint's answer means. r is the parsed body, or NULL
 * when the body was not a JSON object. */
enum oauth2_verdict oauth2_verdict_of(CURLcode code, long http_status, const struct oauth2_response *r);

/* Appends key=value to an application/x-www-form-urlencoded body (with
 * '&' when b is not empty). */
void oauth2_form_add(struct buf *b, const char *key, const char *value);

/* Milliseconds from issue to refresh for a token living expires_in_s. */
uint64_t oauth2_refresh_after_ms(long expires_in_s);

/* Milliseconds to wait after the n-th consecutive failure (n >= 1). */
uint64_t oauth2_backoff_ms(unsigned n);

#endif
