/* webhooks: the delivery loop of the event outbox (see webhooks.h). It
 * owns its libcurl multi handle (curl_uv), the requests in flight, the
 * per-endpoint counts of this replica, the outcomes not yet recorded, and
 * the configuration endpoints' secrets (read once, wiped at close).
 *
 * One statement at a time, relance_webhooks_cycle, on the background
 * connection: the outcomes gathered since the last one go in, the claims
 * come out, with when the next pending delivery is due. While it runs,
 * ended requests gather for the next one; a cycle lost with its
 * connection puts its outcomes back.
 *
 * A claim is a session advisory lock of that connection (see
 * sql/functions/webhooks.sql), so this side keeps the books of its locks:
 * every claimed delivery carries the lock generation it was taken in
 * (lock_gen: one more each time the connection is made again, or the
 * locks are given up after a failed cycle). Those of the current
 * generation are held: passed as p_held so that no claim locks one
 * twice, and given back by the cycle after the one that recorded their
 * outcome (p_unlock). Those of an older one were lost with their
 * connection: their outcomes are still recorded (if nobody claimed them
 * since), never given back.
 *
 * The loop wakes on NOTIFY relance_webhooks (an event committed), on a
 * request ending, on the next delivery's due time and, idle, every
 * IDLE_POLL_MS: the claims of a replica that died are given back by
 * PostgreSQL without telling anyone.
 *
 * Safety (webhook_url.h): the URL is checked before each request, and
 * the address a name resolves to is checked when libcurl opens the
 * socket, so a name that resolves to 10.0.0.1 or 169.254.169.254 is
 * refused unless its host is listed; no redirect is followed, no proxy
 * from the environment is used, at most BODY_MAX bytes of an answer are
 * read. */
#include "webhooks.h"

#include "buf.h"
#include "clock.h"
#include "curl_uv.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "pgarray.h"
#include "secret.h"
#include "webhook_url.h"
#include "whsig.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IDLE_POLL_MS 5000
#define RETRY_MS 1000     /* after a cycle that failed */
#define BODY_MAX 65536    /* bytes of an answer read */
/* Deliveries an endpoint may hold here, in flight and queued: claimed
 * ahead of its webhook_max_in_flight request slots, so that a slot that
 * frees starts the next request at once instead of after a round trip to
 * the database. */
#define HOLD_MAX 64
#define SPARE_MAX 64      /* easy handles kept for reuse */
#define OUTCOME_MS 20     /* an outcome waits at most this for a cycle to record it */
/* Claims (advisory locks) a replica holds at most, shared between the
 * enabled endpoints, each getting at least webhook_max_in_flight (in a
 * random order when they would not all fit): a bound on its share of
 * PostgreSQL's lock table (max_locks_per_transaction x max_connections
 * entries for all sessions). */
#define HOLD_TOTAL 256
/* Every this many cycles an endpoint's claim starts from its first due
 * delivery, not after its own (p_after): a fresh one another replica
 * gave back behind them waits at most that long. */
#define RESCAN_CYCLES 32

/* A claimed delivery waiting for one of its endpoint's request slots. */
struct queued {
    struct queued *next;
    long long delivery_id;
    unsigned lock;        /* the lock generation of its claim */
    char *event_id, *body;
};

struct endpoint {
    long long id;
    int busy;             /* requests in flight from here */
    int queued;           /* claimed, waiting for a slot */
    struct queued *head, *tail;
    int gone;             /* answered 410: send nothing more until recorded */
    unsigned gone_cycle;  /* the cycle that records it */
    char *url_ok;         /* the last URL webhook_url_check passed, and */
    int url_listed;       /* whether its host is listed */
    /* where and how to send, as the last cycle that claimed here said
     * (once a cycle, not once a delivery): the secrets are the current
     * one and, while a rotation lasts, the previous one */
    char *url, *secret, *previous;
    unsigned seen_cycle;  /* that cycle: its claims here are sent */
    int asked, got;       /* the last cycle: deliveries it could claim here, and did */
    long long after;      /* the greatest fresh delivery claimed here (p_after), 0: none */
    int dry;              /* it got fewer than it asked: nothing more is due here */
};

struct outcome {
    long long delivery_id;
    int status;           /* HTTP status, 0 none, -1 never sent */
    char *error;
    unsigned lock;        /* the lock generation of its claim */
};

/* Claims to give back: recorded (or never sent), each with its lock
 * generation. */
struct claims {
    long long *id;
    unsigned *lock;
    size_t n, cap;
};

struct outcomes {
    struct outcome *v;
    size_t n, cap;
};

