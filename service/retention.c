/* retention: serve's timer that prunes personal data in small batches
 * (see retention.h). It owns the timer, the round's state and its
 * counts; what is pruned, what is never pruned, and the one-pruner lock
 * are SQL's (relance_retention_prune). A round that fails (the database
 * down, an error) is logged once and tried again at the next round. */
#include "retention.h"

#include "clock.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "ready.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum retention_state {
    RETENTION_WAITING,  /* the timer runs: the next round or the next batch */
    RETENTION_PRUNING,  /* a batch is in flight */
    RETENTION_CLOSING,
};

static const char *const state_names[] = {"WAITING", "PRUNING", "CLOSING"};

struct retention {
    uv_loop_t *loop;
    const struct config *cfg;
    const struct ready *ready;
    uv_timer_t timer;
    enum retention_state state;
    int in_flight;      /* a batch's callback is still to fire */
    int timer_closed;
    long events, messages, inbound, batches; /* this round's */
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void retention_set_state(struct retention *r, enum retention_state s)
{
    if (r->state == s)
        return;
    char change[40];
    snprintf(change, sizeof change, "%s -> %s", state_names[r->state], state_names[s]);
    log_event(LOG_DEBUG, "retention", "state", "change", change, NULL);
    r->state = s;
}

static void maybe_free(struct retention *r)
{
    if (r->state != RETENTION_CLOSING || r->in_flight || !r->timer_closed)
        return;
    void (*cb)(void *) = r->on_closed;
    void *arg = r->closed_arg;
    free(r);
    if (cb)
        cb(arg);
}

static void on_timer(uv_timer_t *t);

/* The next round, RETENTION_EVERY_S of relance's clock from now. */
static void round_end(struct retention *r)
{
    if (r->events || r->messages || r->inbound) {
        char ev[24], msg[24], in[24], b[24];
        snprintf(ev, sizeof ev, "%ld", r->events);
        snprintf(msg, sizeof msg, "%ld", r->messages);
        snprintf(in, sizeof in, "%ld", r->inbound);
        snprintf(b, sizeof b, "%ld", r->batches);
        log_event(LOG_INFO, "retention", "pruned", "events", ev, "messages", msg, "inbound", in, "batches", b, NULL);
    }
    r->events = r->messages = r->inbound = r->batches = 0;
    double ms = RETENTION_EVERY_S * 1000.0 / clock_speed();
    uv_timer_start(&r->timer, on_timer, ms < 1000 ? 1000 : (uint64_t)ms, 0);
    retention_set_state(r, RETENTION_WAITING);
}

static void on_batch(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct retention *r = arg;
    r->in_flight = 0;
    if (r->state == RETENTION_CLOSING) {
        maybe_free(r);
        return;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        /* the database went away (db.c says why) or refused: next round */
        if (res)
            log_event(LOG_WARN, "retention", "pruning failed; tried again at the next round", "error",
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), NULL);
        round_end(r);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 4), "t") == 0) {
        /* another replica prunes this round */
        round_end(r);
        return;
    }
    r->batches++;
    r->events += atol(PQgetvalue(res, 0, 0));
    r->messages += atol(PQgetvalue(res, 0, 1));
    r->inbound += atol(PQgetvalue(res, 0, 2));
    if (strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
        round_end(r);
        return;
    }
    uv_timer_start(&r->timer, on_timer, RETENTION_PAUSE_MS, 0);
    retention_set_state(r, RETENTION_WAITING);
}

static void on_timer(uv_timer_t *t)
{
    struct retention *r = t->data;
    /* the background's connection, never the scheduler's nor the API's: a
     * batch waiting on a lock must not hold up a claim, an outcome or a
     * request behind it */
    struct db *db = ready_background_db(r->ready);
    if (!db) {
        /* not ready yet (or any more): soon again, not a round later */
        uv_timer_start(&r->timer, on_timer, RETENTION_FIRST_MS, 0);
        return;
    }
    char now[64], ev[24], msg[24], in[24];
    clock_format(clock_now(), now, sizeof now);
    snprintf(ev, sizeof ev, "%ld", r->cfg->retention_events);
    snprintf(msg, sizeof msg, "%ld", r->cfg->retention_messages);
    snprintf(in, sizeof in, "%ld", r->cfg->retention_inbound);
    const char *p[5] = {now, ev, msg, in, RETENTION_BATCH};
    if (db_query(db, "SELECT * FROM relance_retention_prune($1, $2, $3, $4, $5)", 5, p, on_batch, r) < 0) {
        uv_timer_start(&r->timer, on_timer, RETENTION_FIRST_MS, 0);
        return;
    }
    r->in_flight = 1;
    retention_set_state(r, RETENTION_PRUNING);
}

struct retention *retention_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready)
{
    struct retention *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->cfg = cfg;
    r->ready = ready;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_timer, RETENTION_FIRST_MS, 0);
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct retention *r = h->data;
    r->timer_closed = 1;
    maybe_free(r);
}

void retention_close(struct retention *r, void (*on_closed)(void *arg), void *arg)
{
    r->on_closed = on_closed;
    r->closed_arg = arg;
    retention_set_state(r, RETENTION_CLOSING);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
