/* cmd/next_send_time: the `relance next-send-time` command. It owns the
 * reading and checking of its options (time zone, window, weekdays, --from,
 * --wait) and prints what the database's relance_next_send_time() answers.
 * It does no time-zone arithmetic of its own: that lives in
 * sql/functions/schedule.sql, so the command shows exactly what the scheduler
 * will do. */
#include "cli.h"
#include "duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const weekday_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* Reads exactly n decimal digits at *p into *val. */
static int read_digits(const char **p, int n, int *val)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *val = v;
    return 1;
}

/* Consumes c at *p. */
static int expect(const char **p, char c)
{
    if (**p != c)
        return 0;
    (*p)++;
    return 1;
}

/* "H:MM" or "HH:MM" spanning [s, end) as minutes after midnight; 24:00 is
 * 1440. Returns -1 when it is not a time of day. */
static int parse_hhmm(const char *s, const char *end)
{
    const char *p = s;
    int h, m;
    size_t hl = strspn(p, "0123456789");
    if (hl < 1 || hl > 2 || !read_digits(&p, (int)hl, &h) || !expect(&p, ':') || !read_digits(&p, 2, &m) ||
        p != end)
        return -1;
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return -1;
    return h * 60 + m;
}

static int parse_window(const char *s, int *start, int *end, char *err, size_t errlen)
{
    const char *dash = strchr(s, '-');
    if (!dash) {
        snprintf(err, errlen, "window '%s' is not HH:MM-HH:MM (e.g. 09:00-17:30)", s);
        return -1;
    }
    *start = parse_hhmm(s, dash);
    *end = parse_hhmm(dash + 1, dash + 1 + strlen(dash + 1));
    if (*start < 0 || *end < 0) {
        snprintf(err, errlen, "window '%s' is not HH:MM-HH:MM with times from 00:00 to 24:00 (e.g. 09:00-17:30)",
                 s);
        return -1;
    }
    if (*start == 1440) {
        snprintf(err, errlen, "window '%s' starts at 24:00: start at 00:00 instead", s);
        return -1;
    }
    if (*end < *start) {
        snprintf(err, errlen, "window '%s' ends before it starts (windows cannot span midnight; end may be 24:00)",
                 s);
        return -1;
    }
    if (*end == *start) {
        snprintf(err, errlen, "window '%s' is empty: its end equals its start", s);
        return -1;
    }
    return 0;
}

/* "mon,wed,fri" as the SQL bitmask mon=1 ... sun=64. */
static int parse_days(const char *s, int *mask, char *err, size_t errlen)
{
    *mask = 0;
    const char *p = s;
    for (;;) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int i = 0; i < 7; i++)
            if (n == 3 && strncasecmp(p, weekday_names[i], 3) == 0)
                found = i;
        if (found < 0) {
            snprintf(err, errlen, "unknown weekday '%.*s' in --days '%s' (use mon,tue,wed,thu,fri,sat,sun)",
                     (int)n, p, s);
            return -1;
        }
        *mask |= 1 << found;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* An ISO 8601 instant with a UTC offset, written to out in a form
 * PostgreSQL reads the same whatever its session time zone:
 * "YYYY-MM-DD HH:MM:SS+HH:MM". Seconds are optional, fractions dropped. */
static int parse_from(const char *s, char *out, size_t outlen, char *err, size_t errlen)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h, mi, sec = 0, oh = 0, om = 0;
    char sign = '+';

    if (!read_digits(&p, 4, &y) || !expect(&p, '-') || !read_digits(&p, 2, &mo) || !expect(&p, '-') ||
        !read_digits(&p, 2, &d) || !(expect(&p, 'T') || expect(&p, 't') || expect(&p, ' ')) ||
        !read_digits(&p, 2, &h) || !expect(&p, ':') || !read_digits(&p, 2, &mi))
        goto bad;
    if (expect(&p, ':')) {
        if (!read_digits(&p, 2, &sec))
            goto bad;
        if (expect(&p, '.') || expect(&p, ',')) {
            if (!isdigit((unsigned char)*p))
                goto bad;
            while (isdigit((unsigned char)*p))
                p++;
        }
    }
    if (*p == '\0') {
        snprintf(err, errlen, "--from '%s' has no UTC offset: add Z or +HH:MM / -HH:MM", s);
        return -1;
    }
    if (expect(&p, 'Z') || expect(&p, 'z')) {
        /* UTC */
    } else if (*p == '+' || *p == '-') {
        sign = *p++;
        if (!read_digits(&p, 2, &oh))
            goto bad;
        expect(&p, ':');
        if (!read_digits(&p, 2, &om))
            goto bad;
    } else {
        goto bad;
    }
    if (*p != '\0')
        goto bad;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 || mi > 59 ||
        sec > 59 || oh > 15 || om > 59) {
        snprintf(err, errlen, "--from '%s' is not a valid date, time and offset", s);
        return -1;
    }
    snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d%c%02d:%02d", y, mo, d, h, mi, sec, sign, oh, om);
    return 0;
bad:
    snprintf(err, errlen, "--from '%s' is not ISO 8601 (e.g. 2024-03-08T16:00:00Z or 2024-03-08T17:00+01:00)", s);
    return -1;
}

/* The first line of a failed result's message. */
static const char *result_message(const PGresult *r, char *buf, size_t len)
{
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!m)
        m = PQresultErrorMessage(r);
    snprintf(buf, len, "%s", m);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* Is zone a time zone name the database knows, and an IANA one? */
