/* oauth2: the access tokens of xoauth2 accounts. It owns, per account,
 * the secrets (client secret and refresh token, read once from the
 * environment), the current access token and its expiry, the token's
 * lifecycle (enum token_state, each change logged at debug level), the
 * one token request in flight (an easy handle run on the caller's
 * curl_uv), the callers waiting for it, and two timers: one that
 * refreshes before expiry or retries after a failure, one that hands
 * results to callers from the loop. It also holds the small pure pieces that the requests
 * need: reading the token endpoint's answer (with json.c), the verdict on
 * that answer, the form encoder and the refresh and backoff schedules.
 *
 * It does not decide what a refused grant means for an account (the
 * sender reports it as an authentication failure, which pauses the
 * account) and never logs or returns a secret: reasons carry the token
 * endpoint's URL (redacted), HTTP status and error code, and any text a
 * server sends back is cut to printable ASCII and scrubbed of our own
 * secrets before it goes anywhere. */
#include "oauth2.h"

#include "json.h"
#include "log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESPONSE_MAX (64 * 1024)
#define REFUSED_RETRY_MS 60000u  /* after a refusal, the next request tries again */
#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_MAX_MS 300000u
#define CONNECT_TIMEOUT_MS 10000L
#define REQUEST_TIMEOUT_MS 30000L
#define DEFAULT_EXPIRES_IN 3600L /* RFC 6749 makes expires_in optional */
#define REASON_MAX 768
#define TEXT_MAX 160             /* of a server's error_description in a reason */

/* ---- the token endpoint's answer ----------------------------------------- */

void oauth2_response_free(struct oauth2_response *r)
{
    char **s[] = {&r->access_token, &r->refresh_token, &r->token_type, &r->error, &r->error_description};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        if (*s[i]) {
            explicit_bzero(*s[i], strlen(*s[i]));
            free(*s[i]);
        }
        *s[i] = NULL;
    }
    r->expires_in = -1;
}

/* RFC 6750's b64token and then some: printable ASCII, no space. */
static int token_chars_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static long expires_from(const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || v != v)
        return -1;
    if (v < 0)
        return 0;
    if (v > 10.0 * 365 * 86400)
        return 10L * 365 * 86400;
    return (long)v;
}

/* Puts in *slot a copy of member key of the top-level object when it is
 * a string (nothing when absent or of another type; the last of a
 * repeated member counts). A string with a NUL, or a token (a
 * credential) outside printable ASCII, is an error at its byte. */
static int take_string(const struct json_doc *d, const char *key, int token, char **slot, char *err, size_t errlen)
{
    int v = json_get(d, 0, key);
    size_t len;
    const char *text = v >= 0 ? json_text(d, v, &len) : NULL;
    if (!text || json_type(d, v) != JSON_STRING)
        return 0;
    const char *why = strlen(text) != len                    ? "NUL in a string"
                      : token && !token_chars_ok(text) ? "a token must be printable ASCII without spaces"
                                                       : NULL;
    if (why) {
        snprintf(err, errlen, "invalid JSON at byte %zu: %s", json_offset(d, v), why);
        return -1;
    }
    *slot = strdup(text);
    if (!*slot) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int oauth2_response_parse(const char *body, size_t len, struct oauth2_response *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->expires_in = -1;
    /* the answer must be an object: say so at its first byte, whatever
     * else it is (an HTML error page, an array, nothing) */
    size_t first = 0;
    while (first < len && (body[first] == ' ' || body[first] == '\t' || body[first] == '\n' || body[first] == '\r'))
        first++;
    if (first == len || body[first] != '{') {
        snprintf(err, errlen, "invalid JSON at byte %zu: expected an object", first);
        return -1;
    }
    struct json_doc *d = NULL;
    struct json_error jerr;
    int rc = json_parse(body, len, &d, &jerr);
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        else
            json_error_text(&jerr, err, errlen);
        return -1;
    }
    /* the first two are credentials: printable ASCII only */
    static const char *const keys[] = {"access_token", "refresh_token", "token_type", "error", "error_description"};
    char **slots[] = {&out->access_token, &out->refresh_token, &out->token_type, &out->error, &out->error_description};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (take_string(d, keys[i], i < 2, slots[i], err, errlen) < 0)
            goto fail;
    /* a number, though some servers send it as a string of digits */
    int v = json_get(d, 0, "expires_in");
    size_t n;
    const char *text = v >= 0 ? json_text(d, v, &n) : NULL;
    if (text && (json_type(d, v) == JSON_NUMBER || (n && strspn(text, "0123456789") == n)))
        out->expires_in = expires_from(text);
    json_free(d);
    return 0;
fail:
    json_free(d);
    oauth2_response_free(out);
    return -1;
}

