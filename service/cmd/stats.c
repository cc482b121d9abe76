/* cmd/stats: `relance stats SEQUENCE [--since DATE] [--json]`.
 *
 * It owns the command-line face of a sequence's results: per step and
 * A/B variant, how many messages went out and how many got a reply, an
 * auto-reply, a hard bounce or an unsubscribe request, and the reply
 * rate, as an aligned table or one JSON document; once the sequence has
 * any tracked open or click, the messages opened and clicked by people,
 * the same with machines' hits ("all"), and open and click rates on
 * people's. What counts is SQL's
 * (relance_stats and relance_stats_json in sql/functions/stats.sql, on the
 * detection events the mailbox watcher writes); this file checks the
 * arguments and lays the rows out. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    COL_STEP, COL_POSITION, COL_VARIANT, COL_SENT, COL_REPLIED, COL_AUTO, COL_BOUNCED, COL_UNSUB, COL_N,
    /* relance_stats' tracking columns, after the ones always shown */
    COL_OPENED = COL_N, COL_CLICKED, COL_OPENED_RAW, COL_CLICKED_RAW, COL_ALL
};

static const char *const headers[COL_ALL] = {"step",    "position",     "variant", "sent",
                                             "replied", "auto-replied", "bounced", "unsubscribed",
                                             "opened",  "clicked",      "opened (all)", "clicked (all)"};
/* the rates after the figures: reply, then open and click (human) */
enum { RATE_REPLY, RATE_OPEN, RATE_CLICK, RATE_N };
static const char *const rate_headers[RATE_N] = {"reply rate", "open rate", "click rate"};
static const int rate_of[RATE_N] = {COL_REPLIED, COL_OPENED, COL_CLICKED};

/* YYYY-MM-DD with digits where digits go; PostgreSQL then refuses a
 * day that does not exist. */
static int date_shaped(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    return 1;
}

static void print_error(const PGresult *r)
{
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
    fprintf(stderr, "relance: stats: %s\n", msg ? msg : PQresultErrorMessage(r));
    if (hint)
        fprintf(stderr, "relance: %s\n", hint);
}

/* The text of one cell as the table shows it: the variant as a letter,
 * the total row's step as "total". */
static const char *cell(const PGresult *r, int row, int col, char *tmp, size_t len)
{
    if (col == COL_STEP && PQgetisnull(r, row, col))
        return "total";
    if (col == COL_VARIANT) {
        if (PQgetisnull(r, row, col))
            return "-";
        long v = strtol(PQgetvalue(r, row, col), NULL, 10);
        if (v >= 0 && v < 26)
            snprintf(tmp, len, "%c", (char)('A' + v));
        else
            snprintf(tmp, len, "%ld", v + 1);
        return tmp;
    }
    return PQgetisnull(r, row, col) ? "-" : PQgetvalue(r, row, col);
}

/* A rate over the messages sent, of column col's count. */
static void rate(const PGresult *r, int row, int col, char *out, size_t len)
{
    long sent = strtol(PQgetvalue(r, row, COL_SENT), NULL, 10);
    long count = strtol(PQgetvalue(r, row, col), NULL, 10);
    if (sent > 0)
        snprintf(out, len, "%.1f%%", 100.0 * (double)count / (double)sent);
    else
        snprintf(out, len, "-");
}

/* Whether the sequence has any tracked open or click: only then do the
 * tracking columns show (the total row, last, counts them all). */
static int tracked(const PGresult *r)
{
    int n = PQntuples(r);
    if (n == 0 || PQnfields(r) < COL_ALL)
        return 0;
    return strtol(PQgetvalue(r, n - 1, COL_OPENED_RAW), NULL, 10) > 0 ||
           strtol(PQgetvalue(r, n - 1, COL_CLICKED_RAW), NULL, 10) > 0;
}

/* Columns sized to their widest cell; text left, figures right; the
 * rates last. The position column is for --json and ordering only. */
