/* watcher: the mailbox watcher inside `relance serve` (issue 8).
 *
 * Every sender account with an `imap` URL has its mailbox watched by
 * exactly one replica at a time: a lease 'watch:<address>' in the
 * database, renewed every few seconds and expiring after 30 s, so another
 * replica takes over when this one dies. For each leased mailbox, a pass
 * every watch_interval seconds reads each configured folder (INBOX by
 * default): EXAMINE (a fresh read-only view, with UIDNEXT and UIDVALIDITY:
 * never STATUS on a held connection, whose selected folder a server may
 * describe from a stale view); when UIDNEXT moved past the last UID read,
 * UID SEARCH for the new UIDs and, IMAP_FETCH_BATCH at a time, a bounded
 * UID FETCH (header and body prefixes, BODY.PEEK: nothing is flagged,
 * moved or deleted), classify_message, and relance_inbound (sql/functions/inbound.sql) for
 * the batch with the folder's progress in the same transaction (relance_watch_inbound_batch, sql/functions/watch.sql).
 * CLOSE is never sent (it would expunge what the user flagged \Deleted).
 * A UIDVALIDITY
 * change rescans the folder; relance_inbound's Message-ID dedupe keeps
 * anything from counting twice.
 *
 * A mailbox's IMAP channel (its connection) is kept between its passes;
 * at most imap_max_connections exist at once, and passes beyond the cap
 * wait their turn. IMAP commands run on the watcher's own pool of threads
 * (imap.c, xfer_pool.c), so a silent server blocks neither the loop nor
 * another mailbox. Each detection is logged at info; a mailbox that
 * cannot be reached is logged once, retried with backoff, and its lease
 * kept. */
#ifndef RELANCE_WATCHER_H
#define RELANCE_WATCHER_H

#include "classify.h"
#include "config.h"

#include <stddef.h>
#include <uv.h>

struct metrics;
struct watcher;

/* True when cfg asks for watching: transport smtp and at least one
 * account with an imap URL. */
int watcher_wanted(const struct config *cfg);

/* Reads the watched accounts' secrets. loop, cfg, ready and oauth2 (the
 * tokens of xoauth2 accounts; NULL when none) are borrowed and must
 * outlive the watcher. NULL with a reason in err (naming the account,
 * never the secret). Does nothing until watcher_db_up. */
struct ready;
struct oauth2;
struct watcher *watcher_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready,
                            struct oauth2 *oauth2, char *err, size_t errlen);

/* Registers the mailboxes' figures in m (borrowed; outlives w): the
 * mailboxes by state, the passes' durations, and the time from a reply's
 * arrival in its mailbox to its enrollment stopped. */
void watcher_set_metrics(struct watcher *w, struct metrics *m);

/* The database is (again) connected and migrated, accounts synced: take
 * leases and watch. */
void watcher_db_up(struct watcher *w);

/* Checks account's mailbox now: a pass (EXAMINE, and anything new
 * fetched, classified and recorded) that starts after this call. cb fires
 * once, from the loop, when that pass ends having read everything that
 * was there (a backlog larger than one pass takes the passes it needs,
 * back to back): changed > 0 is the number of new
 * messages recorded, 0 nothing new, < 0 the check failed (-EIO: the
 * mailbox could not be read; -ECANCELED: the watcher closed). Returns 0,
 * or (cb never fires) -ENOENT when the account is not watched, -EAGAIN
 * when this replica does not hold its lease (another one watches it),
 * -ECANCELED while closing, -ENOMEM. */
int watcher_check_now(struct watcher *w, const char *account_email, void (*cb)(void *arg, int changed), void *arg)
    __attribute__((warn_unused_result));

/* Seconds since the start of account's last pass on this replica that
 * read everything there was, or -1
 * when there was none (not watched here, not leased, not yet read). */
double watcher_last_check_age(const struct watcher *w, const char *account_email);

/* Appends a copy of msg[0..len) (CRLF line ends; copied) to account's
 * \Sent folder (found with LIST ... RETURN (SPECIAL-USE), else "Sent"),
 * flagged \Seen, over the account's IMAP channel and within the pool cap.
 * cb fires once from the loop with 0 or a negative error. Returns 0, or
 * -ENOENT (the account has no imap), -ECANCELED, -ENOMEM. */
int watcher_save_sent(struct watcher *w, const char *account_email, const char *msg, size_t len,
                      void (*cb)(void *arg, int status), void *arg) __attribute__((warn_unused_result));

/* Stops: passes in flight are abandoned (their progress is in the
 * database), pending callbacks fire with -ECANCELED, connections close,
 * and the mailbox leases are given up (a query: keep the database open
 * until on_closed, or close it, which ends that query). on_closed fires
 * once everything is closed; w is freed then. */
void watcher_close(struct watcher *w, void (*on_closed)(void *arg), void *arg);

/* How to log in to account's mailbox, from the configuration: URL, TLS
 * (tls: none only on imap://), username (else the address), CA file
 * (the account's, else the top-level one) and the password, read into
 * *password (the caller frees it with secret_free; NULL for xoauth2,
 * whose bearer the caller sets). Returns 0, or negative with a reason in
 * err naming the account, never the secret (-ENOENT: the password cannot
 * be read now). */
struct imap_account;
int watcher_imap_account(const struct config *cfg, const struct config_account *account, struct imap_account *out,
                         char **password, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