struct transfer {
    struct webhooks *wh;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    long long delivery_id; /* 0: a test request */
    unsigned lock;         /* the lock generation of its claim */
    struct endpoint *ep;   /* NULL for a test request */
    int listed, blocked;
    size_t got;
    double started;
    webhooks_sent_cb cb;
    void *cb_arg;
    struct transfer *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

struct webhooks {
    uv_loop_t *loop;
    const struct config *cfg;
    const struct ready *ready;
    struct curl_uv *cu;
    uv_timer_t timer;
    char **secrets;            /* cfg->webhooks[i]'s */
    struct endpoint **eps;
    size_t n_eps, cap_eps;
    struct transfer *transfers;
    struct outcomes waiting;   /* ended, not recorded yet */
    struct outcomes recording; /* in the cycle in flight */
    struct claims unlock;      /* recorded: given back by the next cycle */
    struct claims unlocking;   /* in the cycle in flight */
    unsigned lock_gen;         /* the generation of the locks held now (above) */
    unsigned lock_session;     /* the background connection's db_session it is of */
    int hold;                  /* each endpoint's share of claims, as the last cycle said */
    unsigned cycle_no;
    int cycling, again, synced, closing, final_sent, closed_parts;
    int pending;               /* statements in flight whose callback reads wh */
    void (*on_closed)(void *arg);
    void *closed_arg;
    struct metrics_family *m_requests, *m_duration;
    CURL *spare[SPARE_MAX];    /* easy handles of ended requests, reset, for the next */
    size_t n_spare;
};

/* ---- bookkeeping ------------------------------------------------------------ */

/* The endpoint id's counts; each has its own allocation, since requests
 * in flight point at theirs while the list grows. */
static struct endpoint *endpoint(struct webhooks *wh, long long id)
{
    for (size_t i = 0; i < wh->n_eps; i++)
        if (wh->eps[i]->id == id)
            return wh->eps[i];
    if (wh->n_eps == wh->cap_eps) {
        size_t cap = wh->cap_eps ? wh->cap_eps * 2 : 8;
        struct endpoint **v = realloc(wh->eps, cap * sizeof *v);
        if (!v)
            return NULL;
        wh->eps = v;
        wh->cap_eps = cap;
    }
    struct endpoint *ep = calloc(1, sizeof *ep);
    if (!ep)
        return NULL;
    ep->id = id;
    ep->asked = wh->hold; /* new to this replica: the cycle that found it asked that much */
    wh->eps[wh->n_eps++] = ep;
    return ep;
}

static void outcomes_add(struct outcomes *o, long long id, unsigned lock, int status, const char *error)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        struct outcome *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            /* unrecorded: its claim lapses and it is sent again */
            log_event(LOG_ERROR, "webhooks", "out of memory: an outcome is lost, the delivery will be repeated",
                      NULL);
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = (struct outcome){id, status, error ? strdup(error) : NULL, lock};
}

static void outcomes_clear(struct outcomes *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].error);
    o->n = 0;
}

static void claims_add(struct claims *c, long long id, unsigned lock)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        long long *v = realloc(c->id, cap * sizeof *v);
        if (v)
            c->id = v;
        unsigned *l = v ? realloc(c->lock, cap * sizeof *l) : NULL;
        if (!l) {
            /* kept until the connection ends: only this replica is kept
             * off the row meanwhile, and it sends it again if due */
            log_event(LOG_ERROR, "webhooks", "out of memory: a claim is kept until the connection ends", NULL);
            return;
        }
        c->lock = l;
        c->cap = cap;
    }
    c->id[c->n] = id;
    c->lock[c->n++] = lock;
}

static void claims_free(struct claims *c)
{
    free(c->id);
    free(c->lock);
    *c = (struct claims){0};
}

/* The generation of the locks the background connection db holds now:
 * a new one when the connection was made again (the old locks went with
 * the old one). */
static unsigned locks_now(struct webhooks *wh, const struct db *db)
{
    unsigned session = db_session(db);
    if (session != wh->lock_session) {
        wh->lock_session = session;
        wh->lock_gen++;
    }
    return wh->lock_gen;
}

/* The outcomes of a cycle that failed go back in front of those that
 * came since. */
static void outcomes_restore(struct webhooks *wh)
{
    struct outcomes *from = &wh->recording;
    for (size_t i = 0; i < wh->waiting.n; i++) {
        struct outcome *w = &wh->waiting.v[i];
        outcomes_add(from, w->delivery_id, w->lock, w->status, w->error);
        free(w->error);
    }
    wh->waiting.n = 0;
    struct outcomes t = wh->waiting;
    wh->waiting = *from;
    *from = t;
}

/* o as the three array parameters of relance_webhooks_record (ids,
 * statuses, errors) into p, built in b (freed by the caller); a NULL in p
 * when memory ran out. */
static void outcome_arrays(const struct outcomes *o, struct buf b[3], const char *p[3])
{
    char n[32];
    for (size_t i = 0; i < o->n; i++) {
        snprintf(n, sizeof n, "%lld", o->v[i].delivery_id);
        pgarray_add(&b[0], n);
        snprintf(n, sizeof n, "%d", o->v[i].status);
        pgarray_add(&b[1], n);
        pgarray_add(&b[2], o->v[i].error);
    }
    for (size_t i = 0; i < 3; i++)
        p[i] = pgarray_end(&b[i]);
}

static struct db *cycle_db(const struct webhooks *wh)
{
    return ready_background_db(wh->ready);
}

/* ---- the requests ------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    struct transfer *t = arg;
    t->got += size * n;
    return t->got > BODY_MAX ? 0 : size * n; /* enough: the status is what counts */
}

