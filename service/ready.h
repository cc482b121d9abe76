/* ready: whether the database may be used now — connected, taking writes
 * and migrated. The server owns the one struct ready of a process and
 * keeps it current (db.c's link state, the migration check); the parts
 * it creates (scheduler, delivery, watcher, the HTTP API) are handed a
 * const pointer and read it before each query. That is all they learn of
 * the server: no engine file includes the server's own header. */
#ifndef RELANCE_READY_H
#define RELANCE_READY_H

#include "db.h"

/* The HTTP API's connections: a request's statement goes to the one with
 * the fewest queued, so that round trips overlap under load. */
#define READY_API_DBS 2

struct ready {
    struct db *db;       /* NULL once the server has begun closing it */
    struct db *pnr;      /* the points of no return's own connection (below); NULL likewise */
    struct db *api[READY_API_DBS]; /* the HTTP API's own connections (below); NULL likewise */
    struct db *background; /* webhook delivery's and retention's own connection (below); NULL likewise */
    int migrated;        /* the schema and functions are up to date */
    int stopping;        /* SIGTERM came: not ready, whatever the database (the
                          * orchestrator sends no new traffic while we drain) */
    char reason[300];    /* why not, for /readyz and the logs */
};

/* The database to query, or NULL when it may not be used now. */
static inline struct db *ready_db(const struct ready *r)
{
    return r && r->db && r->migrated && db_connected(r->db) ? r->db : NULL;
}

/* The connection for a point of no return (a held body waits for it):
 * its own, so that it never queues behind a claim or a batch of outcomes
 * on the one connection every other statement takes; that one while its
 * own is down. NULL when the database may not be used now. */
static inline struct db *ready_pnr_db(const struct ready *r)
{
    struct db *db = ready_db(r);
    return db && r->pnr && db_connected(r->pnr) ? r->pnr : db;
}

/* The connection for an HTTP API statement: one of its own, so that a
 * request never waits behind the scheduler's claims and outcomes, nor
 * they behind a bulk import — the one with the fewest statements queued;
 * the main one while its own are down. NULL when the database may not be
 * used now. */
static inline struct db *ready_api_db(const struct ready *r)
{
    struct db *db = ready_db(r), *best = NULL;
    for (size_t i = 0; db && i < READY_API_DBS; i++)
        if (r->api[i] && db_connected(r->api[i]) && (!best || db_queued(r->api[i]) < db_queued(best)))
            best = r->api[i];
    return best ? best : db;
}

/* The connection of the work in the background (webhook delivery,
 * retention): its own, so that it never holds up an API request nor
 * the scheduler. No fallback: webhook delivery holds session advisory
 * locks on it (webhooks.c), which must be taken and given back on one
 * connection. NULL while it is down, or the database may not be used. */
static inline struct db *ready_background_db(const struct ready *r)
{
    return ready_db(r) && r->background && db_connected(r->background) ? r->background : NULL;
}

#endif
