/* server: `relance serve` (see server.h). It owns the loop, the signals,
 * the housekeeping tick and the one struct ready the parts read; it
 * creates the parts as siblings — database, HTTPS pool and OAuth2 token
 * store, sender, watcher, scheduler, webhook deliveries, HTTP listener —
 * handing each what it works with, keeps readiness true to the database
 * (/readyz), and on SIGINT/SIGTERM stops them in the one order that loses
 * nothing, within shutdown_grace of the signal (an orchestrator's stop:
 * Kubernetes kills the pod when its own grace runs out):
 *
 *   /readyz answers 503 and scheduler_stop (no new claim, no body starts)
 *   -> watcher (gives its mailbox leases up)
 *   -> sender (bodies on the wire finish, the rest is deferred), and
 *      beside it the webhook deliveries (requests end, claims given back)
 *   -> scheduler_close (gives its account leases up)
 *   -> HTTP listeners, OAuth2 store, HTTPS pool, database
 *
 * so that uv_loop_close returns 0 and the process exits 0. The listeners
 * stay open to the end, so that the probes see the drain (503) rather
 * than a refused connection; the database stays open until the
 * scheduler's last query, closed under it when the grace runs out. */
#include "server.h"

#include "api.h"
#include "clock.h"
#include "curl_uv.h"
#include "db.h"
#include "fdlimit.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "oauth2.h"
#include "preflight.h"
#include "public.h"
#include "ready.h"
#include "retention.h"
#include "scheduler.h"
#include "secret.h"
#include "sender.h"
#include "watcher.h"
#include "webhooks.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct server {
    uv_loop_t *loop;
    const struct config *cfg;
    struct ready ready;        /* what the parts and /readyz read */
    struct http *http;
    struct http *metrics_http; /* GET /metrics on http.metrics_listen; NULL: on http */
    struct http *public_http;  /* the public routes on http.public_listen; NULL: on http */
    struct public *public;     /* the public routes (one-click unsubscribe); NULL without a link secret */
    char *link_secret, *link_previous; /* sign and open the public links; NULL: none */
    struct metrics *metrics;   /* freed once the loop has ended */
    struct api *api;           /* the HTTP API's state (keys, time zones) */
    struct curl_uv *https;     /* the HTTPS pool: OAuth2 token endpoints */
    struct oauth2 *oauth2;
    struct sender *sender;
    struct watcher *watcher;   /* NULL unless an account has imap (transport smtp) */
    struct scheduler *scheduler;
    struct retention *retention; /* prunes personal data past its retention */
    struct webhooks *webhooks; /* the event outbox's deliveries */
    char *state_dir;           /* state_dir, else $XDG_STATE_HOME/relance */
    uv_signal_t sigint, sigterm;
    uv_signal_t sigusr1;       /* check every watched mailbox now */
    uv_timer_t tick;           /* housekeeping: readiness re-check; the stop's deadlines */
    int checking;              /* a readiness query is in flight */
    int told_not_migrated;     /* logged once */
    int stopping;
    int stopping_rest;         /* the parts after the watcher are closing */
    uint64_t stop_deadline;    /* loop time (ms) by which the stop must be over: the signal + shutdown_grace */
    int api_failed;            /* a listener beside the API's could not start: neither does it */
    int pending_closes;
};

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
/* What the grace keeps back after the sender's drain: the lease release's
 * round trip and the closes; and, of that, what the database's forced
 * close (when the release does not answer) still leaves before exit. */
#define STOP_RELEASE_MS 2000
#define STOP_CLOSE_MS 500

/* Milliseconds left of the grace, less keep (0 when none). */
static uint64_t stop_left(const struct server *srv, uint64_t keep)
{
    uint64_t now = uv_now(srv->loop);
    return srv->stop_deadline > now + keep ? srv->stop_deadline - now - keep : 0;
}

/* The database (pending queries fail, their callbacks see that), and the
 * tick that bounded the wait for it. Those callbacks may end the
 * scheduler's close, which comes back here: ready.db is cleared first. */
static void close_api(struct server *srv);