static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct transfer *t = arg;
    (void)purpose;
    if (!t->listed && !netaddr_is_public(&addr->addr)) {
        t->blocked = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static void transfer_free(struct transfer *t)
{
    struct webhooks *wh = t->wh;
    if (t->prev)
        t->prev->next = t->next;
    else
        wh->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (t->ep && t->ep->busy > 0)
        t->ep->busy--;
    curl_slist_free_all(t->headers);
    if (t->easy && wh->n_spare < SPARE_MAX && !wh->closing) {
        curl_easy_reset(t->easy);
        wh->spare[wh->n_spare++] = t->easy;
    } else {
        curl_easy_cleanup(t->easy);
    }
    free(t->body);
    free(t);
}

static void cycle(struct webhooks *wh);
static void pump(struct webhooks *wh, struct endpoint *ep);
static void arm(struct webhooks *wh, double ms);

/* Whether a cycle now would claim for some endpoint: one that is not
 * dry holds half of its share or less (or as many outcomes wait as all
 * endpoints may hold). A cycle run whenever a request ended claimed
 * nothing every other time (the endpoints were still full from the last
 * claim) and, under load, made a small cycle every few milliseconds; an
 * endpoint with nothing more due would do the same for the others. */
static int worth_cycling(const struct webhooks *wh)
{
    if (wh->waiting.n >= wh->hold * (wh->n_eps ? wh->n_eps : 1))
        return 1;
    for (size_t i = 0; i < wh->n_eps; i++)
        if (!wh->eps[i]->gone && !wh->eps[i]->dry && wh->eps[i]->busy + wh->eps[i]->queued <= wh->hold / 2)
            return 1;
    return 0;
}

/* After a request ended: a cycle now when it would claim, else within
 * OUTCOME_MS, which records the outcome (nothing waits on that but the
 * delivery's row: its claim outlives the request by far). While a cycle
 * runs, nothing: its claim tops the endpoints up, and its answer looks
 * again. */
static void cycle_soon(struct webhooks *wh)
{
    if (wh->cycling)
        return;
    if (worth_cycling(wh))
        cycle(wh);
    else if (!uv_is_active((uv_handle_t *)&wh->timer) || uv_timer_get_due_in(&wh->timer) > OUTCOME_MS)
        arm(wh, OUTCOME_MS);
}

/* status and error of an ended request; error NULL on 2xx. */
static int request_outcome(struct transfer *t, CURLcode result, char *error, size_t len)
{
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    if (t->blocked) {
        snprintf(error, len, "refused: the host resolved to a non-public address (list it in "
                             "webhook_allow_insecure to allow it)");
        return 0;
    }
    if (result != CURLE_OK && !(result == CURLE_WRITE_ERROR && t->got > BODY_MAX && code > 0)) {
        snprintf(error, len, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        return 0;
    }
    if (code < 200 || code > 299)
        snprintf(error, len, "HTTP %ld", code);
    else
        error[0] = '\0';
    return (int)code;
}

static void on_request_done(struct curl_uv *cu, CURL *easy, CURLcode result, void *arg)
{
    (void)cu;
    (void)easy;
    struct transfer *t = arg;
    struct webhooks *wh = t->wh;
    char error[CURL_ERROR_SIZE + 100];
    int status = request_outcome(t, result, error, sizeof error);
    if (t->cb) {
        double secs = clock_now() - t->started;
        t->cb(t->cb_arg, status, error[0] ? error : NULL, secs);
    } else {
        char ep_id[24];
        snprintf(ep_id, sizeof ep_id, "%lld", t->ep ? t->ep->id : 0);
        const char *labels[2] = {ep_id, status >= 200 && status <= 299 ? "delivered"
                                        : status == 410                ? "gone"
                                        : status > 0                   ? "rejected"
                                                                       : "unreachable"};
        metrics_count(wh->m_requests, labels, 1);
        metrics_observe(wh->m_duration, NULL, clock_now() - t->started);
        if (status == 410 && t->ep && !t->ep->gone) {
            t->ep->gone = 1;
            t->ep->gone_cycle = 0; /* recorded by the next cycle that carries it */
            char id[24];
            snprintf(id, sizeof id, "%lld", t->ep->id);
            log_event(LOG_WARN, "webhooks", "endpoint answered 410 Gone: disabled", "webhook", id, NULL);
        }
        if (error[0]) {
            char id[24], ep[24], st[16];
            snprintf(id, sizeof id, "%lld", t->delivery_id);
            snprintf(ep, sizeof ep, "%lld", t->ep ? t->ep->id : 0);
            snprintf(st, sizeof st, "%d", status);
            log_event(LOG_DEBUG, "webhooks", "request failed", "delivery", id, "webhook", ep, "status", st, "error",
                      error, NULL);
        }
        outcomes_add(&wh->waiting, t->delivery_id, t->lock, status, error[0] ? error : NULL);
    }
    struct endpoint *ep = t->ep;
    transfer_free(t);
    if (ep && !wh->closing)
        pump(wh, ep);
    if (!wh->closing)
        cycle_soon(wh);
}

/* Starts a signed POST of body to url. Returns 0 or -1 with why. */
static int request_start(struct webhooks *wh, struct transfer *t, const char *url, const char *id,
                         const char *secret, const char *previous, char *why, size_t whylen)
{
    /* an endpoint's URL is checked when it changes, not for each request */
    struct endpoint *ep = t->ep;
    if (ep && ep->url_ok && strcmp(ep->url_ok, url) == 0) {
        t->listed = ep->url_listed;
    } else {
        if (webhook_url_check(url, wh->cfg->webhook_allow_insecure, &t->listed, why, whylen) < 0)
            return -1;
        if (ep) {
            free(ep->url_ok);
            ep->url_ok = strdup(url);
            ep->url_listed = t->listed;
        }
    }
    char ts[24], sig[2 * WHSIG_SIGNATURE_MAX + 2], prev[WHSIG_SIGNATURE_MAX];
    /* real time, not relance's clock: consumers compare it with theirs
     * to refuse replays */
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    size_t blen = strlen(t->body);
    if (!secret || whsig_sign(secret, id, ts, t->body, blen, sig, sizeof sig) < 0) {
        snprintf(why, whylen, "the endpoint has no usable secret");
        return -1;
    }
    if (previous && whsig_sign(previous, id, ts, t->body, blen, prev, sizeof prev) == 0) {
        size_t n = strlen(sig);
        snprintf(sig + n, sizeof sig - n, " %s", prev);
    }
    char h_id[200], h_ts[64], h_sig[sizeof sig + 32];
    snprintf(h_id, sizeof h_id, "webhook-id: %s", id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    const char *hs[] = {"Content-Type: application/json", h_id, h_ts, h_sig,
                        "Expect:" /* no 100-continue round trip (and 1 s wait) for bodies over 1 KiB */};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        struct curl_slist *l = curl_slist_append(t->headers, hs[i]);
        if (!l) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        t->headers = l;
    }
    CURL *e = t->easy = wh->n_spare ? wh->spare[--wh->n_spare] : curl_easy_init();
    if (!e) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "relance/" RELANCE_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, wh->cfg->webhook_timeout * 1000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, wh->cfg->webhook_connect_timeout * 1000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    if (wh->cfg->tls_ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, wh->cfg->tls_ca_file);
    t->started = clock_now();
    if (curl_uv_transfer_start(wh->cu, e, on_request_done, t) < 0) {
        snprintf(why, whylen, "cannot start the request");
        return -1;
    }
    return 0;
}

static struct transfer *transfer_new(struct webhooks *wh, const char *body)
{
    struct transfer *t = calloc(1, sizeof *t);
    if (!t || !(t->body = strdup(body))) {
        free(t);
        return NULL;
    }
    t->wh = wh;
    t->next = wh->transfers;
    if (t->next)
        t->next->prev = t;
    wh->transfers = t;
    return t;
}

static const char *config_secret(const struct webhooks *wh, const char *name)
{
    for (size_t i = 0; name && i < wh->cfg->n_webhooks; i++)
        if (strcmp(wh->cfg->webhooks[i].name, name) == 0)
            return wh->secrets[i];
    return NULL;
}

static void queued_free(struct queued *q)
{
    free(q->event_id);
    free(q->body);
    free(q);
}

/* Starts the endpoint's queued deliveries while it has request slots;
 * all of them, each noted as never sent, once it answered 410. */
static void pump(struct webhooks *wh, struct endpoint *ep)
{
    while (ep->head && (ep->gone || ep->busy < wh->cfg->webhook_max_in_flight)) {
        struct queued *q = ep->head;
        ep->head = q->next;
        if (!ep->head)
            ep->tail = NULL;
        ep->queued--;
        struct transfer *t = ep->gone ? NULL : transfer_new(wh, q->body);
        char why[300];
        if (!t) {
            /* answered 410 since this was claimed (or out of memory): not
             * sent, the claim given back */
            outcomes_add(&wh->waiting, q->delivery_id, q->lock, -1, NULL);
        } else {
            t->delivery_id = q->delivery_id;
            t->lock = q->lock;
            t->ep = ep;
            ep->busy++;
            if (request_start(wh, t, ep->url, q->event_id, ep->secret, ep->previous, why, sizeof why) < 0) {
                outcomes_add(&wh->waiting, q->delivery_id, q->lock, 0, why);
                transfer_free(t);
            }
        }
        queued_free(q);
    }
}

/* An endpoint's row r (where and how to send what this cycle claimed
 * there): kept on the endpoint. An endpoint this cycle had no row of
 * was disabled meanwhile: what was claimed there is given back. */
static void endpoint_row(struct webhooks *wh, const PGresult *res, int r)
{
    struct endpoint *ep = endpoint(wh, strtoll(PQgetvalue(res, r, 1), NULL, 10));
    if (!ep)
        return;
    const char *name = PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2);
    const char *secret = PQgetisnull(res, r, 4) ? config_secret(wh, name) : PQgetvalue(res, r, 4);
    const char *previous = PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5);
    const char *url = PQgetvalue(res, r, 3);
    if (!ep->url || strcmp(ep->url, url) != 0) {
        free(ep->url);
        ep->url = strdup(url);
    }
    if (!secret || !ep->secret || strcmp(ep->secret, secret) != 0) {
        secret_free(ep->secret);
        ep->secret = secret ? strdup(secret) : NULL;
    }
    if (!previous || !ep->previous || strcmp(ep->previous, previous) != 0) {
        secret_free(ep->previous);
        ep->previous = previous ? strdup(previous) : NULL;
    }
    if (ep->url && (!secret || ep->secret) && (!previous || ep->previous))
        ep->seen_cycle = wh->cycle_no; /* else out of memory: its claims are given back */
}