enum oauth2_verdict oauth2_verdict_of(CURLcode code, long http_status, const struct oauth2_response *r)
{
    if (code != CURLE_OK)
        return OAUTH2_UNAVAILABLE;
    if (http_status >= 200 && http_status < 300) {
        if (r && r->access_token && !r->error &&
            (!r->token_type || strcasecmp(r->token_type, "bearer") == 0))
            return OAUTH2_GRANTED;
        return OAUTH2_UNAVAILABLE; /* a garbled answer: maybe better later */
    }
    if (http_status == 400 || http_status == 401) {
        /* RFC 6749 5.2's codes all need a person; a server that says it is
         * busy (some use these words on the token endpoint too) does not */
        if (r && r->error &&
            (strcmp(r->error, "temporarily_unavailable") == 0 || strcmp(r->error, "server_error") == 0 ||
             strcmp(r->error, "slow_down") == 0))
            return OAUTH2_UNAVAILABLE;
        return OAUTH2_REFUSED;
    }
    /* timeouts and rate limits pass; other 4xx (no such endpoint, method
     * refused, forbidden) are a configuration that needs a person */
    if (http_status == 408 || http_status == 425 || http_status == 429)
        return OAUTH2_UNAVAILABLE;
    if (http_status >= 400 && http_status < 500)
        return OAUTH2_REFUSED;
    return OAUTH2_UNAVAILABLE;
}

void oauth2_form_add(struct buf *b, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {key, value};
    if (b->len)
        buf_addc(b, '&');
    for (int i = 0; i < 2; i++) {
        if (i)
            buf_addc(b, '=');
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
            if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
                buf_addc(b, (char)*p);
            } else if (*p == ' ') {
                buf_addc(b, '+');
            } else {
                char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
                buf_add(b, e, 3);
            }
        }
    }
}

uint64_t oauth2_refresh_after_ms(long expires_in_s)
{
    if (expires_in_s <= 0)
        return 0;
    uint64_t life = (uint64_t)expires_in_s * 1000;
    uint64_t at = life / 5 * 4;                 /* 80 % of its life */
    if (life > 60000 && life - 60000 < at)
        at = life - 60000;                      /* or 60 s before it ends */
    else if (life <= 60000)
        at = 0;                                 /* "60 s before" has passed */
    if (at < life / 2)
        at = life / 2;                          /* never sooner than half */
    return at;
}