static void close_db(struct server *srv)
{
    /* the listeners first: a request arriving now would find no API */
    if (srv->http) {
        srv->pending_closes++;
        http_close(srv->http, on_part_closed, srv);
        srv->http = NULL;
    }
    if (srv->metrics_http) {
        srv->pending_closes++;
        http_close(srv->metrics_http, on_part_closed, srv);
        srv->metrics_http = NULL;
    }
    if (srv->public_http) {
        srv->pending_closes++;
        http_close(srv->public_http, on_part_closed, srv);
        srv->public_http = NULL;
    }
    close_api(srv);
    struct db *dbs[] = {srv->ready.db, srv->ready.pnr, srv->ready.api[0], srv->ready.api[1], srv->ready.background};
    _Static_assert(READY_API_DBS == 2, "close every API connection");
    srv->ready.db = srv->ready.pnr = srv->ready.api[0] = srv->ready.api[1] = srv->ready.background = NULL;
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
        if (dbs[i]) {
            srv->pending_closes++;
            db_close(dbs[i], on_part_closed, srv);
        }
    if (!uv_is_closing((uv_handle_t *)&srv->tick)) {
        srv->pending_closes++;
        uv_close((uv_handle_t *)&srv->tick, on_closed);
    }
}

/* Last of the parts: the token store (no one asks for a token any more),
 * then the HTTPS pool it used, then the database. */
static void close_tokens_and_db(struct server *srv)
{
    if (srv->oauth2) {
        srv->pending_closes++;
        oauth2_close(srv->oauth2, on_part_closed, srv);
        srv->oauth2 = NULL;
    }
    if (srv->https) {
        srv->pending_closes++;
        curl_uv_close(srv->https, on_part_closed, srv);
        srv->https = NULL;
    }
    close_db(srv);
}

static void on_scheduler_closed(void *arg)
{
    struct server *srv = arg;
    srv->pending_closes--;
    close_tokens_and_db(srv);
}

static void on_close_deadline(uv_timer_t *t)
{
    close_db(t->data); /* the scheduler's last query fails: its close goes on */
}

/* The sender has drained: nothing of this replica can go out any more, so
 * the scheduler may give its account leases up. */
static void on_sender_closed(void *arg)
{
    struct server *srv = arg;
    srv->pending_closes--;
    if (srv->scheduler) {
        srv->pending_closes++;
        scheduler_close(srv->scheduler, on_scheduler_closed, srv);
        srv->scheduler = NULL;
    } else {
        close_tokens_and_db(srv);
    }
}

/* Everything but the watcher: own handles, the scheduler and sender, the
 * token store, the database, the HTTP listeners. */
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
    /* The scheduler has stopped claiming and writing (server_stop); the
     * sender drains for what the grace leaves after the release, then the
     * scheduler gives its account leases up through the database, which
     * stays open until then, or until just before the grace runs out (the
     * tick then closes it). Then the rest. */
    uv_timer_start(&srv->tick, on_close_deadline, stop_left(srv, STOP_CLOSE_MS), 0);
    if (srv->retention) {
        srv->pending_closes++;
        retention_close(srv->retention, on_part_closed, srv);
        srv->retention = NULL;
    }
    if (srv->sender) {
        srv->pending_closes++;
        sender_close(srv->sender, stop_left(srv, STOP_RELEASE_MS), on_sender_closed, srv);
        srv->sender = NULL;
    } else {
        srv->pending_closes++;
        on_sender_closed(srv);
    }
    /* beside the sender: its requests end, the claims of the cut ones are
     * given back while the database is open */
    if (srv->webhooks) {
        if (srv->api)
            api_set_webhooks(srv->api, NULL);
        srv->pending_closes++;
        webhooks_close(srv->webhooks, on_part_closed, srv);
        srv->webhooks = NULL;
    }
}

/* The API's state goes with the database: a request still waiting for a
 * statement is answered when the connection closes. */