/* One claimed delivery of row r: queued on its endpoint. */
static void deliver(struct webhooks *wh, const PGresult *res, int r)
{
    long long delivery_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    struct endpoint *ep = endpoint(wh, strtoll(PQgetvalue(res, r, 1), NULL, 10));
    if (ep && ep->seen_cycle != wh->cycle_no) {
        claims_add(&wh->unlock, delivery_id, wh->lock_gen); /* disabled meanwhile */
        return;
    }
    struct queued *q = ep ? calloc(1, sizeof *q) : NULL;
    if (!q || !(q->event_id = strdup(PQgetvalue(res, r, 6))) || !(q->body = strdup(PQgetvalue(res, r, 8)))) {
        if (q)
            queued_free(q);
        outcomes_add(&wh->waiting, delivery_id, wh->lock_gen, -1, NULL);
        return;
    }
    q->delivery_id = delivery_id;
    q->lock = wh->lock_gen;
    if (PQgetvalue(res, r, 11)[0] == 't' && delivery_id > ep->after)
        ep->after = delivery_id;
    ep->got++;
    if (ep->tail)
        ep->tail->next = q;
    else
        ep->head = q;
    ep->tail = q;
    ep->queued++;
}

/* ---- the cycle ---------------------------------------------------------------- */

static void sync_config(struct webhooks *wh);

