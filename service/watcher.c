/* watcher: the mailbox leases, the per-mailbox pass state machine and the
 * glue from fetched bytes to relance_inbound. It owns one xfer_pool (the
 * threads its IMAP commands run on: imap.c says why), one box per watched
 * account (its secret, its imap_account, its pass, its channel), the lease
 * and tick timers, and the waiters of watcher_check_now and
 * watcher_save_sent. The IMAP protocol is imap.c's,
 * what a message is classify.c's, what it does sql/functions/inbound.sql's; where a folder
 * was left is sql/functions/watch.sql's. Passes are one task per box at a time; at most
 * imap_max_connections boxes run a task at once. A box's imap channel
 * (its easy handle, its connection and receive buffer) rests with the box
 * after a task, so the next pass speaks over the same login; at most
 * imap_max_connections channels exist at once (closing ones included, so
 * the cap holds for connections), and a box that needs one when none is
 * left closes the channel that has rested longest (its LOGOUT on a pool
 * thread) and takes its turn once that is done. Memory stays flat with a
 * thousand accounts; a channel resting past the account's idle timeout,
 * or whose box lost its lease, is closed. */
#include "watcher.h"

#include "clock.h"
#include "db.h"
#include "imap.h"
#include "inbound.h"
#include "json.h"
#include "leases.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "pgarray.h"
#include "pgerr.h"
#include "secret.h"
#include "oauth2.h"
#include "ready.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100
#define MAX_PER_PASS 1000       /* new UIDs of a folder read in one pass; the rest next pass, at once */
#define BACKOFF_MAX_MS 60000
#define TOKEN_WAIT_MS 10000     /* xoauth2: how long a due pass waits for its first token */

struct waiter {
    struct waiter *next;
    void (*cb)(void *arg, int changed);
    void *arg;
};

struct sent_job {
    struct sent_job *next;
    char *msg;
    size_t len;
    void (*cb)(void *arg, int status);
    void *arg;
};

/* A mailbox's lifecycle: between tasks it rests (IDLE, or BACKOFF after
 * a failed pass); a due task may first wait for an OAuth2 token; then a
 * pass or the saving of Sent copies runs, one task at a time, and the box
 * rests again. Whether this replica holds the box's lease is the lease
 * loop's business, kept apart (a lease can be lost during a pass, and
 * Sent copies are saved without one). */
enum box_state {
    BOX_IDLE,       /* no task; the next pass is due at next_ms */
    BOX_BACKOFF,    /* no task; the last pass failed (failures), the next one waits longer */
    BOX_TOKEN_WAIT, /* xoauth2: a due task waits for its token, until token_wait_end */
    BOX_PASS,       /* a pass runs: imap exists */
    BOX_SENT,       /* Sent copies are being saved: imap exists */
    BOX_CLOSED,     /* watcher_close */
    BOX_STATE_COUNT
};
static const char *const box_state_names[] = {"IDLE", "BACKOFF", "TOKEN_WAIT", "PASS", "SENT", "CLOSED"};
/* relance_imap_mailboxes' state label */
static const char *const box_state_labels[] = {"idle", "backoff", "token_wait", "pass", "sent", "closed"};
_Static_assert(sizeof box_state_labels / sizeof box_state_labels[0] == BOX_STATE_COUNT, "a label for every state");
_Static_assert(sizeof box_state_names / sizeof box_state_names[0] == BOX_STATE_COUNT, "a name for every state");

/* The transitions, one bit per target state. A task that cannot begin
 * (out of memory) leaves a box that waited for its token resting. */
#define TO(st) (1u << (st))
static const unsigned box_state_next[BOX_STATE_COUNT] = {
    [BOX_IDLE] = TO(BOX_TOKEN_WAIT) | TO(BOX_PASS) | TO(BOX_SENT) | TO(BOX_CLOSED),
    [BOX_BACKOFF] = TO(BOX_TOKEN_WAIT) | TO(BOX_PASS) | TO(BOX_SENT) | TO(BOX_CLOSED),
    [BOX_TOKEN_WAIT] = TO(BOX_PASS) | TO(BOX_SENT) | TO(BOX_IDLE) | TO(BOX_BACKOFF) | TO(BOX_CLOSED),
    [BOX_PASS] = TO(BOX_IDLE) | TO(BOX_BACKOFF) | TO(BOX_CLOSED),
    [BOX_SENT] = TO(BOX_IDLE) | TO(BOX_BACKOFF) | TO(BOX_CLOSED),
    [BOX_CLOSED] = 0,
};
#undef TO

/* When a fetched message reached the mailbox (its Received date). */
struct arrival {
    uint32_t uid;
    time_t at;
};

struct box {
    struct watcher *w;
    const struct config_account *cfg;
    char *email;
    char *password;
    char *bearer;               /* xoauth2: a copy of the token last handed to IMAP */
    int token_retry;            /* xoauth2: a refused token was dropped; the pass is tried again at once */
    int token_dropped;          /* xoauth2: a refused token was dropped since the last good pass */
    char **folders;             /* the account's, or {"INBOX", NULL} */
    int own_folders;
    struct imap_account acct;
    struct imap *imap;          /* while a task runs, and resting after it */
    uint64_t rested_ms;         /* uv_now when imap began to rest */
    int leased;
    enum box_state state;
    uint64_t next_ms;           /* uv_now when the next pass is due */
    double last_check;          /* clock_now() when the last pass that read everything began; 0 none */
    double pass_began;          /* clock_now() when this pass began */
    int failures;               /* passes failed in a row */
    uint64_t token_wait_end;    /* xoauth2: in BOX_TOKEN_WAIT, a due task waits for a token until then */
    char last_error[IMAP_TEXT_MAX];
    /* the pass */
    size_t folder_i;
    uint32_t uidvalidity, uidnext;
    int since_used;             /* a bounded rescan: the folder is read to uidnext - 1 after */
    uint32_t *todo;
    uint32_t *sizes;            /* RFC822.SIZE of each of todo[0..sized); 0: expunged since the search */
    struct arrival *arrivals;   /* the batch being recorded: when each message reached the mailbox */
    size_t n_arrivals;
    uint64_t pass_began_ns;     /* uv_hrtime when this pass began: its duration */
    size_t n_todo, i_todo, sized;
    size_t fetch_cap;           /* most UIDs a fetch asks for; halved when libcurl finds an answer too large */
    size_t n_batch;             /* UIDs of todo in the fetch or record in flight, from i_todo */
    int folder_more;            /* MAX_PER_PASS cut this folder's list short */
    int more;                   /* ... some folder's, in this pass */
    int processed;              /* messages recorded in this pass */
    int carried;                /* ... in the passes before it that the waiters in_pass waited through */
    int db_busy;                /* a query of this box is in flight */
    struct waiter *waiting;     /* check_now callers for the next pass */
    struct waiter *in_pass;     /* ... for this one */
    /* Sent copies */
    struct sent_job *sent_head, *sent_tail;
    char sent_folder[512];
};