static void close_api(struct server *srv)
{
    if (srv->api) {
        srv->pending_closes++;
        api_close(srv->api, on_part_closed, srv);
        srv->api = NULL;
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

/* At once: /readyz answers 503 (an orchestrator sends no new traffic)
 * and nothing new is claimed. Then the watcher: it gives its mailbox
 * leases up through the database, which stays open until it is done (at
 * most STOP_WATCHER_DEADLINE_MS, or a quarter of the grace); then the
 * rest. */
static void server_stop(struct server *srv, const char *why)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->ready.stopping = 1;
    srv->stop_deadline = uv_now(srv->loop) + (uint64_t)srv->cfg->shutdown_grace * 1000;
    char grace[24];
    snprintf(grace, sizeof grace, "%lds", srv->cfg->shutdown_grace);
    log_event(LOG_INFO, "serve", "stopping", "reason", why, "shutdown_grace", grace, NULL);
    if (srv->scheduler)
        scheduler_stop(srv->scheduler);
    if (srv->watcher) {
        struct watcher *w = srv->watcher;
        srv->watcher = NULL;
        srv->pending_closes++;
        uint64_t wait = (uint64_t)srv->cfg->shutdown_grace * 1000 / 4;
        if (wait > STOP_WATCHER_DEADLINE_MS)
            wait = STOP_WATCHER_DEADLINE_MS;
        uv_timer_start(&srv->tick, on_stop_deadline, wait, 0);
        watcher_close(w, on_watcher_closed, srv);
        return;
    }
    server_stop_rest(srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
    server_stop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
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
    int was = srv->ready.migrated;
    int rc = migrate_check_result(res, err, sizeof err);
    srv->ready.migrated = rc > 0;
    if (rc < 0)
        snprintf(srv->ready.reason, sizeof srv->ready.reason, "%s", err);
    else if (rc == 0)
        snprintf(srv->ready.reason, sizeof srv->ready.reason, "database not migrated: run 'relance migrate'");
    if (srv->ready.migrated && !was) {
        log_event(LOG_INFO, "serve", "ready", NULL);
        if (srv->scheduler)
            scheduler_db_up(srv->scheduler);
        /* after the scheduler's: its account sync is queued first */
        if (srv->watcher)
            watcher_db_up(srv->watcher);
        webhooks_db_up(srv->webhooks);
    }
    else if (!srv->ready.migrated && was)
        log_event(LOG_WARN, "serve", "not ready", "reason", srv->ready.reason, NULL);
    else if (!srv->ready.migrated && !srv->told_not_migrated) {
        srv->told_not_migrated = 1; /* say it once, not every tick */
        log_event(LOG_WARN, "serve", "not ready", "reason", srv->ready.reason, NULL);
    }
}

static void check_ready(struct server *srv)
{
    if (srv->checking || !srv->ready.db || !db_connected(srv->ready.db))
        return;
    if (db_query(srv->ready.db, migrate_status_sql, 0, NULL, on_migrations, srv) == 0)
        srv->checking = 1;
}

static void on_tick(uv_timer_t *t)
{
    check_ready(t->data);
}

/* Up: readiness is checked at once (the schema). Down or read-only: not
 * ready until the database is back, and /readyz says why; a read-only
 * server is a lost primary, which db keeps reconnecting to find again. */
/* The points of no return's, the API's and the background's connections:
 * nothing to do when one comes or goes (db.c logs it and reconnects;
 * ready_pnr_db and ready_api_db fall back to the main connection
 * meanwhile, and the background work waits for its own). */
static void on_pnr_state(struct db *db, enum db_link link, const char *reason, void *arg)
{
    (void)db;
    (void)link;
    (void)reason;
    (void)arg;
}

static void on_db_state(struct db *db, enum db_link link, const char *reason, void *arg)
{
    (void)db;
    struct server *srv = arg;
    if (link == DB_LINK_UP) {
        check_ready(srv);
        return;
    }
    if (link == DB_LINK_READ_ONLY)
        snprintf(srv->ready.reason, sizeof srv->ready.reason,
                 "database is read-only, not the primary (%s): reconnecting until it takes writes",
                 reason ? reason : "");
    else
        snprintf(srv->ready.reason, sizeof srv->ready.reason, "database unreachable: %s", reason ? reason : "");
    if (srv->ready.migrated)
        log_event(LOG_WARN, "serve", "not ready", "reason", srv->ready.reason, NULL);
    srv->ready.migrated = 0;
}

static void on_notify(struct db *db, const char *channel, const char *payload, void *arg)
{
    (void)db;
    (void)payload;
    struct server *srv = arg;
    if (strcmp(channel, "relance_webhooks") == 0)
        webhooks_wake(srv->webhooks);
    else if (srv->scheduler)
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

struct problems {
    char *first;
    size_t len, n;
};

static void on_problem(void *arg, const char *problem)
{
    struct problems *p = arg;
    if (p->n++ == 0)
        snprintf(p->first, p->len, "%s", problem);
    log_event(LOG_ERROR, "server", "configuration problem", "reason", problem, NULL);
}

/* The parts, each handed what it works with. Returns 0, or -1 with the
 * reason in err. */
static int parts_new(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    char *capture_dir = NULL;
    int rc = -1;
    /* every problem the parts' set-up would find, all at once rather than
     * one per restart (the same checks as `relance config`) */
    struct problems found = {err, errlen, 0};
    if (preflight_check(cfg, on_problem, &found) > 1)
        snprintf(err, errlen, "%zu problems in the configuration (each logged above)", found.n);
    if (found.n)
        return -1;
    srv->ready.db = db_new(srv->loop, cfg->database_url, on_db_state, srv);
    if (!srv->ready.db) {
        snprintf(err, errlen, "cannot set up the database connection");
        return -1;
    }
    db_set_notify(srv->ready.db, on_notify);
    db_set_role(srv->ready.db, "main");
    srv->ready.pnr = db_new(srv->loop, cfg->database_url, on_pnr_state, srv);
    if (!srv->ready.pnr) {
        snprintf(err, errlen, "cannot set up the database connection");
        return -1;
    }
    db_set_role(srv->ready.pnr, "points of no return");
    static const char *const api_roles[READY_API_DBS] = {"api", "api 2"};
    for (size_t i = 0; i < READY_API_DBS; i++) {
        srv->ready.api[i] = db_new(srv->loop, cfg->database_url, on_pnr_state, srv);
        if (!srv->ready.api[i]) {
            snprintf(err, errlen, "cannot set up the database connection");
            return -1;
        }
        db_set_role(srv->ready.api[i], api_roles[i]);
    }
    srv->ready.background = db_new(srv->loop, cfg->database_url, on_pnr_state, srv);
    if (!srv->ready.background) {
        snprintf(err, errlen, "cannot set up the database connection");
        return -1;
    }
    db_set_role(srv->ready.background, "background");
    srv->https = curl_uv_new(srv->loop);
    if (!srv->https) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->oauth2 = oauth2_new(srv->loop, srv->https, cfg, err, errlen);
    if (!srv->oauth2)
        return -1;
    if (strcmp(cfg->transport, "capture") == 0) {
        if (cfg->capture_dir)
            capture_dir = strdup(cfg->capture_dir);
        else if (asprintf(&capture_dir, "%s/capture", srv->state_dir) < 0)
            capture_dir = NULL;
        if (!capture_dir) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (srv->api)
        api_set_capture_dir(srv->api, capture_dir);
    srv->sender = sender_new(srv->loop, cfg, srv->oauth2, capture_dir, err, errlen);
    if (!srv->sender)
        goto done;
    if (watcher_wanted(cfg)) {
        srv->watcher = watcher_new(srv->loop, cfg, &srv->ready, srv->oauth2, err, errlen);
        if (!srv->watcher)
            goto done;
    }
    srv->scheduler = scheduler_new(srv->loop, cfg, &srv->ready, srv->sender, srv->watcher, err, errlen);
    if (!srv->scheduler)
        goto done;
    scheduler_set_metrics(srv->scheduler, srv->metrics);
    if (srv->watcher)
        watcher_set_metrics(srv->watcher, srv->metrics);
    srv->retention = retention_new(srv->loop, cfg, &srv->ready);
    if (!srv->retention) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    srv->webhooks = webhooks_new(srv->loop, cfg, &srv->ready, err, errlen);
    if (!srv->webhooks)
        goto done;
    webhooks_set_metrics(srv->webhooks, srv->metrics);
    if (srv->api)
        api_set_webhooks(srv->api, srv->webhooks);
    rc = 0;
done:
    free(capture_dir);
    return rc;
}

/* The API's listener: GET /metrics goes to the metrics and the public
 * routes to theirs, unless they have a listener of their own; every other
 * path is the API's. */
static void on_request(struct http_request *req, void *arg)
{
    struct server *srv = arg;
    if (!srv->metrics_http && srv->metrics && strcmp(http_request_path(req), "/metrics") == 0)
        metrics_handle(req, srv->metrics);
    else if (srv->public && !srv->public_http && public_route(req, srv->public))
        return;
    else
        api_handle(req, srv->api);
}

static void on_unavailable(void *arg, const char *why)
{
    (void)arg;
    log_event(LOG_WARN, "server", "account paused: its secret cannot be read; the others send", "reason", why, NULL);
}

int server_run(struct config *cfg, char *err, size_t errlen)
{
    uv_loop_t loop;
    struct server srv = {0};
    int rc = 0;

    if (clock_setup(err, errlen) < 0)
        return -1;
    /* before anything starts: a token set but unreadable must not leave
     * the figures open to all */
    char *token = NULL;
    if (secret_metrics_token(cfg, &token, err, errlen) < 0)
        return -1;
    /* links that nobody could open must not go out */
    if (secret_link(cfg, &srv.link_secret, &srv.link_previous, err, errlen) < 0) {
        secret_free(token);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
        secret_free(token);
        secret_free(srv.link_secret);
        secret_free(srv.link_previous);
        return -1;
    }
    srv.state_dir = state_dir(cfg);
    if (!srv.state_dir || uv_loop_init(&loop) < 0) {
        snprintf(err, errlen, srv.state_dir ? "cannot start the event loop" : "out of memory");
        free(srv.state_dir);
        secret_free(token);
        secret_free(srv.link_secret);
        secret_free(srv.link_previous);
        curl_global_cleanup();
        return -1;
    }
    srv.loop = &loop;
    srv.metrics = metrics_new(&loop, &srv.ready, token);
    secret_free(token);
    /* before any part reads the accounts: one without its secret is left
     * out of each, and the scheduler's sync pauses it */
    preflight_mark_unavailable(cfg, on_unavailable, NULL);
    srv.cfg = cfg;
    snprintf(srv.ready.reason, sizeof srv.ready.reason, "database not connected yet");
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
    char why[512];
    srv.api = srv.metrics ? api_new(&loop, &srv.ready, cfg) : NULL;
    if (srv.api && cfg->metrics_listen) {
        /* a few scrapers, not the API's crowd */
        srv.metrics_http = http_new(&loop, cfg->metrics_listen, 16, metrics_handle, srv.metrics, why, sizeof why);
        if (!srv.metrics_http)
            snprintf(err, errlen, "%s; set RELANCE_METRICS_LISTEN (or http.metrics_listen) to a free host:port", why);
    }
    if (srv.link_secret) {
        srv.public = public_new(&srv.ready, cfg->public_url, srv.link_secret, srv.link_previous);
        if (srv.public)
            public_set_bot_window(srv.public, cfg->bot_window);
        if (!srv.public) {
            snprintf(err, errlen, "out of memory");
            srv.api_failed = 1;
        } else if (srv.api && cfg->public_listen && !srv.api_failed) {
            /* prospects' mail clients and browsers: the API's crowd, at most */
            srv.public_http = http_new(&loop, cfg->public_listen, http_max, public_handle, srv.public, why, sizeof why);
            if (!srv.public_http) {
                snprintf(err, errlen, "%s; set RELANCE_PUBLIC_LISTEN (or http.public_listen) to a free host:port",
                         why);
                srv.api_failed = 1;
            }
        }
    }
    srv.http = srv.api && !srv.api_failed && (srv.metrics_http || !cfg->metrics_listen)
                   ? http_new(&loop, cfg->http_listen, http_max, on_request, &srv, why, sizeof why)
                   : NULL;
    if (!srv.api)
        snprintf(why, sizeof why, "out of memory");
    if (!srv.http) {
        if ((!cfg->metrics_listen || srv.metrics_http) && !srv.api_failed)
            snprintf(err, errlen, "%s; set RELANCE_HTTP_LISTEN (or http.listen) to a free host:port", why);
        rc = -1;
        server_stop(&srv, "startup failed");
    } else if (parts_new(&srv, err, errlen) < 0 || db_start(srv.ready.db) < 0 || db_start(srv.ready.pnr) < 0 ||
               db_start(srv.ready.api[0]) < 0 || db_start(srv.ready.api[1]) < 0 ||
               db_start(srv.ready.background) < 0) {
        if (srv.ready.db && srv.scheduler)
            snprintf(err, errlen, "cannot set up the database connection");
        rc = -1;
        server_stop(&srv, "startup failed");
    } else {
        char db[512], port[16];
        config_conninfo_redact(cfg->database_url, db, sizeof db);
        snprintf(port, sizeof port, "%d", http_port(srv.http));
        char mport[16] = "", pport[16] = "";
        if (srv.metrics_http)
            snprintf(mport, sizeof mport, "%d", http_port(srv.metrics_http));
        if (srv.public_http)
            snprintf(pport, sizeof pport, "%d", http_port(srv.public_http));
        if (srv.scheduler && srv.link_secret)
            scheduler_set_links(srv.scheduler, cfg->public_url, srv.link_secret);
        log_event(LOG_INFO, "serve", "started", "version", RELANCE_VERSION, "listen", cfg->http_listen, "port", port,
                  "database", *db ? db : "(libpq defaults)", "metrics_port", *mport ? mport : NULL,
                  "public_port", *pport ? pport : NULL, NULL);
        if (!cfg->public_url)
            log_event(LOG_WARN, "serve", "http.public_url is not set: messages carry a mailto: List-Unsubscribe "
                                         "only, not one-click (RFC 8058)", NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int left = uv_loop_close(&loop);
    if (left != 0) {
        log_event(LOG_ERROR, "serve", "handles left open at exit", NULL);
        if (rc == 0)
            snprintf(err, errlen, "handles left open at exit");
        rc = -1;
    } else {
        log_event(LOG_INFO, "serve", "stopped", NULL);
    }
    metrics_free(srv.metrics);
    public_free(srv.public);
    secret_free(srv.link_secret);
    secret_free(srv.link_previous);
    free(srv.state_dir);
    curl_global_cleanup();
    return rc;
}
