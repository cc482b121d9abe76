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

#include "config.h"

#include <stddef.h>
#include <uv.h>

struct ready;
struct scheduler;
struct metrics;
struct sender;
struct watcher;

/* loop, cfg, ready, sender (where composed messages go: SMTP or capture)
 * and watcher (NULL when no mailbox is watched) are borrowed and must
 * outlive it. Returns NULL with a reason in err. */
struct scheduler *scheduler_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready,
                                struct sender *sender, struct watcher *watcher, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Registers the claims' figures in m (borrowed; outlives s) and hands m
 * to delivery, for the sends' outcomes. */
void scheduler_set_metrics(struct scheduler *s, struct metrics *m);
/* The database (re)connected and migrated: sync accounts, listen, rescue, run. */
void scheduler_db_up(struct scheduler *s);
/* Something may have become due. */
void scheduler_wake(struct scheduler *s);
/* The first half of a stop: nothing new is claimed and no body starts;
 * the outcomes of those on the wire are still written. Then close the
 * sender (its drain: see sender_close), then scheduler_close. */
void scheduler_stop(struct scheduler *s);
/* Once the sender has closed: what this replica claimed and did not
 * send is given back (relance_rescue_stopping), then its account leases
 * are given up through the database in one statement, the scheduler's
 * last: another replica takes them at its next renewal instead of after their
 * expiry. So the database must stay open until on_closed fires; once it
 * has, no query of the scheduler is pending. Should the answer not come,
 * closing the database (the server does so as its shutdown_grace runs
 * out) fails it and the close goes on: the leases then expire. on_closed
 * fires once its handles are closed and it is freed. */
void scheduler_close(struct scheduler *s, void (*on_closed)(void *arg), void *arg);

/* The messages' public links, signed with secret: one-click unsubscribe
 * under public_url (NULL: a mailto: only), and the tracked links under
 * the sending domain's tracking host or public_url (config.h). Both are
 * borrowed: they must outlive the scheduler. Without this call (no link
 * secret), messages carry a mailto: only and nothing is tracked. */
void scheduler_set_links(struct scheduler *s, const char *public_url, const char *secret);

#endif
