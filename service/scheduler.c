/* scheduler: one claim cycle at a time on the loop. It owns the cycle's
 * state machine, the cache of parsed sequence versions, the replica lease
 * and the account leases (taken and renewed while it runs, given up when
 * it stops cleanly) with the rescues of rows left 'sending'. SQL owns the
 * decisions (relance_claim_accounts, relance_claim_due), compose.c the
 * message, delivery.c everything from the composed message to its
 * recorded outcome (through the sender: SMTP, or capture). */
#include "scheduler.h"

#include "accounts.h"
#include "buf.h"
#include "clock.h"
#include "compose.h"
#include "config.h"
#include "delivery.h"
#include "leases.h"
#include "log.h"
#include "metrics.h"
#include "pgarray.h"
#include "pgerr.h"
#include "public.h"
#include "ready.h"
#include "sender.h"
#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BATCH 200
#define LEASE_TTL_S LEASES_TTL_S /* the replica's own lease */
#define LEASE_EVERY_MS LEASES_EVERY_MS
#define RESCUE_EVERY_MS 30000
#define IDLE_RECHECK_MS 60000
#define RACE_CHECK_S 5.0 /* a mailbox read longer ago than this is read again before a follow-up */

struct job {
    char *message_id, *step_id, *email, *fields, *thread_ids, *first_subject;
    const struct held *account; /* the sending account, or NULL (capture without accounts) */
    long long enrollment_id, sequence_id;
    int position, version;
};

/* An account this replica has held the lease of (by_account), and
 * its configuration here. Never freed while the scheduler lives (jobs
 * point at it); whether it is held now is its lease's. */
struct held {
    const struct lease *lease; /* id, address, held */
    const struct config_account *cfg;
    size_t low; /* claimed for again with at most this many in flight: half its last claim */
};

/* The claim cycle: at most one at a time. IDLE waits for the timer (the
 * next due time) or a wake; CLAIMING asks which accounts have work, reads
 * their mailboxes first where a follow-up races a reply, claims and loads
 * sequence versions; DELIVERING hands the composed messages to delivery.c
 * (with accounts, the cycle ends once they are handed over; with
 * relance_claim_due, once everything settled); ENDING asks when the next
 * step is due. STOPPED is final (scheduler_stop).
 *
 * With accounts, a cycle claims for all of them in one statement
 * (relance_claim_accounts): one round trip and one pass of the rotation
 * per pool, whatever the number of accounts. An account is claimed for
 * again once at most half of what its last claim took is still in flight
 * (its low mark): the next claim is composed while that half goes out,
 * so a busy account never waits for a claim's round trip, and what is
 * held in memory stays under one and a half claims an account. Above its
 * low mark it is passed over, and claimed for when enough is back
 * (delivery's on_account_back wakes the scheduler). So a server that stops
 * answering holds only its own account's queue, and claims for every other
 * account go on. */
enum cycle_state { CYCLE_IDLE, CYCLE_CLAIMING, CYCLE_DELIVERING, CYCLE_ENDING, CYCLE_STOPPED };
static const char *const cycle_state_names[] = {"IDLE", "CLAIMING", "DELIVERING", "ENDING", "STOPPED"};

struct cached {
    long long sequence_id;
    int version;
    struct sequence *seq;
};

struct scheduler {
    const struct config *cfg;
    const struct ready *ready;
    struct delivery *delivery;
    struct metrics_family *claims, *claimed, *claim_seconds; /* NULL without metrics */
    struct watcher *watcher; /* the race check before a follow-up; NULL when no mailbox is watched */
    int smtp;                /* transport smtp; else capture */
    int by_account;          /* claims per leased account (smtp, or capture with accounts configured);
                              * else relance_claim_due, From the placeholder */
    int pools_checked;       /* sequences naming an unknown pool were warned about (once per process) */
    uv_timer_t timer;        /* next due time */
    uv_timer_t lease_timer;  /* lease renewal and rescue */
    enum cycle_state state;  /* only cycle_state_set changes it */
    int again;               /* woken while a cycle ran: run another when it ends */
    int processing;          /* process_all is handing the cycle's jobs over */
    int pending_closes;
    struct job *jobs;
    size_t n_jobs;
    struct cached *cache;
    size_t n_cache;
    char replica[96];
    char id_domain[256];
    char *from_addr, *from_name;
    const char *public_url, *link_secret; /* the unsubscribe links; NULL: mailto: only */
    double last_rescue;
    double cycle_now;        /* the instant the batch was claimed at */
    char cycle_now_s[40];
    void (*on_closed)(void *arg);
    void *closed_arg;
    int lease_gained;        /* an account became leased since the cycle started: claim again now */
    struct leases *leases;   /* by_account: the accounts this replica sends from */
    struct held **held;
    size_t n_held;
    struct buf claim_ids;    /* the cycle's accounts to claim for, a PostgreSQL array */
    size_t pending_checks;   /* mailbox reads the cycle's claim waits for */
    uint64_t claim_asked;    /* uv_hrtime when the claim was queued */
    int claim_full, cycle_empty;
    int busy_skipped;        /* an account was not claimed for: more than its low mark was in flight */
    int account_back;        /* since the cycle started, such an account came down to its low mark */
};