struct watcher {
    uv_loop_t *loop;
    const struct config *cfg;
    const struct ready *ready;
    struct oauth2 *oauth2;     /* tokens of xoauth2 accounts (borrowed) */
    struct xfer_pool *pool;     /* the threads IMAP commands run on */
    size_t channels;            /* imap channels open or closing (<= max_active) */
    size_t channels_closing;
    struct box *boxes;
    size_t n_boxes;
    size_t active;              /* boxes running a task */
    size_t max_active;
    size_t tick_from;       /* where the next tick starts looking: round robin */
    uv_timer_t tick;
    struct leases *leases;      /* of the mailboxes below */
    char replica[96];
    int closing;
    int pending;                /* handles and parts still closing */
    size_t outstanding;         /* db queries in flight */
    /* NULL without metrics */
    struct metrics_family *mailboxes, *leased_boxes, *pass_seconds, *reply_to_stop;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void box_next_folder(struct box *b);
static void box_task_end(struct box *b, int status);
static void sent_next(struct box *b);
static void maybe_free(struct watcher *w);

/* ======================================================================
 * Set-up
 * ====================================================================== */

int watcher_wanted(const struct config *cfg)
{
    if (!cfg->transport || strcmp(cfg->transport, "smtp") != 0)
        return 0;
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++)
            if (cfg->pools[i].accounts[k].imap)
                return 1;
    return 0;
}

static void box_bearer_wipe(struct box *b)
{
    if (b->bearer) {
        memset(b->bearer, 0, strlen(b->bearer));
        free(b->bearer);
        b->bearer = NULL;
    }
}

/* The token a command logs in with; a copy is kept to name it should the
 * server refuse it. */
static const char *box_bearer(void *arg)
{
    struct box *b = arg;
    const char *t = b->w->oauth2 ? oauth2_token_peek(b->w->oauth2, b->email) : NULL;
    if (t && (!b->bearer || strcmp(b->bearer, t) != 0)) {
        box_bearer_wipe(b);
        b->bearer = strdup(t);
    }
    return t;
}


int watcher_imap_account(const struct config *cfg, const struct config_account *a, struct imap_account *x,
                         char **password, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    *password = NULL;
    if (!a->imap) {
        snprintf(err, errlen, "account %s has no 'imap' URL", a->email);
        return -1;
    }
    x->url = a->imap;
    if (a->tls && strcmp(a->tls, "none") != 0 && strcmp(a->tls, "required") != 0) {
        snprintf(err, errlen, "account %s: tls must be 'none' (test servers only) or left out", a->email);
        return -1;
    }
    x->tls = a->tls && strcmp(a->tls, "none") == 0 ? IMAP_TLS_NONE : IMAP_TLS_REQUIRED;
    if (strncasecmp(a->imap, "imap://", 7) != 0 && strncasecmp(a->imap, "imaps://", 8) != 0) {
        snprintf(err, errlen, "account %s: imap must be an imap:// (STARTTLS) or imaps:// URL", a->email);
        return -1;
    }
    if (x->tls == IMAP_TLS_NONE && strncasecmp(a->imap, "imaps://", 8) == 0) {
        snprintf(err, errlen, "account %s: imaps:// is TLS; tls: none contradicts it", a->email);
        return -1;
    }
    x->username = a->username ? a->username : a->email;
    x->ca_file = a->tls_ca_file ? a->tls_ca_file : cfg->tls_ca_file;
    x->idle_timeout_s = 2 * a->watch_interval + 60;
    /* imap_auth, not auth: auth is the SMTP side's (an account sending
     * through an IP-allow-listed relay has auth: none and still logs in
     * here); config_parse defaults it to auth's value */
    const char *login = a->imap_auth ? a->imap_auth : a->auth;
    if (!login || strcmp(login, "password") == 0 || strcmp(login, "login") == 0) {
        x->auth = IMAP_AUTH_PASSWORD;
        int rc = secret_account_password(a, password, err, errlen);
        if (rc < 0)
            return rc; /* -ENOENT: a secret missing now */
        x->password = *password;
    } else if (strcmp(login, "xoauth2") == 0) {
        x->auth = IMAP_AUTH_XOAUTH2; /* the caller sets bearer */
    } else {
        snprintf(err, errlen, "account %s: IMAP needs a login (imap_auth: password or xoauth2)", a->email);
        return -1;
    }
    return 0;
}

static int box_setup(struct watcher *w, struct box *b, const struct config_account *a, char *err, size_t errlen)
{
    static const char *const inbox_only[] = {"INBOX", NULL};
    b->w = w;
    b->cfg = a;
    b->email = a->email;
    b->folders = a->folders && a->folders[0] ? a->folders : (char **)inbox_only;
    if (watcher_imap_account(w->cfg, a, &b->acct, &b->password, err, errlen) < 0)
        return -1;
    if (b->acct.auth == IMAP_AUTH_XOAUTH2) {
        b->acct.bearer = box_bearer;
        b->acct.bearer_arg = b;
    }
    return 0;
}

static void boxes_free(struct watcher *w)
{
    for (size_t i = 0; i < w->n_boxes; i++) {
        struct box *b = &w->boxes[i];
        secret_free(b->password);
        box_bearer_wipe(b);
        free(b->todo);
        free(b->sizes);
        free(b->arrivals);
    }
    free(w->boxes);
    w->boxes = NULL;
    w->n_boxes = 0;
}

static void on_tick(uv_timer_t *t);
static void on_lease_changed(void *arg, const struct lease *l);

