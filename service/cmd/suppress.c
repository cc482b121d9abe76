/* cmd/suppress: `relance suppress add|remove|list`.
 *
 * It owns the command-line face of the suppressions table: checking each
 * address or @domain (contact.c's syntax rules), storing it lower-case
 * with internationalised domains as A-labels, and listing the table. It
 * does not decide who is suppressed at send or enrollment time
 * (relance_suppressed() in SQL does), nor what a bounce or an unsubscribe
 * suppresses (the classifier and the mailbox watcher do).
 *
 * Every argument is checked before the database is touched, so a bad one
 * changes nothing. Adding a pattern that is already there keeps its first
 * reason; removing one that is not there is not an error. */
#include "cli.h"
#include "contact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: relance suppress add ADDRESS|@DOMAIN... [--reason TEXT]\n"
               "       relance suppress remove ADDRESS|@DOMAIN...\n"
               "       relance suppress list\n"
               "\n"
               "A suppressed address, or any address at a suppressed @domain, is never enrolled\n"
               "and never mailed. Patterns are stored lower-case, internationalised domains as\n"
               "A-labels (@b\xC3\xBC" "cher.example is @xn--bcher-kva.example). 'list' prints one\n"
               "address or @domain per line, sorted. An invalid address or domain is refused\n"
               "(exit 1) and nothing is changed. --reason defaults to 'manual'.\n");
}

/* Normalises each pattern into a newly allocated lower-case-domain form;
 * -1 with the reason printed on the first bad one. */
static int patterns_read(char **in, int n, char **out)
{
    for (int i = 0; i < n; i++) {
        char err[300];
        const char *p = in[i];
        size_t lead = strspn(p, " \t");
        if (p[lead] == '@') {
            char d[CONTACT_DOMAIN_MAX + 1];
            if (contact_domain_normalize(p + lead + 1, d, err, sizeof err) < 0) {
                fprintf(stderr, "relance: suppress: %s (a domain is written @example.com)\n", err);
                return -1;
            }
            if (asprintf(&out[i], "@%s", d) < 0)
                return -1;
        } else {
            char e[CONTACT_EMAIL_MAX + 1];
            if (contact_email_normalize(p, e, err, sizeof err) < 0) {
                fprintf(stderr, "relance: suppress: %s\n", err);
                return -1;
            }
            out[i] = strdup(e);
            if (!out[i])
                return -1;
        }
    }
    return 0;
}

/* A PostgreSQL text[] literal of the patterns: {"a@b.example","@c.example"};
 * inside the double quotes only '"' and '\\' need a backslash. */
static char *array_literal(char **p, int n)
{
    size_t len = 3;
    for (int i = 0; i < n; i++)
        len += 2 * strlen(p[i]) + 3;
    char *s = malloc(len), *o = s;
    if (!s)
        return NULL;
    *o++ = '{';
    for (int i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        *o++ = '"';
        for (const char *c = p[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *o++ = '\\';
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return s;
}

static int change(struct cli *cli, int add, char **args, int n, const char *reason)
{
    int rc = CLI_ERROR;
    PGconn *conn = NULL;
    PGresult *r = NULL;
    char *array = NULL;
    char **pats = calloc((size_t)n, sizeof *pats);
    if (!pats)
        goto fail;
    if (patterns_read(args, n, pats) < 0)
        goto fail;
    array = array_literal(pats, n);
    if (!array)
        goto fail;
    conn = cli_db_connect(cli, 1);
    if (!conn)
        goto fail;
    const char *params[2] = {array, reason};
    if (add)
        r = PQexecParams(conn,
                         "WITH p AS (SELECT DISTINCT lower(x) AS pattern FROM unnest($1::text[]) AS x),"
                         " ins AS (INSERT INTO suppressions (pattern, reason) SELECT pattern, $2 FROM p"
                         "         ON CONFLICT (pattern) DO NOTHING RETURNING 1)"
                         " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM p) - (SELECT count(*) FROM ins)",
                         2, NULL, params, NULL, NULL, 0);
    else
        r = PQexecParams(conn,
                         "WITH p AS (SELECT DISTINCT lower(x) AS pattern FROM unnest($1::text[]) AS x),"
                         " del AS (DELETE FROM suppressions s USING p WHERE s.pattern = p.pattern RETURNING 1)"
                         " SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM p) - (SELECT count(*) FROM del)",
                         1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        fprintf(stderr, "relance: suppress: %.*s\n", (int)strcspn(m, "\n"), m);
        goto fail;
    }
    if (add)
        printf("added %s, already suppressed %s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    else
        printf("removed %s, not suppressed %s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    rc = CLI_OK;
fail:
    PQclear(r);
    if (conn)
        PQfinish(conn);
    free(array);
    for (int i = 0; pats && i < n; i++)
        free(pats[i]);
    free(pats);
    return rc;
}

static int list(struct cli *cli)
{
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return CLI_ERROR;
    int rc = CLI_OK;
    PGresult *r = PQexec(conn, "SELECT pattern FROM suppressions ORDER BY pattern COLLATE \"C\"");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        fprintf(stderr, "relance: suppress: %.*s\n", (int)strcspn(m, "\n"), m);
        rc = CLI_ERROR;
    } else {
        for (int i = 0; i < PQntuples(r); i++)
            printf("%s\n", PQgetvalue(r, i, 0));
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

int cmd_suppress(struct cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0) {
        if (argc > 2)
            return cli_fail(CLI_USAGE, "suppress list: unexpected argument '%s'", argv[2]);
        return list(cli);
    }
    int add = strcmp(sub, "add") == 0;
    if (!add && strcmp(sub, "remove") != 0)
        return cli_fail(CLI_USAGE, "suppress: unknown subcommand '%s' (add, remove or list)", sub);

    const char *reason = "manual";
    char **pats = calloc((size_t)argc, sizeof *pats);
    if (!pats)
        return cli_fail(CLI_ERROR, "out of memory");
    int n = 0, rc;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (add && strcmp(a, "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (add && strncmp(a, "--reason=", 9) == 0) {
            reason = a + 9;
        } else if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                pats[n++] = argv[i];
        } else if (a[0] == '-' && a[1] == '-') {
            free(pats);
            return cli_fail(CLI_USAGE, "suppress %s: unknown option '%s' (see relance suppress --help)", sub, a);
        } else {
            pats[n++] = argv[i];
        }
    }
    if (n == 0) {
        free(pats);
        return cli_fail(CLI_USAGE, "suppress %s: which addresses? (ADDRESS or @DOMAIN, one or more)", sub);
    }
    if (!*reason) {
        free(pats);
        return cli_fail(CLI_USAGE, "suppress add: --reason must not be empty");
    }
    rc = change(cli, add, pats, n, reason);
    free(pats);
    return rc;
}