static void cycle_start(struct scheduler *s);
static void on_ignore(struct db *db, const PGresult *res, void *arg);
static void on_settled(void *arg);
static void cycle_end(struct scheduler *s, int full);
static void on_timer(uv_timer_t *t);

/* The one place the cycle's state changes: logged at debug level. STOPPED
 * is never left. */
static void cycle_state_set(struct scheduler *s, enum cycle_state to)
{
    if (s->state == to || s->state == CYCLE_STOPPED)
        return;
    char event[64];
    snprintf(event, sizeof event, "cycle %s -> %s", cycle_state_names[s->state], cycle_state_names[to]);
    log_event(LOG_DEBUG, "scheduler", event, NULL);
    s->state = to;
}

static int stopped(const struct scheduler *s)
{
    return s->state == CYCLE_STOPPED;
}

static void jobs_free(struct scheduler *s)
{
    for (size_t i = 0; i < s->n_jobs; i++) {
        struct job *j = &s->jobs[i];
        free(j->message_id);
        free(j->step_id);
        free(j->email);
        free(j->fields);
        free(j->thread_ids);
        free(j->first_subject);
    }
    free(s->jobs);
    s->jobs = NULL;
    s->n_jobs = 0;
}

static const struct sequence *cache_find(struct scheduler *s, long long id, int version)
{
    for (size_t i = 0; i < s->n_cache; i++)
        if (s->cache[i].sequence_id == id && s->cache[i].version == version)
            return s->cache[i].seq;
    return NULL;
}

/* db_query, or -1 when the scheduler is closing or the database gone. */
static int query_arg(struct scheduler *s, const char *sql, int n, const char *const *params, db_result_cb cb,
                     void *arg)
{
    struct db *db = stopped(s) ? NULL : ready_db(s->ready);
    return db ? db_query(db, sql, n, params, cb, arg) : -1;
}

static int query(struct scheduler *s, const char *sql, int n, const char *const *params, db_result_cb cb)
{
    return query_arg(s, sql, n, params, cb, s);
}

static void now_param(char *buf, size_t len)
{
    clock_format(clock_now(), buf, len);
}

static void hold(struct scheduler *s, const struct job *j, const char *reason)
{
    delivery_hold(s->delivery, j->message_id, j->enrollment_id, j->step_id, reason);
}

/* A job's contact fields, for template lookups. */
struct fields {
    const char *src;
    char value[4096];
};

static const char *lookup(const char *field, void *arg)
{
    struct fields *f = arg;
    return compose_field_find(f->src, field, f->value, sizeof f->value);
}

static void process(struct scheduler *s, const struct job *j)
{
    char enr[32], err[300];
    snprintf(enr, sizeof enr, "%lld", j->enrollment_id);
    const struct sequence *seq = cache_find(s, j->sequence_id, j->version);
    if (!seq || (size_t)j->position >= seq->n_steps) {
        hold(s, j, "sequence version unreadable");
        return;
    }
    /* thread ids come bare and space-separated; the message wants <...> */
    char *ids[64];
    size_t n_ids = 0;
    char *copy = strdup(j->thread_ids ? j->thread_ids : "");
    for (char *save = NULL, *tok = copy ? strtok_r(copy, " ", &save) : NULL; tok && n_ids < 64;
         tok = strtok_r(NULL, " ", &save)) {
        if (asprintf(&ids[n_ids], "<%s>", tok) < 0)
            break;
        n_ids++;
    }
    char mid[300];
    snprintf(mid, sizeof mid, "<%s>", j->message_id);
    struct fields f = {j->fields, ""};
    const char *from_addr = j->account ? j->account->lease->name : s->from_addr;
    const struct config_account *acfg = j->account ? j->account->cfg : NULL; /* NULL: the placeholder */
    const char *from_name = acfg ? acfg->from_name : s->from_name;
    struct compose_sender sender = {from_addr, from_name, acfg ? acfg->first_name : NULL,
                                    acfg ? acfg->signature : NULL};
    /* signed here, where the Message-ID is known: the link names it */
    char link[PUBLIC_LINK_MAX];
    int linked = s->public_url && s->link_secret &&
                 public_link(s->public_url, s->link_secret, LINKTOKEN_UNSUBSCRIBE, j->message_id, link,
                             sizeof link) == 0;
    /* tracked links go through the sending domain's own host where it has one */
    char base[PUBLIC_URL_MAX];
    const char *track_base = s->link_secret ? config_tracking_base(s->cfg, from_addr, base, sizeof base) : NULL;
    struct compose_input in = {
        .seq = seq,
        .position = (size_t)j->position,
        .unsubscribe_url = linked ? link : NULL,
        .track_base = track_base,
        .link_secret = s->link_secret,
        .to_addr = j->email,
        .lookup = lookup,
        .lookup_arg = &f,
        .from_addr = from_addr,
        .from_name = from_name,
        .sender = &sender,
        .message_id = mid,
        .date = (time_t)s->cycle_now, /* the claim's instant: what the window check saw */
        .thread_ids = (const char *const *)ids,
        .n_thread = n_ids,
        .first_subject = j->first_subject,
    };
    struct compose_result r;
    int rc = compose_message(&in, &r, err, sizeof err);
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
    free(copy);
    if (rc == COMPOSE_MISSING_FIELD) {
        char reason[120];
        snprintf(reason, sizeof reason, "missing_field:%s", r.missing);
        hold(s, j, reason);
        return;
    }
    if (rc < 0) {
        char reason[400];
        snprintf(reason, sizeof reason, "compose_error: %s", err);
        hold(s, j, reason);
        return;
    }
    struct delivery_message m = {
        .message_id = j->message_id,
        .step_id = j->step_id,
        .enrollment_id = j->enrollment_id,
        .account = from_addr,
        .rcpt = j->email,
        .subject = r.subject,
        .variant = r.variant,
        .save_sent = s->smtp && j->account && j->account->cfg->save_sent,
        /* captured: sent at the claim's instant, as its Date says */
        .at = s->smtp ? 0 : s->cycle_now,
    };
    char *text = r.text;
    r.text = NULL; /* delivery's now */
    log_event(LOG_DEBUG, "scheduler", "composed", "enrollment", enr, "step", j->step_id, "to", j->email, NULL);
    delivery_send(s->delivery, &m, text, r.len);
    compose_result_free(&r);
}

