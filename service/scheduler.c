/* scheduler: one claim cycle at a time on the loop. It owns the cycle's
 * state machine, the cache of parsed sequence versions, the replica lease
 * and the account leases (taken and renewed while it runs, given up when
 * it stops cleanly); SQL owns the decisions (sql/005_dispatch.sql),
 * compose.c the message, capture.c (for now the only transport) the
 * delivery. */
#include "scheduler.h"

#include "accounts.h"
#include "buf.h"
#include "capture.h"
#include "clock.h"
#include "compose.h"
#include "log.h"
#include "pgarray.h"
#include "sender.h"
#include "serve.h"
#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 200
#define LEASE_TTL_S 30
#define LEASE_EVERY_MS 5000
#define RESCUE_EVERY_MS 30000
#define IDLE_RECHECK_MS 60000
#define RACE_CHECK_S 5.0 /* a mailbox read longer ago than this is read again before a follow-up */

/* scheduler_close's bound covers the sender's drain and a moment for the release */
_Static_assert(SCHEDULER_CLOSE_MS >= SENDER_DRAIN_MS + 1000, "SCHEDULER_CLOSE_MS too short for the drain");

struct job {
    char *message_id, *step_id, *email, *fields, *thread_ids, *first_subject;
    const struct held *account; /* the sending account (smtp), or NULL (capture) */
    long long enrollment_id, sequence_id;
    int position, version;
};

/* An account this replica holds the lease of (smtp transport). */
struct held {
    long long id;
    char id_s[24];
    char *email;
    const struct config_account *cfg;
    int claiming;
    int leased;
    int was_leased; /* on_held: before this answer */
};

struct cached {
    long long sequence_id;
    int version;
    struct sequence *seq;
};

struct scheduler {
    struct server *srv;
    uv_timer_t timer;        /* next due time */
    uv_timer_t lease_timer;  /* lease renewal and rescue */
    int running, again, closing, pending_closes;
    struct job *jobs;
    size_t n_jobs;
    size_t outstanding;      /* outcome queries in flight */
    struct cached *cache;
    size_t n_cache;
    char replica[96];
    char id_domain[256];
    char *capture_dir;
    char *from_addr, *from_name;
    double last_rescue;
    double cycle_now;        /* the instant the batch was claimed at */
    char cycle_now_s[40];
    /* the batch's sent messages, as array literals (flush_sent) */
    struct buf sent_ids, sent_subjects, sent_variants;
    unsigned long sent_total;
    void (*on_closed)(void *arg);
    void *closed_arg;
    /* smtp transport */
    struct sender *sender;
    int leasing;             /* it takes account leases (smtp): it gives them up when it stops */
    int lease_gained;        /* an account became leased since the cycle started: claim again now */
    struct held **held;
    size_t n_held;
    uv_timer_t release_timer;  /* on_release_failed */
    struct sending *failed;
    struct sending *live;    /* every message handed to the sender, until its outcome */
    struct outbox_entry *outbox;
    /* outcomes that came in while a batch of them was being written */
    struct outcome_row *outcomes;
    size_t n_outcomes, cap_outcomes;
    int outcomes_in_flight;
    /* points of no return to record: gathered, then written at once */
    struct sending *started, *started_in_flight;
    size_t pending_claims;
    int claim_full, claim_error, cycle_empty;
};

static void cycle_start(struct scheduler *s);
static void on_ignore(struct db *db, const PGresult *res, void *arg);
struct sending;
static void on_release_failed(uv_timer_t *t);
static void cycle_end(struct scheduler *s, int full);
static void on_timer(uv_timer_t *t);
static void outcomes_flush(struct scheduler *s);

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
    if (s->closing || !s->srv->db)
        return -1;
    return db_query(s->srv->db, sql, n, params, cb, arg);
}

static int query(struct scheduler *s, const char *sql, int n, const char *const *params, db_result_cb cb)
{
    return query_arg(s, sql, n, params, cb, s);
}

static void now_param(char *buf, size_t len)
{
    clock_format(clock_now(), buf, len);
}

/* ---- outcomes ---------------------------------------------------------- */

static void on_outcome(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_ERROR, "scheduler", "recording an outcome failed", "error", msg, NULL);
    }
    if (--s->outstanding == 0)
        cycle_end(s, s->claim_full);
}

/* An outcome to write. Kept until the database has it: when the
 * connection is down (or drops before the answer) it waits in the outbox
 * and is written again on reconnect. Every outcome function only acts on
 * a row still 'sending', so writing one twice changes nothing. */
struct outbox_entry {
    struct outbox_entry *next;
    struct scheduler *s;
    char *sql;
    int n;
    char **params;
    int outcomes; /* a batch of relance_step_outcomes: its rows are failures */
};

static void outbox_free(struct outbox_entry *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->params[i]);
    free(e->params);
    free(e->sql);
    free(e);
}

static void outbox_keep(struct scheduler *s, struct outbox_entry *e)
{
    e->next = s->outbox;
    s->outbox = e;
}

static void on_replayed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct outbox_entry *e = arg;
    if (!res && !e->s->closing)
        outbox_keep(e->s, e);
    else
        outbox_free(e);
}