static void on_timer(uv_timer_t *t)
{
    struct webhooks *wh = t->data;
    if (wh->synced)
        cycle(wh);
    else
        sync_config(wh);
}

static void arm(struct webhooks *wh, double ms)
{
    if (wh->closing)
        return;
    uv_timer_start(&wh->timer, on_timer, ms < 1 ? 1 : (uint64_t)ms, 0);
}

static size_t in_flight(const struct webhooks *wh)
{
    size_t n = 0;
    for (size_t i = 0; i < wh->n_eps; i++)
        n += (size_t)(wh->eps[i]->busy + wh->eps[i]->queued);
    return n;
}

static void close_step(struct webhooks *wh);
static void on_ignore(struct db *db, const PGresult *res, void *arg);

/* The claims a cycle was to give back wait for the next one. */
static void unlocking_restore(struct webhooks *wh)
{
    for (size_t i = 0; i < wh->unlock.n; i++)
        claims_add(&wh->unlocking, wh->unlock.id[i], wh->unlock.lock[i]);
    struct claims t = wh->unlock;
    wh->unlock = wh->unlocking;
    wh->unlocking = t;
    wh->unlocking.n = 0;
}

static void on_cycle(struct db *db, const PGresult *res, void *arg)
{
    struct webhooks *wh = arg;
    wh->cycling = 0;
    wh->pending--;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        outcomes_restore(wh);
        unlocking_restore(wh);
        if (res) {
            log_event(LOG_ERROR, "webhooks", "delivery cycle failed", "error", PQresultErrorMessage(res), NULL);
            /* Its claims were locked and never came back (an advisory lock
             * outlives the statement that failed): every lock is given up,
             * and what this replica still holds is held no more (its
             * outcomes are still recorded, if nobody claimed it since). */
            if (db_query(db, "SELECT pg_advisory_unlock_all()", 0, NULL, on_ignore, NULL) == 0) {
                wh->lock_gen++;
                wh->unlock.n = 0;
            }
        }
        if (wh->closing)
            close_step(wh);
        else
            arm(wh, RETRY_MS);
        return;
    }
    /* recorded and committed: the next cycle gives their claims back */
    unsigned gen = locks_now(wh, db);
    for (size_t i = 0; i < wh->recording.n; i++)
        if (wh->recording.v[i].lock == gen)
            claims_add(&wh->unlock, wh->recording.v[i].delivery_id, gen);
    wh->unlocking.n = 0;
    outcomes_clear(&wh->recording);
    for (size_t i = 0; i < wh->n_eps; i++)
        if (wh->eps[i]->gone && wh->eps[i]->gone_cycle == wh->cycle_no)
            wh->eps[i]->gone = 0; /* recorded: the database now refuses it claims */
    int rows = PQntuples(res);
    if (wh->closing) {
        /* claimed as the close began: given back by the final record */
        for (int r = 0; r < rows; r++)
            if (!PQgetisnull(res, r, 0))
                outcomes_add(&wh->waiting, strtoll(PQgetvalue(res, r, 0), NULL, 10), wh->lock_gen, -1, NULL);
        close_step(wh);
        return;
    }
    double next = NAN;
    for (int r = 0; r < rows; r++) {
        if (PQgetisnull(res, r, 0) && !PQgetisnull(res, r, 1)) {
            endpoint_row(wh, res, r);
            continue;
        }
        if (PQgetisnull(res, r, 0)) {
            if (!PQgetisnull(res, r, 9))
                next = strtod(PQgetvalue(res, r, 9), NULL);
            if (!PQgetisnull(res, r, 10))
                wh->hold = atoi(PQgetvalue(res, r, 10));
            continue;
        }
        if (PQgetisnull(res, r, 8)) /* locked, but owed no more */
            claims_add(&wh->unlock, strtoll(PQgetvalue(res, r, 0), NULL, 10), gen);
        else
            deliver(wh, res, r);
    }
    for (size_t i = 0; i < wh->n_eps; i++) {
        wh->eps[i]->dry = wh->eps[i]->got < wh->eps[i]->asked;
        pump(wh, wh->eps[i]);
    }
    if (wh->again || (wh->waiting.n && worth_cycling(wh))) {
        wh->again = 0;
        cycle(wh);
        return;
    }
    if (wh->waiting.n || wh->unlock.n) {
        arm(wh, OUTCOME_MS);
        return;
    }
    double ms = IDLE_POLL_MS;
    if (!isnan(next)) {
        double wait = (next - clock_now()) / clock_speed() * 1000.0;
        if (wait <= 0) /* due, but each endpoint is full here, or locked by another replica */
            ms = in_flight(wh) ? IDLE_POLL_MS : 200;
        else if (wait < ms)
            ms = wait + 5;
    }
    arm(wh, ms);
}

