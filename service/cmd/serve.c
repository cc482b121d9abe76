/* cmd/serve: `relance serve`, the command face of the service: its help
 * and its command line. The process itself (the loop, its parts, their
 * start and stop order) is server.c's, entered through server_run with
 * the configuration main loaded. */
#include "cli.h"
#include "server.h"

static int run(struct cli *cli, const struct cli_args *args)
{
    (void)args;
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
             "SIGUSR1 checks every mailbox this replica watches at once.\n",
    .run = run,
};
