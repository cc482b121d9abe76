/* retention: serve's pruner of personal data past its retention (the
 * configuration's retention:). On the loop, shortly after start and then
 * every RETENTION_EVERY_S of relance's clock, it runs batches of
 * relance_retention_prune (sql/functions/retention.sql) one after another
 * through the main connection, RETENTION_PAUSE_MS apart so it never hogs
 * the database, until none is left; the SQL lets one session prune at a
 * time, so among replicas one prunes and the others skip the round.
 * `relance prune` runs the same batches once, from the command line. */
#ifndef RELANCE_RETENTION_H
#define RELANCE_RETENTION_H

#include <uv.h>

#define RETENTION_FIRST_MS 2000  /* the first round, and a round retried while the database is not ready */
#define RETENTION_EVERY_S 600    /* a round every 10 minutes, relance's clock */
#define RETENTION_PAUSE_MS 200   /* between two batches of one round */
#define RETENTION_BATCH "1000"   /* rows of each kind a batch */

struct config;
struct ready;
struct retention;

/* Starts the timer; reads cfg and ready (both outlive it) before each
 * batch. NULL when out of memory. */
struct retention *retention_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready);
/* Stops: no new batch; a batch in flight ends (or fails when the
 * database closes). on_closed fires once, from the loop, after the last
 * callback; the retention is freed then. */
void retention_close(struct retention *r, void (*on_closed)(void *arg), void *arg);

#endif