struct watcher *watcher_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready,
                            struct oauth2 *oauth2, char *err, size_t errlen)
{
    struct watcher *w = calloc(1, sizeof *w);
    if (!w)
        goto nomem;
    w->loop = loop;
    w->cfg = cfg;
    w->ready = ready;
    w->oauth2 = oauth2;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++)
            n += cfg->pools[i].accounts[k].imap != NULL;
    w->boxes = calloc(n + 1, sizeof *w->boxes);
    if (!w->boxes)
        goto nomem;
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            const struct config_account *a = &cfg->pools[i].accounts[k];
            if (!a->imap || a->unavailable)
                continue; /* (an account without its secret is paused: its box waits too) */
            if (box_setup(w, &w->boxes[w->n_boxes++], a, err, errlen) < 0)
                goto fail;
        }
    w->max_active = cfg->imap_max_connections > 0 ? (size_t)cfg->imap_max_connections : 20;
    /* a thread per channel: a task's commands or a close's LOGOUT */
    w->pool = xfer_pool_new(w->max_active);
    if (!w->pool)
        goto nomem;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(w->replica, sizeof w->replica, "%s-%ld-%lx", host, (long)getpid(),
             (unsigned long)(uv_hrtime() ^ (uint64_t)random()));
    const char **names = calloc(w->n_boxes + 1, sizeof *names);
    for (size_t i = 0; names && i < w->n_boxes; i++)
        names[i] = w->boxes[i].email;
    w->leases = names ? leases_new(loop, ready, LEASES_MAILBOXES, w->replica, names, w->n_boxes, on_lease_changed, w)
                      : NULL;
    free(names);
    if (!w->leases)
        goto nomem;
    uv_timer_init(loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    return w;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (w) {
        boxes_free(w);
        xfer_pool_close(w->pool);
        free(w);
    }
    return NULL;
}

/* ======================================================================
 * Database helpers
 * ====================================================================== */

static int db_ready(const struct watcher *w)
{
    return !w->closing && ready_db(w->ready);
}

struct query_ctx {
    struct watcher *w;
    struct box *b;
    void (*done)(struct box *b, const PGresult *res);
};

static void on_query(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct query_ctx *q = arg;
    struct watcher *w = q->w;
    struct box *b = q->b;
    void (*done)(struct box *, const PGresult *) = q->done;
    free(q);
    w->outstanding--;
    if (b)
        b->db_busy = 0;
    if (!w->closing)
        done(b, res);
    else
        maybe_free(w);
}

/* A query for box b (or the watcher, b NULL). Returns 0 or -1. */
static int query(struct watcher *w, struct box *b, const char *sql, int n, const char *const *params,
                 void (*done)(struct box *b, const PGresult *res))
{
    if (!db_ready(w))
        return -1;
    struct query_ctx *q = malloc(sizeof *q);
    if (!q)
        return -1;
    q->w = w;
    q->b = b;
    q->done = done;
    if (db_query(w->ready->db, sql, n, params, on_query, q) < 0) {
        free(q);
        return -1;
    }
    w->outstanding++;
    if (b)
        b->db_busy = 1;
    return 0;
}

/* ======================================================================
 * Leases
 * ====================================================================== */

static struct box *box_find(const struct watcher *w, const char *email)
{
    for (size_t i = 0; email && i < w->n_boxes; i++)
        if (strcasecmp(w->boxes[i].email, email) == 0)
            return &w->boxes[i];
    return NULL;
}

/* A mailbox's lease came or went (leases.c renews them all at once). */
static void on_lease_changed(void *arg, const struct lease *l)
{
    struct watcher *w = arg;
    struct box *b = box_find(w, l->name);
    if (!b || w->closing)
        return;
    if (l->held && !b->leased) {
        char interval[24];
        snprintf(interval, sizeof interval, "%lds", b->cfg->watch_interval);
        log_event(LOG_INFO, "watcher", "watching mailbox", "account", b->email, "interval", interval, "replica",
                  w->replica, NULL);
        b->next_ms = 0; /* a pass at once */
    } else if (!l->held && b->leased) {
        log_event(LOG_WARN, "watcher", "mailbox lease lost: another replica watches it", "account", b->email, NULL);
    }
    if (!l->held != !b->leased)
        metrics_gauge_add(w->leased_boxes, NULL, l->held ? 1 : -1);
    b->leased = l->held;
}

void watcher_set_metrics(struct watcher *w, struct metrics *m)
{
    static const char *const state[] = {"state", NULL};
    w->mailboxes = metrics_family_add(m, METRICS_GAUGE, "relance_imap_mailboxes",
                                      "Watched mailboxes of this process by state: idle, backoff (the last pass "
                                      "failed), token_wait, pass, sent (saving Sent copies), closed.",
                                      state, NULL, 0);
    w->leased_boxes = metrics_family_add(m, METRICS_GAUGE, "relance_imap_mailboxes_leased",
                                         "Mailboxes whose lease this process holds: the ones it watches (the "
                                         "others, configured here too, rest idle).",
                                         NULL, NULL, 0);
    for (size_t i = 0; i < w->n_boxes; i++)
        metrics_gauge_add(w->leased_boxes, NULL, w->boxes[i].leased ? 1 : 0);
    w->pass_seconds = metrics_family_add(m, METRICS_HISTOGRAM, "relance_imap_pass_duration_seconds",
                                         "Duration of a mailbox pass (every folder read and recorded), failed "
                                         "ones included.",
                                         NULL, NULL, 0);
    w->reply_to_stop = metrics_family_add(m, METRICS_HISTOGRAM, "relance_reply_to_stop_seconds",
                                          "Time from a reply's arrival in the mailbox (its Received date) to its "
                                          "enrollment stopped.",
                                          NULL, NULL, 0);
    for (size_t i = 0; i < BOX_STATE_COUNT; i++)
        metrics_gauge_set(w->mailboxes, &box_state_labels[i], 0);
    for (size_t i = 0; i < w->n_boxes; i++)
        metrics_gauge_add(w->mailboxes, &box_state_labels[w->boxes[i].state], 1);
}

void watcher_db_up(struct watcher *w)
{
    leases_renew(w->leases);
}

/* ======================================================================
 * Passes
 * ====================================================================== */

/* The one place a box's state changes, said at debug level:
 * "mailbox PASS -> IDLE account=alice@acme.example". */
static void box_state_set(struct box *b, enum box_state to)
{
    int allowed = (box_state_next[b->state] & (1u << to)) != 0;
    assert(allowed);
    char event[64];
    snprintf(event, sizeof event, "mailbox %s -> %s", box_state_names[b->state], box_state_names[to]);
    /* a release build (no assert) still says so, loudly */
    log_event(allowed ? LOG_DEBUG : LOG_ERROR, "watcher", event, "account", b->email, NULL);
    metrics_gauge_add(b->w->mailboxes, &box_state_labels[b->state], -1);
    metrics_gauge_add(b->w->mailboxes, &box_state_labels[to], 1);
    b->state = to;
}

