/* delivery: one composed message from the sender to its recorded outcome
 * (see delivery.h). It owns the messages in flight (struct sending), the
 * points of no return waiting to be recorded, the outcomes waiting to be
 * written in one batch, and the outbox of writes the database could not
 * take yet. It does not claim, compose or decide what an outcome means. */
#include "delivery.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "pgarray.h"
#include "pgerr.h"
#include "ready.h"
#include "sender.h"
#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct outbox_entry;
struct sending;

/* relance_step_outcome's eight arguments, for one message. */
#define OUTCOME_ARGS 8
struct outcome_row {
    char *v[OUTCOME_ARGS];
};

struct delivery {
    const struct ready *ready;
    struct sender *sender;
    struct watcher *watcher;
    struct metrics_family *sends; /* relance_sends_total; NULL without metrics */
    void (*on_settled)(void *arg);
    void (*on_account_back)(void *arg, const char *account, size_t left);
    void *settled_arg;
    int stopped;
    size_t pending;          /* messages in flight, writes in flight, a batch waiting */
    struct sending *live;    /* every message handed to the sender, until its outcome */
    /* points of no return to record: gathered, then written at once */
    struct sending *started, *started_in_flight;
    uv_timer_t release_timer; /* gives up, from the loop, bodies whose point could not be recorded */
    struct sending *failed;
    /* outcomes that came in while a batch of them was being written */
    struct outcome_row *outcomes;
    size_t n_outcomes, cap_outcomes;
    int outcomes_in_flight;
    struct outbox_entry *outbox;
    size_t queries;          /* database statements not yet answered */
    int closing;             /* delivery_close: freed once the timer closed and the last answer came */
    int timer_closed;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

/* One message on its way out: what recording its outcome needs. */
struct sending {
    struct delivery *d;
    char *message_id, *subject, *account, *step_id;
    long long enrollment_id;
    int save;            /* save_sent: keep a copy of what went out */
    int variant;
    double at;
    int body_pending;    /* the body_started write is in flight */
    int release_failed;  /* it could not even be queued */
    int finished;        /* the outcome came while body_pending */
    struct sending *next_failed;
    struct sending *next_started; /* d->started or d->started_in_flight */
    struct sending *live_prev, *live_next;
};

static void outcomes_flush(struct delivery *d);
static void query_done(struct delivery *d);

/* One thing in flight has settled. */
static void settle(struct delivery *d)
{
    if (--d->pending == 0 && d->on_settled)
        d->on_settled(d->settled_arg);
}

/* db_query on db, or -1 when the database may not be used now. */
static int query_on(struct delivery *d, struct db *db, const char *sql, int n, const char *const *params,
                    db_result_cb cb, void *arg)
{
    if (!db || db_query(db, sql, n, params, cb, arg) < 0)
        return -1;
    d->queries++; /* its callback ends with query_done */
    return 0;
}

/* A write on the main connection: outcomes and holds, still written
 * while the sender drains after delivery_stop, so that what finished is
 * recorded as it ended rather than left 'sending' for a rescue to call
 * 'unknown'. Only the points of no return stop (started_flush): no body
 * starts once the stop has begun. */
static int query(struct delivery *d, const char *sql, int n, const char *const *params, db_result_cb cb, void *arg)
{
    return query_on(d, ready_db(d->ready), sql, n, params, cb, arg);
}

static void log_db_error(const char *what, const PGresult *res)
{
    char msg[300];
    log_event(LOG_ERROR, "delivery", what, "error", pgerr_line(res, NULL, NULL, msg, sizeof msg), NULL);
}

/* ---- the outbox ----------------------------------------------------------- */

/* A write kept until the database has it: when the connection is down
 * (or drops before the answer) it waits here and is written again on
 * reconnect. */
struct outbox_entry {
    struct outbox_entry *next;
    struct delivery *d;
    char *sql;
    int n;
    char **params;
    int outcomes; /* a batch of relance_step_outcomes: its rows are failures */
};

static void outbox_free(struct outbox_entry *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->params[i]);
    free(e->params);
    free(e->sql);
    free(e);
}

static void outbox_keep(struct delivery *d, struct outbox_entry *e)
{
    e->next = d->outbox;
    d->outbox = e;
}

static void on_replayed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct outbox_entry *e = arg;
    struct delivery *d = e->d;
    if (!res && !d->stopped)
        outbox_keep(d, e);
    else
        outbox_free(e);
    query_done(d);
}

