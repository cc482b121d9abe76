/* metrics: the registry of the process's Prometheus families, their
 * series, and the GET /metrics answer in the text exposition format
 * 0.0.4 (metrics.h). It owns the figures the parts hand it, the cached
 * figures read from PostgreSQL (relance_metrics, sql/functions/metrics.sql)
 * and the scrapes waiting for them; what each figure means is decided by
 * the part that updates it. It does not listen: the server routes
 * /metrics here from the API's listener or from one of its own.
 *
 * A series is found by its label values through a small hash table per
 * family (the sender's outcomes come at over a thousand a second across
 * as many accounts); the answer lists families in registration order and
 * series in the order they were first seen. Read at scrape time, never
 * kept: the database connections' state (ready.h), build and process
 * figures. */
#include "metrics.h"

#include "buf.h"
#include "clock.h"
#include "db.h"
#include "log.h"
#include "ready.h"

#include <assert.h>
#include <math.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HASH_SLOTS 256

const double METRICS_SECONDS_BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,      2.5,   5,    10,    30,   60};
const size_t METRICS_SECONDS_BUCKETS_N = sizeof METRICS_SECONDS_BUCKETS / sizeof METRICS_SECONDS_BUCKETS[0];

struct series {
    struct series *next_hash, *next; /* in its slot; in first-seen order */
    char *values[METRICS_MAX_LABELS];
    double value;     /* counter, gauge; a histogram's sum */
    uint64_t count;   /* a histogram's observations */
    uint64_t *bucket; /* a histogram's, not cumulative: [n_buckets] */
};

struct metrics_family {
    struct metrics_family *next;
    struct metrics *m;
    enum metrics_kind kind;
    const char *name, *help;
    const char *labels[METRICS_MAX_LABELS];
    size_t n_labels;
    double *buckets;
    size_t n_buckets;
    struct series *slot[HASH_SLOTS];
    struct series *first, *last;
};

/* One scrape waiting for the database's figures. */
struct waiting {
    struct waiting *next;
    struct http_request *req;
};

struct metrics {
    uv_loop_t *loop;
    const struct ready *ready;
    pthread_t owner;  /* the loop's thread: every update comes from it */
    char *token;
    double started;   /* process_start_time_seconds */
    struct metrics_family *first, *last;
    /* relance_metrics' rows, as exposition lines, and when read (uv_now) */
    struct buf sql;
    uint64_t sql_at;
    int sql_have, sql_in_flight;
    int sql_failing;  /* said once, until the statement works again */
    struct waiting *waiting;
};

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct metrics *metrics_new(uv_loop_t *loop, const struct ready *ready, const char *token)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->loop = loop;
    m->ready = ready;
    m->owner = pthread_self();
    if (token && !(m->token = strdup(token))) {
        free(m);
        return NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->started = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return m;
}

static void series_free(struct series *s, size_t n_labels)
{
    for (size_t i = 0; i < n_labels; i++)
        free(s->values[i]);
    free(s->bucket);
    free(s);
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    assert(!m->waiting && !m->sql_in_flight);
    while (m->first) {
        struct metrics_family *f = m->first;
        m->first = f->next;
        while (f->first) {
            struct series *s = f->first;
            f->first = s->next;
            series_free(s, f->n_labels);
        }
        free(f->buckets);
        free(f);
    }
    buf_free(&m->sql);
    if (m->token) {
        OPENSSL_cleanse(m->token, strlen(m->token));
        free(m->token);
    }
    free(m);
}

/* ---- series ---------------------------------------------------------------- */

static unsigned hash_values(const struct metrics_family *f, const char *const *values)
{
    uint32_t h = 2166136261u; /* FNV-1a over the values, each ended by a NUL */
    for (size_t i = 0; i < f->n_labels; i++)
        for (const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : "");; p++) {
            h = (h ^ *p) * 16777619u;
            if (!*p)
                break;
        }
    return h % HASH_SLOTS;
}

/* The series of these label values, created when first seen; NULL when
 * out of memory (the update is lost, nothing else). */