/* Where a box goes between tasks. */
static enum box_state box_rest(const struct box *b)
{
    return b->failures ? BOX_BACKOFF : BOX_IDLE;
}

static int box_in_task(const struct box *b)
{
    return b->state == BOX_PASS || b->state == BOX_SENT;
}

static void waiters_fire(struct waiter **list, int changed)
{
    struct waiter *x = *list;
    *list = NULL;
    while (x) {
        struct waiter *next = x->next;
        x->cb(x->arg, changed);
        free(x);
        x = next;
    }
}

static const char *folder_of(const struct box *b)
{
    return b->folders[b->folder_i];
}

static void box_fail(struct box *b, const char *what, const char *why)
{
    /* said once per outage (later errors at debug); the recovery is said too */
    log_event(b->failures == 0 ? LOG_WARN : LOG_DEBUG, "watcher", what, "account", b->email, "folder",
              b->state == BOX_PASS && b->folders[b->folder_i] ? folder_of(b) : "-", "error", why, NULL);
    snprintf(b->last_error, sizeof b->last_error, "%.*s", (int)sizeof b->last_error - 1, why ? why : ""); /* cut: a summary */
    box_task_end(b, -EIO);
}

static void record_next(struct box *b);
static void on_sized(struct imap *im, const struct imap_reply *r, void *arg);

/* An IMAP command of a pass ended: 1 when it failed (the pass is over,
 * or the watcher closing ended it), else 0. */
static int pass_reply_failed(struct box *b, const struct imap_reply *r)
{
    if (r->status == -ECANCELED)
        return 1; /* closing: box_task_end already ran */
    if (r->status < 0) {
        box_fail(b, "mailbox unreachable; retrying", r->text);
        return 1;
    }
    return 0;
}

/* Why an IMAP command could not start. */
static const char *start_error(int rc)
{
    return rc == -EAGAIN ? "no OAuth2 access token (see the oauth2 lines)" : strerror(-rc);
}

static void on_advanced(struct box *b, const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        box_fail(b, "cannot record the mailbox's progress",
                 pgerr_line(res, NULL, "database connection lost", msg, sizeof msg));
        return;
    }
    b->folder_i++;
    box_next_folder(b);
}

/* The folder's list is done: a bounded rescan also moves past what it
 * skipped as older than the watch. */
static void folder_done(struct box *b)
{
    if (b->folder_more || !b->since_used || b->uidnext < 2) {
        b->folder_i++;
        box_next_folder(b);
        return;
    }
    char validity[16], uid[16];
    snprintf(validity, sizeof validity, "%lu", (unsigned long)b->uidvalidity);
    snprintf(uid, sizeof uid, "%lu", (unsigned long)(b->uidnext - 1));
    const char *p[4] = {b->email, folder_of(b), validity, uid};
    if (query(b->w, b, "SELECT relance_watch_advance($1, $2, $3, $4)", 4, p, on_advanced) < 0)
        box_fail(b, "cannot record the mailbox's progress", "database unavailable");
}

/* Member key of one relance_inbound result ({"effect": "replied",
 * "enrollment": 12, "reason": null, ...}) for a log line: a string's
 * text or a number as written; "" when absent, null or unreadable. */
static const char *result_field(const struct json_doc *d, const char *key, char *out, size_t size)
{
    int v = d ? json_get(d, 0, key) : -1;
    const char *text = v >= 0 ? json_text(d, v, NULL) : NULL;
    snprintf(out, size, "%s", text ? text : "");
    return out;
}

/* A reply stopped its enrollment (relance_inbound says so in its
 * reason, sql/functions/inbound.sql): how long after it reached the
 * mailbox, in real time (the Received field's clock, whatever the test
 * clock says). */
static void reply_stopped(struct box *b, const char *uid_text, const char *effect, const char *reason)
{
    static const char stops[] = "a reply: the enrollment stops";
    if (!b->w->reply_to_stop || strcmp(effect, "replied") != 0 || strncmp(reason, stops, sizeof stops - 1) != 0)
        return;
    uint32_t uid = (uint32_t)strtoul(uid_text, NULL, 10);
    for (size_t i = 0; i < b->n_arrivals; i++)
        if (b->arrivals[i].uid == uid && b->arrivals[i].at > 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            double late = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)b->arrivals[i].at;
            metrics_observe(b->w->reply_to_stop, NULL, late > 0 ? late : 0);
            return;
        }
}

/* The batch is recorded (relance_inbound for each message, and the
 * folder's progress past the batch, in one transaction): one line per
 * message, then the next batch. */
static void on_batch_recorded(struct box *b, const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300], from[16], to[16];
        pgerr_line(res, NULL, "database connection lost", msg, sizeof msg);
        snprintf(from, sizeof from, "%lu", (unsigned long)b->todo[b->i_todo]);
        snprintf(to, sizeof to, "%lu", (unsigned long)b->todo[b->i_todo + b->n_batch - 1]);
        log_event(LOG_ERROR, "watcher", "cannot record inbound messages; retried next pass", "account", b->email,
                  "folder", folder_of(b), "uids", from, "through", to, "error", msg, NULL);
        box_task_end(b, -EIO);
        return;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        struct json_doc *d = NULL;
        struct json_error jerr;
        if (json_parse(PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1), &d, &jerr) < 0)
            d = NULL; /* the fields read as absent */
        char effect[32], enrollment[24], reason[160];
        result_field(d, "effect", effect, sizeof effect);
        result_field(d, "enrollment", enrollment, sizeof enrollment);
        result_field(d, "reason", reason, sizeof reason);
        json_free(d);
        reply_stopped(b, PQgetvalue(res, row, 0), effect, reason);
        log_event(LOG_INFO, "watcher", "inbound message", "account", b->email, "folder", folder_of(b), "uid",
                  PQgetvalue(res, row, 0), "effect", effect, "enrollment", enrollment[0] ? enrollment : "-", "reason",
                  reason[0] ? reason : NULL, NULL);
    }
    b->processed += PQntuples(res);
    free(b->arrivals);
    b->arrivals = NULL;
    b->n_arrivals = 0;
    b->i_todo += b->n_batch;
    b->n_batch = 0;
    record_next(b);
}