/* Writes what the outbox holds; called when the database is back. */
static void outbox_replay(struct scheduler *s)
{
    struct outbox_entry *e = s->outbox;
    s->outbox = NULL;
    while (e) {
        struct outbox_entry *next = e->next;
        if (query_arg(s, e->sql, e->n, (const char *const *)e->params, on_replayed, e) < 0)
            outbox_keep(s, e);
        e = next;
    }
}

/* A batch's outcomes that failed alone (each in its own subtransaction). */
static void log_failed_outcomes(const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQgetvalue(res, i, 1));
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_ERROR, "scheduler", "recording an outcome failed", "message", PQgetvalue(res, i, 0), "error",
                  msg, NULL);
    }
}

static void on_recorded(struct db *db, const PGresult *res, void *arg)
{
    struct outbox_entry *e = arg;
    struct scheduler *s = e->s;
    if (e->outcomes) {
        log_failed_outcomes(res);
        s->outcomes_in_flight = 0;
        outcomes_flush(s); /* what came in meanwhile */
    }
    if (!res && !s->closing) {
        outbox_keep(s, e);
        e = NULL;
    }
    if (e)
        outbox_free(e);
    on_outcome(db, res, s);
}

/* Writes a statement whose effect must not be lost: kept in the outbox
 * while the database is away. Returns 0 when it was queued now. */
static int record_kind(struct scheduler *s, const char *sql, int n, const char *const *params, int outcomes)
{
    struct outbox_entry *e = calloc(1, sizeof *e);
    if (!e)
        return -1; /* the row stays 'sending' and is rescued as unknown */
    e->s = s;
    e->outcomes = outcomes;
    e->sql = strdup(sql);
    e->params = calloc((size_t)n + 1, sizeof *e->params);
    e->n = n;
    int ok = e->sql && e->params;
    for (int i = 0; ok && i < n; i++)
        if (params[i] && !(e->params[i] = strdup(params[i])))
            ok = 0;
    if (!ok) {
        outbox_free(e);
        return -1;
    }
    if (query_arg(s, sql, n, params, on_recorded, e) == 0) {
        s->outstanding++;
        return 0;
    }
    if (!s->closing)
        outbox_keep(s, e);
    else
        outbox_free(e);
    return -1;
}

static void record(struct scheduler *s, const char *sql, int n, const char *const *params)
{
    if (record_kind(s, sql, n, params, 0) < 0) {
        /* kept in the outbox, or (closing, no memory) left 'sending' */
    }
}

/* ---- batched outcomes ---------------------------------------------------- */

/* relance_step_outcome's eight arguments, for one message. */
#define OUTCOME_ARGS 8
struct outcome_row {
    char *v[OUTCOME_ARGS];
};

/* One send's outcome. Written at once if no batch is being written, else
 * with the next batch: the database connection is shared, and under load
 * one statement for many outcomes is what keeps up. A batch waiting to be
 * written holds the cycle open (outstanding) like a query in flight. */
static void outcome_add(struct scheduler *s, const char *const *p)
{
    if (s->n_outcomes == s->cap_outcomes) {
        size_t cap = s->cap_outcomes ? 2 * s->cap_outcomes : 16;
        struct outcome_row *grown = realloc(s->outcomes, cap * sizeof *grown);
        if (!grown)
            return; /* the row stays 'sending' and is rescued as unknown */
        s->outcomes = grown;
        s->cap_outcomes = cap;
    }
    struct outcome_row *r = &s->outcomes[s->n_outcomes];
    for (int i = 0; i < OUTCOME_ARGS; i++)
        r->v[i] = p[i] ? strdup(p[i]) : NULL;
    if (s->n_outcomes++ == 0)
        s->outstanding++; /* the pending batch */
    if (!s->outcomes_in_flight)
        outcomes_flush(s);
}

static void outcomes_flush(struct scheduler *s)
{
    if (s->n_outcomes == 0)
        return;
    struct buf col[OUTCOME_ARGS] = {0};
    const char *p[OUTCOME_ARGS];
    int ok = 1;
    for (int c = 0; c < OUTCOME_ARGS; c++) {
        for (size_t i = 0; i < s->n_outcomes; i++)
            pgarray_add(&col[c], s->outcomes[i].v[c]);
        ok &= (p[c] = pgarray_end(&col[c])) != NULL;
    }
    if (ok && record_kind(s,
                          "SELECT * FROM relance_step_outcomes($1::text[], $2::timestamptz[], $3::text[], "
                          "$4::text[], $5::boolean[], $6::text[], $7::text[], $8::int[])",
                          OUTCOME_ARGS, p, 1) == 0)
        s->outcomes_in_flight = 1;
    for (int c = 0; c < OUTCOME_ARGS; c++)
        buf_free(&col[c]);
    for (size_t i = 0; i < s->n_outcomes; i++)
        for (int c = 0; c < OUTCOME_ARGS; c++)
            free(s->outcomes[i].v[c]);
    s->n_outcomes = 0;
    if (--s->outstanding == 0) /* the pending batch's hold */
        cycle_end(s, s->claim_full);
}

