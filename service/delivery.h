/* delivery: the life of one claimed message once it is composed — handed
 * to the sender (which signs it and sends it over SMTP, or captures it),
 * its point of no return recorded before its body may go, its outcome
 * recorded, a copy saved in the account's Sent folder — and the batching
 * that keeps those writes to a few statements under load. The scheduler
 * claims and composes; what an outcome means for the enrollment is SQL's
 * (relance_step_outcome, relance_step_hold).
 *
 * Nothing is lost while the database is away: an outcome or a hold that
 * cannot be written waits in an outbox and is written when delivery_db_up
 * says the database is back (each SQL function acts only on a row still
 * 'sending', so writing one twice changes nothing). A message whose
 * outcome is never written stays 'sending' and is rescued: 'unknown' when
 * its body had started (never sent again), 'deferred' when not. */
#ifndef RELANCE_DELIVERY_H
#define RELANCE_DELIVERY_H

#include "buf.h"

#include <stddef.h>
#include <uv.h>

struct delivery;
struct metrics;
struct ready;
struct sender;
struct watcher;

/* loop, ready, sender and watcher (for save_sent copies; NULL when no
 * mailbox is watched) are borrowed and must outlive it. on_settled(arg)
 * fires, from the loop, each time the last message or write in flight
 * has settled (delivery_pending drops to 0); on_account_back(arg,
 * account, left) each time one of an account's messages in flight is
 * back, with how many it still has in flight (it may be claimed for
 * again). NULL when out of memory. */
struct delivery *delivery_new(uv_loop_t *loop, const struct ready *ready, struct sender *sender,
                              struct watcher *watcher, void (*on_settled)(void *arg),
                              void (*on_account_back)(void *arg, const char *account, size_t left),
                              void *arg);

/* One composed message. The strings are borrowed during the call. */
struct delivery_message {
    const char *message_id; /* the messages row (its Message-ID without <>) */
    const char *step_id;
    long long enrollment_id;
    const char *account;    /* the sending account (smtp), or the From address (capture) */
    const char *rcpt;
    const char *subject;
    int variant;            /* -1: none */
    int save_sent;          /* keep a copy in the account's Sent folder */
    double at;              /* when it counts as sent (capture: the claim's instant); 0: its outcome's */
};

/* Sends text[0..len) (ownership passes, whatever happens). Its outcome
 * is recorded when it comes; a message the sender cannot take stays
 * 'sending' (rescued, never sent twice). */
void delivery_send(struct delivery *d, const struct delivery_message *m, char *text, size_t len);

/* Holds the step of message_id with reason (a person must act: a missing
 * template field, an unreadable sequence, a message that cannot be
 * signed): recorded like an outcome. */
void delivery_hold(struct delivery *d, const char *message_id, long long enrollment_id, const char *step_id,
                   const char *reason);

/* Messages in flight and writes not yet answered. */
size_t delivery_pending(const struct delivery *d);

/* Messages of account (its address) handed to the sender and not yet
 * back with an outcome. */
size_t delivery_pending_for(const struct delivery *d, const char *account);

/* Messages this replica has in flight, added to a PostgreSQL array
 * literal being built (pgarray_add): a reconnect's rescue must not touch
 * them. */
void delivery_live_ids(const struct delivery *d, struct buf *array);

/* Registers the sends' figures in m (borrowed; outlives d): each
 * outcome, by account, as it comes back to the loop. */
void delivery_set_metrics(struct delivery *d, struct metrics *m);

/* The database is back: what waits in the outbox is written. */
void delivery_db_up(struct delivery *d);

/* Stops writing (the process is stopping: a row left 'sending' is
 * rescued by the next replica); what is in flight still reports, and is
 * only forgotten. */
void delivery_stop(struct delivery *d);

/* Frees d once the sender has closed (no report can come any more).
 * on_closed fires once its handle is closed. */
void delivery_close(struct delivery *d, void (*on_closed)(void *arg), void *arg);

#endif