/* m's header and body prefixes as one message for the classifier (a
 * header cut at its bound gets its blank line). NULL out of memory. */
static char *message_raw(const struct imap_message *m, size_t *len)
{
    char *raw = malloc(m->header_len + 4 + m->body_len + 1);
    if (!raw)
        return NULL;
    size_t k = m->header_len;
    memcpy(raw, m->header, k);
    if ((k < 2 || memcmp(raw + k - 2, "\n\n", 2) != 0) && (k < 4 || memcmp(raw + k - 4, "\r\n\r\n", 4) != 0)) {
        memcpy(raw + k, "\r\n\r\n", 4);
        k += 4;
    }
    memcpy(raw + k, m->body, m->body_len);
    k += m->body_len;
    raw[k] = '\0';
    *len = k;
    return raw;
}

/* The columns of one batch, one PostgreSQL array each. */
/* relance_watch_inbound_batch's arrays: $4 to $12, then $15 (COL_REFUSAL,
 * after p_through and p_now) */
enum { COL_UID, COL_MSGID, COL_REFS, COL_FROM, COL_KIND, COL_REASON, COL_BLOCK, COL_RCPT, COL_DATE, COL_REFUSAL, N_COLS };

static void on_fetched(struct imap *im, const struct imap_reply *r, void *arg)
{
    (void)im;
    struct box *b = arg;
    if (r->status == -E2BIG && b->n_batch > 1) {
        /* more than libcurl takes in one answer: the same messages, fewer
         * at a time (one at a time always passed) */
        b->fetch_cap = b->n_batch / 2;
        log_event(LOG_DEBUG, "watcher", "fetching fewer messages at once", "account", b->email, "folder",
                  folder_of(b), "error", r->text, NULL);
        b->n_batch = 0;
        record_next(b);
        return;
    }
    if (pass_reply_failed(b, r))
        return;
    char asked[16], got[16];
    snprintf(asked, sizeof asked, "%zu", b->n_batch);
    snprintf(got, sizeof got, "%zu", r->n_messages);
    log_event(LOG_DEBUG, "watcher", "fetched", "account", b->email, "folder", folder_of(b), "asked", asked, "got", got,
              NULL);
    struct buf col[N_COLS] = {0};
    free(b->arrivals);
    b->n_arrivals = 0;
    b->arrivals = calloc(r->n_messages ? r->n_messages : 1, sizeof *b->arrivals);
    int oom = !b->arrivals;
    for (size_t i = 0; i < r->n_messages && !oom; i++) {
        const struct imap_message *m = &r->messages[i];
        size_t len;
        char *raw = message_raw(m, &len);
        struct classify_result c;
        struct inbound in;
        oom = !raw || classify_message(raw, len, &c) < 0 || inbound_read(raw, len, &c, &in) < 0;
        free(raw);
        if (oom)
            break;
        char uid[16];
        snprintf(uid, sizeof uid, "%lu", (unsigned long)m->uid);
        pgarray_add(&col[COL_UID], uid);
        pgarray_add(&col[COL_MSGID], in.message_id);
        pgarray_add(&col[COL_REFS], in.refs);
        pgarray_add(&col[COL_FROM], in.from);
        pgarray_add(&col[COL_KIND], classify_kind_names[c.kind]);
        pgarray_add(&col[COL_REASON], classify_reason_names[c.reason]);
        pgarray_add(&col[COL_BLOCK], c.is_block ? "true" : "false");
        pgarray_add(&col[COL_RCPT], in.recipients);
        pgarray_add(&col[COL_DATE], in.return_date[0] ? in.return_date : NULL);
        pgarray_add(&col[COL_REFUSAL], c.refusal[0] ? c.refusal : NULL);
        b->arrivals[b->n_arrivals++] = (struct arrival){m->uid, in.received};
        inbound_free(&in);
    }
    const char *p[15];
    char validity[16], through[16], now[40];
    snprintf(validity, sizeof validity, "%lu", (unsigned long)b->uidvalidity);
    /* the batch's last asked UID: past an expunged message too */
    snprintf(through, sizeof through, "%lu", (unsigned long)b->todo[b->i_todo + b->n_batch - 1]);
    clock_format(clock_now(), now, sizeof now);
    p[0] = b->email;
    p[1] = folder_of(b);
    p[2] = validity;
    for (int k = 0; k < N_COLS; k++)
        oom |= (p[k < COL_REFUSAL ? 3 + k : 14] = pgarray_end(&col[k])) == NULL;
    p[12] = through;
    p[13] = now;
    int rc = oom ? -1
                 : query(b->w, b,
                         "SELECT uid, result FROM relance_watch_inbound_batch($1, $2, $3, $4::bigint[], $5::text[], "
                         "$6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::text[], $12::date[], "
                         "$13, $14, $15::text[])",
                         15, p, on_batch_recorded);
    for (int k = 0; k < N_COLS; k++)
        buf_free(&col[k]);
    if (oom)
        box_fail(b, "out of memory", "cannot classify fetched messages");
    else if (rc < 0)
        box_fail(b, "cannot record inbound messages", "database unavailable");
}

/* The next batch of the folder's new UIDs, or the folder's end. */
static void record_next(struct box *b)
{
    if (b->w->closing)
        return;
    if (b->i_todo >= b->n_todo) {
        folder_done(b);
        return;
    }
    int rc;
    if (b->i_todo >= b->sized) {
        /* the sizes first, IMAP_SIZES_MAX at a time, to plan the fetches */
        size_t left = b->n_todo - b->i_todo;
        rc = imap_fetch_sizes(b->imap, folder_of(b), b->todo + b->i_todo, left < IMAP_SIZES_MAX ? left : IMAP_SIZES_MAX,
                              on_sized, b);
        if (rc < 0)
            box_fail(b, "cannot start an IMAP fetch", start_error(rc));
        return;
    }
    b->n_batch = imap_fetch_plan(b->sizes + b->i_todo, b->sized - b->i_todo, b->fetch_cap);
    rc = imap_fetch(b->imap, folder_of(b), b->todo + b->i_todo, b->n_batch, IMAP_FETCH_BODY_MAX, on_fetched, b);
    if (rc < 0)
        box_fail(b, "cannot start an IMAP fetch", start_error(rc));
}