uint64_t oauth2_backoff_ms(unsigned n)
{
    uint64_t ms = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < n && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* ---- accounts on the loop ------------------------------------------------ */

struct waiter {
    struct waiter *next;
    oauth2_token_cb cb;
    void *arg;
};

/* An account's token lifecycle. A token held is handed out while the
 * clock says it is good (token_usable), whatever the state: a refresh in
 * flight or a backoff does not take it away. */
enum token_state {
    TOKEN_EMPTY,    /* no token and no request: none asked for yet, or a server refused the last one */
    TOKEN_FETCHING, /* a request to the token endpoint is in flight */
    TOKEN_HELD,     /* a token came; renewed in its refresh window if someone used it */
    TOKEN_BACKOFF,  /* the last request failed for now: none before retry_at */
    TOKEN_REFUSED,  /* the endpoint refused the grant: a person must act; asked again
                       after REFUSED_RETRY_MS, the next request tries */
    TOKEN_CLOSED,   /* oauth2_close */
    TOKEN_STATE_COUNT
};
static const char *const token_state_names[] = {"EMPTY", "FETCHING", "HELD", "BACKOFF", "REFUSED", "CLOSED"};
_Static_assert(sizeof token_state_names / sizeof token_state_names[0] == TOKEN_STATE_COUNT,
               "a name for every state");

/* The transitions, one bit per target state. A request that cannot even
 * start counts as a failure, hence BACKOFF straight from any state that
 * may start one (BACKOFF itself included: its count grows). */
#define TO(st) (1u << (st))
static const unsigned token_state_next[TOKEN_STATE_COUNT] = {
    [TOKEN_EMPTY] = TO(TOKEN_FETCHING) | TO(TOKEN_BACKOFF) | TO(TOKEN_CLOSED),
    [TOKEN_FETCHING] = TO(TOKEN_HELD) | TO(TOKEN_BACKOFF) | TO(TOKEN_REFUSED) | TO(TOKEN_CLOSED),
    [TOKEN_HELD] = TO(TOKEN_FETCHING) | TO(TOKEN_BACKOFF) | TO(TOKEN_EMPTY) | TO(TOKEN_CLOSED),
    [TOKEN_BACKOFF] = TO(TOKEN_FETCHING) | TO(TOKEN_BACKOFF) | TO(TOKEN_CLOSED),
    [TOKEN_REFUSED] = TO(TOKEN_FETCHING) | TO(TOKEN_BACKOFF) | TO(TOKEN_CLOSED),
    [TOKEN_CLOSED] = 0,
};
#undef TO

struct account {
    struct oauth2 *o;
    const char *email, *token_url, *client_id, *ca_file; /* borrowed from the config */
    char url_shown[200];                                   /* token_url, redacted */
    char *client_secret, *refresh_token;                   /* secrets */
    char *access_token;
    uint64_t expires_at, refresh_at;                       /* loop time, ms */
    uint64_t life_ms;
    int used;            /* the token was handed out since it came */
    int peeked;          /* oauth2_token_peek wants a token: settle fetches */
    char *lent;          /* oauth2_token_peek's copy, valid until its next call */
    enum token_state state;
    CURL *easy;
    struct buf form;     /* the request body (holds secrets) */
    struct buf answer;   /* the response body (may hold a token) */
    int too_long;        /* the answer passed RESPONSE_MAX */
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers;
    unsigned failures;   /* consecutive transient failures */
    uint64_t retry_at;   /* no new request before this after a failure */
    uint64_t refused_at;
    char reason[REASON_MAX];
    unsigned long requests;
    struct waiter *waiters;
    uv_timer_t timer;    /* refresh before expiry, or retry */
    uv_timer_t kick;     /* hands results out from the loop */
    int timers;          /* initialised handles */
};

struct oauth2 {
    uv_loop_t *loop;
    struct curl_uv *cu;
    struct account *accounts;
    size_t n;
    int closing;
    int pending_closes;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void wipe(char **s)
{
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static void buf_wipe(struct buf *b)
{
    if (b->p)
        explicit_bzero(b->p, b->cap);
    buf_free(b);
}

static struct account *find(const struct oauth2 *o, const char *email)
{
    for (size_t i = 0; email && i < o->n; i++)
        if (strcasecmp(o->accounts[i].email, email) == 0)
            return &o->accounts[i];
    return NULL;
}

/* Copies a server's words into dst for a reason: any of our secrets in
 * them masked (before anything is cut, so no part of one survives), then
 * printable ASCII only, cut short. */
static void server_text(const struct account *a, char *dst, size_t size, const char *src)
{
    dst[0] = '\0';
    char *t = strdup(src ? src : "");
    if (!t)
        return; /* rather nothing than unmasked words */
    const char *secrets[] = {a->client_secret, a->refresh_token, a->access_token, a->lent};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        const char *s = secrets[i];
        size_t sl = s ? strlen(s) : 0;
        char *hit = sl >= 4 ? strstr(t, s) : NULL;
        while (hit) {
            memmove(hit + 3, hit + sl, strlen(hit + sl) + 1);
            memcpy(hit, "***", 3);
            hit = strstr(hit + 3, s);
        }
    }
    size_t n = 0;
    for (const char *p = t; *p && n + 1 < size && n < TEXT_MAX; p++)
        dst[n++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
    dst[n] = '\0';
    explicit_bzero(t, strlen(t));
    free(t);
}

/* The one place an account's token state changes, said at debug level:
 * "token HELD -> FETCHING account=alice@acme.example". Never a token. */
static void state_set(struct account *a, enum token_state to)
{
    int allowed = (token_state_next[a->state] & (1u << to)) != 0;
    assert(allowed);
    if (a->state != to || !allowed) {
        char event[64];
        snprintf(event, sizeof event, "token %s -> %s", token_state_names[a->state], token_state_names[to]);
        /* a release build (no assert) still says so, loudly */
        log_event(allowed ? LOG_DEBUG : LOG_ERROR, "oauth2", event, "account", a->email, NULL);
    }
    a->state = to;
}

static int token_usable(const struct account *a, uint64_t now)
{
    /* a margin for the time a send takes to reach the server */
    uint64_t margin = a->life_ms / 10 < 10000 ? a->life_ms / 10 : 10000;
    return a->access_token && now + margin < a->expires_at;
}

static void deliver(struct account *a, int status, const char *reason)
{
    struct waiter *w = a->waiters;
    a->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        int st = a->o->closing ? -ECANCELED : status;
        if (st == 0)
            a->used = 1;
        /* a callback may ask again (it joins the new list) or close */
        w->cb(st, st == 0 ? a->access_token : NULL, st == 0 ? NULL : st == -ECANCELED ? "closing" : reason, w->arg);
        free(w);
        w = next;
    }
}

static void on_timer(uv_timer_t *t);
static void settle(struct account *a);

static void schedule(struct account *a, uint64_t at)
{
    uint64_t now = uv_now(a->o->loop);
    uv_timer_start(&a->timer, on_timer, at > now ? at - now : 0, 0);
}

static void failed(struct account *a, const char *why)
{
    state_set(a, TOKEN_BACKOFF);
    a->failures++;
    uint64_t wait = oauth2_backoff_ms(a->failures);
    a->retry_at = uv_now(a->o->loop) + wait;
    snprintf(a->reason, sizeof a->reason, "OAuth2 token endpoint unavailable: %s (next try in %llu s) at %s", why,
             (unsigned long long)((wait + 999) / 1000), a->url_shown);
    char n[16];
    snprintf(n, sizeof n, "%u", a->failures);
    log_event(LOG_WARN, "oauth2", "token refresh failed", "account", a->email, "failures", n, "reason", a->reason,
              NULL);
    /* a token still valid keeps its owner going: try again before it ends */
    if (token_usable(a, uv_now(a->o->loop)))
        schedule(a, a->retry_at);
}

static void refused(struct account *a, long status, const struct oauth2_response *r)
{
    char code[64] = "", desc[TEXT_MAX + 8] = "";
    server_text(a, code, sizeof code, r && r->error ? r->error : "");
    server_text(a, desc, sizeof desc, r && r->error_description ? r->error_description : "");
    /* what went wrong first: the database keeps the start of a reason */
    snprintf(a->reason, sizeof a->reason, "OAuth2 token refresh refused: HTTP %ld%s%s%s%s%s by %s", status,
             *code ? " " : "", code, *desc ? " (" : "", desc, *desc ? ")" : "", a->url_shown);
    state_set(a, TOKEN_REFUSED);
    a->refused_at = uv_now(a->o->loop);
    a->failures = 0;
    a->retry_at = 0;
    /* the old token may still work, but the account has to be looked at */
    wipe(&a->access_token);
    uv_timer_stop(&a->timer);
    log_event(LOG_ERROR, "oauth2", "token refresh refused", "account", a->email, "reason", a->reason, NULL);
}

static void granted(struct account *a, struct oauth2_response *r)
{
    uint64_t now = uv_now(a->o->loop);
    long life = r->expires_in >= 0 ? r->expires_in : DEFAULT_EXPIRES_IN;
    wipe(&a->access_token);
    a->access_token = r->access_token;
    r->access_token = NULL;
    int rotated = 0;
    if (r->refresh_token && strcmp(r->refresh_token, a->refresh_token) != 0) {
        wipe(&a->refresh_token);
        a->refresh_token = r->refresh_token;
        r->refresh_token = NULL;
        rotated = 1;
    }
    a->life_ms = (uint64_t)life * 1000;
    a->expires_at = now + a->life_ms;
    a->refresh_at = now + oauth2_refresh_after_ms(life);
    a->used = 0;
    a->failures = 0;
    a->retry_at = 0;
    state_set(a, TOKEN_HELD);
    a->reason[0] = '\0';
    schedule(a, a->refresh_at);
    char exp[24], n[24];
    snprintf(exp, sizeof exp, "%ld", life);
    snprintf(n, sizeof n, "%lu", a->requests);
    log_event(LOG_INFO, "oauth2", "access token refreshed", "account", a->email, "expires_in", exp, "requests", n,
              "refresh_token", rotated ? "rotated" : "kept", NULL);
}

static void on_fetched(struct curl_uv *cu, CURL *easy, CURLcode result, void *arg)
{
    (void)cu;
    struct account *a = arg;
    long status = 0;
    buf_wipe(&a->form);
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;
    struct oauth2_response r, *rp = NULL;
    char why[CURL_ERROR_SIZE + 64];
    why[0] = '\0';
    if (result == CURLE_OK) {
        if (a->answer.oom)
            snprintf(why, sizeof why, "out of memory reading the answer");
        else if (oauth2_response_parse(a->answer.p ? a->answer.p : "", a->answer.len, &r, why, sizeof why) == 0)
            rp = &r;
    } else if (result == CURLE_WRITE_ERROR && a->too_long) {
        snprintf(why, sizeof why, "answer longer than %d bytes", RESPONSE_MAX);
    } else {
        char text[CURL_ERROR_SIZE];
        server_text(a, text, sizeof text, a->errbuf[0] ? a->errbuf : curl_easy_strerror(result));
        snprintf(why, sizeof why, "%s", text);
    }
    buf_wipe(&a->answer);
    enum oauth2_verdict v = oauth2_verdict_of(result, status, rp);
    if (v == OAUTH2_GRANTED) {
        granted(a, rp);
    } else if (v == OAUTH2_REFUSED) {
        refused(a, status, rp);
    } else {
        char what[sizeof why + 64];
        if (result != CURLE_OK || status == 0)
            snprintf(what, sizeof what, "%s", why);
        else if (status >= 200 && status < 300)
            snprintf(what, sizeof what, "HTTP %ld without a usable access token%s%s", status, *why ? ": " : "",
                     why);
        else
            snprintf(what, sizeof what, "HTTP %ld", status);
        failed(a, what);
    }
    if (rp)
        oauth2_response_free(rp);
    settle(a);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct account *a = userp;
    size_t n = size * nmemb;
    if (a->answer.len + n > RESPONSE_MAX) {
        a->too_long = 1;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    buf_add(&a->answer, data, n);
    return n;
}

/* Starts a token request. 0, or -1 (recorded as a failure). */
static int fetch(struct account *a)
{
    CURL *e = a->easy;
    buf_wipe(&a->form);
    buf_wipe(&a->answer);
    a->too_long = 0;
    oauth2_form_add(&a->form, "grant_type", "refresh_token");
    oauth2_form_add(&a->form, "refresh_token", a->refresh_token);
    oauth2_form_add(&a->form, "client_id", a->client_id);
    if (a->client_secret)
        oauth2_form_add(&a->form, "client_secret", a->client_secret);
    if (a->form.oom) {
        buf_wipe(&a->form);
        failed(a, "out of memory");
        return -1;
    }
    a->errbuf[0] = '\0';
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->form.p) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->form.len) != CURLE_OK;
    if (bad || curl_uv_transfer_start(a->o->cu, e, on_fetched, a) < 0) {
        buf_wipe(&a->form);
        failed(a, "could not start the request");
        return -1;
    }
    state_set(a, TOKEN_FETCHING);
    a->requests++;
    return 0;
}

/* Hands out what there is to hand out, starting a request when one is
 * needed. Called from the loop only. */
static void settle(struct account *a)
{
    if (a->o->closing)
        return;
    uint64_t now = uv_now(a->o->loop);
    int asked = a->waiters || a->peeked;
    a->peeked = 0;
    /* someone asks again a while after a refusal: the request below tries again */
    int refused = a->state == TOKEN_REFUSED && !(now >= a->refused_at + REFUSED_RETRY_MS && asked);
    if (token_usable(a, now)) {
        deliver(a, 0, NULL);
        if (a->o->closing) /* a callback closed everything */
            return;
        /* in its refresh window with someone using it: renew it now */
        if (a->state != TOKEN_FETCHING && now >= a->refresh_at && now >= a->retry_at && a->used)
            (void)fetch(a);
        return;
    }
    if (refused) {
        deliver(a, -EACCES, a->reason);
        return;
    }
    if (a->state == TOKEN_FETCHING || !asked)
        return; /* the answer settles it */
    if (now < a->retry_at || fetch(a) < 0)
        deliver(a, -EAGAIN, a->reason);
}

static void on_kick(uv_timer_t *t)
{
    settle(t->data);
}

static void on_timer(uv_timer_t *t)
{
    struct account *a = t->data;
    if (a->o->closing || a->state == TOKEN_FETCHING || a->state == TOKEN_REFUSED)
        return;
    /* only a token someone used is worth renewing ahead of time */
    if (a->used || a->waiters)
        (void)fetch(a);
}

int oauth2_has(const struct oauth2 *o, const char *email)
{
    return find(o, email) != NULL;
}

int oauth2_token_get(struct oauth2 *o, const char *email, oauth2_token_cb cb, void *arg)
{
    if (o->closing)
        return -ECANCELED;
    struct account *a = find(o, email);
    if (!a || !cb)
        return -ENOENT;
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->cb = cb;
    w->arg = arg;
    struct waiter **tail = &a->waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    if (a->state != TOKEN_FETCHING || token_usable(a, uv_now(o->loop)))
        uv_timer_start(&a->kick, on_kick, 0, 0);
    return 0;
}

const char *oauth2_token_peek(struct oauth2 *o, const char *email)
{
    struct account *a = o->closing ? NULL : find(o, email);
    if (!a)
        return NULL;
    uint64_t now = uv_now(o->loop);
    int usable = token_usable(a, now);
    if (a->state != TOKEN_FETCHING && (!usable || now >= a->refresh_at)) {
        /* none, or one due for renewal: settle asks for it, from the loop */
        a->peeked = 1;
        uv_timer_start(&a->kick, on_kick, 0, 0);
    }
    if (!usable) {
        wipe(&a->lent); /* the last one lent is over: no copy outlives its use */
        return NULL;
    }
    a->used = 1;
    if (!a->lent || strcmp(a->lent, a->access_token) != 0) {
        wipe(&a->lent);
        a->lent = strdup(a->access_token);
    }
    return a->lent;
}

void oauth2_token_cancel(struct oauth2 *o, oauth2_token_cb cb, void *arg)
{
    for (size_t i = 0; i < o->n; i++) {
        struct waiter **pw = &o->accounts[i].waiters;
        while (*pw) {
            struct waiter *w = *pw;
            if (w->cb == cb && w->arg == arg) {
                *pw = w->next;
                free(w);
            } else {
                pw = &w->next;
            }
        }
    }
}

void oauth2_token_reject(struct oauth2 *o, const char *email, const char *token)
{
    struct account *a = find(o, email);
    if (!a || !token || !a->access_token || strcmp(a->access_token, token) != 0)
        return;
    wipe(&a->access_token);
    a->expires_at = 0;
    if (a->state == TOKEN_HELD)
        state_set(a, TOKEN_EMPTY); /* a request in flight or a backoff stays what it is */
    log_event(LOG_WARN, "oauth2", "a server refused the access token; it will be refreshed", "account", a->email,
              NULL);
}

unsigned long oauth2_refresh_count(const struct oauth2 *o, const char *email)
{
    const struct account *a = find(o, email);
    return a ? a->requests : 0;
}

/* ---- set-up and close ---------------------------------------------------- */

static char *secret_from_env(const char *email, const char *key, const char *var, char *err, size_t errlen)
{
    const char *v = getenv(var);
    if (!v || !*v) {
        snprintf(err, errlen, "account %s: environment variable %s (oauth2.%s) is not set", email, var, key);
        return NULL;
    }
    char *s = strdup(v);
    if (!s)
        snprintf(err, errlen, "out of memory");
    return s;
}

/* Everything account_setup refuses, without keeping a secret: the
 * settings, the scheme of the endpoint, and the variables set. */
int oauth2_account_check(const struct config_account *c, char *err, size_t errlen)
{
    const struct config_oauth2 *k = &c->oauth2;
    if (!k->token_url || !k->client_id || !k->refresh_token_env) {
        snprintf(err, errlen, "account %s: auth xoauth2 needs oauth2.token_url, oauth2.client_id and "
                              "oauth2.refresh_token_env", c->email);
        return -1;
    }
    if (strncasecmp(k->token_url, "https://", 8) != 0) {
        snprintf(err, errlen, "account %s: oauth2.token_url must be an https:// URL", c->email);
        return -1;
    }
    char *token = secret_from_env(c->email, "refresh_token_env", k->refresh_token_env, err, errlen);
    if (!token)
        return -ENOENT;
    int ok = token_chars_ok(token);
    wipe(&token);
    if (!ok) {
        snprintf(err, errlen, "account %s: the refresh token in %s has spaces or non-ASCII characters", c->email,
                 k->refresh_token_env);
        return -1;
    }
    if (k->client_secret_env) {
        char *secret = secret_from_env(c->email, "client_secret_env", k->client_secret_env, err, errlen);
        if (!secret)
            return -ENOENT;
        wipe(&secret);
    }
    return 0;
}

static int account_setup(struct account *a, const struct config *cfg, const struct config_account *c, char *err,
                         size_t errlen)
{
    const struct config_oauth2 *k = &c->oauth2;
    a->email = c->email;
    if (oauth2_account_check(c, err, errlen) < 0)
        return -1;
    a->token_url = k->token_url;
    a->client_id = k->client_id;
    a->ca_file = c->tls_ca_file ? c->tls_ca_file : cfg->tls_ca_file;
    config_url_redact(k->token_url, a->url_shown, sizeof a->url_shown);
    char *q = strchr(a->url_shown, '?'); /* a query may carry a key */
    if (q)
        snprintf(q, sizeof a->url_shown - (size_t)(q - a->url_shown), "?...");
    a->refresh_token = secret_from_env(c->email, "refresh_token_env", k->refresh_token_env, err, errlen);
    if (!a->refresh_token)
        return -1;
    if (k->client_secret_env) {
        a->client_secret = secret_from_env(c->email, "client_secret_env", k->client_secret_env, err, errlen);
        if (!a->client_secret)
            return -1;
    }
    a->headers = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *h = a->headers ? curl_slist_append(a->headers, "Expect:") : NULL; /* no 100-continue */
    if (h)
        a->headers = h;
    a->easy = curl_easy_init();
    if (!h || !a->easy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    CURL *e = a->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, a->token_url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    if (a->ca_file)
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "relance/" RELANCE_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, a) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS) != CURLE_OK;
    if (bad) {
        snprintf(err, errlen, "account %s: libcurl refused the token request's options", c->email);
        return -1;
    }
    return 0;
}

