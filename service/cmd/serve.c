/* cmd/serve: `relance serve`, the command face of the service: its help
 * and its command line, and what a container asks of it before the loop
 * starts (RELANCE_APPLY_SEQUENCES: the mounted sequences applied, once
 * per start, one replica at a time). The process itself (the loop, its
 * parts, their start and stop order) is server.c's, entered through
 * server_run with the configuration main loaded. */
#include "cli.h"
#include "migrate.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define SEQUENCES_DIR "/etc/relance/sequences" /* the container image's mount point */

/* The sequences of RELANCE_SEQUENCES_DIR (default SEQUENCES_DIR), as
 * `relance apply` stores them, under the migration lock: replicas that
 * start together apply one after the other (the later ones find them
 * unchanged), and never beside a migration. A bad file or a database
 * that is not there or not migrated stops serve here (exit 1): an
 * orchestrator restarts it, and the log says why. The connection is
 * closed before the loop starts. */
static int apply_at_start(struct cli *cli)
{
    const char *dir = getenv("RELANCE_SEQUENCES_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s", dir && *dir ? dir : SEQUENCES_DIR);
    char *paths[] = {path};
    PGconn *conn = cli_db_connect(cli, 1); /* says why when it cannot */
    if (!conn)
        return cli_fail(CLI_ERROR, "serve: the sequences of %s were not applied (RELANCE_APPLY_SEQUENCES=1)", path);
    char err[300];
    if (migrate_lock(conn, 1, err, sizeof err) < 0) {
        PQfinish(conn);
        cli->conn = NULL;
        return cli_fail(CLI_ERROR, "serve: %s", err);
    }
    int rc = apply_paths(cli, 1, paths);
    fflush(stdout); /* its lines before the service's log, not at exit */
    if (migrate_lock(conn, 0, err, sizeof err) < 0 && rc == CLI_OK)
        rc = cli_fail(CLI_ERROR, "serve: %s", err);
    PQfinish(conn);
    cli->conn = NULL;
    if (rc != CLI_OK)
        return cli_fail(rc, "serve: the sequences of %s were not applied (RELANCE_APPLY_SEQUENCES=1)", path);
    return CLI_OK;
}

static int run(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    const char *apply = getenv("RELANCE_APPLY_SEQUENCES");
    if (apply && strcmp(apply, "1") == 0 && apply_at_start(cli) != CLI_OK)
        return CLI_ERROR;
    char err[600];
    if (server_run(cli->config, err, sizeof err) < 0)
        return cli_fail(CLI_ERROR, "%s", err);
    return CLI_OK;
}

const struct cli_command cmd_serve = {
    .name = "serve",
    .summary = "run the service: scheduler, sender, mailbox watcher, HTTP API",
    .about = "Runs the service in the foreground until SIGINT or SIGTERM: connects to\n"
             "PostgreSQL (reconnecting with backoff), serves the HTTP API on http.listen\n"
             "(RELANCE_HTTP_LISTEN; default 127.0.0.1:8080) with GET /healthz and\n"
             "GET /readyz (200 only while the database is connected, takes writes and\n"
             "is migrated; a standby or read-only server is a lost primary).\n"
             "With transport smtp, sends due steps through the accounts' SMTP servers\n"
             "and watches the mailboxes of accounts with an imap URL for replies,\n"
             "auto-replies and bounces (every watch_interval; one replica per mailbox).\n"
             "SIGUSR1 checks every mailbox this replica watches at once. SIGTERM stops it\n"
             "within shutdown_grace (default 20s): /readyz answers 503 at once, nothing new\n"
             "is claimed, bodies on the wire finish, leases are given up; exit 0.\n"
             "With RELANCE_APPLY_SEQUENCES=1 it first applies the sequence files of\n"
             "RELANCE_SEQUENCES_DIR (default " SEQUENCES_DIR ") as 'relance apply' does,\n"
             "under the migration lock (replicas starting together take turns).\n",
    .run = run,
};
