/* cmd/webhooks: `relance webhooks list|deliveries|secret`, the webhook
 * endpoints from the command line.
 *
 * list shows every endpoint, the API's and the configuration's, and why
 * one is disabled; deliveries shows an endpoint's latest deliveries as
 * GET /v1/webhooks/{id}/deliveries does (relance_webhook_deliveries, the
 * same statement); secret prints a fresh whsec_ secret for a
 * configuration endpoint's secret file or variable (random bytes from
 * OpenSSL, wiped after use; stored nowhere). Endpoints are made and
 * changed through the API or the configuration, not here; sending is
 * webhooks.c's.
 *
 * Only list and deliveries need the database: each connects itself
 * (main's table asks for nothing, so `secret` runs anywhere). */
#include "cli.h"
#include "pgerr.h"
#include "whsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define UTC(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static PGresult *ask(struct cli *cli, const char *what, const char *sql, int n, const char *const *params)
{
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return NULL;
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: webhooks %s: %s\n", what, pgerr_line(r, conn, NULL, m, sizeof m));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* One endpoint a line, tab-separated: id, name (a config endpoint's) or
 * "api", url, types ("*": all), then "enabled" or "disabled <when>:
 * <why>", and "failing since <when>" while it fails. */
static int list(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    PGresult *r = ask(cli, "list",
                      "SELECT id, coalesce(name, source), url, coalesce(nullif(array_to_string(types, ','), ''), '*'), "
                      "enabled, coalesce(" UTC("disabled_at") ", '?'), coalesce(disabled_reason, 'disabled'), "
                      UTC("failing_since") " FROM relance_webhooks_list()",
                      0, NULL);
    if (!r)
        return CLI_ERROR;
    for (int i = 0; i < PQntuples(r); i++) {
        printf("%s\t%s\t%s\t%s\t", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3));
        if (strcmp(PQgetvalue(r, i, 4), "t") == 0)
            printf("enabled");
        else
            printf("disabled %s: %s", PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
        if (!PQgetisnull(r, i, 7))
            printf("\tfailing since %s", PQgetvalue(r, i, 7));
        printf("\n");
    }
    if (PQntuples(r) == 0)
        fprintf(stderr, "relance: no webhook endpoint (POST /v1/webhooks or webhooks: in the configuration)\n");
    PQclear(r);
    return CLI_OK;
}

enum { OPT_LIMIT };

static const struct cli_option deliveries_options[] = {
    [OPT_LIMIT] = {"limit", 0, "N", "the latest N deliveries (default 20)", 0, 0},
    {0},
};

/* The latest deliveries first, a line each: id, event id, type, state,
 * attempts, then what happened last (status or error, when) and when the
 * next attempt is due. */
static int deliveries(struct cli *cli, const struct cli_args *args)
{
    const char *id = args->operands[0], *limit = cli_args_value(args, OPT_LIMIT);
    if (!limit)
        limit = "20";
    size_t n = strlen(limit);
    if (!n || n > 6 || strspn(limit, "0123456789") != n || atoi(limit) < 1)
        return cli_fail(CLI_USAGE, "webhooks deliveries: --limit takes a number from 1 to 999999");
    n = strlen(id);
    if (!n || n > 18 || strspn(id, "0123456789") != n)
        return cli_fail(CLI_USAGE, "webhooks deliveries: ID is an endpoint's id (relance webhooks list shows them)");
    const char *p[2] = {id, limit};
    PGresult *r = ask(cli, "deliveries", "SELECT EXISTS (SELECT 1 FROM relance_webhooks_list() WHERE id = $1::bigint)",
                      1, p);
    if (!r)
        return CLI_ERROR;
    int known = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!known)
        return cli_fail(CLI_ERROR, "webhooks deliveries: no webhook %s (relance webhooks list shows them)", id);
    r = ask(cli, "deliveries",
            "SELECT id, event_id, type, state, attempts, last_status, last_error, " UTC("last_at") ", "
            "CASE WHEN next_at = '-infinity' THEN 'now' ELSE " UTC("next_at") " END, " UTC("delivered_at")
            " FROM relance_webhook_deliveries($1::bigint, $2::int)",
            2, p);
    if (!r)
        return CLI_ERROR;
    for (int i = 0; i < PQntuples(r); i++) {
        printf("%s\tevent %s\t%s\t%s\t%s attempt%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), strcmp(PQgetvalue(r, i, 4), "1") == 0 ? "" : "s");
        if (!PQgetisnull(r, i, 7)) {
            printf("\tlast %s", PQgetvalue(r, i, 7));
            if (!PQgetisnull(r, i, 5))
                printf(" HTTP %s", PQgetvalue(r, i, 5));
            if (!PQgetisnull(r, i, 6))
                printf(" (%s)", PQgetvalue(r, i, 6));
        }
        if (!PQgetisnull(r, i, 9))
            printf("\tdelivered %s", PQgetvalue(r, i, 9));
        if (!PQgetisnull(r, i, 8))
            printf("\tnext %s", PQgetvalue(r, i, 8));
        printf("\n");
    }
    PQclear(r);
    return CLI_OK;
}

static int secret(struct cli *cli, const struct cli_args *args)
{
    (void)cli;
    (void)args;
    unsigned char random[32];
    char s[WHSIG_SECRET_MAX];
    int ok = RAND_bytes(random, (int)sizeof random) == 1 && whsig_secret_format(random, sizeof random, s, sizeof s) == 0;
    OPENSSL_cleanse(random, sizeof random);
    int rc = CLI_OK;
    if (!ok)
        rc = cli_fail(CLI_ERROR, "webhooks secret: OpenSSL could not draw random bytes");
    else if (printf("%s\n", s) < 0 || fflush(stdout) != 0)
        rc = cli_fail(CLI_ERROR, "webhooks secret: could not write to stdout");
    OPENSSL_cleanse(s, sizeof s);
    return rc;
}

/* `relance webhooks test ID` (the lead's, with webhooks.c) goes here. */

static const struct cli_command subcommands[] = {
    {.name = "list",
     .summary = "one endpoint a line: id, name (or api), url, types, enabled or why disabled, failing since",
     .run = list},
    {.name = "deliveries", .summary = "an endpoint's latest deliveries, the latest first", .operands = "ID",
     .min_operands = 1, .max_operands = 1, .options = deliveries_options, .run = deliveries},
    {.name = "secret", .summary = "print a new whsec_ secret, for an endpoint in the configuration", .run = secret},
    {0},
};

const struct cli_command cmd_webhooks = {
    .name = "webhooks",
    .summary = "webhook endpoints: list, deliveries, secret",
    .about = "Endpoints come from the HTTP API (/v1/webhooks) or from the configuration\n"
             "(webhooks: NAME: {url, types, secret_env or secret_file}). list shows both,\n"
             "never a secret. deliveries ID shows what an endpoint was sent and what it\n"
             "answered. secret prints a new secret for the configuration's secret file\n"
             "(relance webhooks secret > /etc/relance/crm.whsec); it is stored nowhere.\n"
             "An unknown ID exits 1.\n",
    .subcommands = subcommands,
};