/* The cycle's last claimed message has been handed over (and, without
 * accounts, everything in flight has settled): the cycle ends. */
static void maybe_cycle_end(struct scheduler *s)
{
    if (s->processing || s->state != CYCLE_DELIVERING || (!s->by_account && delivery_pending(s->delivery) > 0))
        return;
    cycle_end(s, s->claim_full);
}

static void on_settled(void *arg)
{
    maybe_cycle_end(arg);
}

static struct held *held_by_name(const struct scheduler *s, const char *name);

/* One of an account's messages in flight is back, left still out: if a
 * cycle skipped an account for its messages in flight and this one is
 * down to its low mark, claim again now rather than at the next timer. */
static void on_account_back(void *arg, const char *account, size_t left)
{
    struct scheduler *s = arg;
    if (!s->busy_skipped || stopped(s))
        return;
    const struct held *h = account ? held_by_name(s, account) : NULL;
    if (h && left > h->low)
        return;
    s->busy_skipped = 0;
    s->account_back = 1; /* honoured even after a cycle that claimed nothing */
    cycle_start(s);
}

static void process_all(struct scheduler *s)
{
    cycle_state_set(s, CYCLE_DELIVERING);
    s->processing = 1; /* the cycle ends after the last job is handed over, not during */
    for (size_t i = 0; i < s->n_jobs && !stopped(s); i++)
        process(s, &s->jobs[i]);
    s->processing = 0;
    maybe_cycle_end(s);
}

/* ---- sequence versions ------------------------------------------------- */

static void on_sources(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++) {
            struct sequence *seq = NULL;
            struct sequence_diags d = {0};
            const char *src = PQgetvalue(res, i, 3);
            if (cache_find(s, atoll(PQgetvalue(res, i, 0)), atoi(PQgetvalue(res, i, 1))))
                continue;
            if (sequence_parse(PQgetvalue(res, i, 2), src, strlen(src), NULL, &seq, &d) == 0) {
                struct cached *grown = realloc(s->cache, (s->n_cache + 1) * sizeof *grown);
                if (grown) {
                    s->cache = grown;
                    s->cache[s->n_cache++] =
                        (struct cached){atoll(PQgetvalue(res, i, 0)), atoi(PQgetvalue(res, i, 1)), seq};
                    seq = NULL;
                }
            }
            sequence_free(seq);
            sequence_diags_free(&d);
        }
    }
    if (!res) {
        jobs_free(s);
        cycle_end(s, 0);
        return;
    }
    process_all(s);
}

/* Whether an earlier job of the cycle has job i's sequence version: each
 * version is asked for and parsed once, not once per job. */
static int listed_before(const struct scheduler *s, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (s->jobs[k].sequence_id == s->jobs[i].sequence_id && s->jobs[k].version == s->jobs[i].version)
            return 1;
    return 0;
}

static void load_sequences(struct scheduler *s)
{
    struct buf ids = {0}, vers = {0};
    for (size_t i = 0; i < s->n_jobs; i++) {
        struct job *j = &s->jobs[i];
        if (cache_find(s, j->sequence_id, j->version) || listed_before(s, i))
            continue;
        char id[24], ver[16];
        snprintf(id, sizeof id, "%lld", j->sequence_id);
        snprintf(ver, sizeof ver, "%d", j->version);
        pgarray_add(&ids, id);
        pgarray_add(&vers, ver);
    }
    int missing = ids.len > 0;
    const char *p[2] = {pgarray_end(&ids), pgarray_end(&vers)};
    /* without memory for the question, each job is held as unreadable:
     * better than stuck */
    int rc = missing && p[0] && p[1]
                 ? query(s,
                         "SELECT v.sequence_id, v.version, v.source_file, v.source FROM sequence_versions v "
                         "JOIN unnest($1::bigint[], $2::int[]) AS k(id, ver) "
                         "ON v.sequence_id = k.id AND v.version = k.ver",
                         2, p, on_sources)
                 : -1;
    buf_free(&ids);
    buf_free(&vers);
    if (rc < 0)
        process_all(s);
}

/* ---- the cycle ---------------------------------------------------------- */