static void print_table(const char *sequence, const char *since, const PGresult *r)
{
    int n = PQntuples(r);
    int cols = tracked(r) ? COL_ALL : COL_N, rates = cols == COL_ALL ? RATE_N : 1;
    size_t w[COL_ALL], wr[RATE_N];
    char tmp[32];
    for (int c = 0; c < cols; c++)
        w[c] = strlen(headers[c]);
    for (int k = 0; k < rates; k++)
        wr[k] = strlen(rate_headers[k]);
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < cols; c++) {
            size_t l = strlen(cell(r, i, c, tmp, sizeof tmp));
            if (l > w[c])
                w[c] = l;
        }
        for (int k = 0; k < rates; k++) {
            rate(r, i, rate_of[k], tmp, sizeof tmp);
            if (strlen(tmp) > wr[k])
                wr[k] = strlen(tmp);
        }
    }
    if (since)
        printf("%s: messages sent since %s (UTC)\n", sequence, since);
    else
        printf("%s: all messages sent\n", sequence);
    for (int c = 0; c < cols; c++) {
        if (c == COL_POSITION)
            continue;
        printf(c <= COL_VARIANT ? "%-*s  " : "%*s  ", (int)w[c], headers[c]);
    }
    for (int k = 0; k < rates; k++)
        printf(k + 1 < rates ? "%*s  " : "%*s\n", (int)wr[k], rate_headers[k]);
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < cols; c++) {
            if (c == COL_POSITION)
                continue;
            printf(c <= COL_VARIANT ? "%-*s  " : "%*s  ", (int)w[c], cell(r, i, c, tmp, sizeof tmp));
        }
        for (int k = 0; k < rates; k++) {
            rate(r, i, rate_of[k], tmp, sizeof tmp);
            printf(k + 1 < rates ? "%*s  " : "%*s\n", (int)wr[k], tmp);
        }
    }
}

enum { OPT_SINCE, OPT_JSON };

static const struct cli_option options[] = {
    [OPT_SINCE] = {"since", 0, "DATE",
                   "keep the messages sent from that day on (YYYY-MM-DD, UTC);\n"
                   "their replies count whenever they came", 0, 0},
    [OPT_JSON] = {"json", 0, NULL, "print one JSON document with the same figures", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *sequence = args->operands[0], *since = cli_args_value(args, OPT_SINCE);
    int json = cli_args_count(args, OPT_JSON) > 0;
    if (since && !date_shaped(since))
        return cli_fail(CLI_ERROR, "stats: --since takes a date written YYYY-MM-DD, not '%s'", since);
    PGconn *conn = cli->conn;
    const char *p[2] = {sequence, since};
    PGresult *r = json ? PQexecParams(conn, "SELECT jsonb_pretty(relance_stats_json($1, $2::date))", 2, NULL, p,
                                      NULL, NULL, 0)
                       : PQexecParams(conn,
                                      "SELECT * FROM relance_stats($1, $2::date::timestamp AT TIME ZONE 'UTC')", 2,
                                      NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        print_error(r);
        rc = CLI_ERROR;
    } else if (json) {
        printf("%s\n", PQgetvalue(r, 0, 0));
    } else {
        print_table(sequence, since, r);
    }
    PQclear(r);
    return rc;
}

const struct cli_command cmd_stats = {
    .name = "stats",
    .summary = "per step and variant: sent, replied, auto-replied, bounced, reply rate",
    .operands = "SEQUENCE",
    .min_operands = 1,
    .max_operands = 1,
    .about = "Per step and A/B variant (A is the first variant in the file, '-' a step\n"
             "without variants), over every version of the sequence: messages sent,\n"
             "replied, auto-replied, bounced (hard, at sending or as a returned message),\n"
             "unsubscribed, and the reply rate (replied / sent). A reply counts for the\n"
             "message it answers. Once the sequence has a tracked open or click (track:\n"
             "in the sequence), also the messages opened and clicked by people, the same\n"
             "counting machines' hits too (all: link scanners, image proxies), and the\n"
             "open and click rates, on people's. No stop, branch or score reads them.\n",
    .options = options,
    .unknown = "unexpected argument", /* the words scripts and tests match */
    .run = run,
};