/* id into the array b when its claim is of generation gen. */
static void claim_add(struct buf *b, long long id, unsigned lock, unsigned gen)
{
    char n[32];
    if (lock != gen)
        return;
    snprintf(n, sizeof n, "%lld", id);
    pgarray_add(b, n);
}

/* id as a key of the JSON object b when its claim is of generation gen. */
static void held_key(struct buf *b, long long id, unsigned lock, unsigned gen)
{
    if (lock == gen)
        buf_addf(b, "%s\"%lld\":0", b->len ? "," : "{", id);
}

static void cycle(struct webhooks *wh)
{
    struct db *db = cycle_db(wh);
    if (!wh->synced || wh->closing)
        return;
    if (!db) { /* the background connection is down: db.c makes it again */
        if (!wh->cycling)
            arm(wh, RETRY_MS);
        return;
    }
    if (wh->cycling) {
        wh->again = 1;
        return;
    }
    unsigned gen = locks_now(wh, db);
    /* what ended goes into this cycle, and what it recorded the last time
     * is given back */
    struct outcomes t = wh->recording;
    wh->recording = wh->waiting;
    wh->waiting = t;
    struct claims u = wh->unlocking;
    wh->unlocking = wh->unlock;
    wh->unlock = u;
    wh->unlock.n = 0;
    wh->cycle_no++;
    for (size_t i = 0; i < wh->n_eps; i++)
        if (wh->eps[i]->gone && wh->eps[i]->gone_cycle == 0)
            wh->eps[i]->gone_cycle = wh->cycle_no;
    struct buf arrays[3] = {{0}}, busy_ids = {0}, busy = {0}, after = {0}, unlock = {0}, held = {0};
    const char *rec[3];
    outcome_arrays(&wh->recording, arrays, rec);
    char n[32];
    for (size_t i = 0; i < wh->unlocking.n; i++)
        claim_add(&unlock, wh->unlocking.id[i], wh->unlocking.lock[i], gen);
    /* the claims held: queued, in flight, ended */
    for (size_t i = 0; i < wh->recording.n; i++)
        held_key(&held, wh->recording.v[i].delivery_id, wh->recording.v[i].lock, gen);
    for (struct transfer *x = wh->transfers; x; x = x->next)
        if (x->delivery_id)
            held_key(&held, x->delivery_id, x->lock, gen);
    for (size_t i = 0; i < wh->n_eps; i++) {
        for (struct queued *q = wh->eps[i]->head; q; q = q->next)
            held_key(&held, q->delivery_id, q->lock, gen);
        /* an endpoint answered 410 and not yet recorded: none claimed */
        int taken = wh->eps[i]->gone ? 1 << 20 : wh->eps[i]->busy + wh->eps[i]->queued;
        /* from the start when it holds nothing here, found less than it
         * asked, or now and then */
        if (!taken || wh->eps[i]->dry || wh->cycle_no % RESCAN_CYCLES == 0)
            wh->eps[i]->after = 0;
        wh->eps[i]->asked = wh->hold - taken;
        wh->eps[i]->got = 0;
        if (!taken)
            continue;
        snprintf(n, sizeof n, "%lld", wh->eps[i]->id);
        pgarray_add(&busy_ids, n);
        snprintf(n, sizeof n, "%d", taken);
        pgarray_add(&busy, n);
        snprintf(n, sizeof n, "%lld", wh->eps[i]->after);
        pgarray_add(&after, n);
    }
    char now[64], per[16], total[16], min[16];
    clock_format(clock_now(), now, sizeof now);
    snprintf(per, sizeof per, "%d", HOLD_MAX);
    snprintf(total, sizeof total, "%d", HOLD_TOTAL);
    snprintf(min, sizeof min, "%ld", (long)wh->cfg->webhook_max_in_flight);
    const char *p[12] = {now, pgarray_end(&unlock), rec[0], rec[1], rec[2],
                         pgarray_end(&held) /* closes a JSON object as an array: with "}" */,
                         pgarray_end(&busy_ids), pgarray_end(&busy), pgarray_end(&after), per, total, min};
    int ok = 1;
    for (size_t i = 0; i < 12; i++)
        ok = ok && p[i];
    if (ok && db_query(db,
                       "SELECT delivery_id, webhook_id, name, url, secret, previous_secret, event_id, attempts, body,"
                       " extract(epoch FROM next_at), hold, fresh"
                       " FROM relance_webhooks_cycle($1, $2::bigint[], $3::bigint[], $4::int[], $5::text[],"
                       " $6::jsonb, $7::bigint[], $8::int[], $9::bigint[], $10::int, $11::int, $12::int)",
                       12, p, on_cycle, wh) == 0) {
        wh->cycling = 1;
        wh->pending++;
    } else {
        outcomes_restore(wh);
        unlocking_restore(wh);
        arm(wh, RETRY_MS);
    }
    for (size_t i = 0; i < 3; i++)
        buf_free(&arrays[i]);
    buf_free(&busy_ids);
    buf_free(&busy);
    buf_free(&after);
    buf_free(&unlock);
    buf_free(&held);
}

