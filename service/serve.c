/* serve: `relance serve`. Sets up the loop and its parts, keeps the
 * readiness state (/readyz) true to the database, and shuts everything
 * down in order on SIGINT/SIGTERM so that uv_loop_close returns 0. */
#include "serve.h"

#include "api.h"
#include "cli.h"
#include "fdlimit.h"
#include "log.h"
#include "migrate.h"
#include "clock.h"
#include "oauth2.h"
#include "scheduler.h"
#include "watcher.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define TICK_MS 1000

static void on_closed(uv_handle_t *h)
{
    struct server *srv = h->data;
    srv->pending_closes--;
}

static void on_part_closed(void *arg)
{
    struct server *srv = arg;
    srv->pending_closes--;
}

#define STOP_WATCHER_DEADLINE_MS 3000

/* The database (pending queries fail, their callbacks see that), and the
 * tick that bounded the wait for it. Those callbacks may end the
 * scheduler's close, which comes back here: srv->db is cleared first. */
static void close_db(struct server *srv)
{
    struct db *db = srv->db;
    srv->db = NULL;
    if (db) {
        srv->pending_closes++;
        db_close(db, on_part_closed, srv);
    }
    if (!uv_is_closing((uv_handle_t *)&srv->tick)) {
        srv->pending_closes++;
        uv_close((uv_handle_t *)&srv->tick, on_closed);
    }
}

static void on_scheduler_closed(void *arg)
{
    struct server *srv = arg;
    srv->pending_closes--;
    close_db(srv);
}

static void on_close_deadline(uv_timer_t *t)
{
    close_db(t->data); /* the scheduler's last query fails: its close goes on */
}

/* Everything but the watcher: own handles, the scheduler, the database,
 * the HTTP listener. */
static void server_stop_rest(struct server *srv)
{
    if (srv->stopping_rest)
        return;
    srv->stopping_rest = 1;
    uv_handle_t *own[] = {(uv_handle_t *)&srv->sigint, (uv_handle_t *)&srv->sigterm, (uv_handle_t *)&srv->sigusr1};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        srv->pending_closes++;
        uv_close(own[i], on_closed);
    }
    /* The scheduler first: it stops starting queries, lets its sender
     * drain and gives its account leases up through the database, which
     * stays open until it has closed, for at most SCHEDULER_CLOSE_MS
     * (the tick then closes it). Then the database. */
    if (srv->scheduler) {
        srv->pending_closes++;
        uv_timer_start(&srv->tick, on_close_deadline, SCHEDULER_CLOSE_MS, 0);
        scheduler_close(srv->scheduler, on_scheduler_closed, srv);
        srv->scheduler = NULL;
    } else {
        close_db(srv);
    }
    if (srv->http) {
        srv->pending_closes++;
        http_close(srv->http, on_part_closed, srv);
        srv->http = NULL;
    }
}

static void on_watcher_closed(void *arg)
{
    struct server *srv = arg;
    srv->pending_closes--;
    server_stop_rest(srv);
}

static void on_stop_deadline(uv_timer_t *t)
{
    server_stop_rest(t->data); /* the database's close, once the scheduler's is done, ends the watcher's last query */
}

/* The watcher first: it gives its mailbox leases up through the database,
 * which stays open until it is done (at most STOP_WATCHER_DEADLINE_MS);
 * then the rest. */