void delivery_db_up(struct delivery *d)
{
    struct outbox_entry *e = d->outbox;
    d->outbox = NULL;
    while (e) {
        struct outbox_entry *next = e->next;
        if (query(d, e->sql, e->n, (const char *const *)e->params, on_replayed, e) < 0)
            outbox_keep(d, e);
        e = next;
    }
}

/* A batch's outcomes that failed alone (each in its own subtransaction). */
static void log_failed_outcomes(const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQgetvalue(res, i, 1));
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_ERROR, "delivery", "recording an outcome failed", "message", PQgetvalue(res, i, 0), "error",
                  msg, NULL);
    }
}

static void on_recorded(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct outbox_entry *e = arg;
    struct delivery *d = e->d;
    if (e->outcomes) {
        log_failed_outcomes(res);
        d->outcomes_in_flight = 0;
        outcomes_flush(d); /* what came in meanwhile */
    } else if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_db_error("recording an outcome failed", res);
    }
    if (!res && !d->stopped) {
        outbox_keep(d, e);
        e = NULL;
    }
    if (e)
        outbox_free(e);
    settle(d);
    query_done(d);
}

/* Writes a statement whose effect must not be lost: kept in the outbox
 * while the database is away. Returns 0 when it was queued now. */
static int record(struct delivery *d, const char *sql, int n, const char *const *params, int outcomes)
{
    struct outbox_entry *e = calloc(1, sizeof *e);
    if (!e)
        return -1; /* the row stays 'sending' and is rescued as unknown */
    e->d = d;
    e->outcomes = outcomes;
    e->sql = strdup(sql);
    e->params = calloc((size_t)n + 1, sizeof *e->params);
    e->n = n;
    int ok = e->sql && e->params;
    for (int i = 0; ok && i < n; i++)
        if (params[i] && !(e->params[i] = strdup(params[i])))
            ok = 0;
    if (!ok) {
        outbox_free(e);
        return -1;
    }
    if (query(d, sql, n, params, on_recorded, e) == 0) {
        d->pending++;
        return 0;
    }
    if (!d->stopped)
        outbox_keep(d, e);
    else
        outbox_free(e);
    return -1;
}

/* ---- batched outcomes ------------------------------------------------------ */

/* One send's outcome. Written at once if no batch is being written, else
 * with the next batch: the database connection is shared, and under load
 * one statement for many outcomes is what keeps up. A batch waiting to be
 * written counts as pending, like a write in flight. */
static void outcome_add(struct delivery *d, const char *const *p)
{
    if (d->n_outcomes == d->cap_outcomes) {
        size_t cap = d->cap_outcomes ? 2 * d->cap_outcomes : 16;
        struct outcome_row *grown = realloc(d->outcomes, cap * sizeof *grown);
        if (!grown)
            return; /* the row stays 'sending' and is rescued as unknown */
        d->outcomes = grown;
        d->cap_outcomes = cap;
    }
    struct outcome_row *r = &d->outcomes[d->n_outcomes];
    for (int i = 0; i < OUTCOME_ARGS; i++)
        r->v[i] = p[i] ? strdup(p[i]) : NULL;
    if (d->n_outcomes++ == 0)
        d->pending++; /* the pending batch */
    if (!d->outcomes_in_flight)
        outcomes_flush(d);
}

static void outcomes_free(struct delivery *d)
{
    for (size_t i = 0; i < d->n_outcomes; i++)
        for (int c = 0; c < OUTCOME_ARGS; c++)
            free(d->outcomes[i].v[c]);
    d->n_outcomes = 0;
}

static void outcomes_flush(struct delivery *d)
{
    if (d->n_outcomes == 0)
        return;
    struct buf col[OUTCOME_ARGS] = {0};
    const char *p[OUTCOME_ARGS];
    int ok = 1;
    for (int c = 0; c < OUTCOME_ARGS; c++) {
        for (size_t i = 0; i < d->n_outcomes; i++)
            pgarray_add(&col[c], d->outcomes[i].v[c]);
        ok &= (p[c] = pgarray_end(&col[c])) != NULL;
    }
    if (ok && record(d,
                     "SELECT * FROM relance_step_outcomes($1::text[], $2::timestamptz[], $3::text[], "
                     "$4::text[], $5::boolean[], $6::text[], $7::text[], $8::int[])",
                     OUTCOME_ARGS, p, 1) == 0)
        d->outcomes_in_flight = 1;
    for (int c = 0; c < OUTCOME_ARGS; c++)
        buf_free(&col[c]);
    outcomes_free(d);
    settle(d); /* the pending batch's hold */
}