/* ---- set-up, sync, wake ------------------------------------------------------------ */

struct webhooks *webhooks_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready, char *err,
                              size_t errlen)
{
    struct webhooks *wh = calloc(1, sizeof *wh);
    if (!wh || !(wh->secrets = calloc(cfg->n_webhooks + 1, sizeof *wh->secrets))) {
        free(wh);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    wh->loop = loop;
    wh->cfg = cfg;
    wh->ready = ready;
    wh->hold = HOLD_MAX;
    for (size_t i = 0; i < cfg->n_webhooks; i++)
        if (secret_webhook(&cfg->webhooks[i], &wh->secrets[i], err, errlen) < 0)
            goto fail;
    wh->cu = curl_uv_new(loop);
    if (!wh->cu) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    uv_timer_init(loop, &wh->timer);
    wh->timer.data = wh;
    return wh;
fail:
    for (size_t i = 0; i < cfg->n_webhooks; i++)
        secret_free(wh->secrets[i]);
    free(wh->secrets);
    free(wh);
    return NULL;
}

static void on_synced(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct webhooks *wh = arg;
    wh->pending--;
    if (wh->closing) {
        close_step(wh);
        return;
    }
    if (!res)
        return; /* the connection went: db_up comes again */
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_event(LOG_ERROR, "webhooks", "cannot sync the configuration's endpoints", "error",
                  PQresultErrorMessage(res), NULL);
        arm(wh, RETRY_MS); /* the timer tries the sync again */
        return;
    }
    wh->synced = 1;
    cycle(wh);
}

static void on_ignore(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res;
    (void)arg;
}

static void sync_config(struct webhooks *wh)
{
    struct db *db = ready_db(wh->ready);
    if (!db || wh->closing)
        return;
    struct buf names = {0}, urls = {0}, types = {0}, descriptions = {0};
    for (size_t i = 0; i < wh->cfg->n_webhooks; i++) {
        const struct config_webhook *w = &wh->cfg->webhooks[i];
        struct buf t = {0};
        for (size_t k = 0; w->types && w->types[k]; k++) {
            if (k)
                buf_add(&t, ",", 1);
            buf_add(&t, w->types[k], strlen(w->types[k]));
        }
        buf_add(&t, "", 1);
        pgarray_add(&names, w->name);
        pgarray_add(&urls, w->url);
        pgarray_add(&types, t.p ? t.p : "");
        pgarray_add(&descriptions, w->description);
        buf_free(&t);
    }
    char now[64];
    clock_format(clock_now(), now, sizeof now);
    const char *p[5] = {pgarray_end(&names), pgarray_end(&urls), pgarray_end(&types), pgarray_end(&descriptions),
                        now};
    if (!p[0] || !p[1] || !p[2] || !p[3] ||
        db_query(db, "LISTEN relance_webhooks", 0, NULL, on_ignore, NULL) < 0 ||
        db_query(db,
                 "SELECT relance_webhooks_sync_config($1::text[], $2::text[], $3::text[], $4::text[], $5)", 5, p,
                 on_synced, wh) < 0)
        arm(wh, RETRY_MS);
    else
        wh->pending++;
    buf_free(&names);
    buf_free(&urls);
    buf_free(&types);
    buf_free(&descriptions);
}

void webhooks_db_up(struct webhooks *wh)
{
    if (!wh || wh->closing)
        return;
    wh->synced = 0;
    sync_config(wh);
}

void webhooks_wake(struct webhooks *wh)
{
    if (wh && !wh->closing)
        cycle(wh);
}

