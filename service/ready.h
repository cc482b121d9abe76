/* ready: whether the database may be used now — connected, taking writes
 * and migrated. The server owns the one struct ready of a process and
 * keeps it current (db.c's link state, the migration check); the parts
 * it creates (scheduler, delivery, watcher, the HTTP API) are handed a
 * const pointer and read it before each query. That is all they learn of
 * the server: no engine file includes the server's own header. */
#ifndef RELANCE_READY_H
#define RELANCE_READY_H

#include "db.h"

struct ready {
    struct db *db;       /* NULL once the server has begun closing it */
    int migrated;        /* the schema and functions are up to date */
    char reason[300];    /* why not, for /readyz and the logs */
};

/* The database to query, or NULL when it may not be used now. */
static inline struct db *ready_db(const struct ready *r)
{
    return r && r->db && r->migrated && db_connected(r->db) ? r->db : NULL;
}

#endif