/* The sizes of the next todo[sized..]: the batches can be planned. */
static void on_sized(struct imap *im, const struct imap_reply *r, void *arg)
{
    (void)im;
    struct box *b = arg;
    if (pass_reply_failed(b, r))
        return;
    size_t end = b->sized + (b->n_todo - b->sized < IMAP_SIZES_MAX ? b->n_todo - b->sized : IMAP_SIZES_MAX);
    /* both ascending by UID */
    for (size_t i = 0, k = b->sized; i < r->n_messages && k < end; k++) {
        if (b->todo[k] != r->messages[i].uid)
            continue;
        uint32_t size = r->messages[i++].size;
        b->sizes[k] = size ? size : 1; /* 0 says gone */
    }
    b->sized = end;
    record_next(b);
}

static void on_searched(struct imap *im, const struct imap_reply *r, void *arg)
{
    (void)im;
    struct box *b = arg;
    if (pass_reply_failed(b, r))
        return;
    size_t n = r->n_uids > MAX_PER_PASS ? MAX_PER_PASS : r->n_uids;
    b->folder_more = r->n_uids > MAX_PER_PASS;
    b->more |= b->folder_more;
    free(b->todo);
    b->todo = n ? malloc(n * sizeof *b->todo) : NULL;
    if (n && !b->todo) {
        box_fail(b, "out of memory", "cannot hold the new UIDs");
        return;
    }
    if (n)
        memcpy(b->todo, r->uids, n * sizeof *b->todo);
    b->n_todo = n;
    b->i_todo = 0;
    b->n_batch = 0;
    free(b->sizes);
    b->sizes = n ? calloc(n, sizeof *b->sizes) : NULL;
    if (n && !b->sizes) {
        box_fail(b, "out of memory", "cannot hold the new messages' sizes");
        return;
    }
    b->sized = 0;
    record_next(b);
}

static time_t parse_date(const char *s)
{
    int y, m, d;
    if (!s || sscanf(s, "%d-%d-%d", &y, &m, &d) != 3)
        return 0;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    return timegm(&tm);
}

static void on_decided(struct box *b, const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        box_fail(b, "cannot read the mailbox's state",
                 pgerr_line(res, NULL, "database connection lost", msg, sizeof msg));
        return;
    }
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        b->folder_i++;
        box_next_folder(b);
        return;
    }
    unsigned long from = strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    time_t since = PQgetisnull(res, 0, 1) ? 0 : parse_date(PQgetvalue(res, 0, 1));
    b->since_used = since != 0;
    if (from == 1 && b->since_used) {
        char uv[16];
        snprintf(uv, sizeof uv, "%lu", (unsigned long)b->uidvalidity);
        log_event(LOG_INFO, "watcher", "reading the folder from its start", "account", b->email, "folder",
                  folder_of(b), "uidvalidity", uv, "since", PQgetvalue(res, 0, 1), NULL);
    }
    int rc = imap_search(b->imap, folder_of(b), (uint32_t)(from ? from : 1), since, on_searched, b);
    if (rc < 0)
        box_fail(b, "cannot start an IMAP search", start_error(rc));
}

static void on_examined(struct imap *im, const struct imap_reply *r, void *arg)
{
    (void)im;
    struct box *b = arg;
    if (r->status == -ECANCELED)
        return;
    if (r->status == -EACCES && b->acct.auth == IMAP_AUTH_XOAUTH2 && b->bearer && b->w->oauth2 &&
        !b->token_dropped) {
        /* expired early or revoked: dropped, so the next login brings a
         * fresh one; tried again at once, once. Whatever failed before
         * (the server was down, say): a refusal is the token's until a
         * fresh one is refused too. */
        log_event(LOG_WARN, "watcher", "the IMAP server refused the OAuth2 token; refreshing it", "account", b->email,
                  NULL);
        oauth2_token_reject(b->w->oauth2, b->email, b->bearer);
        box_bearer_wipe(b);
        b->token_retry = 1;
        b->token_dropped = 1;
    }
    if (r->status < 0) {
        box_fail(b, r->status == -EACCES ? "mailbox login refused; retrying" : "mailbox unreachable; retrying",
                 r->text);
        return;
    }
    b->uidvalidity = r->uidvalidity;
    b->uidnext = r->uidnext;
    char validity[16], next[16];
    snprintf(validity, sizeof validity, "%lu", (unsigned long)r->uidvalidity);
    snprintf(next, sizeof next, "%lu", (unsigned long)r->uidnext);
    char exists[16];
    snprintf(exists, sizeof exists, "%lu", (unsigned long)r->exists);
    log_event(LOG_DEBUG, "watcher", "folder examined", "account", b->email, "folder", folder_of(b), "uidvalidity",
              validity, "uidnext", next, "exists", exists, NULL);
    const char *p[5] = {b->email, folder_of(b), validity, next, exists};
    if (query(b->w, b, "SELECT from_uid, since FROM relance_watch_status($1, $2, $3, $4, $5)", 5, p, on_decided) < 0)
        box_fail(b, "cannot read the mailbox's state", "database unavailable");
}

static void box_next_folder(struct box *b)
{
    if (b->w->closing)
        return;
    if (!b->folders[b->folder_i]) {
        box_task_end(b, b->processed);
        return;
    }
    b->since_used = 0;
    b->folder_more = 0;
    /* EXAMINE, not STATUS: the connection is held between passes and the
     * folder read last is still selected on it; a server answers STATUS
     * on the selected folder from a stale view (RFC 3501 6.3.10; Dovecot
     * does), which hid every reply after the first. EXAMINE selects the
     * folder afresh, read-only, and says UIDVALIDITY and UIDNEXT. */
    int rc = imap_examine(b->imap, folder_of(b), on_examined, b);
    if (rc < 0)
        box_fail(b, "cannot start an IMAP EXAMINE", start_error(rc));
}

/* task is BOX_PASS or BOX_SENT. */
static int box_task_begin(struct box *b, enum box_state task)
{
    struct watcher *w = b->w;
    if (!b->imap && w->channels < w->max_active) {
        b->imap = imap_new(w->loop, w->pool, &b->acct);
        w->channels += b->imap != NULL;
    }
    if (!b->imap) {
        if (b->state == BOX_TOKEN_WAIT)
            box_state_set(b, box_rest(b)); /* the wait is over: the task was due */
        return -ENOMEM;
    }
    box_state_set(b, task);
    w->active++;
    return 0;
}