static void hold_message(struct scheduler *s, const char *message_id, long long enrollment_id, const char *step_id,
                         const char *reason)
{
    char now[40];
    now_param(now, sizeof now);
    const char *p[3] = {message_id, now, reason};
    char enr[32];
    snprintf(enr, sizeof enr, "%lld", enrollment_id);
    log_event(LOG_WARN, "scheduler", "held", "enrollment", enr, "step", step_id, "reason", reason, NULL);
    record(s, "SELECT relance_step_hold($1, $2, $3)", 3, p);
}

static void hold(struct scheduler *s, const struct job *j, const char *reason)
{
    hold_message(s, j->message_id, j->enrollment_id, j->step_id, reason);
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

/* ---- smtp ------------------------------------------------------------- */

/* One message on its way out: what recording its outcome needs. */
struct sending {
    struct scheduler *s;
    char *message_id, *subject, *sender, *rcpt, *step_id;
    long long enrollment_id;
    int save;            /* save_sent: keep a copy once signed */
    int variant;
    int body_pending;    /* the body_started write is in flight */
    int release_failed;  /* it could not even be queued */
    int finished;        /* the outcome came while body_pending */
    char *copy;          /* save_sent: the message as sent, for the Sent folder */
    size_t copy_len;
    struct sending *next_failed;
    struct sending *next_started; /* s->started or s->started_in_flight */
    struct sending *live_prev, *live_next;
};

static void sending_free(struct sending *x)
{
    if (x->live_prev)
        x->live_prev->live_next = x->live_next;
    else if (x->s && x->s->live == x)
        x->s->live = x->live_next;
    if (x->live_next)
        x->live_next->live_prev = x->live_prev;
    free(x->copy);
    free(x->rcpt);
    free(x->step_id);
    free(x->message_id);
    free(x->subject);
    free(x->sender);
    free(x);
}

/* The point of no return of x is durable (ok), or could not be made so:
 * the body may go, or is given up. */
static void body_recorded(struct sending *x, int ok)
{
    log_event(LOG_DEBUG, "scheduler", "point of no return recorded", "message", x->message_id, "ok", ok ? "yes" : "no",
              "finished", x->finished ? "yes" : "no", NULL);
    x->body_pending = 0;
    if (x->finished) { /* the transfer ended meanwhile (timeout, close) */
        sending_free(x);
        return;
    }
    if (x->s->sender)
        sender_body_release(x->s->sender, x->sender, ok);
}

static void started_flush(struct scheduler *s);

/* The answer to a batch of points of no return: the rows it names were
 * still 'sending' and are now marked; any other was not (rescued
 * meanwhile) and its body must not go. */
static void on_started_recorded(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    struct sending *x = s->started_in_flight;
    s->started_in_flight = NULL;
    int good = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    if (res && !good) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_ERROR, "scheduler", "recording points of no return failed", "error", msg, NULL);
    }
    while (x) {
        struct sending *next = x->next_started;
        int ok = 0;
        for (int i = 0; good && i < PQntuples(res) && !ok; i++)
            ok = strcmp(PQgetvalue(res, i, 0), x->message_id) == 0;
        body_recorded(x, ok);
        x = next;
    }
    started_flush(s); /* what came in meanwhile */
}

/* Held bodies whose point of no return could not be recorded: given up,
 * from the loop (never from inside libcurl's callback). */
static void on_release_failed(uv_timer_t *t)
{
    struct scheduler *s = t->data;
    while (s->failed) {
        struct sending *x = s->failed;
        s->failed = x->next_failed;
        if (s->sender)
            sender_body_release(s->sender, x->sender, 0);
    }
}

/* Writes the gathered points of no return in one statement, unless a
 * batch is already being written (its answer flushes the rest). A batch
 * that cannot even be queued gives its bodies up, from the loop. */
static void started_flush(struct scheduler *s)
{
    if (s->started_in_flight || !s->started)
        return;
    struct buf ids = {0};
    for (struct sending *x = s->started; x; x = x->next_started)
        pgarray_add(&ids, x->message_id);
    const char *p[1] = {pgarray_end(&ids)};
    if (p[0] && query_arg(s, "UPDATE messages SET body_started = true WHERE message_id = ANY($1::text[]) "
                          "AND state = 'sending' RETURNING message_id",
                          1, p, on_started_recorded, s) == 0) {
        s->started_in_flight = s->started;
        s->started = NULL;
        buf_free(&ids);
        return;
    }
    buf_free(&ids);
    if (s->closing) { /* no sender any more: only the bookkeeping is left */
        while (s->started) {
            struct sending *x = s->started;
            s->started = x->next_started;
            body_recorded(x, 0);
        }
        return;
    }
    /* cannot record them: do not send. Released from the loop, not from
     * inside libcurl's read callback. */
    while (s->started) {
        struct sending *x = s->started;
        s->started = x->next_started;
        x->body_pending = 0;
        x->release_failed = 1;
        x->next_failed = s->failed;
        s->failed = x;
    }
    uv_timer_start(&s->release_timer, on_release_failed, 0, 0);
}

/* The server said 354 and libcurl wants the body: record that first, so
 * a crash from here on leaves 'unknown' (never re-sent), not 'deferred'.
 * Called from inside libcurl's read callback: the write is only queued. */
static void on_body_started(void *arg)
{
    struct sending *x = arg;
    struct scheduler *s = x->s;
    log_event(LOG_DEBUG, "scheduler", "point of no return", "message", x->message_id, NULL);
    x->body_pending = 1;
    struct sending **tail = &s->started;
    while (*tail)
        tail = &(*tail)->next_started;
    x->next_started = NULL;
    *tail = x;
    started_flush(s);
}

