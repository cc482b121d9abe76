/* db: the libpq-on-libuv adapter. It owns the connection's state machine
 * (connecting, checking that the server takes writes, ready, backing off),
 * its poll and timer handles and the query queue. It does not know what
 * the queries mean, only that a server refusing writes is not the one
 * relance needs. */
#include "db.h"

#include "config.h"
#include "log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 10000

enum db_state {
    DB_IDLE_DOWN,  /* made, db_start not called yet */
    DB_CONNECTING, /* PQconnectPoll until the connection is up, under the connect timeout */
    DB_CHECKING,   /* connected: asking whether the server takes writes, still under the timeout */
    DB_READY,      /* queries go out */
    DB_BACKOFF,    /* lost, refused or read-only: waiting to connect again */
    DB_CLOSING,    /* db_close: the handles close, then db is freed */
    DB_STATE_COUNT
};
static const char *const db_state_names[] = {"DOWN", "CONNECTING", "CHECKING", "READY", "BACKOFF", "CLOSING"};
_Static_assert(sizeof db_state_names / sizeof db_state_names[0] == DB_STATE_COUNT, "a name for every state");

/* The transitions the machine has, one bit per target state. Any state
 * can close; losing the connection backs off from wherever it was tried
 * or used; only the backoff timer (or db_start) connects again. */
#define TO(s) (1u << (s))
static const unsigned db_state_next[DB_STATE_COUNT] = {
    [DB_IDLE_DOWN] = TO(DB_CONNECTING) | TO(DB_CLOSING),
    [DB_CONNECTING] = TO(DB_CHECKING) | TO(DB_BACKOFF) | TO(DB_CLOSING),
    [DB_CHECKING] = TO(DB_READY) | TO(DB_BACKOFF) | TO(DB_CLOSING),
    [DB_READY] = TO(DB_BACKOFF) | TO(DB_CLOSING),
    [DB_BACKOFF] = TO(DB_CONNECTING) | TO(DB_CLOSING),
    [DB_CLOSING] = 0,
};
#undef TO

/* The first statement on every new connection: a standby, or a session
 * that starts read-only (default_transaction_read_only for the server,
 * database or role), cannot be relance's database. */
static const char writable_sql[] = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')";
#define SQLSTATE_READ_ONLY "25006" /* read_only_sql_transaction */

struct query {
    struct query *next;
    char *sql;
    int nparams;
    char **params;
    db_result_cb cb;
    void *arg;
};

/* A poll handle lives as long as the socket it watches; it is allocated
 * apart from struct db so that a new one can watch a new socket while the
 * old one is still closing. */
struct db_poll {
    uv_poll_t handle;
    struct db *db;
};

struct db {
    uv_loop_t *loop;
    const char *role;       /* db_set_role's, or NULL: logged as connection= */
    char *conninfo;
    enum db_state state;
    PGconn *conn;
    struct db_poll *poll;
    int poll_fd, poll_events;
    uv_timer_t timer; /* backoff and connect timeout */
    unsigned backoff_ms;
    struct query *head, *tail; /* head is in flight when sent */
    size_t queued;             /* queries from head to tail */
    int in_flight;
    PGresult *last;            /* result being collected for head */
    db_state_cb on_state;
    db_notify_cb on_notify;
    void *arg;
    void (*on_closed)(void *arg);
    void *closed_arg;
    int pending_closes;
    unsigned session;          /* connections made so far (db_session) */
    char reason[256];
};

static void on_poll(uv_poll_t *h, int status, int events);
static void start_connect(struct db *db);

/* The one place the connection's state changes: said at debug level
 * ("connection READY -> BACKOFF"); the warnings and the info line of
 * connecting are the callers', who know why. */
static void state_set(struct db *db, enum db_state to)
{
    int allowed = (db_state_next[db->state] & (1u << to)) != 0;
    assert(allowed);
    char event[64];
    snprintf(event, sizeof event, "connection %s -> %s", db_state_names[db->state], db_state_names[to]);
    /* a release build (no assert) still says so, loudly */
    log_event(allowed ? LOG_DEBUG : LOG_ERROR, "db", event, allowed ? NULL : "error", "transition not in the table",
              NULL);
    db->state = to;
}

/* Queries go out while ready, and the check while checking. */
static int live(const struct db *db)
{
    return db->state == DB_READY || db->state == DB_CHECKING;
}

