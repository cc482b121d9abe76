/* leases: the lease loop shared by the scheduler (sender accounts) and
 * the watcher (mailboxes); see leases.h. It owns the renewal timer, the
 * one renewal in flight, the known leases and the final release. Each
 * kind is one row of a table: the statement that renews (answering rows
 * of id and address) and the one that gives up. */
#include "leases.h"

#include "buf.h"
#include "log.h"
#include "pgarray.h"
#include "pgerr.h"
#include "ready.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *renew;   /* $1 replica, $2 ttl seconds[, $3 names]: rows (id, address) */
    const char *release; /* $1 replica: one row with the number given up, or none */
    const char *renew_failed, *not_given_up; /* log lines */
} kinds[] = {
    [LEASES_ACCOUNTS] = {"SELECT a.id, a.email FROM accounts a JOIN relance_account_leases($1, $2) AS l(id) "
                         "ON l.id = a.id ORDER BY a.id",
                         "SELECT relance_release_account_leases($1)", "account leases failed",
                         "account leases not given up: they expire"},
    [LEASES_MAILBOXES] = {"SELECT NULL::bigint, m FROM relance_watch_leases($1, $3::text[], $2) AS m",
                          "SELECT relance_watch_release($1)", "mailbox leases failed",
                          "mailbox leases not given up: they expire"},
};

struct leases {
    const struct ready *ready;
    enum leases_kind kind;
    char replica[128];
    uv_timer_t timer;
    int renewing;              /* a renewal is in flight */
    int closing;
    struct lease **all;
    size_t n;
    char *names;               /* MAILBOXES: the text[] literal asked for */
    leases_changed_cb changed;
    void *arg;
    void (*done)(void *arg, long given);
    void *done_arg;
    long given;
    int pending;               /* the timer's close and the release's answer */
};

static void close_step(struct leases *ls);

static struct lease *lease_add(struct leases *ls, long long id, const char *name)
{
    struct lease **grown = realloc(ls->all, (ls->n + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    ls->all = grown;
    struct lease *l = calloc(1, sizeof *l);
    if (!l || !(l->name = strdup(name))) {
        free(l);
        return NULL;
    }
    l->id = id;
    if (id)
        snprintf(l->id_s, sizeof l->id_s, "%lld", id);
    ls->all[ls->n++] = l;
    return l;
}

const struct lease *leases_find(const struct leases *ls, const char *name)
{
    for (size_t i = 0; name && i < ls->n; i++)
        if (strcasecmp(ls->all[i]->name, name) == 0)
            return ls->all[i];
    return NULL;
}

const struct lease *const *leases_all(const struct leases *ls, size_t *n)
{
    *n = ls->n;
    return (const struct lease *const *)ls->all;
}

static void free_all(struct leases *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->all[i]->name);
        free(ls->all[i]);
    }
    free(ls->all);
    free(ls->names);
    free(ls);
}

/* The answer: every row is a lease this replica holds now; every other
 * known lease is not held. Changes are reported after the whole answer is
 * applied, so a callback sees the new state of every lease. */
static void on_renewed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct leases *ls = arg;
    ls->renewing = 0;
    if (ls->closing) {
        close_step(ls);
        return;
    }
    if (!res)
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        log_event(LOG_ERROR, "leases", kinds[ls->kind].renew_failed, "error",
                  pgerr_line(res, NULL, NULL, msg, sizeof msg), NULL);
        return;
    }
    size_t known = ls->n;
    int *was = calloc(known + 1, sizeof *was);
    if (!was)
        return; /* as they were; the next renewal applies */
    for (size_t i = 0; i < known; i++) {
        was[i] = ls->all[i]->held;
        ls->all[i]->held = 0;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        long long id = PQgetisnull(res, r, 0) ? 0 : atoll(PQgetvalue(res, r, 0));
        const char *name = PQgetvalue(res, r, 1);
        struct lease *l = (struct lease *)leases_find(ls, name);
        if (!l && !(l = lease_add(ls, id, name)))
            continue; /* no memory: not ours this time */
        l->held = 1;
    }
    for (size_t i = 0; i < ls->n; i++) {
        int before = i < known ? was[i] : 0;
        if (ls->all[i]->held != before && ls->changed)
            ls->changed(ls->arg, ls->all[i]);
    }
    free(was);
}

void leases_renew(struct leases *ls)
{
    struct db *db = ls->closing || ls->renewing ? NULL : ready_db(ls->ready);
    if (!db || (ls->kind == LEASES_MAILBOXES && ls->n == 0))
        return;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", LEASES_TTL_S);
    const char *p[3] = {ls->replica, ttl, ls->names};
    int n = ls->kind == LEASES_MAILBOXES ? 3 : 2;
    if (db_query(db, kinds[ls->kind].renew, n, p, on_renewed, ls) == 0)
        ls->renewing = 1;
}

static void on_timer(uv_timer_t *t)
{
    leases_renew(t->data);
}

struct leases *leases_new(uv_loop_t *loop, const struct ready *ready, enum leases_kind kind, const char *replica,
                          const char *const *names, size_t n, leases_changed_cb changed, void *arg)
{
    struct leases *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    ls->ready = ready;
    ls->kind = kind;
    snprintf(ls->replica, sizeof ls->replica, "%s", replica);
    ls->changed = changed;
    ls->arg = arg;
    if (kind == LEASES_MAILBOXES) {
        struct buf b = {0};
        for (size_t i = 0; i < n; i++) {
            pgarray_addn(&b, names[i], strlen(names[i]), 1);
            if (!lease_add(ls, 0, names[i]))
                goto nomem;
        }
        if (!pgarray_end(&b)) {
            buf_free(&b);
            goto nomem;
        }
        ls->names = b.p;
    }
    uv_timer_init(loop, &ls->timer);
    ls->timer.data = ls;
    uv_timer_start(&ls->timer, on_timer, LEASES_EVERY_MS, LEASES_EVERY_MS);
    return ls;
nomem:
    free_all(ls);
    return NULL;
}

static void close_step(struct leases *ls)
{
    if (--ls->pending > 0)
        return;
    void (*done)(void *, long) = ls->done;
    void *arg = ls->done_arg;
    long given = ls->given;
    free_all(ls);
    if (done)
        done(arg, given);
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

/* The release is the owner's last statement: every earlier one has been
 * answered or failed before it. */
static void on_released(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct leases *ls = arg;
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    ls->given = !ok ? -1 : PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? atol(PQgetvalue(res, 0, 0)) : 0;
    if (!ok) {
        char msg[300];
        log_event(LOG_WARN, "leases", kinds[ls->kind].not_given_up, "error",
                  pgerr_line(res, NULL, "no answer before the database closed", msg, sizeof msg), NULL);
    }
    close_step(ls);
}

void leases_close(struct leases *ls, void (*done)(void *arg, long given), void *arg)
{
    ls->closing = 1;
    ls->done = done;
    ls->done_arg = arg;
    ls->given = -1;
    ls->pending = 2 + ls->renewing; /* a renewal in flight answers first */
    uv_close((uv_handle_t *)&ls->timer, on_timer_closed);
    /* sent whenever the database is connected, leases or not: its answer
     * is also the sign that no earlier query is pending */
    struct db *db = ls->ready->db;
    const char *p[1] = {ls->replica};
    if (db && db_connected(db) && db_query(db, kinds[ls->kind].release, 1, p, on_released, ls) == 0)
        return;
    log_event(LOG_WARN, "leases", kinds[ls->kind].not_given_up, "error", "database unavailable", NULL);
    close_step(ls);
}
