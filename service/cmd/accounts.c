/* cmd/accounts: `relance accounts sync|list|pause|resume`. sync makes the
 * database's pools and accounts match the configuration (the JSON is
 * accounts.c's, the matching relance_sync_accounts's in SQL); list shows
 * each account's state and today's usage against its limit, counted in
 * the account's own day (relance_accounts_list); pause holds an account by
 * hand, as relance's own pauses do (relance_account_pause_by_email);
 * resume un-pauses one (relance_account_resume_by_email). The HTTP API's
 * accounts (api_admin.c) go through the same three functions. */
#include "accounts.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sync_accounts(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    PGconn *conn = cli->conn;
    const struct config *cfg = cli->config;
    char *json = accounts_config_json(cfg, NULL);
    if (!json)
        return cli_fail(CLI_ERROR, "out of memory");
    const char *p[1] = {json};
    PGresult *r = PQexecParams(conn, "SELECT relance_sync_accounts($1::jsonb)", 1, NULL, p, NULL, NULL, 0);
    free(json);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: accounts sync: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else {
        printf("synced %s account%s\n", PQgetvalue(r, 0, 0), strcmp(PQgetvalue(r, 0, 0), "1") == 0 ? "" : "s");
    }
    PQclear(r);
    return rc;
}

static int list_accounts(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    PGconn *conn = cli->conn;
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    const char *p[1] = {now};
    /* the same rows as GET /v1/accounts */
    PGresult *r = PQexecParams(conn,
                               "SELECT email, pool, CASE WHEN NOT configured THEN 'not configured' ELSE state END, "
                               "coalesce(state_reason, ''), sent, coalesce(day_limit::text, 'no limit') "
                               "FROM relance_accounts_list($1)",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        PQclear(r);
        return CLI_ERROR;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        printf("%s\tpool %s\t%s%s%s\ttoday %s/%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               *PQgetvalue(r, i, 3) ? ": " : "", PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    }
    PQclear(r);
    return CLI_OK;
}

enum { OPT_REASON };

static const struct cli_option pause_options[] = {
    [OPT_REASON] = {"reason", 0, "TEXT", "why, shown by accounts list (default: paused by user)", 0, 0},
    {0},
};

static int pause_account(struct cli *cli, const struct cli_args *args)
{
    const char *email = args->operands[0];
    const char *reason = cli_args_value(args, OPT_REASON);
    if (!reason || !*reason)
        reason = "paused by user";
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    const char *p[3] = {email, now, reason};
    PGresult *r = PQexecParams(cli->conn, "SELECT relance_account_pause_by_email($1, $2, $3)", 3, NULL, p, NULL,
                               NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else if (PQgetisnull(r, 0, 0)) {
        rc = cli_fail(CLI_ERROR, "accounts pause: no such account '%s' (relance accounts list shows them)", email);
    } else if (strcmp(PQgetvalue(r, 0, 0), "active") != 0) {
        rc = cli_fail(CLI_ERROR, "accounts pause: %s is already %s", email, PQgetvalue(r, 0, 0));
    } else {
        printf("paused %s\n", email);
    }
    PQclear(r);
    return rc;
}

static int resume(struct cli *cli, const struct cli_args *args)
{
    const char *email = args->operands[0];
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    const char *p[3] = {email, now, "resumed by user"};
    PGresult *r = PQexecParams(cli->conn, "SELECT relance_account_resume_by_email($1, $2, $3)", 3, NULL, p, NULL,
                               NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else if (PQgetisnull(r, 0, 0) || strcmp(PQgetvalue(r, 0, 0), "paused") != 0) {
        fprintf(stderr, "relance: no paused account %s (relance accounts list shows them)\n", email);
        rc = CLI_ERROR;
    } else {
        printf("resumed %s\n", email);
    }
    PQclear(r);
    return rc;
}

static const struct cli_command subcommands[] = {
    {.name = "sync", .summary = "make the database's pools and accounts match the configuration (serve\n"
                                "does it at start)", .run = sync_accounts},
    {.name = "list", .summary = "each account's pool, state (and why it is paused), today's usage and\n"
                                "limit in the account's own day", .run = list_accounts},
    {.name = "pause", .summary = "pause an account by hand: it sends nothing until resumed", .operands = "ACCOUNT",
     .min_operands = 1, .max_operands = 1, .options = pause_options, .run = pause_account},
    {.name = "resume", .summary = "un-pause an account paused by relance or by hand", .operands = "ACCOUNT",
     .min_operands = 1, .max_operands = 1, .run = resume},
    {0},
};

const struct cli_command cmd_accounts = {
    .name = "accounts",
    .summary = "sender accounts: sync from the configuration, list usage, pause, resume",
    .subcommands = subcommands,
};