static struct series *series_get(struct metrics_family *f, const char *const *values)
{
    assert(pthread_equal(pthread_self(), f->m->owner));
    unsigned h = hash_values(f, values);
    for (struct series *s = f->slot[h]; s; s = s->next_hash) {
        size_t i = 0;
        while (i < f->n_labels && strcmp(s->values[i], values[i] ? values[i] : "") == 0)
            i++;
        if (i == f->n_labels)
            return s;
    }
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    int oom = 0;
    for (size_t i = 0; i < f->n_labels; i++)
        oom |= !(s->values[i] = strdup(values[i] ? values[i] : ""));
    if (f->kind == METRICS_HISTOGRAM)
        oom |= !(s->bucket = calloc(f->n_buckets ? f->n_buckets : 1, sizeof *s->bucket));
    if (oom) {
        series_free(s, f->n_labels);
        return NULL;
    }
    s->next_hash = f->slot[h];
    f->slot[h] = s;
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

struct metrics_family *metrics_family_add(struct metrics *m, enum metrics_kind kind, const char *name,
                                          const char *help, const char *const *labels, const double *buckets,
                                          size_t n)
{
    if (!m)
        return NULL;
    struct metrics_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->m = m;
    f->kind = kind;
    f->name = name;
    f->help = help;
    for (size_t i = 0; labels && labels[i]; i++) {
        assert(i < METRICS_MAX_LABELS);
        f->labels[f->n_labels++] = labels[i];
    }
    if (kind == METRICS_HISTOGRAM) {
        if (!buckets) {
            buckets = METRICS_SECONDS_BUCKETS;
            n = METRICS_SECONDS_BUCKETS_N;
        }
        f->buckets = malloc(n * sizeof *f->buckets);
        if (!f->buckets) {
            free(f);
            return NULL;
        }
        memcpy(f->buckets, buckets, n * sizeof *f->buckets);
        f->n_buckets = n;
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    if (f->n_labels == 0)
        (void)series_get(f, NULL); /* a figure without labels reads 0 before its first update */
    return f;
}

void metrics_count(struct metrics_family *f, const char *const *values, double by)
{
    struct series *s = f ? series_get(f, values) : NULL;
    if (s && by > 0)
        s->value += by;
}

void metrics_gauge_set(struct metrics_family *f, const char *const *values, double v)
{
    struct series *s = f ? series_get(f, values) : NULL;
    if (s)
        s->value = v;
}

void metrics_gauge_add(struct metrics_family *f, const char *const *values, double delta)
{
    struct series *s = f ? series_get(f, values) : NULL;
    if (s)
        s->value += delta;
}

void metrics_observe(struct metrics_family *f, const char *const *values, double v)
{
    struct series *s = f ? series_get(f, values) : NULL;
    if (!s || isnan(v))
        return;
    size_t i = 0;
    while (i < f->n_buckets && v > f->buckets[i])
        i++;
    if (i < f->n_buckets)
        s->bucket[i]++;
    s->count++;
    s->value += v;
}

/* ---- the exposition ----------------------------------------------------------- */

/* v as Prometheus reads it: integers without a fraction, the rest with
 * every digit a double holds. */
static void add_number(struct buf *b, double v)
{
    if (isinf(v))
        buf_adds(b, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        buf_adds(b, "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_addf(b, "%.0f", v);
    else
        buf_addf(b, "%.17g", v);
}

/* A label value or HELP text: backslash and newline escaped, and the
 * double quote in a label value. */
static void add_escaped(struct buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_adds(b, "\\\\");
        else if (*s == '\n')
            buf_adds(b, "\\n");
        else if (*s == '"' && quote)
            buf_adds(b, "\\\"");
        else
            buf_addc(b, *s);
    }
}

/* name{a="x",b="y"[,le="..."]} */
static void add_series_name(struct buf *b, const struct metrics_family *f, const struct series *s,
                            const char *suffix, const char *le)
{
    buf_adds(b, f->name);
    buf_adds(b, suffix);
    if (f->n_labels == 0 && !le)
        return;
    buf_addc(b, '{');
    for (size_t i = 0; i < f->n_labels; i++) {
        buf_addf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        add_escaped(b, s->values[i], 1);
        buf_addc(b, '"');
    }
    if (le)
        buf_addf(b, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    buf_addc(b, '}');
}

static void add_header(struct buf *b, const char *name, const char *help, const char *kind)
{
    buf_addf(b, "# HELP %s ", name);
    add_escaped(b, help, 0);
    buf_addf(b, "\n# TYPE %s %s\n", name, kind);
}

static void add_family(struct buf *b, const struct metrics_family *f)
{
    add_header(b, f->name, f->help, kind_names[f->kind]);
    for (const struct series *s = f->first; s; s = s->next) {
        if (f->kind != METRICS_HISTOGRAM) {
            add_series_name(b, f, s, "", NULL);
            buf_addc(b, ' ');
            add_number(b, s->value);
            buf_addc(b, '\n');
            continue;
        }
        uint64_t below = 0;
        for (size_t i = 0; i < f->n_buckets; i++) {
            char le[32];
            below += s->bucket[i];
            snprintf(le, sizeof le, "%g", f->buckets[i]);
            add_series_name(b, f, s, "_bucket", le);
            buf_addf(b, " %llu\n", (unsigned long long)below);
        }
        add_series_name(b, f, s, "_bucket", "+Inf");
        buf_addf(b, " %llu\n", (unsigned long long)s->count);
        add_series_name(b, f, s, "_sum", NULL);
        buf_addc(b, ' ');
        add_number(b, s->value);
        buf_addc(b, '\n');
        add_series_name(b, f, s, "_count", NULL);
        buf_addf(b, " %llu\n", (unsigned long long)s->count);
    }
}

/* The figures read at scrape time: the database connections, the build,
 * the process. */
static void add_process(struct buf *b, const struct metrics *m)
{
    const struct ready *r = m->ready;
    const struct db *dbs[] = {r ? r->db : NULL, r ? r->pnr : NULL, r ? r->api[0] : NULL, r ? r->api[1] : NULL,
                              r ? r->background : NULL};
    _Static_assert(READY_API_DBS == 2, "every API connection is counted");
    int up = 0, down = 0;
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
        if (dbs[i])
            db_connected(dbs[i]) ? up++ : down++;
    add_header(b, "relance_db_connections", "PostgreSQL connections of this process, by state.", "gauge");
    buf_addf(b, "relance_db_connections{state=\"up\"} %d\nrelance_db_connections{state=\"down\"} %d\n", up, down);
    add_header(b, "relance_db_up",
               "1 when the database may be used now (connected, taking writes, migrated), else 0.", "gauge");
    buf_addf(b, "relance_db_up %d\n", ready_db(r) ? 1 : 0);
    add_header(b, "relance_build_info", "Always 1; the labels say which relance this is.", "gauge");
    buf_adds(b, "relance_build_info{version=\"");
    add_escaped(b, RELANCE_VERSION, 1);
    buf_adds(b, "\"} 1\n");
    add_header(b, "process_start_time_seconds", "When the process started, in seconds since the epoch.", "gauge");
    buf_adds(b, "process_start_time_seconds ");
    add_number(b, m->started);
    buf_addc(b, '\n');
    /* resident pages: the second figure of statm */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    if (f && fscanf(f, "%lu %lu", &size, &resident) == 2) {
        add_header(b, "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
        buf_adds(b, "process_resident_memory_bytes ");
        add_number(b, (double)resident * (double)sysconf(_SC_PAGESIZE));
        buf_addc(b, '\n');
    }
    if (f)
        fclose(f);
}

/* ---- the answer ------------------------------------------------------------------ */

static void answer(struct metrics *m, struct http_request *req)
{
    struct buf b = {0};
    for (const struct metrics_family *f = m->first; f; f = f->next)
        add_family(&b, f);
    if (m->sql_have)
        buf_add(&b, m->sql.p, m->sql.len);
    add_process(&b, m);
    if (b.oom)
        http_respond(req, 503, "text/plain; charset=utf-8", "out of memory\n", 14);
    else
        http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    buf_free(&b);
}

/* relance_metrics' families: its rows (metric, label, value) come grouped
 * by metric in this order; each is written with its HELP and TYPE. */
static const struct {
    const char *metric, *name, *label, *kind, *help;
} sql_families[] = {
    {"due_messages", "relance_due_messages", NULL, "gauge",
     "Active enrollments whose next step is due now: the queue the sender works through."},
    {"enrollments", "relance_enrollments", "state", "gauge", "Enrollments by state."},
    {"sends_after_reply", "relance_sends_after_reply_total", NULL, "counter",
     "Messages sent after their enrollment was stopped by a reply; must stay 0."},
    {"webhook_pending", "relance_webhook_pending_deliveries", "webhook", "gauge",
     "Deliveries an enabled webhook endpoint is still owed."},
    {"webhook_lag", "relance_webhook_outbox_lag_seconds", "webhook", "gauge",
     "How long ago the event of an endpoint's first pending delivery happened (0: none pending)."},
};

/* Keeps the rows as exposition lines, ready for every scrape of the next
 * METRICS_SQL_CACHE_MS. */
static void sql_keep(struct metrics *m, const PGresult *res)
{
    buf_clear(&m->sql);
    for (size_t k = 0; k < sizeof sql_families / sizeof sql_families[0]; k++) {
        int header = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            if (strcmp(PQgetvalue(res, i, 0), sql_families[k].metric) != 0)
                continue;
            if (!header++)
                add_header(&m->sql, sql_families[k].name, sql_families[k].help, sql_families[k].kind);
            buf_adds(&m->sql, sql_families[k].name);
            if (sql_families[k].label && !PQgetisnull(res, i, 1)) {
                buf_addf(&m->sql, "{%s=\"", sql_families[k].label);
                add_escaped(&m->sql, PQgetvalue(res, i, 1), 1);
                buf_adds(&m->sql, "\"}");
            }
            buf_addc(&m->sql, ' ');
            add_number(&m->sql, strtod(PQgetvalue(res, i, 2), NULL));
            buf_addc(&m->sql, '\n');
        }
    }
    m->sql_have = !m->sql.oom;
}

static void on_sql(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct metrics *m = arg;
    m->sql_in_flight = 0;
    m->sql_at = uv_now(m->loop);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 3) {
        sql_keep(m, res);
        if (m->sql_failing)
            log_event(LOG_INFO, "metrics", "the database's figures can be read again", NULL);
        m->sql_failing = 0;
    } else {
        /* answered without them (not stale figures); tried again after the
         * cache's time, so a failing statement is not run at every scrape */
        m->sql_have = 0;
        if (res && !m->sql_failing++)
            log_event(LOG_WARN, "metrics", "cannot read the database's figures", "error",
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), NULL);
    }
    struct waiting *w = m->waiting;
    m->waiting = NULL;
    while (w) {
        struct waiting *next = w->next;
        answer(m, w->req);
        free(w);
        w = next;
    }
}

/* Whether the request carries the token (when one is set), compared in
 * constant time. */
static int authorized(const struct metrics *m, struct http_request *req)
{
    if (!m->token)
        return 1;
    const char *auth = http_request_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *got = auth + 7;
    while (*got == ' ')
        got++;
    size_t n = strlen(m->token);
    return strlen(got) == n && CRYPTO_memcmp(got, m->token, n) == 0;
}

void metrics_handle(struct http_request *req, void *arg)
{
    struct metrics *m = arg;
    const char *method = http_request_method(req);
    if (strcmp(http_request_path(req), "/metrics") != 0) {
        http_respond(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        const char *h[] = {"Allow", "GET, HEAD", NULL};
        http_respond_headers(req, 405, "text/plain; charset=utf-8", "method not allowed\n", 19, h);
        return;
    }
    if (!authorized(m, req)) {
        const char *h[] = {"WWW-Authenticate", "Bearer", NULL};
        http_respond_headers(req, 401, "text/plain; charset=utf-8", "unauthorized\n", 13, h);
        return;
    }
    uint64_t now = uv_now(m->loop);
    int fresh = m->sql_at && now - m->sql_at < METRICS_SQL_CACHE_MS;
    struct db *db = ready_api_db(m->ready);
    if (!m->sql_in_flight && (fresh || !db)) {
        if (!db)
            m->sql_have = 0; /* the database is away: its figures are not shown as if current */
        answer(m, req);
        return;
    }
    struct waiting *w = calloc(1, sizeof *w);
    if (!w) {
        answer(m, req);
        return;
    }
    w->req = req;
    w->next = m->waiting;
    m->waiting = w;
    if (m->sql_in_flight)
        return;
    char at[40];
    clock_format(clock_now(), at, sizeof at);
    const char *p[1] = {at};
    if (db_query(db, "SELECT metric, label, value FROM relance_metrics($1)", 1, p, on_sql, m) < 0) {
        on_sql(NULL, NULL, m);
        return;
    }
    m->sql_in_flight = 1;
}