static void on_saved(void *arg, int status)
{
    char *message_id = arg;
    if (status < 0 && status != -ECANCELED) {
        char st[16];
        snprintf(st, sizeof st, "%d", status);
        log_event(LOG_WARN, "sender", "copy to the Sent folder failed", "message", message_id, "status", st, NULL);
    }
    free(message_id);
}

/* save_sent: one copy of what went out in the account's Sent folder. */
static void save_sent(struct scheduler *s, const struct sending *x)
{
    char *id = strdup(x->message_id);
    if (!id || watcher_save_sent(s->srv->watcher, x->sender, x->copy, x->copy_len, on_saved, id) < 0) {
        log_event(LOG_WARN, "sender", "copy to the Sent folder failed", "message", x->message_id, NULL);
        free(id);
    }
}

static void on_smtp_done(const struct smtp_result *r, void *arg)
{
    struct sending *x = arg;
    struct scheduler *s = x->s;
    char now[40], reply[600], variant[16];
    double t = clock_now();
    clock_format(t, now, sizeof now);
    snprintf(reply, sizeof reply, "%ld %s%s%s", r->reply_code, r->status, *r->status ? " " : "", r->text);
    snprintf(variant, sizeof variant, "%d", x->variant);
    /* what each outcome means is SQL's: relance_step_outcome (007) */
    const char *p[8] = {x->message_id, now, smtp_outcome_name(r->outcome), reply,
                        r->mail_accepted ? "true" : "false", x->subject, x->sender,
                        x->variant >= 0 ? variant : NULL};
    outcome_add(s, p);
    if (r->outcome != SMTP_SENT)
        log_event(r->outcome == SMTP_UNKNOWN || r->outcome == SMTP_AUTH_FAILED ? LOG_WARN : LOG_INFO, "sender",
                  smtp_outcome_name(r->outcome), "account", x->sender, "message", x->message_id, "reply", reply,
                  NULL);
    if (r->outcome == SMTP_SENT)
        s->sent_total++;
    if (r->outcome == SMTP_SENT && x->copy)
        save_sent(s, x);
    if (x->release_failed) /* ended before its give-up ran (a timeout) */
        for (struct sending **pp = &s->failed; *pp; pp = &(*pp)->next_failed)
            if (*pp == x) {
                *pp = x->next_failed;
                break;
            }
    if (x->body_pending)
        x->finished = 1; /* on_body_recorded frees it */
    else
        sending_free(x);
    if (--s->outstanding == 0)
        cycle_end(s, s->claim_full);
}

/* A message that will not reach the sender after all (its row stays
 * 'sending', or was held): the cycle stops waiting for it. */
static void sending_drop(struct sending *x)
{
    struct scheduler *s = x->s;
    sending_free(x);
    if (--s->outstanding == 0)
        cycle_end(s, s->claim_full);
}

/* The message as it will go out (signed, if its domain has a key): a copy
 * for the Sent folder, then the sender's queue. */
static void hand_over(struct sending *x, char *text, size_t len)
{
    struct scheduler *s = x->s;
    if (x->save && (x->copy = malloc(len ? len : 1))) {
        memcpy(x->copy, text, len);
        x->copy_len = len;
    }
    if (sender_submit(s->sender, x->sender, x->rcpt, text, len, on_smtp_done, on_body_started, x) < 0) {
        free(text);
        sending_drop(x); /* stays 'sending': rescued, never sent twice */
    }
}

static void on_signed(void *arg, int rc, char *text, size_t len, const char *err)
{
    struct sending *x = arg;
    struct scheduler *s = x->s;
    if (rc < 0 || s->closing || !s->sender) {
        if (rc < 0 && !s->closing)
            hold_message(s, x->message_id, x->enrollment_id, x->step_id, err);
        free(text);
        sending_drop(x);
        return;
    }
    hand_over(x, text, len);
}

