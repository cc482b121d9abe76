/* serve: the `relance serve` process — one libuv loop that owns the
 * database connection, the HTTP listener, the scheduler (with the SMTP
 * sender) and the mailbox watcher. */
#ifndef RELANCE_SERVE_H
#define RELANCE_SERVE_H

#include "config.h"
#include "db.h"
#include "http.h"

#include <uv.h>

struct server {
    uv_loop_t *loop;
    struct config *cfg;
    struct db *db;
    struct http *http;
    struct scheduler *scheduler;
    struct watcher *watcher;   /* NULL unless an account has imap (transport smtp) */
    char *state_dir;           /* state_dir, else $XDG_STATE_HOME/relance */
    uv_signal_t sigint, sigterm;
    uv_signal_t sigusr1;       /* check every watched mailbox now */
    uv_timer_t tick;           /* housekeeping: readiness re-check */
    int migrated;              /* 1 when the schema is up to date */
    int checking;              /* a readiness query is in flight */
    int told_not_migrated;     /* logged once */
    int stopping;
    int stopping_rest;         /* the parts after the watcher are closing */
    int pending_closes;
    char not_ready[300];       /* why /readyz says 503 */
};

/* Runs `relance serve` with cfg until SIGINT or SIGTERM; returns the
 * process's exit code (CLI_OK, or CLI_ERROR after printing why). */
int serve_run(struct config *cfg) __attribute__((warn_unused_result));

#endif