static void query_free(struct query *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

/* A query with copies of sql and params, or NULL (out of memory). */
static struct query *query_new(const char *sql, int nparams, const char *const *params, db_result_cb cb, void *arg)
{
    struct query *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->sql = strdup(sql);
    q->params = nparams ? calloc((size_t)nparams, sizeof *q->params) : NULL;
    if (!q->sql || (nparams && !q->params))
        goto fail;
    q->nparams = nparams;
    for (int i = 0; i < nparams; i++) {
        q->params[i] = params[i] ? strdup(params[i]) : NULL;
        if (params[i] && !q->params[i])
            goto fail;
    }
    q->cb = cb;
    q->arg = arg;
    return q;
fail:
    query_free(q);
    return NULL;
}

/* One handle finished closing; the last one to do so frees db. */
static void close_done(struct db *db)
{
    if (--db->pending_closes > 0 || db->state != DB_CLOSING)
        return;
    void (*cb)(void *) = db->on_closed;
    void *arg = db->closed_arg;
    free(db->conninfo);
    free(db);
    if (cb)
        cb(arg);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct db_poll *p = h->data;
    struct db *db = p->db;
    free(p);
    close_done(db);
}

static void poll_stop(struct db *db)
{
    if (!db->poll)
        return;
    db->pending_closes++;
    uv_close((uv_handle_t *)&db->poll->handle, on_poll_closed);
    db->poll = NULL;
    db->poll_fd = -1;
    db->poll_events = 0;
}

/* Watches PQsocket for events; replaces the handle if the socket changed. */
static int poll_watch(struct db *db, int events)
{
    int fd = PQsocket(db->conn);
    if (fd < 0)
        return -1;
    if (db->poll && db->poll_fd != fd)
        poll_stop(db);
    if (!db->poll) {
        struct db_poll *p = calloc(1, sizeof *p);
        if (!p)
            return -1;
        p->db = db;
        if (uv_poll_init(db->loop, &p->handle, fd) < 0) {
            free(p);
            return -1;
        }
        p->handle.data = p;
        db->poll = p;
        db->poll_fd = fd;
        db->poll_events = 0;
    }
    if (db->poll_events != events) {
        if (uv_poll_start(&db->poll->handle, events, on_poll) < 0)
            return -1;
        db->poll_events = events;
    }
    return 0;
}

/* Fails every queued query with NULL; callbacks may queue new ones, which
 * then fail at once because the state is no longer ready. */
static void fail_queue(struct db *db)
{
    struct query *q = db->head;
    db->head = db->tail = NULL;
    db->queued = 0;
    db->in_flight = 0;
    if (db->last) {
        PQclear(db->last);
        db->last = NULL;
    }
    while (q) {
        struct query *next = q->next;
        q->cb(db, NULL, q->arg);
        query_free(q);
        q = next;
    }
}

static void one_line(char *s)
{
    s[strcspn(s, "\n")] = '\0';
}

static void on_timer(uv_timer_t *t);

/* The connection is gone (or never came, or is to a server that takes no
 * writes: link DB_LINK_READ_ONLY): drop it and back off. Logged, and told
 * to on_state, when it was ready or the reason is new, so that a server
 * down for an hour, or read-only for one, makes one line. */
static void connection_lost(struct db *db, const char *why, enum db_link link)
{
    int was_ready = db->state == DB_READY;
    char before[sizeof db->reason];
    memcpy(before, db->reason, sizeof before);
    snprintf(db->reason, sizeof db->reason, "%s", why && *why ? why : "connection lost");
    one_line(db->reason);
    int changed = strcmp(before, db->reason) != 0;
    poll_stop(db);
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    state_set(db, DB_BACKOFF);
    uv_timer_start(&db->timer, on_timer, db->backoff_ms, 0);
    char ms[32];
    snprintf(ms, sizeof ms, "%u", db->backoff_ms);
    const char *event = link != DB_LINK_READ_ONLY ? (was_ready ? "connection lost" : "cannot connect")
                        : was_ready ? "connection dropped: the server takes no writes"
                                    : "connected, but the server takes no writes";
    if (was_ready || changed || db->backoff_ms == BACKOFF_MIN_MS)
        log_event(LOG_WARN, "db", event, "connection", db->role, "reason", db->reason, "retry_ms", ms, NULL);
    db->backoff_ms = db->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : db->backoff_ms * 2;
    fail_queue(db);
    if ((was_ready || changed) && db->on_state)
        db->on_state(db, link, db->reason, db->arg);
}

/* Lost, with libpq's message: made safe to show first, as libpq quotes
 * the connection string when it cannot parse it. */
static void connection_lost_pq(struct db *db)
{
    char why[sizeof db->reason];
    config_conninfo_error(db->conninfo, PQerrorMessage(db->conn), why, sizeof why);
    connection_lost(db, why, DB_LINK_DOWN);
}

/* Sends the head of the queue if nothing is in flight. Returns -1 when
 * libpq could not send (the connection is broken). */
static int send_head(struct db *db)
{
    if (!live(db) || db->in_flight || !db->head)
        return 0;
    struct query *q = db->head;
    int ok = q->nparams ? PQsendQueryParams(db->conn, q->sql, q->nparams, NULL, (const char *const *)q->params,
                                            NULL, NULL, 0)
                        : PQsendQuery(db->conn, q->sql);
    if (!ok)
        return -1;
    db->in_flight = 1;
    int fl = PQflush(db->conn);
    if (fl < 0)
        return -1;
    /* watch writable only while libpq has output left to send */
    return poll_watch(db, UV_READABLE | (fl == 1 ? UV_WRITABLE : 0));
}

static void send_next(struct db *db)
{
    if (send_head(db) < 0)
        connection_lost_pq(db);
}

static void deliver_notifies(struct db *db)
{
    PGnotify *n;
    for (;;) {
        n = PQnotifies(db->conn);
        if (!n)
            break;
        if (db->on_notify)
            db->on_notify(db, n->relname, n->extra, db->arg);
        PQfreemem(n);
    }
}

/* A statement refused because the transaction is read-only: the server
 * takes no writes any more. Returns 1 after dropping the connection. */
static int dropped_read_only(struct db *db, PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!state || strcmp(state, SQLSTATE_READ_ONLY) != 0)
        return 0;
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char why[sizeof db->reason];
    snprintf(why, sizeof why, "a statement failed: %s", msg ? msg : "read-only transaction (25006)");
    PQclear(r);
    connection_lost(db, why, DB_LINK_READ_ONLY);
    return 1;
}