static char *dup_value(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

static struct held *held_by_id(const struct scheduler *s, long long id)
{
    for (size_t i = 0; i < s->n_held; i++)
        if (s->held[i]->lease->id == id)
            return s->held[i];
    return NULL;
}

static struct held *held_by_name(const struct scheduler *s, const char *name)
{
    for (size_t i = 0; i < s->n_held; i++)
        if (strcasecmp(s->held[i]->lease->name, name) == 0)
            return s->held[i];
    return NULL;
}

/* Adds a claim's rows to the cycle's jobs: with by_account, each row's
 * first column is its account's id (relance_claim_accounts), else the
 * rows have no account (relance_claim_due). Returns the number of rows,
 * or -1 when the claim failed (logged); *most gets the most rows one
 * account (or the claim, without accounts) took. */
static int append_jobs(struct scheduler *s, const PGresult *res, int by_account, int *most)
{
    *most = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        log_event(LOG_ERROR, "scheduler", "claim failed", "error", pgerr_line(res, NULL, NULL, msg, sizeof msg),
                  "retry_ms", "5000", NULL);
        return -1;
    }
    int n = PQntuples(res);
    if (n == 0)
        return 0;
    struct job *grown = realloc(s->jobs, (s->n_jobs + (size_t)n) * sizeof *grown);
    if (!grown)
        return -1; /* the rows stay 'sending': rescued as unknown later */
    s->jobs = grown;
    int c = by_account ? 1 : 0, run = 0;
    for (int i = 0; i < n; i++) {
        struct job *j = &s->jobs[s->n_jobs++];
        memset(j, 0, sizeof *j);
        struct held *h = NULL;
        if (by_account) {
            h = held_by_id(s, atoll(PQgetvalue(res, i, 0)));
            j->account = h;
            /* the rows come account by account */
            run = i > 0 && strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) == 0 ? run + 1 : 1;
        } else {
            run = i + 1;
        }
        if (run > *most)
            *most = run;
        if (h && (i + 1 == n || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i + 1, 0)) != 0))
            h->low = (size_t)run / 2; /* its run ends here */
        j->message_id = dup_value(res, i, c + 0);
        j->enrollment_id = atoll(PQgetvalue(res, i, c + 1));
        j->position = atoi(PQgetvalue(res, i, c + 2));
        j->step_id = dup_value(res, i, c + 3);
        j->sequence_id = atoll(PQgetvalue(res, i, c + 4));
        j->version = atoi(PQgetvalue(res, i, c + 5));
        j->email = dup_value(res, i, c + 6);
        j->fields = dup_value(res, i, c + 7);
        j->thread_ids = dup_value(res, i, c + 8);
        j->first_subject = dup_value(res, i, c + 9);
    }
    return n;
}

static void claim_failed(struct scheduler *s)
{
    /* back off instead of retrying at once: the next try fails alike */
    cycle_state_set(s, CYCLE_IDLE);
    if (!stopped(s))
        uv_timer_start(&s->timer, on_timer, 5000, 0);
}

/* A cycle's claim has answered: relance_claim_accounts for the cycle's
 * accounts (by_account), else relance_claim_due. */
static void on_claimed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (!res) {
        cycle_end(s, 0);
        return;
    }
    int most;
    int n = append_jobs(s, res, s->by_account, &most);
    if (n < 0) {
        jobs_free(s);
        claim_failed(s);
        return;
    }
    char rows[16], ms[32];
    double took = (double)(uv_hrtime() - s->claim_asked) / 1e9;
    metrics_count(s->claims, NULL, 1);
    metrics_count(s->claimed, NULL, n);
    metrics_observe(s->claim_seconds, NULL, took);
    snprintf(rows, sizeof rows, "%d", n);
    snprintf(ms, sizeof ms, "%.1f", took * 1e3);
    log_event(LOG_DEBUG, "scheduler", "claimed", "rows", rows, "ms", ms, NULL);
    s->claim_full = most == BATCH;
    if (n == 0) {
        cycle_end(s, 0);
        return;
    }
    load_sequences(s);
}

static void on_timer(uv_timer_t *t)
{
    scheduler_wake(t->data);
}

static void on_next_due(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    uint64_t delay = IDLE_RECHECK_MS;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        double due;
        if (clock_parse_iso(PQgetvalue(res, 0, 0), &due) == 0) {
            double ms = (due - clock_now()) * 1000.0 / clock_speed();
            if (ms < 0)
                ms = 0;
            if (ms < (double)delay)
                delay = (uint64_t)ms + 1;
        }
    } else if (!res) {
        delay = 1000;
    }
    /* Due work that a cycle could not take (an account at its cap, rows
     * locked by another replica) must not spin the loop. */
    if (s->cycle_empty && delay < 1000)
        delay = 1000;
    cycle_state_set(s, CYCLE_IDLE);
    if (stopped(s))
        return;
    if (s->again && (!s->cycle_empty || s->lease_gained || s->account_back)) {
        s->again = 0;
        cycle_start(s);
        return;
    }
    uv_timer_start(&s->timer, on_timer, delay, 0);
}

static void cycle_end(struct scheduler *s, int full)
{
    s->cycle_empty = s->n_jobs == 0;
    jobs_free(s);
    if (stopped(s))
        return;
    if (full) { /* a full batch: more is probably due right now */
        cycle_state_set(s, CYCLE_IDLE);
        cycle_start(s);
        return;
    }
    cycle_state_set(s, CYCLE_ENDING);
    /* Due times come back in UTC ISO form for clock_parse_iso. */
    if (query(s,
                 "SELECT to_char(relance_next_due() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", 0,
                 NULL, on_next_due) < 0) {
        cycle_state_set(s, CYCLE_IDLE);
        uv_timer_start(&s->timer, on_timer, 1000, 0);
    }
}