void delivery_hold(struct delivery *d, const char *message_id, long long enrollment_id, const char *step_id,
                   const char *reason)
{
    char now[40], enr[32];
    clock_format(clock_now(), now, sizeof now);
    const char *p[3] = {message_id, now, reason};
    snprintf(enr, sizeof enr, "%lld", enrollment_id);
    log_event(LOG_WARN, "delivery", "held", "enrollment", enr, "step", step_id, "reason", reason, NULL);
    if (record(d, "SELECT relance_step_hold($1, $2, $3)", 3, p, 0) < 0) {
        /* kept in the outbox, or (stopped, no memory) left 'sending' */
    }
}

/* ---- messages in flight ------------------------------------------------------ */

static void sending_free(struct sending *x)
{
    struct delivery *d = x->d;
    if (x->live_prev)
        x->live_prev->live_next = x->live_next;
    else if (d->live == x)
        d->live = x->live_next;
    if (x->live_next)
        x->live_next->live_prev = x->live_prev;
    /* one of its account's messages is back: the scheduler may claim for it */
    if (d->on_account_back && !d->stopped)
        d->on_account_back(d->settled_arg, x->account, delivery_pending_for(d, x->account));
    free(x->step_id);
    free(x->message_id);
    free(x->subject);
    free(x->account);
    free(x);
}

/* The point of no return of x is durable (ok), or could not be made so:
 * the body may go, or is given up. */
static void body_recorded(struct sending *x, int ok)
{
    log_event(LOG_DEBUG, "delivery", "point of no return recorded", "message", x->message_id, "ok", ok ? "yes" : "no",
              "finished", x->finished ? "yes" : "no", NULL);
    x->body_pending = 0;
    if (x->finished) { /* the transfer ended meanwhile (timeout, close) */
        sending_free(x);
        return;
    }
    if (x->d->sender)
        sender_body_release(x->d->sender, x->account, ok);
}

static void started_flush(struct delivery *d);

/* The answer to a batch of points of no return: the rows it names were
 * still 'sending' and are now marked; any other was not (rescued
 * meanwhile) and its body must not go. */
static void on_started_recorded(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct delivery *d = arg;
    struct sending *x = d->started_in_flight;
    d->started_in_flight = NULL;
    int good = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    if (res && !good)
        log_db_error("recording points of no return failed", res);
    while (x) {
        struct sending *next = x->next_started;
        int ok = 0;
        for (int i = 0; good && i < PQntuples(res) && !ok; i++)
            ok = strcmp(PQgetvalue(res, i, 0), x->message_id) == 0;
        body_recorded(x, ok);
        x = next;
    }
    started_flush(d); /* what came in meanwhile */
    query_done(d);
}

/* Held bodies whose point of no return could not be recorded: given up,
 * from the loop (never from inside libcurl's callback). */
static void on_release_failed(uv_timer_t *t)
{
    struct delivery *d = t->data;
    while (d->failed) {
        struct sending *x = d->failed;
        d->failed = x->next_failed;
        if (d->sender)
            sender_body_release(d->sender, x->account, 0);
    }
}

/* Writes the gathered points of no return in one statement, unless a
 * batch is already being written (its answer flushes the rest). A batch
 * that cannot even be queued gives its bodies up, from the loop. */
static void started_flush(struct delivery *d)
{
    if (d->started_in_flight || !d->started)
        return;
    struct buf ids = {0};
    for (struct sending *x = d->started; x; x = x->next_started)
        pgarray_add(&ids, x->message_id);
    const char *p[1] = {pgarray_end(&ids)};
    /* on the points of no return's own connection: a held body must not
     * wait behind a claim or a batch of outcomes (ready_pnr_db). The
     * claim that wrote these rows committed before they were handed
     * over, and their outcomes are written only after this answer: the
     * order across the two connections is the messages' own. */
    if (p[0] && !d->stopped && query_on(d, ready_pnr_db(d->ready),
                         "UPDATE messages SET body_started = true WHERE message_id = ANY($1::text[]) "
                         "AND state = 'sending' RETURNING message_id",
                         1, p, on_started_recorded, d) == 0) {
        d->started_in_flight = d->started;
        d->started = NULL;
        buf_free(&ids);
        return;
    }
    buf_free(&ids);
    if (d->stopped) { /* the sender is closing: only the bookkeeping is left */
        while (d->started) {
            struct sending *x = d->started;
            d->started = x->next_started;
            body_recorded(x, 0);
        }
        return;
    }
    /* cannot record them: do not send. Released from the loop, not from
     * inside libcurl's read callback. */
    while (d->started) {
        struct sending *x = d->started;
        d->started = x->next_started;
        x->body_pending = 0;
        x->release_failed = 1;
        x->next_failed = d->failed;
        d->failed = x;
    }
    uv_timer_start(&d->release_timer, on_release_failed, 0, 0);
}

