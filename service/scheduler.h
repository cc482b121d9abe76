/* scheduler: the dispatcher inside `relance serve`.
 *
 * Claims due steps in batches through relance_claim_due (FOR UPDATE SKIP
 * LOCKED, so replicas never take the same enrollment), composes each
 * message, hands it to the transport and records the outcome, which also
 * schedules the next step. It wakes on LISTEN/NOTIFY (channel
 * relance_work) when work arrives and on a timer set to the next due
 * time; when idle it does nothing. Each replica holds a lease renewed
 * while it lives, and one per sender account it sends from (given up on
 * a clean stop); rows left 'sending' by a dead replica are rescued as
 * 'unknown' (they may have gone out, so they are never sent again). */
#ifndef RELANCE_SCHEDULER_H
#define RELANCE_SCHEDULER_H

struct server;
struct scheduler;

/* Returns NULL with a reason in err (e.g. the capture dir is unusable). */
struct scheduler *scheduler_new(struct server *srv, char *err, unsigned long errlen);
/* The database (re)connected: listen, rescue, run. */
void scheduler_db_up(struct scheduler *s);
/* Something may have become due. */
void scheduler_wake(struct scheduler *s);
/* How long scheduler_close may need the database: the sender's drain
 * (SENDER_DRAIN_MS) and then the answer to the lease release. */
#define SCHEDULER_CLOSE_MS 12000

/* Stops: nothing new is claimed, the sender drains (see sender_close),
 * then this replica's account leases are given up through the database
 * in one statement, the scheduler's last: another replica takes them at
 * its next renewal instead of after their expiry. So the database must
 * stay open until on_closed fires; once it has, no query of the
 * scheduler is pending. Should the answer not come, closing the database
 * (after SCHEDULER_CLOSE_MS) fails it and the close goes on: the leases
 * then expire. on_closed fires once its handles are closed and it is
 * freed. */
void scheduler_close(struct scheduler *s, void (*on_closed)(void *arg), void *arg);

/* The sender's OAuth2 tokens (see sender_oauth2): NULL without an SMTP
 * sender or once it closes. */
struct oauth2;
struct oauth2 *scheduler_oauth2(struct scheduler *s);

#endif