static void submit(struct scheduler *s, const struct job *j, struct compose_result *r)
{
    const char *at = strrchr(j->account->email, '@');
    struct sending *x = calloc(1, sizeof *x);
    if (!x) {
        compose_result_free(r);
        return; /* stays 'sending': rescued as unknown, never sent twice */
    }
    x->s = s;
    x->message_id = strdup(j->message_id);
    x->subject = strdup(r->subject);
    x->sender = strdup(j->account->email);
    x->rcpt = strdup(j->email);
    x->step_id = strdup(j->step_id ? j->step_id : "");
    x->enrollment_id = j->enrollment_id;
    x->variant = r->variant;
    x->save = j->account->cfg->save_sent && s->srv->watcher;
    if (!x->message_id || !x->subject || !x->sender || !x->rcpt || !x->step_id) {
        sending_free(x);
        compose_result_free(r);
        return; /* stays 'sending': rescued as unknown, never sent twice */
    }
    x->live_next = s->live;
    if (s->live)
        s->live->live_prev = x;
    s->live = x;
    s->outstanding++;
    char *text = r->text;
    size_t len = r->len;
    r->text = NULL; /* ours now */
    compose_result_free(r);
    int rc = sender_sign(s->sender, at ? at + 1 : "", text, len, on_signed, x);
    if (rc == 1)
        hand_over(x, text, len);
    else if (rc < 0) {
        free(text);
        sending_drop(x);
    }
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
    const char *from_addr = j->account ? j->account->email : s->from_addr;
    const char *from_name = j->account ? (j->account->cfg ? j->account->cfg->from_name : NULL) : s->from_name;
    struct compose_input in = {
        .seq = seq,
        .position = (size_t)j->position,
        .to_addr = j->email,
        .lookup = lookup,
        .lookup_arg = &f,
        .from_addr = from_addr,
        .from_name = from_name,
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
    if (j->account) {
        submit(s, j, &r);
        return;
    }
    if (capture_write(s->capture_dir, j->message_id, r.text, r.len) < 0) {
        char reason[400];
        snprintf(reason, sizeof reason, "transport_error: cannot write into %s: %s", s->capture_dir,
                 strerror(errno));
        compose_result_free(&r);
        hold(s, j, reason);
        return;
    }
    /* recorded for the whole batch at once: see flush_sent */
    char variant[16];
    snprintf(variant, sizeof variant, "%d", r.variant);
    pgarray_add(&s->sent_ids, j->message_id);
    pgarray_add(&s->sent_subjects, r.subject);
    pgarray_add(&s->sent_variants, r.variant >= 0 ? variant : NULL);
    s->sent_total++;
    log_event(LOG_DEBUG, "scheduler", "sent", "enrollment", enr, "step", j->step_id, "to", j->email, NULL);
    compose_result_free(&r);
}

/* Records every message of the batch that went out in one statement:
 * one round trip per batch instead of one per message. Out of memory the
 * batch is not recorded: its rows stay 'sending' until the rescue. */
static void flush_sent(struct scheduler *s)
{
    int any = s->sent_ids.len > 0;
    const char *p[5] = {pgarray_end(&s->sent_ids), s->cycle_now_s, pgarray_end(&s->sent_subjects), s->from_addr,
                        pgarray_end(&s->sent_variants)};
    if (any && p[0] && p[2] && p[4])
        record(s,
               "SELECT relance_step_done(x.mid, $2, 'sent', 'captured', x.subject, $4, x.variant) "
               "FROM unnest($1::text[], $3::text[], $5::int[]) WITH ORDINALITY AS x(mid, subject, variant, n) "
               "ORDER BY x.n",
               5, p);
    buf_free(&s->sent_ids);
    buf_free(&s->sent_subjects);
    buf_free(&s->sent_variants);
}

static void process_all(struct scheduler *s)
{
    s->outstanding++; /* guard: the cycle ends after the last outcome */
    for (size_t i = 0; i < s->n_jobs && !s->closing; i++)
        process(s, &s->jobs[i]);
    flush_sent(s);
    if (--s->outstanding == 0)
        cycle_end(s, s->claim_full);
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

/* Adds a claim's rows to the cycle's jobs. Returns the number of rows,
 * or -1 when the claim failed (logged). */
static int append_jobs(struct scheduler *s, const PGresult *res, const struct held *account)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_ERROR, "scheduler", "claim failed", "account", account ? account->email : NULL, "error", msg,
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
    for (int i = 0; i < n; i++) {
        struct job *j = &s->jobs[s->n_jobs++];
        memset(j, 0, sizeof *j);
        j->account = account;
        j->message_id = dup_value(res, i, 0);
        j->enrollment_id = atoll(PQgetvalue(res, i, 1));
        j->position = atoi(PQgetvalue(res, i, 2));
        j->step_id = dup_value(res, i, 3);
        j->sequence_id = atoll(PQgetvalue(res, i, 4));
        j->version = atoi(PQgetvalue(res, i, 5));
        j->email = dup_value(res, i, 6);
        j->fields = dup_value(res, i, 7);
        j->thread_ids = dup_value(res, i, 8);
        j->first_subject = dup_value(res, i, 9);
    }
    return n;
}

static void claim_failed(struct scheduler *s)
{
    /* back off instead of retrying at once: the next try fails alike */
    s->running = 0;
    if (!s->closing)
        uv_timer_start(&s->timer, on_timer, 5000, 0);
}

static void on_claimed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (!res) {
        cycle_end(s, 0);
        return;
    }
    int n = append_jobs(s, res, NULL);
    if (n < 0) {
        jobs_free(s);
        claim_failed(s);
        return;
    }
    s->claim_full = n == BATCH;
    if (n == 0) {
        cycle_end(s, 0);
        return;
    }
    load_sequences(s);
}

struct account_claim {
    struct scheduler *s;
    struct held *account;
    uint64_t asked; /* uv_hrtime when the claim was queued */
};