/* The server said 354 and libcurl wants the body: record that first, so
 * a crash from here on leaves 'unknown' (never re-sent), not 'deferred'.
 * Called from inside libcurl's read callback: the write is only queued. */
static void on_body_started(void *arg)
{
    struct sending *x = arg;
    struct delivery *d = x->d;
    log_event(LOG_DEBUG, "delivery", "point of no return", "message", x->message_id, NULL);
    x->body_pending = 1;
    struct sending **tail = &d->started;
    while (*tail)
        tail = &(*tail)->next_started;
    x->next_started = NULL;
    *tail = x;
    started_flush(d);
}

static void on_saved(void *arg, int status)
{
    char *message_id = arg;
    if (status < 0 && status != -ECANCELED) {
        char st[16];
        snprintf(st, sizeof st, "%d", status);
        log_event(LOG_WARN, "delivery", "copy to the Sent folder failed", "message", message_id, "status", st, NULL);
    }
    free(message_id);
}

/* save_sent: one copy of what went out in the account's Sent folder. */
static void save_sent(struct delivery *d, const struct sending *x, const char *msg, size_t len)
{
    char *id = strdup(x->message_id);
    if (!id || watcher_save_sent(d->watcher, x->account, msg, len, on_saved, id) < 0) {
        log_event(LOG_WARN, "delivery", "copy to the Sent folder failed", "message", x->message_id, NULL);
        free(id);
    }
}

/* relance_sends_total's outcome: the message's state as
 * relance_step_outcome records it (sql/functions/outcomes.sql), and
 * failed for a send the account's credentials stopped. */
static const char *send_outcome(enum smtp_outcome o)
{
    switch (o) {
    case SMTP_SENT:
        return "sent";
    case SMTP_DEFERRED:
    case SMTP_DEFERRED_POLICY:
        return "deferred";
    case SMTP_REJECTED_HARD:
    case SMTP_REJECTED_POLICY:
    case SMTP_REJECTED_OTHER:
    case SMTP_REJECTED_UNAUTHENTICATED:
        return "bounced";
    case SMTP_UNKNOWN:
        return "unknown";
    case SMTP_AUTH_FAILED:
        break;
    }
    return "failed";
}

void delivery_set_metrics(struct delivery *d, struct metrics *m)
{
    static const char *const labels[] = {"account", "outcome", NULL};
    d->sends = metrics_family_add(m, METRICS_COUNTER, "relance_sends_total",
                                  "Messages handed to SMTP (or captured), by account and outcome: sent, deferred, "
                                  "bounced (a 5xx), unknown (the body started, no final reply), failed (the "
                                  "account's credentials were refused).",
                                  labels, NULL, 0);
}

static void on_sent(const struct sender_report *rep, void *arg)
{
    struct sending *x = arg;
    struct delivery *d = x->d;
    if (rep->not_sent) {
        /* nothing went out, the sender is closing: nothing recorded, the
         * row stays 'sending' and the stop gives it back due at once
         * (relance_rescue_stopping), not after a deferral's backoff */
    } else if (!rep->r) {
        delivery_hold(d, x->message_id, x->enrollment_id, x->step_id, rep->held);
    } else {
        const struct smtp_result *r = rep->r;
        char now[40], reply[600], variant[16];
        clock_format(x->at > 0 ? x->at : clock_now(), now, sizeof now);
        smtp_reply_format(r, reply, sizeof reply);
        snprintf(variant, sizeof variant, "%d", x->variant);
        /* what each outcome means is SQL's: relance_step_outcome (sql/functions/outcomes.sql) */
        const char *p[OUTCOME_ARGS] = {x->message_id, now, smtp_outcome_name(r->outcome), reply,
                                       r->mail_accepted ? "true" : "false", x->subject, x->account,
                                       x->variant >= 0 ? variant : NULL};
        outcome_add(d, p);
        const char *labels[2] = {x->account, send_outcome(r->outcome)};
        metrics_count(d->sends, labels, 1);
        if (r->outcome != SMTP_SENT)
            log_event(r->outcome == SMTP_UNKNOWN || r->outcome == SMTP_AUTH_FAILED ||
                              r->outcome == SMTP_REJECTED_UNAUTHENTICATED
                          ? LOG_WARN
                          : LOG_INFO,
                      "sender",
                      smtp_outcome_name(r->outcome), "account", x->account, "message", x->message_id, "reply", reply,
                      NULL);
        if (r->outcome == SMTP_SENT && x->save)
            save_sent(d, x, rep->msg, rep->len);
    }
    if (x->release_failed) /* ended before its give-up ran (a timeout) */
        for (struct sending **pp = &d->failed; *pp; pp = &(*pp)->next_failed)
            if (*pp == x) {
                *pp = x->next_failed;
                break;
            }
    if (x->body_pending)
        x->finished = 1; /* body_recorded frees it */
    else
        sending_free(x);
    settle(d);
}