static int check_zone(PGconn *conn, const char *zone)
{
    const char *params[1] = {zone};
    char msg[512];
    PGresult *r = PQexecParams(conn,
                               "SELECT now() AT TIME ZONE $1,"
                               " EXISTS (SELECT 1 FROM pg_timezone_names WHERE lower(name) = lower($1))",
                               1, NULL, params, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "22023") == 0)
            rc = cli_fail(CLI_ERROR, "next-send-time: unknown time zone '%s' (use an IANA name such as Europe/Paris)",
                          zone);
        else
            rc = cli_fail(CLI_ERROR, "next-send-time: %s", result_message(r, msg, sizeof msg));
    } else if (strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
        rc = cli_fail(CLI_ERROR,
                      "next-send-time: '%s' is not an IANA time zone name (use one such as Europe/Paris, "
                      "not an abbreviation or an offset)",
                      zone);
    }
    PQclear(r);
    return rc;
}

enum { OPT_TIMEZONE, OPT_WINDOW, OPT_DAYS, OPT_FROM, OPT_WAIT };

static const struct cli_option options[] = {
    [OPT_TIMEZONE] = {"timezone", 0, "ZONE", "IANA time zone name, e.g. Europe/Paris", CLI_OPTION_REQUIRED, 0},
    [OPT_WINDOW] = {"window", 0, "HH:MM-HH:MM", "local sending window [start, end); end may be 24:00",
                    CLI_OPTION_REQUIRED, 0},
    [OPT_DAYS] = {"days", 0, "DAYS", "allowed weekdays, comma-separated: mon,tue,wed,thu,fri,sat,sun",
                  CLI_OPTION_REQUIRED, 0},
    [OPT_FROM] = {"from", 0, "TIME",
                  "ISO 8601 with Z or an offset, e.g. 2024-03-08T16:00:00Z or\n"
                  "2024-03-08T17:00+01:00 (fractions of a second are dropped)", CLI_OPTION_REQUIRED, 0},
    [OPT_WAIT] = {"wait", 0, "DURATION",
                  "the step's wait: 90s, 2h, 3 days, 2 business days, 1 day 4h\n"
                  "(default 0). Days keep the local wall time; s, m, h elapse.", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *zone = cli_args_value(args, OPT_TIMEZONE), *wait_text = cli_args_value(args, OPT_WAIT);
    PGconn *conn = cli->conn;
    char err[512], from[96];
    int start, end, mask;
    struct duration wait = {0, 0, 0};
    if (parse_window(cli_args_value(args, OPT_WINDOW), &start, &end, err, sizeof err) < 0 ||
        parse_days(cli_args_value(args, OPT_DAYS), &mask, err, sizeof err) < 0 ||
        parse_from(cli_args_value(args, OPT_FROM), from, sizeof from, err, sizeof err) < 0)
        return cli_fail(CLI_ERROR, "next-send-time: %s", err);
    if (wait_text && duration_parse(wait_text, &wait, err, sizeof err) < 0)
        return cli_fail(CLI_ERROR, "next-send-time: bad --wait: %s", err);
    if (!*zone)
        return cli_fail(CLI_ERROR, "next-send-time: --timezone is empty (use an IANA name such as Europe/Paris)");

    int rc = check_zone(conn, zone);
    if (rc != CLI_OK)
        return rc;

    char secs[24], days[16], bdays[16], ws[16], we[16], dm[16];
    snprintf(secs, sizeof secs, "%lld", (long long)wait.seconds);
    snprintf(days, sizeof days, "%d", (int)wait.days);
    snprintf(bdays, sizeof bdays, "%d", (int)wait.business_days);
    snprintf(ws, sizeof ws, "%d", start);
    snprintf(we, sizeof we, "%d", end);
    snprintf(dm, sizeof dm, "%d", mask);
    const char *params[8] = {from, zone, secs, days, bdays, ws, we, dm};
    PGresult *r = PQexecParams(conn,
                               "SELECT to_char(relance_next_send_time($1::timestamptz, $2, $3::bigint, $4::int,"
                               " $5::int, $6::int, $7::int, $8::int) AT TIME ZONE 'UTC',"
                               " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                               8, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        rc = cli_fail(CLI_ERROR, "next-send-time: %s",
                      PQresultStatus(r) == PGRES_TUPLES_OK ? "no answer from relance_next_send_time"
                                                           : result_message(r, err, sizeof err));
    } else {
        printf("%s\n", PQgetvalue(r, 0, 0));
        rc = CLI_OK;
    }
    PQclear(r);
    return rc;
}

const struct cli_command cmd_next_send_time = {
    .name = "next-send-time",
    .summary = "print when a step would go out: wait, window, weekdays, zone",
    .about = "Prints when a step would go out, before jitter, as YYYY-MM-DDTHH:MM:SSZ: TIME\n"
             "plus the wait, then moved forward to the first instant inside the window on an\n"
             "allowed weekday, in ZONE's local time, across daylight saving changes. The\n"
             "answer comes from the database function the scheduler uses\n"
             "(relance_next_send_time), so DATABASE_URL must reach a migrated database.\n"
             "\n"
             "Exit status: 0 printed, 1 a bad value or a database error, 2 a usage error.\n",
    .options = options,
    .unknown = "unknown argument", /* the words scripts and tests match */
    .run = run,
};