static void box_task_end(struct box *b, int status)
{
    struct watcher *w = b->w;
    enum box_state task = b->state;
    if (!box_in_task(b))
        return;
    w->active--;
    uint64_t now = uv_now(w->loop);
    b->rested_ms = now; /* the channel rests with the box: the next task reuses its login */
    if (task == BOX_PASS) {
        long interval_ms = b->cfg->watch_interval * 1000L;
        if (status >= 0) {
            b->token_dropped = 0;
            if (b->failures) {
                log_event(LOG_INFO, "watcher", "mailbox reachable again", "account", b->email, NULL);
                b->failures = 0;
                b->last_error[0] = '\0';
            }
            b->next_ms = b->more ? now : now + (uint64_t)interval_ms;
            if (b->more) {
                /* A backlog is not read yet: whoever waits for this check
                 * (the race check before a follow-up) waits for the rest,
                 * so a reply already in the mailbox stops the follow-up
                 * however many messages came before it. */
                if (b->in_pass)
                    b->carried += b->processed;
                struct waiter **tail = &b->in_pass;
                while (*tail)
                    tail = &(*tail)->next;
                *tail = b->waiting;
                b->waiting = b->in_pass;
                b->in_pass = NULL;
            } else {
                b->last_check = b->pass_began;
                status += b->carried;
            }
        } else {
            b->failures++;
            long backoff = b->token_retry ? 0 : interval_ms;
            b->token_retry = 0;
            for (int i = 1; i < b->failures && backoff < BACKOFF_MAX_MS; i++)
                backoff *= 2;
            if (backoff > BACKOFF_MAX_MS && interval_ms < BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            b->next_ms = now + (uint64_t)backoff;
        }
    }
    box_state_set(b, box_rest(b));
    if (task == BOX_PASS) {
        metrics_observe(w->pass_seconds, NULL, (double)(uv_hrtime() - b->pass_began_ns) / 1e9);
        free(b->todo);
        free(b->sizes);
        free(b->arrivals);
        b->todo = NULL;
        b->sizes = NULL;
        b->arrivals = NULL;
        b->n_arrivals = 0;
        b->n_todo = b->i_todo = b->n_batch = b->sized = 0;
        if (b->in_pass)
            b->carried = 0;
        waiters_fire(&b->in_pass, status);
    }
}

static void box_pass_start(struct box *b)
{
    if (box_task_begin(b, BOX_PASS) < 0) {
        b->next_ms = uv_now(b->w->loop) + 1000;
        return;
    }
    b->in_pass = b->waiting;
    b->waiting = NULL;
    b->folder_i = 0;
    b->processed = 0;
    b->more = 0;
    b->fetch_cap = IMAP_FETCH_BATCH;
    b->pass_began = clock_now();
    b->pass_began_ns = uv_hrtime();
    box_next_folder(b);
}

/* ---- Sent copies ------------------------------------------------------- */

static void sent_job_finish(struct box *b, int status)
{
    struct sent_job *j = b->sent_head;
    b->sent_head = j->next;
    if (!b->sent_head)
        b->sent_tail = NULL;
    j->cb(j->arg, status);
    free(j->msg);
    free(j);
}

static void on_appended(struct imap *im, const struct imap_reply *r, void *arg)
{
    (void)im;
    struct box *b = arg;
    if (r->status == -ECANCELED)
        return;
    if (r->status < 0)
        log_event(LOG_WARN, "watcher", "cannot save a copy in the Sent folder", "account", b->email, "folder",
                  b->sent_folder, "error", r->text, NULL);
    if (r->status == -ENOENT)
        b->sent_folder[0] = '\0'; /* look for it again next time */
    sent_job_finish(b, r->status);
    sent_next(b);
}

static void on_sent_listed(struct imap *im, const struct imap_reply *r, void *arg)
{
    (void)im;
    struct box *b = arg;
    if (r->status == -ECANCELED)
        return;
    if (r->status < 0) {
        log_event(LOG_WARN, "watcher", "cannot list the mailbox's folders", "account", b->email, "error", r->text,
                  NULL);
        while (b->sent_head)
            sent_job_finish(b, r->status);
        box_task_end(b, r->status);
        return;
    }
    snprintf(b->sent_folder, sizeof b->sent_folder, "%s", r->folder);
    sent_next(b);
}

static void sent_next(struct box *b)
{
    if (b->w->closing)
        return;
    if (!b->sent_head) {
        box_task_end(b, 0);
        return;
    }
    int rc = b->sent_folder[0] ? imap_append(b->imap, b->sent_folder, b->sent_head->msg, b->sent_head->len,
                                              on_appended, b)
                               : imap_sent_folder(b->imap, on_sent_listed, b);
    if (rc < 0) {
        sent_job_finish(b, rc);
        sent_next(b);
    }
}

static void box_sent_start(struct box *b)
{
    if (box_task_begin(b, BOX_SENT) < 0)
        return;
    sent_next(b);
}

/* ---- the tick ----------------------------------------------------------- */

/* xoauth2: asking for the token starts its refresh when there is none
 * (after a start, or when it lapsed between passes); rather than fail the
 * pass and back off a whole watch_interval, a due pass waits for it from
 * the tick, up to TOKEN_WAIT_MS. Then it runs anyway and fails with "no
 * OAuth2 access token", logged and backed off like any failure. */
static int box_token_wait(struct box *b, uint64_t now)
{
    if (b->acct.auth != IMAP_AUTH_XOAUTH2 || box_bearer(b)) {
        b->token_wait_end = 0;
        return 0; /* the task begins: out of TOKEN_WAIT if it waited */
    }
    if (b->state != BOX_TOKEN_WAIT) {
        b->token_wait_end = now + TOKEN_WAIT_MS;
        box_state_set(b, BOX_TOKEN_WAIT);
    }
    if (now < b->token_wait_end)
        return 1;
    b->token_wait_end = 0;
    return 0;
}

static void on_channel_closed(void *arg);

/* Closes b's resting channel (or, from watcher_close, its busy one: the
 * command in flight ends inside with -ECANCELED). Its LOGOUT runs on a
 * pool thread; the channel counts against the cap until it is done. */
static void box_channel_close(struct box *b)
{
    struct imap *im = b->imap;
    b->imap = NULL;
    b->w->channels_closing++;
    imap_close(im, on_channel_closed, b->w);
}

/* Whether b may begin a task as far as channels go: it has one resting,
 * or one more fits under the cap. When none fits, the channel that has
 * rested longest is closed to make room, one at a time: b's turn comes
 * at a later tick, once that close is done. */
static int channel_room(struct watcher *w, struct box *b)
{
    if (b->imap || w->channels < w->max_active)
        return 1;
    if (w->channels_closing)
        return 0;
    struct box *oldest = NULL;
    for (size_t i = 0; i < w->n_boxes; i++) {
        struct box *x = &w->boxes[i];
        if (x->imap && !box_in_task(x) && (!oldest || x->rested_ms < oldest->rested_ms))
            oldest = x;
    }
    if (oldest)
        box_channel_close(oldest);
    return 0;
}

/* Closes the resting channels no pass will reuse soon: idle past the
 * account's idle timeout (libcurl would not reuse the connection), or of
 * a box whose lease is gone and that has no Sent copies to save. */
static void channels_sweep(struct watcher *w, uint64_t now)
{
    if (w->channels - w->channels_closing <= w->active)
        return; /* none rests */
    for (size_t i = 0; i < w->n_boxes; i++) {
        struct box *b = &w->boxes[i];
        if (!b->imap || box_in_task(b))
            continue;
        uint64_t idle_ms = (uint64_t)b->acct.idle_timeout_s * 1000;
        if ((idle_ms && now - b->rested_ms >= idle_ms) || (!b->leased && !b->sent_head))
            box_channel_close(b);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct watcher *w = t->data;
    if (w->closing)
        return;
    uint64_t now = uv_now(w->loop);
    channels_sweep(w, now);
    /* Round robin: when passes are due faster than the connection cap
     * lets them run, every mailbox gets its turn, not only the first
     * ones of the configuration (the watch_latency benchmark saw 860 of
     * 1,000 never read with a fixed start). */
    size_t k = 0;
    for (; k < w->n_boxes && w->active < w->max_active; k++) {
        struct box *b = &w->boxes[(w->tick_from + k) % w->n_boxes];
        if (box_in_task(b) || b->db_busy)
            continue;
        if (b->sent_head) {
            if (!box_token_wait(b, now) && channel_room(w, b))
                box_sent_start(b);
            continue;
        }
        if (!b->leased || !db_ready(w))
            continue;
        if ((now >= b->next_ms || (b->waiting && b->failures == 0)) && !box_token_wait(b, now) &&
            channel_room(w, b))
            box_pass_start(b);
    }
    if (w->n_boxes)
        w->tick_from = (w->tick_from + k) % w->n_boxes;
}

/* ======================================================================
 * The public calls
 * ====================================================================== */

int watcher_check_now(struct watcher *w, const char *account_email, void (*cb)(void *arg, int changed), void *arg)
{
    if (w->closing)
        return -ECANCELED;
    struct box *b = box_find(w, account_email);
    if (!b)
        return -ENOENT;
    if (!b->leased)
        return -EAGAIN;
    struct waiter *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->cb = cb;
    x->arg = arg;
    x->next = b->waiting;
    b->waiting = x;
    if (b->failures) /* a mailbox failing now waits no longer than its backoff */
        b->next_ms = uv_now(w->loop);
    uv_timer_start(&w->tick, on_tick, 0, TICK_MS); /* from the loop, never from here */
    return 0;
}

double watcher_last_check_age(const struct watcher *w, const char *account_email)
{
    const struct box *b = box_find(w, account_email);
    if (!b || !b->leased || b->last_check == 0)
        return -1;
    return (clock_now() - b->last_check) / clock_speed();
}

int watcher_save_sent(struct watcher *w, const char *account_email, const char *msg, size_t len,
                      void (*cb)(void *arg, int status), void *arg)
{
    if (w->closing)
        return -ECANCELED;
    struct box *b = box_find(w, account_email);
    if (!b)
        return -ENOENT;
    struct sent_job *j = calloc(1, sizeof *j);
    if (!j || !(j->msg = malloc(len ? len : 1))) {
        free(j);
        return -ENOMEM;
    }
    memcpy(j->msg, msg, len);
    j->len = len;
    j->cb = cb;
    j->arg = arg;
    if (b->sent_tail)
        b->sent_tail->next = j;
    else
        b->sent_head = j;
    b->sent_tail = j;
    uv_timer_start(&w->tick, on_tick, 0, TICK_MS);
    return 0;
}

/* ======================================================================
 * Closing
 * ====================================================================== */

static void maybe_free(struct watcher *w)
{
    if (!w->closing || w->pending > 0 || w->outstanding > 0)
        return;
    void (*cb)(void *) = w->on_closed;
    void *arg = w->closed_arg;
    boxes_free(w);
    free(w);
    if (cb)
        cb(arg);
}

static void on_part_closed(struct watcher *w)
{
    w->pending--;
    maybe_free(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

/* Every channel is closed: the pool's threads have nothing left to do. */
static void pool_close(struct watcher *w)
{
    xfer_pool_close(w->pool);
    w->pool = NULL;
    on_part_closed(w);
}

static void on_channel_closed(void *arg)
{
    struct watcher *w = arg;
    w->channels--;
    w->channels_closing--;
    if (w->closing) {
        if (w->channels == 0)
            pool_close(w);
        return;
    }
    uv_timer_start(&w->tick, on_tick, 0, TICK_MS); /* a box may be waiting for the room */
}

static void on_released(void *arg, long given)
{
    (void)given; /* not given up: they expire in LEASES_TTL_S */
    struct watcher *w = arg;
    w->outstanding--;
    maybe_free(w);
}

void watcher_close(struct watcher *w, void (*on_closed)(void *arg), void *arg)
{
    if (w->closing)
        return;
    /* a clean stop gives the mailboxes up at once: another replica takes
     * them at its next renewal instead of after the expiry */
    w->outstanding++;
    leases_close(w->leases, on_released, w);
    w->leases = NULL;
    w->closing = 1;
    w->on_closed = on_closed;
    w->closed_arg = arg;
    w->pending = 2;
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
    for (size_t i = 0; i < w->n_boxes; i++) {
        struct box *b = &w->boxes[i];
        if (box_in_task(b))
            w->active--;
        box_state_set(b, BOX_CLOSED);
        /* a command in flight ends inside imap_close (-ECANCELED); its
         * handler sees the watcher closing and does nothing */
        if (b->imap)
            box_channel_close(b);
        waiters_fire(&b->in_pass, -ECANCELED);
        waiters_fire(&b->waiting, -ECANCELED);
        while (b->sent_head)
            sent_job_finish(b, -ECANCELED);
    }
    if (w->channels == 0)
        pool_close(w);
}