/* Claims the steps the cycle's accounts (s->claim_ids, once every race
 * check has ended) may send, in one statement; its answer comes to
 * on_claimed. */
static void claim_batch(struct scheduler *s)
{
    if (s->pending_checks > 0)
        return;
    if (s->claim_ids.len == 0) {
        cycle_end(s, 0);
        return;
    }
    const char *ids = pgarray_end(&s->claim_ids);
    char batch[16];
    snprintf(batch, sizeof batch, "%d", BATCH);
    const char *p[5] = {s->cycle_now_s, ids, batch, s->replica, s->smtp ? "f" : "t"};
    s->claim_asked = uv_hrtime();
    int rc = ids ? query(s,
                         "SELECT account_id, message_id, enrollment_id, step_position, step_id, sequence_id, "
                         "version, email, fields, thread_ids, first_subject "
                         "FROM relance_claim_accounts($1, $2::bigint[], $3, $4, $5)",
                         5, p, on_claimed)
                 : -1;
    buf_free(&s->claim_ids);
    if (rc < 0)
        on_claimed(NULL, NULL, s);
}

/* A mailbox check before a follow-up's claim has ended (whatever it
 * found is recorded, so a reply now wins): claim once the last has. */
static void on_race_checked(void *arg, int changed)
{
    struct scheduler *s = arg;
    (void)changed;
    s->pending_checks--;
    if (stopped(s)) {
        buf_free(&s->claim_ids);
        return;
    }
    claim_batch(s);
}

/* Adds held account h to the cycle's claim (row: its row of work, or -1
 * without work), its mailbox read first where a follow-up races a reply. */
static void claim_one(struct scheduler *s, struct held *h, const PGresult *work, int row)
{
    struct watcher *w = s->watcher;
    if (!h->lease->held)
        return;
    if (work && (row < 0 || strcmp(PQgetvalue(work, row, 2), "t") != 0))
        return; /* nothing due for it: no claim */
    if (delivery_pending_for(s->delivery, h->lease->name) > h->low) {
        s->busy_skipped = 1; /* claimed again when enough is back (on_account_back) */
        return;
    }
    h->low = 0; /* until its claim's rows say otherwise (append_jobs) */
    pgarray_add(&s->claim_ids, h->lease->id_s);
    int check = row >= 0 && strcmp(PQgetvalue(work, row, 1), "t") == 0 && w &&
                watcher_last_check_age(w, h->lease->name) > RACE_CHECK_S;
    if (check && watcher_check_now(w, h->lease->name, on_race_checked, s) == 0)
        s->pending_checks++;
}

/* One claim for the accounts this replica holds that have something to
 * claim (work, below), in work's order: the least recently claimed
 * account first, the rotation's order when nothing has a cap. An account
 * with follow-ups due whose mailbox this replica watches and last read
 * more than RACE_CHECK_S ago has it read first (a STATUS, and whatever is
 * new): a reply that came since the last pass then stops the follow-up
 * instead of racing it; the claim waits for those reads. Without work
 * (the query failed), every account claims and none is checked. */
static void claim_accounts_with(struct scheduler *s, const PGresult *work)
{
    buf_free(&s->claim_ids);
    s->pending_checks = 1; /* until every account is in: a check may end at once */
    if (work) {
        for (int r = 0; r < PQntuples(work); r++) {
            struct held *h = held_by_id(s, atoll(PQgetvalue(work, r, 0)));
            if (h)
                claim_one(s, h, work, r);
        }
    } else {
        for (size_t i = 0; i < s->n_held; i++)
            claim_one(s, s->held[i], NULL, -1);
    }
    s->pending_checks--;
    claim_batch(s);
}

static void on_work(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (stopped(s))
        return;
    claim_accounts_with(s, res && PQresultStatus(res) == PGRES_TUPLES_OK ? res : NULL);
}

/* Asks which held accounts have work: a step of their own due (a
 * follow-up, or a deferred retry), or new enrollments due in their pool
 * (the rotation then needs every account's claim); and which have a
 * follow-up due (the race check's case). An idle cycle is this one
 * statement, whatever the number of accounts: a claim for each would cost
 * a round trip and a row lock per account, queued ahead of the watcher's
 * and the leases' statements on the one connection. */