static void server_stop(struct server *srv, const char *why)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    log_event(LOG_INFO, "serve", "stopping", "reason", why, NULL);
    if (srv->watcher) {
        struct watcher *w = srv->watcher;
        srv->watcher = NULL;
        srv->pending_closes++;
        uv_timer_start(&srv->tick, on_stop_deadline, STOP_WATCHER_DEADLINE_MS, 0);
        watcher_close(w, on_watcher_closed, srv);
        return;
    }
    server_stop_rest(srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
    server_stop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* The watcher's bearer tokens for xoauth2 accounts: the sender's, so that
 * SMTP and IMAP share one token and one refresh per account. Looked up at
 * each call: the watcher closes first, but should it still ask after the
 * scheduler closed (stop deadline), it only gets NULL. */
static struct oauth2 *tokens(void *arg)
{
    struct server *srv = arg;
    return srv->scheduler ? scheduler_oauth2(srv->scheduler) : NULL;
}

static const char *watch_token(void *arg, const char *account)
{
    struct oauth2 *o = tokens(arg);
    return o ? oauth2_token_peek(o, account) : NULL;
}

static void watch_token_reject(void *arg, const char *account, const char *token)
{
    struct oauth2 *o = tokens(arg);
    if (o)
        oauth2_token_reject(o, account, token);
}

struct check_request {
    char account[320];
};

static void on_checked(void *arg, int changed)
{
    struct check_request *r = arg;
    char n[16];
    snprintf(n, sizeof n, "%d", changed);
    if (changed >= 0)
        log_event(LOG_INFO, "serve", "mailbox checked on request", "account", r->account, "new_messages", n, NULL);
    else
        log_event(LOG_WARN, "serve", "mailbox check on request failed", "account", r->account, "error",
                  strerror(-changed), NULL);
    free(r);
}

/* SIGUSR1: every mailbox this replica watches is checked at once (a pass
 * that starts now), as the scheduler does before a follow-up. */
static void on_sigusr1(uv_signal_t *s, int signum)
{
    (void)signum;
    struct server *srv = s->data;
    if (!srv->watcher)
        return;
    for (size_t i = 0; i < srv->cfg->n_pools; i++)
        for (size_t k = 0; k < srv->cfg->pools[i].n_accounts; k++) {
            const struct config_account *a = &srv->cfg->pools[i].accounts[k];
            struct check_request *r = a->imap ? calloc(1, sizeof *r) : NULL;
            if (!r)
                continue;
            snprintf(r->account, sizeof r->account, "%s", a->email);
            if (watcher_check_now(srv->watcher, a->email, on_checked, r) < 0)
                free(r); /* not leased here, or closing: nothing to say */
        }
}

static void on_migrations(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct server *srv = arg;
    srv->checking = 0;
    if (!res)
        return; /* connection lost: on_db_state says why */
    char err[300];
    int was = srv->migrated;
    int rc = migrate_check_result(res, err, sizeof err);
    srv->migrated = rc > 0;
    if (rc < 0)
        snprintf(srv->not_ready, sizeof srv->not_ready, "%s", err);
    else if (rc == 0)
        snprintf(srv->not_ready, sizeof srv->not_ready, "database not migrated: run 'relance migrate'");
    if (srv->migrated && !was) {
        log_event(LOG_INFO, "serve", "ready", NULL);
        if (srv->scheduler)
            scheduler_db_up(srv->scheduler);
        /* after the scheduler's: its account sync is queued first */
        if (srv->watcher)
            watcher_db_up(srv->watcher);
    }
    else if (!srv->migrated && was)
        log_event(LOG_WARN, "serve", "not ready", "reason", srv->not_ready, NULL);
    else if (!srv->migrated && !srv->told_not_migrated) {
        srv->told_not_migrated = 1; /* say it once, not every tick */
        log_event(LOG_WARN, "serve", "not ready", "reason", srv->not_ready, NULL);
    }
}

static void check_ready(struct server *srv)
{
    if (srv->checking || !srv->db || !db_connected(srv->db))
        return;
    if (db_query(srv->db, migrate_status_sql, 0, NULL, on_migrations, srv) == 0)
        srv->checking = 1;
}

static void on_tick(uv_timer_t *t)
{
    check_ready(t->data);
}

/* Up: readiness is checked at once (the schema). Down or read-only: not
 * ready until the database is back, and /readyz says why; a read-only
 * server is a lost primary, which db keeps reconnecting to find again. */
static void on_db_state(struct db *db, enum db_link link, const char *reason, void *arg)
{
    (void)db;
    struct server *srv = arg;
    if (link == DB_LINK_UP) {
        check_ready(srv);
        return;
    }
    if (link == DB_LINK_READ_ONLY)
        snprintf(srv->not_ready, sizeof srv->not_ready,
                 "database is read-only, not the primary (%s): reconnecting until it takes writes",
                 reason ? reason : "");
    else
        snprintf(srv->not_ready, sizeof srv->not_ready, "database unreachable: %s", reason ? reason : "");
    if (srv->migrated)
        log_event(LOG_WARN, "serve", "not ready", "reason", srv->not_ready, NULL);
    srv->migrated = 0;
}

static void on_notify(struct db *db, const char *channel, const char *payload, void *arg)
{
    (void)db;
    (void)channel;
    (void)payload;
    struct server *srv = arg;
    if (srv->scheduler)
        scheduler_wake(srv->scheduler);
}

/* state_dir from the configuration, else $XDG_STATE_HOME/relance, else
 * ~/.local/state/relance: never the working directory, which may be a
 * checkout. */
static char *state_dir(const struct config *cfg)
{
    char *dir = NULL;
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (cfg->state_dir)
        dir = strdup(cfg->state_dir);
    else if (xdg && *xdg && asprintf(&dir, "%s/relance", xdg) < 0)
        dir = NULL;
    else if (!dir && asprintf(&dir, "%s/.local/state/relance", home && *home ? home : "/tmp") < 0)
        dir = NULL;
    return dir;
}

int serve_run(struct config *cfg)
{
    uv_loop_t loop;
    struct server srv = {0};
    char err[512];
    int rc = CLI_OK;

    if (clock_setup(err, sizeof err) < 0)
        return cli_fail(CLI_ERROR, "%s", err);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cli_fail(CLI_ERROR, "cannot initialise libcurl");
    srv.state_dir = state_dir(cfg);
    if (!srv.state_dir)
        return cli_fail(CLI_ERROR, "out of memory");

    if (uv_loop_init(&loop) < 0)
        return cli_fail(CLI_ERROR, "cannot start the event loop");
    srv.loop = &loop;
    srv.cfg = cfg;
    snprintf(srv.not_ready, sizeof srv.not_ready, "database not connected yet");
    signal(SIGPIPE, SIG_IGN);

    uv_signal_init(&loop, &srv.sigint);
    uv_signal_init(&loop, &srv.sigterm);
    uv_signal_init(&loop, &srv.sigusr1);
    uv_timer_init(&loop, &srv.tick);
    srv.sigint.data = srv.sigterm.data = srv.sigusr1.data = srv.tick.data = &srv;
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigusr1, on_sigusr1, SIGUSR1);
    uv_timer_start(&srv.tick, on_tick, TICK_MS, TICK_MS);

    /* before anything opens descriptors in numbers: raises the soft limit,
     * and the HTTP listener gets what SMTP, IMAP and PostgreSQL leave */
    unsigned http_max = fdlimit_raise(cfg);
    srv.http = http_new(&loop, cfg->http_listen, http_max, api_handle, &srv, err, sizeof err);
    if (!srv.http) {
        fprintf(stderr, "relance: %s\n", err);
        fprintf(stderr, "relance: set RELANCE_HTTP_LISTEN (or http.listen) to a free host:port\n");
        rc = CLI_ERROR;
        server_stop(&srv, "startup failed");
    } else {
        srv.db = db_new(&loop, cfg->database_url, on_db_state, &srv);
        if (srv.db)
            db_set_notify(srv.db, on_notify);
        srv.scheduler = scheduler_new(&srv, err, sizeof err);
        if (srv.scheduler && watcher_wanted(cfg))
            srv.watcher = watcher_new(&srv, err, sizeof err);
        if (srv.watcher)
            watcher_set_token_source(srv.watcher, watch_token, watch_token_reject, &srv);
        if (!srv.scheduler || (watcher_wanted(cfg) && !srv.watcher)) {
            fprintf(stderr, "relance: %s\n", err);
            rc = CLI_ERROR;
            server_stop(&srv, "startup failed");
        } else if (!srv.db || db_start(srv.db) < 0) {
            fprintf(stderr, "relance: cannot set up the database connection\n");
            rc = CLI_ERROR;
            server_stop(&srv, "startup failed");
        } else {
            char db[512], port[16];
            config_conninfo_redact(cfg->database_url, db, sizeof db);
            snprintf(port, sizeof port, "%d", http_port(srv.http));
            log_event(LOG_INFO, "serve", "started", "version", RELANCE_VERSION, "listen", cfg->http_listen,
                      "port", port, "database", *db ? db : "(libpq defaults)", NULL);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int left = uv_loop_close(&loop);
    if (left != 0) {
        log_event(LOG_ERROR, "serve", "handles left open at exit", NULL);
        rc = CLI_ERROR;
    } else {
        log_event(LOG_INFO, "serve", "stopped", NULL);
    }
    free(srv.state_dir);
    curl_global_cleanup();
    return rc;
}