static void handle_io(struct db *db, int events)
{
    if (events & UV_WRITABLE) {
        int fl = PQflush(db->conn);
        if (fl < 0) {
            connection_lost_pq(db);
            return;
        }
        if (poll_watch(db, UV_READABLE | (fl == 1 ? UV_WRITABLE : 0)) < 0) {
            connection_lost(db, "cannot watch the database socket", DB_LINK_DOWN);
            return;
        }
    }
    if (!(events & UV_READABLE))
        return;
    if (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK) {
        connection_lost_pq(db);
        return;
    }
    while (db->in_flight && !PQisBusy(db->conn)) {
        PGresult *r = PQgetResult(db->conn);
        if (r && dropped_read_only(db, r))
            return;
        if (r) {
            /* keep the last result of a multi-statement query */
            if (db->last)
                PQclear(db->last);
            db->last = r;
            continue;
        }
        struct query *q = db->head;
        db->head = q->next;
        if (!db->head)
            db->tail = NULL;
        db->queued--;
        db->in_flight = 0;
        PGresult *res = db->last;
        db->last = NULL;
        q->cb(db, res, q->arg);
        PQclear(res);
        query_free(q);
        if (!live(db))
            return; /* the callback closed us, or the check dropped the connection */
    }
    deliver_notifies(db);
    if (PQstatus(db->conn) == CONNECTION_BAD) {
        connection_lost_pq(db);
        return;
    }
    send_next(db);
}

/* The answer to writable_sql: ready, or dropped. */
static void on_checked(struct db *db, const PGresult *res, void *arg)
{
    (void)arg;
    if (!res)
        return; /* lost meanwhile: connection_lost said why */
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 2) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        char why[sizeof db->reason];
        snprintf(why, sizeof why, "cannot check that the server takes writes: %s", msg ? msg : "unexpected answer");
        connection_lost(db, why, DB_LINK_DOWN);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        connection_lost(db, "the server is a standby (in recovery)", DB_LINK_READ_ONLY);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "on") == 0) {
        connection_lost(db, "default_transaction_read_only is on", DB_LINK_READ_ONLY);
        return;
    }
    uv_timer_stop(&db->timer); /* the connect timeout */
    db->session++;
    state_set(db, DB_READY);
    db->backoff_ms = BACKOFF_MIN_MS;
    db->reason[0] = '\0';
    log_event(LOG_INFO, "db", "connected", "connection", db->role, "server_version",
              PQparameterStatus(db->conn, "server_version"), NULL);
    if (db->on_state)
        db->on_state(db, DB_LINK_UP, NULL, db->arg);
}

/* Connected: the server is asked whether it takes writes before anything
 * else (the queue is empty: db_query refuses until ready). The connect
 * timeout keeps running until it answers. */
static int check_start(struct db *db)
{
    struct query *q = query_new(writable_sql, 0, NULL, on_checked, NULL);
    if (!q)
        return -1;
    db->head = db->tail = q;
    db->queued = 1;
    state_set(db, DB_CHECKING);
    return send_head(db);
}

