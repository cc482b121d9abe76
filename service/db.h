/* db: one PostgreSQL connection driven by the libuv loop.
 *
 * libpq's asynchronous API (PQconnectStart/PQconnectPoll, PQsendQueryParams)
 * with one uv_poll_t on PQsocket; nothing here blocks the loop. Queries are
 * queued and sent one at a time in order. When the connection breaks, every
 * queued query's callback fires with a NULL result, and the connection is
 * re-established with capped exponential backoff (and a connect timeout),
 * forever, until db_close. LISTEN notifications reach the notify callback.
 *
 * Only a server that takes writes counts as connected: relance needs the
 * primary. A new connection is checked first (pg_is_in_recovery(),
 * transaction_read_only) and dropped if it is read-only; a statement that
 * fails with SQLSTATE 25006 (read_only_sql_transaction) on a live one
 * means the server stopped taking writes (a failover, or
 * default_transaction_read_only switched on), and drops it the same way,
 * its query's callback firing with NULL like the rest of the queue. So no
 * deliberately read-only transaction is ever run on this connection.
 * Either way it is made again with backoff until a server takes writes.
 *
 * Callback contract (as libuv's): if db_query returns an error its callback
 * never fires; otherwise it fires exactly once, never from inside db_query. */
#ifndef RELANCE_DB_H
#define RELANCE_DB_H

#include <libpq-fe.h>
#include <uv.h>

struct db;

/* res is owned by db and valid only during the call; NULL when the
 * connection was lost or closed before the query completed. */
typedef void (*db_result_cb)(struct db *db, const PGresult *res, void *arg);
/* What the state callback reports. */
enum db_link {
    DB_LINK_UP,        /* connected to a server that takes writes */
    DB_LINK_DOWN,      /* lost, or cannot connect */
    DB_LINK_READ_ONLY, /* dropped: the server takes no writes (not a primary) */
};
/* Fires when the connection comes up (reason NULL), when it is lost, and
 * when an attempt to make it again fails for another reason than the last
 * one (reason: one line, never a secret). */
typedef void (*db_state_cb)(struct db *db, enum db_link link, const char *reason, void *arg);
typedef void (*db_notify_cb)(struct db *db, const char *channel, const char *payload, void *arg);

struct db *db_new(uv_loop_t *loop, const char *conninfo, db_state_cb on_state, void *arg);
void db_set_notify(struct db *db, db_notify_cb on_notify);
/* Names the connection in its log lines (connection=role): serve has two.
 * role is a string that outlives db. */
void db_set_role(struct db *db, const char *role);
/* Starts connecting. Returns 0 or a negative error. */
int db_start(struct db *db) __attribute__((warn_unused_result));
int db_connected(const struct db *db);
/* Which connection this is: 1 for the first made, one more for each made
 * since. What lives as long as a connection (a session advisory lock, a
 * LISTEN) was lost when it changed. */
unsigned db_session(const struct db *db);

/* Queues a query with text parameters (params may be NULL for none). The
 * strings are copied. Returns 0, or -1 when the connection is down (the
 * caller decides what that means: retry later, answer 503, ...). */
int db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_result_cb cb,
             void *arg) __attribute__((warn_unused_result));

/* How many queries are queued or in flight. */
size_t db_queued(const struct db *db);

/* Closes the connection and every handle; pending callbacks fire with
 * NULL. on_closed fires once the last handle is closed; db is freed then. */
void db_close(struct db *db, void (*on_closed)(void *arg), void *arg);

#endif