static void on_account_claimed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct account_claim *c = arg;
    struct scheduler *s = c->s;
    c->account->claiming = 0;
    if (res) {
        int n = append_jobs(s, res, c->account);
        char rows[16], ms[32];
        snprintf(rows, sizeof rows, "%d", n);
        snprintf(ms, sizeof ms, "%.1f", (double)(uv_hrtime() - c->asked) / 1e6);
        log_event(LOG_DEBUG, "scheduler", "claimed", "account", c->account->email, "rows", rows, "ms", ms, NULL);
        if (n == BATCH)
            s->claim_full = 1;
        if (n < 0)
            s->claim_error = 1;
    } else {
        s->claim_error = 1;
    }
    free(c);
    if (--s->pending_claims > 0)
        return;
    if (s->n_jobs == 0) {
        if (s->claim_error) {
            s->claim_error = 0;
            claim_failed(s);
        } else {
            cycle_end(s, 0);
        }
        return;
    }
    s->claim_error = 0;
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
    s->running = 0;
    if (s->closing)
        return;
    if (s->again && (!s->cycle_empty || s->lease_gained)) {
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
    if (s->closing) {
        s->running = 0;
        return;
    }
    if (full) { /* a full batch: more is probably due right now */
        s->running = 0;
        cycle_start(s);
        return;
    }
    /* Due times come back in UTC ISO form for clock_parse_iso. */
    if (query(s,
                 "SELECT to_char(relance_next_due() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", 0,
                 NULL, on_next_due) < 0) {
        s->running = 0;
        uv_timer_start(&s->timer, on_timer, 1000, 0);
    }
}

/* Claims account c's due steps; its answer comes to on_account_claimed.
 * Returns 0, or -1 when the query could not be queued (c is not freed). */
static int claim_account(struct account_claim *c)
{
    struct scheduler *s = c->s;
    char batch[16];
    snprintf(batch, sizeof batch, "%d", BATCH);
    const char *p[4] = {s->cycle_now_s, c->account->id_s, batch, s->replica};
    c->asked = uv_hrtime();
    return query_arg(s,
                     "SELECT message_id, enrollment_id, step_position, step_id, sequence_id, version, email, "
                     "fields, thread_ids, first_subject FROM relance_claim_account($1, $2, $3, $4)",
                     4, p, on_account_claimed, c);
}

/* The mailbox check before a follow-up's claim has ended (whatever it
 * found is recorded, so a reply now wins): claim. */
static void on_race_checked(void *arg, int changed)
{
    struct account_claim *c = arg;
    (void)changed;
    if (c->s->closing || claim_account(c) < 0)
        on_account_claimed(NULL, NULL, c);
}

/* One claim per account this replica holds that has something to claim
 * (work, below); the cycle goes on when the last one has answered. An
 * account with follow-ups due whose mailbox this replica watches and last
 * read more than RACE_CHECK_S ago has it read first (a STATUS, and
 * whatever is new): a reply that came since the last pass then stops the
 * follow-up instead of racing it. Without work (the query failed), every
 * account claims and none is checked. */
static void claim_accounts_with(struct scheduler *s, const PGresult *work)
{
    int rows = work ? PQntuples(work) : 0;
    long long *ids = rows ? calloc((size_t)rows, sizeof *ids) : NULL;
    if (rows && !ids) {
        work = NULL;
        rows = 0;
    }
    for (int r = 0; r < rows; r++)
        ids[r] = atoll(PQgetvalue(work, r, 0));
    struct watcher *w = s->srv->watcher;
    for (size_t i = 0; i < s->n_held; i++) {
        struct held *h = s->held[i];
        if (!h->leased)
            continue;
        int row = -1;
        for (int r = 0; r < rows && row < 0; r++)
            if (ids[r] == h->id)
                row = r;
        if (work && (row < 0 || strcmp(PQgetvalue(work, row, 2), "t") != 0))
            continue; /* nothing due for it: no claim */
        struct account_claim *c = calloc(1, sizeof *c);
        if (!c)
            break;
        c->s = s;
        c->account = h;
        h->claiming = 1;
        s->pending_claims++;
        int check = row >= 0 && strcmp(PQgetvalue(work, row, 1), "t") == 0 && w &&
                    watcher_last_check_age(w, h->email) > RACE_CHECK_S;
        if (check && watcher_check_now(w, h->email, on_race_checked, c) == 0)
            continue;
        if (claim_account(c) < 0) {
            h->claiming = 0;
            s->pending_claims--;
            free(c);
            break;
        }
    }
    free(ids);
    if (s->pending_claims == 0)
        cycle_end(s, 0);
}

static void on_work(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (s->closing)
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
        if (s->held[i]->leased)
            pgarray_add(&ids, s->held[i]->id_s);
    int any = ids.len > 0;
    const char *p[2] = {pgarray_end(&ids), s->cycle_now_s};
    if (!any || !p[0]) {
        buf_free(&ids);
        cycle_end(s, 0);
        return;
    }
    int rc = query(s,
                   "WITH h AS (SELECT id, pool FROM accounts WHERE id = ANY($1::bigint[])), "
                   "busy AS (SELECT p.pool FROM (SELECT DISTINCT pool FROM h) p WHERE EXISTS ("
                   "SELECT 1 FROM enrollments e "
                   "JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version "
                   "WHERE e.state = 'active' AND e.account_id IS NULL AND e.next_send_at <= $2 "
                   "AND v.sender_pool = p.pool)) "
                   "SELECT h.id, EXISTS (SELECT 1 FROM enrollments e WHERE e.account_id = h.id "
                   "AND e.state = 'active' AND e.position > 0 AND e.next_send_at <= $2), "
                   "h.pool IN (SELECT pool FROM busy) OR EXISTS (SELECT 1 FROM enrollments e "
                   "WHERE e.account_id = h.id AND e.state = 'active' AND e.next_send_at <= $2) "
                   "FROM h",
                   2, p, on_work);
    buf_free(&ids);
    if (rc == 0)
        return;
    s->running = 0;
    uv_timer_start(&s->timer, on_timer, 1000, 0);
}