static void claim_accounts(struct scheduler *s)
{
    struct buf ids = {0};
    for (size_t i = 0; i < s->n_held; i++)
        if (s->held[i]->lease->held)
            pgarray_add(&ids, s->held[i]->lease->id_s);
    int any = ids.len > 0;
    const char *p[2] = {pgarray_end(&ids), s->cycle_now_s};
    if (!any || !p[0]) {
        buf_free(&ids);
        cycle_end(s, 0);
        return;
    }
    int rc = query(s,
                   "WITH h AS (SELECT id, pool, last_claim_at FROM accounts WHERE id = ANY($1::bigint[])), "
                   "busy AS (SELECT p.pool FROM (SELECT DISTINCT pool FROM h) p WHERE EXISTS ("
                   "SELECT 1 FROM enrollments e "
                   "JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version "
                   "WHERE e.state = 'active' AND e.account_id IS NULL AND e.next_send_at <= $2 "
                   "AND v.sender_pool = p.pool)) "
                   "SELECT h.id, EXISTS (SELECT 1 FROM enrollments e WHERE e.account_id = h.id "
                   "AND e.state = 'active' AND e.position > 0 AND e.next_send_at <= $2), "
                   "h.pool IN (SELECT pool FROM busy) OR EXISTS (SELECT 1 FROM enrollments e "
                   "WHERE e.account_id = h.id AND e.state = 'active' AND e.next_send_at <= $2) "
                   "FROM h ORDER BY h.last_claim_at NULLS FIRST, h.id",
                   2, p, on_work);
    buf_free(&ids);
    if (rc == 0)
        return;
    cycle_state_set(s, CYCLE_IDLE);
    uv_timer_start(&s->timer, on_timer, 1000, 0);
}

static void cycle_start(struct scheduler *s)
{
    if (stopped(s) || !ready_db(s->ready))
        return;
    if (s->state != CYCLE_IDLE) {
        s->again = 1;
        return;
    }
    cycle_state_set(s, CYCLE_CLAIMING);
    s->lease_gained = 0; /* this cycle asks with every account leased so far */
    s->account_back = 0; /* and with every account's messages in flight as they are now */
    uv_timer_stop(&s->timer);
    char batch[16];
    s->cycle_now = clock_now();
    clock_format(s->cycle_now, s->cycle_now_s, sizeof s->cycle_now_s);
    snprintf(batch, sizeof batch, "%d", BATCH);
    s->claim_full = 0;
    if (s->by_account) {
        claim_accounts(s);
        return;
    }
    const char *p[4] = {s->cycle_now_s, batch, s->id_domain, s->replica};
    s->claim_asked = uv_hrtime();
    if (query(s,
                 "SELECT message_id, enrollment_id, step_position, step_id, sequence_id, version, email, fields, "
                 "thread_ids, first_subject FROM relance_claim_due($1, $2, $3, $4)",
                 4, p, on_claimed) < 0) {
        cycle_state_set(s, CYCLE_IDLE);
        uv_timer_start(&s->timer, on_timer, 1000, 0);
    }
}

void scheduler_wake(struct scheduler *s)
{
    cycle_start(s);
}

/* ---- lease and rescue ---------------------------------------------------- */

static void on_rescued(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && atoi(PQgetvalue(res, 0, 0)) > 0)
        log_event(LOG_WARN, "scheduler", "rescued messages left sending by a stopped replica", "count",
                  PQgetvalue(res, 0, 0), "state", "unknown", NULL);
}

static void on_ignore(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res;
    (void)arg;
}

/* An account's lease came (at the start, or given up or left to expire by
 * another replica) or went. One newly held is claimed for at once, not at
 * the next timer: the cycle that runs meanwhile asked without it. */
static void on_lease_changed(void *arg, const struct lease *l)
{
    struct scheduler *s = arg;
    struct held *x = NULL;
    for (size_t i = 0; i < s->n_held && !x; i++)
        if (s->held[i]->lease == l)
            x = s->held[i];
    if (!x && l->held) {
        const struct config_account *cfg = accounts_find(s->cfg, l->name);
        struct held **grown = cfg ? realloc(s->held, (s->n_held + 1) * sizeof *grown) : NULL;
        if (!grown)
            return; /* not configured here (or no memory): not ours to send from */
        s->held = grown;
        if (!(x = calloc(1, sizeof *x)))
            return;
        x->lease = l;
        x->cfg = cfg;
        s->held[s->n_held++] = x;
    }
    if (x && l->held && !stopped(s)) {
        s->lease_gained = 1;
        cycle_start(s);
    }
}

static void lease_and_rescue(struct scheduler *s, int rescue)
{
    if (!ready_db(s->ready))
        return;
    char ttl[16], now[40];
    snprintf(ttl, sizeof ttl, "%d", LEASE_TTL_S);
    const char *p[2] = {s->replica, ttl};
    if (query(s, "SELECT relance_replica_alive($1, $2)", 2, p, on_ignore) < 0)
        return;
    if (rescue) {
        now_param(now, sizeof now);
        /* Only rows of replicas that are gone; this replica's own lost
         * claims are rescued at reconnect (rescue_own), when it knows
         * exactly what it has in flight. */
        const char *q[2] = {now, s->replica};
        if (query(s, "SELECT relance_rescue_sending($1, $2)", 2, q, on_rescued) < 0)
            return;
    }
}

static void on_rescued_own(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && atoi(PQgetvalue(res, 0, 0)) > 0)
        log_event(LOG_WARN, "scheduler", "rescued messages whose claim was lost with the connection", "count",
                  PQgetvalue(res, 0, 0), NULL);
}

/* Right after a reconnect, before any new claim: this replica's rows
 * still 'sending' that it neither holds as jobs nor has in flight lost
 * their claim answer with the connection. Nothing else is queued ahead
 * but the outbox, whose outcomes land first. */
