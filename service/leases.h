/* leases: what one replica may work on, among replicas sharing one
 * database — the sender accounts it claims and sends from (the
 * scheduler's), or the mailboxes it reads (the watcher's). One loop for
 * both: every LEASES_EVERY_MS one statement takes and renews this
 * replica's leases for LEASES_TTL_S (so a replica that dies frees its
 * share within that time), the answer is compared with what was held,
 * and each change is reported once; on a clean stop one statement gives
 * them all up, so another replica takes them at its next renewal rather
 * than after the expiry. Which replica gets what is SQL's
 * (relance_account_leases, relance_watch_leases). */
#ifndef RELANCE_LEASES_H
#define RELANCE_LEASES_H

#include <stddef.h>
#include <uv.h>

#define LEASES_TTL_S 30
#define LEASES_EVERY_MS 5000

enum leases_kind {
    LEASES_ACCOUNTS,  /* every configured account of the database; ids and addresses */
    LEASES_MAILBOXES, /* the mailboxes named at leases_new */
};

/* One thing this replica may hold. */
struct lease {
    long long id;   /* accounts: the account's id; mailboxes: 0 */
    char id_s[24];  /* id as text ("" for mailboxes) */
    char *name;     /* the account's address, as the database spells it */
    int held;
};

struct leases;
struct ready;

/* A lease was gained (held 1) or lost (held 0), from the loop. The
 * struct lease lives as long as the struct leases. */
typedef void (*leases_changed_cb)(void *arg, const struct lease *l);

/* For kind MAILBOXES, names[0..n) are the mailboxes to ask for (copied).
 * replica names this process; loop and ready are borrowed. Renews at
 * once when the database is ready, then every LEASES_EVERY_MS. NULL when
 * out of memory. */
struct leases *leases_new(uv_loop_t *loop, const struct ready *ready, enum leases_kind kind, const char *replica,
                          const char *const *names, size_t n, leases_changed_cb changed, void *arg);

/* Renews now (the database came back); one renewal is in flight at most. */
void leases_renew(struct leases *ls);

/* The lease named name (any case), or NULL when none is known. */
const struct lease *leases_find(const struct leases *ls, const char *name);

/* Every lease known, held or not: *n of them. */
const struct lease *const *leases_all(const struct leases *ls, size_t *n);

/* Gives every lease of this replica up and frees ls: done(arg, given)
 * fires once, from the loop, with the number given up, or -1 when the
 * database did not answer (they then expire). The database must stay
 * open until done has fired. */
void leases_close(struct leases *ls, void (*done)(void *arg, long given), void *arg);

#endif