static void account_free(struct account *a)
{
    if (a->easy)
        curl_easy_cleanup(a->easy);
    a->easy = NULL;
    curl_slist_free_all(a->headers);
    a->headers = NULL;
    wipe(&a->client_secret);
    wipe(&a->refresh_token);
    wipe(&a->access_token);
    wipe(&a->lent);
    buf_wipe(&a->form);
    buf_wipe(&a->answer);
}

struct oauth2 *oauth2_new(uv_loop_t *loop, struct curl_uv *cu, const struct config *cfg, char *err, size_t errlen)
{
    struct oauth2 *o = calloc(1, sizeof *o);
    size_t n = 0;
    if (!o)
        goto nomem;
    o->loop = loop;
    o->cu = cu;
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            const char *auth = cfg->pools[i].accounts[k].auth;
            n += auth && strcmp(auth, "xoauth2") == 0;
        }
    o->accounts = calloc(n + 1, sizeof *o->accounts);
    if (!o->accounts)
        goto nomem;
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            const struct config_account *c = &cfg->pools[i].accounts[k];
            if (!c->auth || strcmp(c->auth, "xoauth2") != 0 || c->unavailable)
                continue;
            struct account *a = &o->accounts[o->n++];
            a->o = o;
            if (account_setup(a, cfg, c, err, errlen) < 0)
                goto fail;
        }
    /* The timers come last: nothing after them can fail, so the failure
     * path never has a handle to close. */
    for (size_t i = 0; i < o->n; i++) {
        struct account *a = &o->accounts[i];
        uv_timer_init(loop, &a->timer);
        uv_timer_init(loop, &a->kick);
        a->timer.data = a->kick.data = a;
        a->timers = 2;
    }
    return o;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (o) {
        for (size_t i = 0; i < o->n; i++)
            account_free(&o->accounts[i]);
        free(o->accounts);
        free(o);
    }
    return NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct account *a = h->data;
    struct oauth2 *o = a->o;
    if (--o->pending_closes > 0)
        return;
    void (*cb)(void *) = o->on_closed;
    void *arg = o->closed_arg;
    free(o->accounts);
    free(o);
    if (cb)
        cb(arg);
}

void oauth2_close(struct oauth2 *o, void (*on_closed)(void *arg), void *arg)
{
    if (o->closing)
        return;
    o->closing = 1;
    o->on_closed = on_closed;
    o->closed_arg = arg;
    for (size_t i = 0; i < o->n; i++) {
        struct account *a = &o->accounts[i];
        if (a->state == TOKEN_FETCHING && curl_uv_transfer_abort(o->cu, a->easy) < 0) {
            /* not running: nothing to end */
        }
        state_set(a, TOKEN_CLOSED);
        deliver(a, -ECANCELED, NULL);
        account_free(a);
        o->pending_closes += a->timers;
    }
    o->pending_closes++; /* held until every close below is asked for */
    for (size_t i = 0; i < o->n; i++) {
        uv_close((uv_handle_t *)&o->accounts[i].timer, on_handle_closed);
        uv_close((uv_handle_t *)&o->accounts[i].kick, on_handle_closed);
    }
    if (--o->pending_closes == 0) { /* no account: nothing to wait for */
        free(o->accounts);
        free(o);
        if (on_closed)
            on_closed(arg);
    }
}