static void rescue_own(struct scheduler *s)
{
    char now[40];
    struct buf keep = {0};
    for (size_t i = 0; i < s->n_jobs; i++)
        if (s->jobs[i].message_id)
            pgarray_add(&keep, s->jobs[i].message_id);
    delivery_live_ids(s->delivery, &keep);
    now_param(now, sizeof now);
    const char *p[3] = {now, s->replica, pgarray_end(&keep)};
    if (p[2] && query(s, "SELECT relance_rescue_own($1, $2, $3)", 3, p, on_rescued_own) < 0) {
        /* the connection went again: the next reconnect tries again */
    }
    buf_free(&keep);
}

static void on_lease_timer(uv_timer_t *t)
{
    struct scheduler *s = t->data;
    double now = clock_now();
    int rescue = (now - s->last_rescue) * 1000.0 / clock_speed() >= RESCUE_EVERY_MS;
    if (rescue)
        s->last_rescue = now;
    lease_and_rescue(s, rescue);
    /* also the safety net if a notification was missed */
    if (s->state == CYCLE_IDLE)
        cycle_start(s);
}

static void on_synced(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)arg;
    if (!res)
        return;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        log_event(LOG_INFO, "scheduler", "accounts synced from the configuration", "accounts", PQgetvalue(res, 0, 0),
                  NULL);
    } else {
        char msg[300];
        log_event(LOG_ERROR, "scheduler", "accounts sync failed", "error", pgerr_line(res, NULL, NULL, msg, sizeof msg),
                  NULL);
    }
}

/* One warning per sequence whose current version names a pool no
 * configured account belongs to: its enrollments would wait silently. */
static void on_unknown_pools(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    for (int i = 0; i < PQntuples(res); i++)
        log_event(LOG_WARN, "scheduler", "a sequence names a pool the configuration does not have: its "
                  "enrollments will wait", "sequence", PQgetvalue(res, i, 0), "pool", PQgetvalue(res, i, 1), NULL);
}

void scheduler_set_metrics(struct scheduler *s, struct metrics *m)
{
    s->claims = metrics_family_add(m, METRICS_COUNTER, "relance_claims_total",
                                   "Claim statements answered (a batch of due steps taken for sending).", NULL,
                                   NULL, 0);
    s->claimed = metrics_family_add(m, METRICS_COUNTER, "relance_claimed_messages_total",
                                    "Messages claimed for sending.", NULL, NULL, 0);
    s->claim_seconds = metrics_family_add(m, METRICS_HISTOGRAM, "relance_claim_duration_seconds",
                                          "Time from a claim statement queued to its answer.", NULL, NULL, 0);
    delivery_set_metrics(s->delivery, m);
}

void scheduler_db_up(struct scheduler *s)
{
    if (!ready_db(s->ready))
        return;
    /* The configuration's accounts into the database, at every (re)start
     * of the connection: caps and rotation read them there. */
    char now[40];
    now_param(now, sizeof now);
    char *json = accounts_config_json(s->cfg, now);
    if (json) {
        const char *p[1] = {json};
        int rc = query(s, "SELECT relance_sync_accounts($1::jsonb)", 1, p, on_synced);
        free(json);
        if (rc < 0)
            return;
    }
    /* after the sync, on the same connection: it sees the accounts just
     * synced. Capture without accounts ignores pools. */
    size_t n_accounts = 0;
    for (size_t i = 0; i < s->cfg->n_pools; i++)
        n_accounts += s->cfg->pools[i].n_accounts;
    if (s->smtp && n_accounts == 0 && !s->pools_checked) {
        /* one line, not one per sequence: nothing at all can be sent */
        log_event(LOG_WARN, "scheduler", "no sender account is configured: nothing will be sent (declare pools "
                  "of accounts, see deploy/relance.example.yaml, or try transport: capture)", NULL);
        s->pools_checked = 1;
    }
    if (s->by_account && !s->pools_checked) {
        if (query(s, "SELECT s.name, v.sender_pool FROM sequences s JOIN sequence_versions v"
                     " ON v.sequence_id = s.id AND v.version = s.current_version"
                     " WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = v.sender_pool AND a.configured)"
                     " ORDER BY s.name", 0, NULL, on_unknown_pools) < 0)
            return;
        s->pools_checked = 1;
    }
    delivery_db_up(s->delivery);
    rescue_own(s);
    if (query(s, "LISTEN relance_work", 0, NULL, on_ignore) < 0)
        return;
    s->last_rescue = clock_now();
    lease_and_rescue(s, 1);
    if (s->leases)
        leases_renew(s->leases);
    if (delivery_pending(s->delivery) == 0 && s->n_jobs == 0)
        cycle_state_set(s, CYCLE_IDLE); /* a cycle cut by the lost connection has ended */
    cycle_start(s);
}

/* ---- set-up ------------------------------------------------------------ */

/* The From of captured messages when no account is configured (with
 * accounts, capture claims per account like smtp and each message has
 * its account's From). */
static int placeholder_sender(struct scheduler *s)
{
    s->from_addr = strdup("capture@relance.invalid");
    s->from_name = strdup("relance capture");
    snprintf(s->id_domain, sizeof s->id_domain, "relance.invalid");
    return s->from_addr && s->from_name ? 0 : -1;
}

void scheduler_set_links(struct scheduler *s, const char *public_url, const char *secret)
{
    s->public_url = public_url;
    s->link_secret = secret;
}

