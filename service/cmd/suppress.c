/* cmd/suppress: `relance suppress add|remove|list`.
 *
 * It owns the command-line face of the suppressions table: checking each
 * address or @domain (contact.c's syntax rules), storing it lower-case
 * with internationalised domains as A-labels (relance_suppress_add, which
 * also stops the live enrollments it covers; relance_suppress_remove: the
 * HTTP API's suppressions use both), and listing the table. It
 * does not decide who is suppressed at send or enrollment time
 * (relance_suppressed() in SQL does), nor what a bounce or an unsubscribe
 * suppresses (the classifier and the mailbox watcher do).
 *
 * Every argument is checked before any statement runs, so a bad one
 * changes nothing. Adding a pattern that is already there keeps its first
 * reason; removing one that is not there is not an error. */
#include "cli.h"
#include "contact.h"
#include "pgarray.h"
#include "pgerr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Normalises each pattern into a newly allocated lower-case-domain form
 * (contact_pattern_normalize, as the API's POST /v1/suppressions); -1 with
 * the reason printed on the first bad one. */
static int patterns_read(char **in, int n, char **out)
{
    for (int i = 0; i < n; i++) {
        char err[300], p[CONTACT_EMAIL_MAX + 1];
        if (contact_pattern_normalize(in[i], p, err, sizeof err) < 0) {
            fprintf(stderr, "relance: suppress: %s\n", err);
            return -1;
        }
        out[i] = strdup(p);
        if (!out[i])
            return -1;
    }
    return 0;
}

static int change(PGconn *conn, int add, char **args, int n, const char *reason)
{
    char now[40];
    if (add && cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    int rc = CLI_ERROR;
    PGresult *r = NULL;
    struct buf array = {0};
    char **pats = calloc((size_t)n, sizeof *pats);
    if (!pats)
        goto fail;
    if (patterns_read(args, n, pats) < 0)
        goto fail;
    for (int i = 0; i < n; i++)
        pgarray_add(&array, pats[i]);
    const char *params[3] = {pgarray_end(&array), reason, now};
    if (!params[0])
        goto fail;
    /* Adding stops the live enrollments the patterns cover in the same
     * statement (contacts.sql), so none is left active until its send. */
    if (add)
        r = PQexecParams(conn, "SELECT added, already, stopped FROM relance_suppress_add($1::text[], $2, $3)", 3,
                         NULL, params, NULL, NULL, 0);
    else
        r = PQexecParams(conn, "SELECT removed, absent FROM relance_suppress_remove($1::text[])", 1, NULL, params,
                         NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: suppress: %s\n", pgerr_line(r, conn, NULL, m, sizeof m));
        goto fail;
    }
    if (add)
        printf("added %s, already suppressed %s, stopped %s enrollment%s\n", PQgetvalue(r, 0, 0),
               PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), strcmp(PQgetvalue(r, 0, 2), "1") == 0 ? "" : "s");
    else
        printf("removed %s, not suppressed %s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    rc = CLI_OK;
fail:
    PQclear(r);
    buf_free(&array);
    for (int i = 0; pats && i < n; i++)
        free(pats[i]);
    free(pats);
    return rc;
}

static int list(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    int rc = CLI_OK;
    PGresult *r = PQexec(cli->conn, "SELECT pattern FROM suppressions ORDER BY pattern COLLATE \"C\"");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: suppress: %s\n", pgerr_line(r, cli->conn, NULL, m, sizeof m));
        rc = CLI_ERROR;
    } else {
        for (int i = 0; i < PQntuples(r); i++)
            printf("%s\n", PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc;
}

enum { OPT_REASON };

static const struct cli_option add_options[] = {
    [OPT_REASON] = {"reason", 0, "TEXT", "why (default: manual)", 0, 0},
    {0},
};

static int add(struct cli *cli, const struct cli_args *args)
{
    const char *reason = cli_args_value(args, OPT_REASON);
    if (reason && !*reason)
        return cli_fail(CLI_USAGE, "suppress add: --reason must not be empty");
    return change(cli->conn, 1, args->operands, args->n_operands, reason ? reason : "manual");
}

static int remove_patterns(struct cli *cli, const struct cli_args *args)
{
    return change(cli->conn, 0, args->operands, args->n_operands, NULL);
}

static const struct cli_command subcommands[] = {
    {.name = "add", .summary = "suppress addresses or @domains (adding one twice keeps its first reason)",
     .operands = "ADDRESS|@DOMAIN...", .min_operands = 1, .max_operands = -1, .options = add_options, .run = add},
    {.name = "remove", .summary = "lift suppressions (one that is not there is not an error)",
     .operands = "ADDRESS|@DOMAIN...", .min_operands = 1, .max_operands = -1, .run = remove_patterns},
    {.name = "list", .summary = "one address or @domain per line, sorted", .run = list},
    {0},
};

const struct cli_command cmd_suppress = {
    .name = "suppress",
    .summary = "suppress addresses or domains: add, remove, list",
    .about = "A suppressed address, or any address at a suppressed @domain, is never enrolled\n"
             "and never mailed: adding one stops its contacts' active, paused and held\n"
             "enrollments at once (state stopped, reason 'suppressed: PATTERN'). Patterns\n"
             "are stored lower-case, internationalised domains as A-labels\n"
             "(@b\xC3\xBC" "cher.example is @xn--bcher-kva.example). An invalid address or\n"
             "domain is refused (exit 1) and nothing is changed. A pattern that starts\n"
             "with '-' goes after '--'.\n",
    .subcommands = subcommands,
};