void delivery_send(struct delivery *d, const struct delivery_message *m, char *text, size_t len)
{
    struct sending *x = d->stopped ? NULL : calloc(1, sizeof *x);
    if (!x) {
        free(text);
        return; /* stays 'sending': rescued, never sent twice */
    }
    x->d = d;
    x->message_id = strdup(m->message_id);
    x->subject = strdup(m->subject ? m->subject : "");
    x->account = strdup(m->account);
    x->step_id = strdup(m->step_id ? m->step_id : "");
    x->enrollment_id = m->enrollment_id;
    x->variant = m->variant;
    x->at = m->at;
    x->save = m->save_sent && d->watcher;
    if (!x->message_id || !x->subject || !x->account || !x->step_id) {
        sending_free(x);
        free(text);
        return; /* stays 'sending': rescued, never sent twice */
    }
    x->live_next = d->live;
    if (d->live)
        d->live->live_prev = x;
    d->live = x;
    d->pending++;
    struct sender_message sm = {m->account, m->rcpt, m->message_id, text, len};
    if (sender_submit(d->sender, &sm, on_sent, on_body_started, x) < 0) {
        free(text);
        sending_free(x); /* stays 'sending': rescued, never sent twice */
        settle(d);
    }
}

size_t delivery_pending(const struct delivery *d)
{
    return d->pending;
}

size_t delivery_pending_for(const struct delivery *d, const char *account)
{
    size_t n = 0;
    for (const struct sending *x = d->live; x; x = x->live_next)
        n += strcasecmp(x->account, account) == 0;
    return n;
}

void delivery_live_ids(const struct delivery *d, struct buf *array)
{
    for (const struct sending *x = d->live; x; x = x->live_next)
        pgarray_add(array, x->message_id);
}

/* ---- set-up and close ------------------------------------------------------ */

struct delivery *delivery_new(uv_loop_t *loop, const struct ready *ready, struct sender *sender,
                              struct watcher *watcher, void (*on_settled)(void *arg),
                              void (*on_account_back)(void *arg, const char *account, size_t left), void *arg)
{
    struct delivery *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->ready = ready;
    d->sender = sender;
    d->watcher = watcher;
    d->on_settled = on_settled;
    d->on_account_back = on_account_back;
    d->settled_arg = arg;
    uv_timer_init(loop, &d->release_timer);
    d->release_timer.data = d;
    return d;
}

void delivery_stop(struct delivery *d)
{
    d->stopped = 1;
    d->on_settled = NULL; /* the cycle is over: reports are only bookkeeping now */
    d->on_account_back = NULL;
}

static void free_now(struct delivery *d)
{
    void (*cb)(void *) = d->on_closed;
    void *arg = d->closed_arg;
    while (d->live) /* none once the sender has closed; a leak otherwise */
        sending_free(d->live);
    outcomes_free(d);
    free(d->outcomes);
    while (d->outbox) {
        struct outbox_entry *e = d->outbox;
        d->outbox = e->next;
        outbox_free(e);
    }
    free(d);
    if (cb)
        cb(arg);
}

/* A statement's callback has run: when closing, the last one frees d. */
static void query_done(struct delivery *d)
{
    d->queries--;
    if (d->closing && d->timer_closed && d->queries == 0)
        free_now(d);
}

static void on_closed(uv_handle_t *h)
{
    struct delivery *d = h->data;
    d->timer_closed = 1;
    if (d->queries == 0)
        free_now(d);
}

void delivery_close(struct delivery *d, void (*on_closed_cb)(void *arg), void *arg)
{
    d->stopped = 1;
    d->closing = 1;
    d->sender = NULL; /* closed before this: nothing is released or given up any more */
    d->on_settled = NULL;
    d->on_account_back = NULL;
    d->on_closed = on_closed_cb;
    d->closed_arg = arg;
    uv_close((uv_handle_t *)&d->release_timer, on_closed);
}