struct scheduler *scheduler_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready,
                                struct sender *sender, struct watcher *watcher, char *err, size_t errlen)
{
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->ready = ready;
    s->watcher = watcher;
    s->smtp = strcmp(cfg->transport, "smtp") == 0;
    s->by_account = config_claims_by_account(cfg);
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    srandom((unsigned)getpid() ^ (unsigned)uv_hrtime());
    snprintf(s->replica, sizeof s->replica, "%s-%ld-%lx", host, (long)getpid(), (unsigned long)random());
    s->delivery = delivery_new(loop, ready, sender, watcher, on_settled, on_account_back, s);
    if (s->by_account)
        s->leases = leases_new(loop, ready, LEASES_ACCOUNTS, s->replica, NULL, 0, on_lease_changed, s);
    if (!s->delivery || (s->by_account && !s->leases) || placeholder_sender(s) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->lease_timer);
    s->timer.data = s->lease_timer.data = s;
    uv_timer_start(&s->lease_timer, on_lease_timer, LEASE_EVERY_MS, LEASE_EVERY_MS);
    return s;
fail:
    if (s->delivery)
        delivery_close(s->delivery, NULL, NULL); /* its timer closes with the loop's first run */
    if (s->leases)
        leases_close(s->leases, NULL, NULL);
    free(s->from_addr);
    free(s->from_name);
    free(s);
    return NULL;
}

/* One part finished closing; the last frees the scheduler. */
static void close_step(struct scheduler *s)
{
    if (--s->pending_closes > 0)
        return;
    for (size_t i = 0; i < s->n_cache; i++)
        sequence_free(s->cache[i].seq);
    free(s->cache);
    for (size_t i = 0; i < s->n_held; i++)
        free(s->held[i]);
    free(s->held);
    jobs_free(s);
    buf_free(&s->claim_ids);
    free(s->from_addr);
    free(s->from_name);
    void (*cb)(void *) = s->on_closed;
    void *arg = s->closed_arg;
    free(s);
    if (cb)
        cb(arg);
}

static void on_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void leases_release(struct scheduler *s);

static void on_rescued_stopping(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && atoi(PQgetvalue(res, 0, 0)) > 0)
        log_event(LOG_INFO, "scheduler", "messages claimed and not sent given back", "count", PQgetvalue(res, 0, 0),
                  NULL);
    close_step(s);     /* the delivery's part */
    leases_release(s); /* the rows first, then the accounts */
}

/* The delivery has closed: the sender had (nothing is on the wire) and
 * its last outcomes are written. What this replica claimed and did not
 * send is given back now (relance_rescue_stopping: due again at once,
 * or 'unknown' where a body started and no outcome came), so that the
 * replica taking its accounts over sends it within seconds instead of
 * after a rescue pass; then the account leases go. */
static void on_delivery_closed(void *arg)
{
    struct scheduler *s = arg;
    char now[40];
    now_param(now, sizeof now);
    const char *p[2] = {now, s->replica};
    struct db *db = ready_db(s->ready);
    if (!db || db_query(db, "SELECT relance_rescue_stopping($1, $2)", 2, p, on_rescued_stopping, s) < 0) {
        close_step(s);
        leases_release(s);
    }
}

static void on_leases_given_up(void *arg, long given)
{
    struct scheduler *s = arg;
    if (given >= 0) {
        char n[24];
        snprintf(n, sizeof n, "%ld", given);
        log_event(LOG_INFO, "scheduler", "account leases given up", "count", n, NULL);
    }
    close_step(s);
}

static void on_last_answer(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res;
    close_step(arg);
}

/* Once nothing of this replica can go out any more (the sender has
 * closed: every message is finished or given up), its account leases are
 * given up in one statement (leases_close), so that another replica takes
 * them at its next renewal, not LEASES_TTL_S later. Given up earlier,
 * another replica could claim from an account while a body of it is still
 * on the wire here. That statement is the scheduler's last: its answer is
 * also the sign that no earlier query is pending — which, without
 * leases (capture without accounts), a statement of no effect gives. */
static void leases_release(struct scheduler *s)
{
    if (s->leases) {
        leases_close(s->leases, on_leases_given_up, s);
        s->leases = NULL;
        return;
    }
    struct db *db = s->ready->db;
    if (!db || !db_connected(db) || db_query(db, "SELECT 1", 0, NULL, on_last_answer, s) < 0)
        close_step(s);
}

void scheduler_stop(struct scheduler *s)
{
    /* A body on the wire finishes and its outcome is written; no other
     * body starts. What was claimed and not sent is given back when the
     * delivery has closed (on_delivery_closed); a row left 'sending' all
     * the same (the database away) is rescued by a replica as 'unknown'
     * (its body had started) or 'deferred' (nothing went out): never
     * sent twice. */
    cycle_state_set(s, CYCLE_STOPPED);
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->lease_timer);
    delivery_stop(s->delivery);
}

void scheduler_close(struct scheduler *s, void (*cb)(void *arg), void *arg)
{
    scheduler_stop(s);
    s->on_closed = cb;
    s->closed_arg = arg;
    s->pending_closes = 4; /* two timers, delivery, and the release */
    uv_close((uv_handle_t *)&s->timer, on_closed);
    uv_close((uv_handle_t *)&s->lease_timer, on_closed);
    delivery_close(s->delivery, on_delivery_closed, s); /* then the give-back, then the release */
    s->delivery = NULL;
}