static void cycle_start(struct scheduler *s)
{
    if (s->closing || !s->srv->db || !db_connected(s->srv->db) || !s->srv->migrated)
        return;
    if (s->running) {
        s->again = 1;
        return;
    }
    s->running = 1;
    s->lease_gained = 0; /* this cycle asks with every account leased so far */
    uv_timer_stop(&s->timer);
    char batch[16];
    s->cycle_now = clock_now();
    clock_format(s->cycle_now, s->cycle_now_s, sizeof s->cycle_now_s);
    snprintf(batch, sizeof batch, "%d", BATCH);
    s->claim_full = 0;
    if (s->sender) {
        claim_accounts(s);
        return;
    }
    const char *p[4] = {s->cycle_now_s, batch, s->id_domain, s->replica};
    if (query(s,
                 "SELECT message_id, enrollment_id, step_position, step_id, sequence_id, version, email, fields, "
                 "thread_ids, first_subject FROM relance_claim_due($1, $2, $3, $4)",
                 4, p, on_claimed) < 0) {
        s->running = 0;
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

/* The accounts this replica holds leases on. Entries are never freed
 * while the scheduler lives (jobs point at them); an account whose lease
 * went elsewhere is only marked not leased. An account newly leased (at
 * the start, or given up or left to expire by another replica) is
 * claimed for at once, not at the next timer: the cycle that runs
 * meanwhile asked without it. */
static void on_held(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    int gained = 0;
    for (size_t i = 0; i < s->n_held; i++) {
        s->held[i]->was_leased = s->held[i]->leased;
        s->held[i]->leased = 0;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        long long id = atoll(PQgetvalue(res, r, 0));
        struct held *x = NULL;
        for (size_t i = 0; i < s->n_held && !x; i++)
            if (s->held[i]->id == id)
                x = s->held[i];
        if (!x) {
            const struct config_account *cfg = accounts_find(s->srv->cfg, PQgetvalue(res, r, 1));
            struct held **grown = cfg ? realloc(s->held, (s->n_held + 1) * sizeof *grown) : NULL;
            if (!grown)
                continue; /* not configured here (or no memory): not ours to send from */
            s->held = grown;
            x = calloc(1, sizeof *x);
            if (!x)
                continue;
            x->id = id;
            snprintf(x->id_s, sizeof x->id_s, "%lld", id);
            x->email = strdup(PQgetvalue(res, r, 1));
            x->cfg = cfg;
            if (!x->email) {
                free(x);
                continue;
            }
            s->held[s->n_held++] = x;
        }
        gained |= !x->was_leased;
        x->leased = 1;
    }
    if (gained && !s->closing) {
        s->lease_gained = 1;
        cycle_start(s);
    }
}

static void lease_and_rescue(struct scheduler *s, int rescue)
{
    if (!s->srv->db || !db_connected(s->srv->db) || !s->srv->migrated)
        return;
    char ttl[16], now[40];
    snprintf(ttl, sizeof ttl, "%d", LEASE_TTL_S);
    const char *p[2] = {s->replica, ttl};
    if (query(s, "SELECT relance_replica_alive($1, $2)", 2, p, on_ignore) < 0)
        return;
    if (s->sender && query(s,
                           "SELECT a.id, a.email FROM accounts a JOIN relance_account_leases($1, $2) AS l(id) "
                           "ON l.id = a.id ORDER BY a.id",
                           2, p, on_held) < 0)
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
    for (struct sending *x = s->live; x; x = x->live_next)
        pgarray_add(&keep, x->message_id);
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
    if (!s->running)
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
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_ERROR, "scheduler", "accounts sync failed", "error", msg, NULL);
    }
}

void scheduler_db_up(struct scheduler *s)
{
    if (!s->srv->migrated)
        return;
    /* The configuration's accounts into the database, at every (re)start
     * of the connection: caps and rotation read them there. */
    char *json = accounts_config_json(s->srv->cfg);
    if (json) {
        const char *p[1] = {json};
        int rc = query(s, "SELECT relance_sync_accounts($1::jsonb)", 1, p, on_synced);
        free(json);
        if (rc < 0)
            return;
    }
    outbox_replay(s);
    rescue_own(s);
    if (query(s, "LISTEN relance_work", 0, NULL, on_ignore) < 0)
        return;
    s->last_rescue = clock_now();
    lease_and_rescue(s, 1);
    if (s->outstanding == 0 && s->n_jobs == 0)
        s->running = 0; /* a cycle cut by the lost connection has ended */
    cycle_start(s);
}

/* ---- set-up ------------------------------------------------------------ */

static int first_account(struct scheduler *s, const struct config *cfg)
{
    const char *addr = "capture@relance.invalid", *name = "relance capture";
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (cfg->pools[i].n_accounts) {
            addr = cfg->pools[i].accounts[0].email;
            name = cfg->pools[i].accounts[0].from_name;
            break;
        }
    s->from_addr = strdup(addr);
    s->from_name = name ? strdup(name) : NULL;
    const char *at = strrchr(addr, '@');
    snprintf(s->id_domain, sizeof s->id_domain, "%s", at ? at + 1 : "relance.invalid");
    return s->from_addr ? 0 : -1;
}

