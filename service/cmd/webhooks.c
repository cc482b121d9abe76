/* cmd/webhooks: `relance webhooks list|deliveries|secret|test`, the webhook
 * endpoints from the command line.
 *
 * list shows every endpoint, the API's and the configuration's, and why
 * one is disabled; deliveries shows an endpoint's latest deliveries as
 * GET /v1/webhooks/{id}/deliveries does (relance_webhook_deliveries, the
 * same statement); secret prints a fresh whsec_ secret for a
 * configuration endpoint's secret file or variable (random bytes from
 * OpenSSL, wiped after use; stored nowhere); test sends an example event
 * through webhooks.c on a loop of its own, as POST /v1/webhooks/{id}/test
 * does. Endpoints are made and changed through the API or the
 * configuration, not here.
 *
 * Only list, deliveries and test need the database: each connects itself
 * (main's table asks for nothing, so `secret` runs anywhere). */
#include "cli.h"
#include "clock.h"
#include "pgerr.h"
#include "webhooks.h"
#include "whsig.h"

#include <curl/curl.h>
#include <uv.h>

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

/* ---- test ---------------------------------------------------------------------- */

enum { OPT_TYPE };
static const struct cli_option test_options[] = {
    [OPT_TYPE] = {"type", 0, "TYPE", "the example event's type (default: the endpoint's first, else reply.received)",
                  0, 0},
    {0},
};

struct test_outcome {
    int done, status;
    char error[400];
    double seconds;
};

static void on_sent(void *arg, int status, const char *error, double seconds)
{
    struct test_outcome *o = arg;
    o->done = 1;
    o->status = status;
    o->seconds = seconds;
    snprintf(o->error, sizeof o->error, "%s", error ? error : "");
}

static void on_closed(void *arg)
{
    (void)arg;
}

/* Sends an example event to endpoint ID now, signed as every delivery is
 * (webhooks.c's own request, on a loop of this command's), and says what
 * it answered: exit 0 on 2xx, 1 otherwise. Nothing is stored. */
static int test(struct cli *cli, const struct cli_args *args)
{
    const char *id = args->operands[0], *type = cli_args_value(args, OPT_TYPE);
    size_t n = strlen(id);
    if (!n || n > 18 || strspn(id, "0123456789") != n)
        return cli_fail(CLI_USAGE, "webhooks test: ID is an endpoint's id (relance webhooks list shows them)");
    unsigned char r[12];
    char test_id[32] = "test_", now[64];
    if (RAND_bytes(r, sizeof r) != 1)
        return cli_fail(CLI_ERROR, "webhooks test: OpenSSL could not draw random bytes");
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(test_id + 5 + 2 * i, 3, "%02x", r[i]);
    if (clock_setup(now, sizeof now) < 0)
        return cli_fail(CLI_ERROR, "webhooks test: %s", now);
    clock_format(clock_now(), now, sizeof now);
    const char *p[4] = {id, type, test_id, now};
    PGresult *res = ask(cli, "test", "SELECT status, body, url, name, secret, previous_secret FROM relance_api_webhook_test($1::bigint,"
                                     " $2, $3, $4::timestamptz)", 4, p);
    if (!res)
        return CLI_ERROR;
    if (atoi(PQgetvalue(res, 0, 0)) != 200) {
        int st = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        return cli_fail(CLI_ERROR, st == 404 ? "webhooks test: no webhook %s (relance webhooks list shows them)"
                                             : "webhooks test: %s is not an event type", st == 404 ? id : type);
    }
    char err[512], why[300];
    struct test_outcome o = {0};
    uv_loop_t loop;
    int rc = CLI_ERROR;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || uv_loop_init(&loop) < 0) {
        PQclear(res);
        return cli_fail(CLI_ERROR, "webhooks test: cannot set up libcurl or the event loop");
    }
    struct webhooks *wh = webhooks_new(&loop, cli->config, NULL, err, sizeof err);
    if (!wh) {
        fprintf(stderr, "relance: webhooks test: %s\n", err);
    } else {
        const char *name = PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3);
        const char *secret = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
        const char *previous = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 5);
        if (webhooks_send(wh, PQgetvalue(res, 0, 2), name, secret, previous, test_id, PQgetvalue(res, 0, 1), on_sent,
                          &o, why, sizeof why) < 0)
            on_sent(&o, 0, why, 0);
        while (!o.done && uv_run(&loop, UV_RUN_ONCE))
            ;
        webhooks_close(wh, on_closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        if (o.status >= 200 && o.status <= 299) {
            printf("delivered: HTTP %d in %.0f ms (webhook-id %s)\n", o.status, o.seconds * 1000, test_id);
            rc = CLI_OK;
        } else {
            printf("not delivered: %s after %.0f ms (webhook-id %s)\n", o.error, o.seconds * 1000, test_id);
        }
    }
    PQclear(res);
    if (uv_loop_close(&loop) != 0)
        rc = cli_fail(CLI_ERROR, "webhooks test: handles left open");
    curl_global_cleanup();
    return rc;
}

static const struct cli_command subcommands[] = {
    {.name = "list",
     .summary = "one endpoint a line: id, name (or api), url, types, enabled or why disabled, failing since",
     .run = list},
    {.name = "deliveries", .summary = "an endpoint's latest deliveries, the latest first", .operands = "ID",
     .min_operands = 1, .max_operands = 1, .options = deliveries_options, .run = deliveries},
    {.name = "secret", .summary = "print a new whsec_ secret, for an endpoint in the configuration", .run = secret},
    {.name = "test", .summary = "send an endpoint an example event now, signed, and say what it answered",
     .operands = "ID", .min_operands = 1, .max_operands = 1, .options = test_options, .run = test},
    {0},
};

const struct cli_command cmd_webhooks = {
    .name = "webhooks",
    .summary = "webhook endpoints: list, deliveries, secret, test",
    .about = "Endpoints come from the HTTP API (/v1/webhooks) or from the configuration\n"
             "(webhooks: NAME: {url, types, secret_env or secret_file}). list shows both,\n"
             "never a secret. deliveries ID shows what an endpoint was sent and what it\n"
             "answered. secret prints a new secret for the configuration's secret file\n"
             "(relance webhooks secret > /etc/relance/crm.whsec); it is stored nowhere.\n"
             "test ID sends the endpoint an example event now, signed like every delivery,\n"
             "and exits 0 when it answers 2xx. An unknown ID exits 1.\n",
    .subcommands = subcommands,
};