void webhooks_set_metrics(struct webhooks *wh, struct metrics *m)
{
    static const char *const labels[] = {"webhook", "outcome", NULL};
    wh->m_requests = metrics_family_add(m, METRICS_COUNTER, "relance_webhook_requests_total",
                                        "Webhook requests of the outbox by endpoint and outcome: delivered (2xx), "
                                        "rejected (another status), gone (410), unreachable (no answer).",
                                        labels, NULL, 0);
    wh->m_duration = metrics_family_add(m, METRICS_HISTOGRAM, "relance_webhook_request_duration_seconds",
                                        "How long webhook requests of the outbox took.", NULL, NULL, 0);
}

/* ---- a test request ------------------------------------------------------------ */

int webhooks_send(struct webhooks *wh, const char *url, const char *name, const char *secret, const char *previous,
                  const char *id,
                  const char *body, webhooks_sent_cb done, void *arg, char *why, size_t whylen)
{
    if (wh->closing) {
        snprintf(why, whylen, "relance is stopping");
        return -1;
    }
    if (!secret)
        secret = config_secret(wh, name);
    struct transfer *t = transfer_new(wh, body);
    if (!t) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    t->cb = done;
    t->cb_arg = arg;
    if (request_start(wh, t, url, id, secret, previous, why, whylen) < 0) {
        transfer_free(t);
        return -1;
    }
    return 0;
}

/* ---- closing ---------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct webhooks *wh = h->data;
    wh->closed_parts++;
    close_step(wh);
}

static void on_cu_closed(void *arg)
{
    struct webhooks *wh = arg;
    wh->closed_parts++;
    close_step(wh);
}

static void on_final(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct webhooks *wh = arg;
    wh->pending--;
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
        log_event(LOG_WARN, "webhooks", "cannot record the last outcomes: they are sent again", "error",
                  PQresultErrorMessage(res), NULL);
    wh->final_sent = 2;
    close_step(wh);
}

/* Once the timer and the multi handle are closed and the final record is
 * made (or cannot be), wh goes. */
static void close_step(struct webhooks *wh)
{
    if (wh->closed_parts < 2 || wh->final_sent == 1)
        return;
    if (wh->final_sent == 0 && wh->waiting.n && cycle_db(wh) && !wh->pending) {
        /* the outcomes known, and the claims of what was cut given back */
        struct outcomes t = wh->recording;
        wh->recording = wh->waiting;
        wh->waiting = t;
        struct buf arrays[3] = {{0}};
        const char *rec[3];
        char now[64];
        outcome_arrays(&wh->recording, arrays, rec);
        clock_format(clock_now(), now, sizeof now);
        const char *p[4] = {now, rec[0], rec[1], rec[2]};
        if (p[1] && p[2] && p[3] &&
            db_query(cycle_db(wh), "SELECT relance_webhooks_record($1, $2::bigint[], $3::int[], $4::text[])", 4, p,
                     on_final, wh) == 0) {
            wh->final_sent = 1;
            wh->pending++;
        }
        for (size_t i = 0; i < 3; i++)
            buf_free(&arrays[i]);
        if (wh->final_sent == 1)
            return;
    }
    if (wh->pending)
        return; /* their callbacks come back here */
    outcomes_clear(&wh->waiting);
    outcomes_clear(&wh->recording);
    free(wh->waiting.v);
    free(wh->recording.v);
    claims_free(&wh->unlock);
    claims_free(&wh->unlocking);
    for (size_t i = 0; i < wh->cfg->n_webhooks; i++)
        secret_free(wh->secrets[i]);
    free(wh->secrets);
    for (size_t i = 0; i < wh->n_eps; i++) {
        free(wh->eps[i]->url_ok);
        free(wh->eps[i]->url);
        secret_free(wh->eps[i]->secret);
        secret_free(wh->eps[i]->previous);
        free(wh->eps[i]);
    }
    free(wh->eps);
    void (*cb)(void *) = wh->on_closed;
    void *arg = wh->closed_arg;
    free(wh);
    if (cb)
        cb(arg);
}

void webhooks_close(struct webhooks *wh, void (*on_closed)(void *arg), void *arg)
{
    wh->closing = 1;
    wh->on_closed = on_closed;
    wh->closed_arg = arg;
    /* requests in flight end now: each is noted as never sent (-1), its
     * claim given back (it may have reached the endpoint: at least once) */
    while (wh->transfers) {
        struct transfer *t = wh->transfers;
        if (curl_uv_transfer_abort(wh->cu, t->easy) == 0) {
            if (t->cb)
                t->cb(t->cb_arg, 0, "relance is stopping", clock_now() - t->started);
            else
                outcomes_add(&wh->waiting, t->delivery_id, t->lock, -1, NULL);
        }
        transfer_free(t);
    }
    for (size_t i = 0; i < wh->n_eps; i++) {
        wh->eps[i]->gone = 1; /* pump gives every queued one back */
        pump(wh, wh->eps[i]);
    }
    uv_timer_stop(&wh->timer);
    uv_close((uv_handle_t *)&wh->timer, on_handle_closed);
    while (wh->n_spare)
        curl_easy_cleanup(wh->spare[--wh->n_spare]);
    curl_uv_close(wh->cu, on_cu_closed, wh);
}