struct scheduler *scheduler_new(struct server *srv, char *err, unsigned long errlen)
{
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->srv = srv;
    const struct config *cfg = srv->cfg;
    if (cfg->capture_dir)
        s->capture_dir = strdup(cfg->capture_dir);
    else if (asprintf(&s->capture_dir, "%s/capture", srv->state_dir) < 0)
        s->capture_dir = NULL;
    if (!s->capture_dir || first_account(s, cfg) < 0)
        goto fail;
    if (strcmp(cfg->transport, "smtp") == 0 && cfg->n_pools) {
        s->sender = sender_new(srv->loop, cfg, err, errlen);
        if (!s->sender)
            goto fail;
        s->leasing = 1;
    }
    if (strcmp(cfg->transport, "capture") == 0 && capture_open(s->capture_dir) < 0) {
        snprintf(err, errlen, "cannot create the capture directory %s: %s", s->capture_dir, strerror(errno));
        goto fail;
    }
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    srandom((unsigned)getpid() ^ (unsigned)uv_hrtime());
    snprintf(s->replica, sizeof s->replica, "%s-%ld-%lx", host, (long)getpid(), (unsigned long)random());
    uv_timer_init(srv->loop, &s->timer);
    uv_timer_init(srv->loop, &s->lease_timer);
    uv_timer_init(srv->loop, &s->release_timer);
    s->timer.data = s->lease_timer.data = s->release_timer.data = s;
    uv_timer_start(&s->lease_timer, on_lease_timer, LEASE_EVERY_MS, LEASE_EVERY_MS);
    return s;
fail:
    free(s->capture_dir);
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
    for (size_t i = 0; i < s->n_outcomes; i++)
        for (int c = 0; c < OUTCOME_ARGS; c++)
            free(s->outcomes[i].v[c]);
    free(s->outcomes);
    while (s->outbox) {
        struct outbox_entry *e = s->outbox;
        s->outbox = e->next;
        outbox_free(e);
    }
    for (size_t i = 0; i < s->n_held; i++) {
        free(s->held[i]->email);
        free(s->held[i]);
    }
    free(s->held);
    jobs_free(s);
    free(s->capture_dir);
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

/* The answer to the release, or its failure (the connection went, or
 * the server closed the database at SCHEDULER_CLOSE_MS). The release is
 * the scheduler's last query: every earlier one has been answered or
 * failed before it, so nothing of the database calls back after this. */
static void on_leases_released(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct scheduler *s = arg;
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok && s->leasing)
        log_event(LOG_INFO, "scheduler", "account leases given up", "count", PQgetvalue(res, 0, 0), NULL);
    else if (!ok && s->n_held) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", res ? PQresultErrorMessage(res) : "no answer before the database closed");
        msg[strcspn(msg, "\n")] = '\0';
        log_event(LOG_WARN, "scheduler", "account leases not given up: they expire", "error", msg, NULL);
    }
    close_step(s);
}

/* The last step of the close, once nothing of this replica can go out
 * any more (the sender has closed: every message is finished or given
 * up): its account leases are given up in one statement, so that another
 * replica takes them at its next renewal, not LEASE_TTL_S later. Given
 * up earlier, another replica could claim from an account while a body
 * of it is still on the wire here. Sent whenever the database is
 * connected, leases or not: its answer is also the sign that no earlier
 * query of the scheduler is pending. */
static void leases_release(struct scheduler *s)
{
    struct db *db = s->srv->db;
    const char *p[1] = {s->replica};
    if (db && db_connected(db) &&
        db_query(db, "SELECT relance_release_account_leases($1)", 1, p, on_leases_released, s) == 0)
        return;
    if (s->n_held)
        log_event(LOG_WARN, "scheduler", "account leases not given up: they expire", "error", "database unavailable",
                  NULL);
    close_step(s);
}

static void on_sender_closed(void *arg)
{
    struct scheduler *s = arg;
    leases_release(s);
    close_step(s);
}

void scheduler_close(struct scheduler *s, void (*cb)(void *arg), void *arg)
{
    s->closing = 1;
    s->on_closed = cb;
    s->closed_arg = arg;
    s->pending_closes = 4; /* three timers, and the release */
    uv_close((uv_handle_t *)&s->release_timer, on_closed);
    uv_close((uv_handle_t *)&s->timer, on_closed);
    uv_close((uv_handle_t *)&s->lease_timer, on_closed);
    if (s->sender) {
        /* A body on the wire finishes, anything else is cut or
         * deferred; either way its row stays 'sending' (outcomes are not
         * written while closing) and a replica rescues it as 'unknown'
         * (its body had started) or 'deferred' (nothing went out): never
         * sent twice. The leases go once the sender has closed. */
        s->pending_closes++;
        sender_close(s->sender, on_sender_closed, s);
        s->sender = NULL;
        return;
    }
    leases_release(s);
}

struct oauth2 *scheduler_oauth2(struct scheduler *s)
{
    return s->sender ? sender_oauth2(s->sender) : NULL;
}