static void connect_step(struct db *db)
{
    PostgresPollingStatusType st = PQconnectPoll(db->conn);
    int rc = 0;
    switch (st) {
    case PGRES_POLLING_READING:
        rc = poll_watch(db, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        rc = poll_watch(db, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        PQsetnonblocking(db->conn, 1);
        if (check_start(db) < 0) {
            connection_lost_pq(db);
            return;
        }
        break;
    default:
        connection_lost_pq(db);
        return;
    }
    if (rc < 0)
        connection_lost(db, "cannot watch the database socket", DB_LINK_DOWN);
}

/* On a socket error (POLLERR) libuv stops the poll handle before it
 * calls back with a negative status. libpq may not see the error yet (the
 * server's last message is still to be read, and its end after it): the
 * handle is started again, else nothing would ever be read from this
 * socket and the query in flight would wait forever. */
static void on_poll(uv_poll_t *h, int status, int events)
{
    struct db_poll *p = h->data;
    struct db *db = p->db;
    if (status < 0) {
        events = UV_READABLE | UV_WRITABLE; /* let libpq find out what broke */
        if (db->poll == p)
            db->poll_events = 0; /* stopped by libuv */
    }
    if (db->state == DB_CONNECTING)
        connect_step(db);
    else if (live(db))
        handle_io(db, events);
    if (status < 0 && live(db) && db->poll == p && db->poll_events == 0 &&
        poll_watch(db, UV_READABLE | UV_WRITABLE) < 0)
        connection_lost(db, "cannot watch the database socket", DB_LINK_DOWN);
}

static void on_timer(uv_timer_t *t)
{
    struct db *db = t->data;
    if (db->state == DB_BACKOFF)
        start_connect(db);
    else if (db->state == DB_CONNECTING || db->state == DB_CHECKING)
        connection_lost(db, "timed out connecting to the database", DB_LINK_DOWN);
    else if (db->state == DB_READY)
        connection_lost_pq(db); /* a send failed in db_query */
}

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void start_connect(struct db *db)
{
    state_set(db, DB_CONNECTING);
    db->conn = PQconnectStart(db->conninfo);
    if (!db->conn) {
        connection_lost(db, "out of memory", DB_LINK_DOWN);
        return;
    }
    if (PQstatus(db->conn) == CONNECTION_BAD) {
        connection_lost_pq(db);
        return;
    }
    PQsetNoticeProcessor(db->conn, quiet_notice, NULL);
    uv_timer_start(&db->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
    /* The first PQconnectPoll call is made as if the socket were writable. */
    if (poll_watch(db, UV_WRITABLE) < 0)
        connection_lost(db, "cannot watch the database socket", DB_LINK_DOWN);
}

struct db *db_new(uv_loop_t *loop, const char *conninfo, db_state_cb on_state, void *arg)
{
    struct db *db = calloc(1, sizeof *db);
    if (!db)
        return NULL;
    db->conninfo = strdup(conninfo);
    if (!db->conninfo || uv_timer_init(loop, &db->timer) < 0) {
        free(db->conninfo);
        free(db);
        return NULL;
    }
    db->timer.data = db;
    db->loop = loop;
    db->on_state = on_state;
    db->arg = arg;
    db->poll_fd = -1;
    db->backoff_ms = BACKOFF_MIN_MS;
    db->state = DB_IDLE_DOWN;
    snprintf(db->reason, sizeof db->reason, "not connected yet");
    return db;
}

void db_set_role(struct db *db, const char *role)
{
    db->role = role;
}

void db_set_notify(struct db *db, db_notify_cb on_notify)
{
    db->on_notify = on_notify;
}

int db_start(struct db *db)
{
    if (db->state != DB_IDLE_DOWN)
        return -1;
    start_connect(db);
    return 0;
}

int db_connected(const struct db *db)
{
    return db->state == DB_READY;
}

unsigned db_session(const struct db *db)
{
    return db->session;
}

int db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_result_cb cb, void *arg)
{
    if (db->state != DB_READY)
        return -1;
    struct query *q = query_new(sql, nparams, params, cb, arg);
    if (!q)
        return -1;
    if (db->tail)
        db->tail->next = q;
    else
        db->head = q;
    db->tail = q;
    db->queued++;
    /* A send failure is reported from the loop (timer), never from inside
     * db_query. */
    if (send_head(db) < 0)
        uv_timer_start(&db->timer, on_timer, 0, 0);
    return 0;
}

size_t db_queued(const struct db *db)
{
    return db->queued;
}

static void on_timer_closed(uv_handle_t *h)
{
    close_done(h->data);
}

void db_close(struct db *db, void (*on_closed)(void *arg), void *arg)
{
    if (db->state == DB_CLOSING)
        return;
    state_set(db, DB_CLOSING);
    db->on_closed = on_closed;
    db->closed_arg = arg;
    db->pending_closes++; /* the timer */
    poll_stop(db);
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    fail_queue(db);
    uv_close((uv_handle_t *)&db->timer, on_timer_closed);
}
