/* cmd_enroll: the enrollment commands — enroll, enrollments show, pause,
 * resume, stop. They run as commands over blocking libpq; every decision
 * (who may be enrolled, when a step is due) is SQL's, in
 * sql/005_dispatch.sql, with the time passed in from clock.c so tests can
 * move it (RELANCE_TEST_CLOCK). */
#include "cli.h"
#include "clock.h"
#include "contact.h"
#include "csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage_enroll(void)
{
    printf("usage: relance enroll --sequence NAME (--contact EMAIL... | --csv FILE | --where SQL)\n"
           "                      [--allow-parallel]\n\n"
           "Enrolls contacts into the current version of a sequence (the enrollment keeps\n"
           "that version). Idempotent: unknown, suppressed and already-enrolled contacts,\n"
           "and contacts active in another sequence (unless --allow-parallel), are skipped\n"
           "with a reason. --csv reads a header row with an 'email' column (other columns\n"
           "are ignored); --where selects contacts with a SQL condition on the contacts\n"
           "table, e.g. --where \"company_domain = 'acme.example'\".\n");
    return CLI_OK;
}

static int now_or_fail(char *now, size_t len)
{
    char err[200];
    if (clock_setup(err, sizeof err) < 0) {
        fprintf(stderr, "relance: %s\n", err);
        return -1;
    }
    clock_format(clock_now(), now, len);
    return 0;
}

/* The list of addresses to enroll, growing. */
struct emails {
    char **v;
    size_t n, cap;
};

static int emails_add(struct emails *e, const char *s, size_t len)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        char **grown = realloc(e->v, cap * sizeof *grown);
        if (!grown)
            return -1;
        e->v = grown;
        e->cap = cap;
    }
    e->v[e->n] = strndup(s, len);
    return e->v[e->n++] ? 0 : -1;
}

/* Adds the address in the spelling contacts are stored under (contact.c's:
 * user@Bücher.example is user@xn--bcher-kva.example). One that contact.c
 * refuses goes as given, and SQL reports it as an unknown contact. */
static int emails_add_address(struct emails *e, const char *s)
{
    char norm[CONTACT_EMAIL_MAX + 1];
    s = contact_email_key(s, norm);
    return emails_add(e, s, strlen(s));
}

static void emails_free(struct emails *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* Handles one record of an enroll CSV; returns -1 to stop (the file fails
 * as a whole). */
static int enroll_record(const char *path, const struct csv_record *rec, int *col, struct emails *out)
{
    if (rec->error) {
        fprintf(stderr, "relance: %s:%lu: %s\n", path, rec->error_line ? rec->error_line : rec->line, rec->error);
        return -1;
    }
    if (*col < 0) { /* the header row */
        *col = csv_record_find(rec, "email");
        if (*col < 0) {
            fprintf(stderr, "relance: %s:%lu: no 'email' column in the header row\n", path, rec->line);
            return -1;
        }
        return 0;
    }
    if ((size_t)*col < rec->n_fields && rec->lengths[*col] > 0)
        return emails_add_address(out, rec->fields[*col]);
    return 0;
}

/* Reads the 'email' column of a CSV file. A file that cannot be read or
 * parsed fails as a whole, naming FILE:LINE. */
static int read_csv_emails(const char *path, struct emails *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "relance: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct csv_reader *r = csv_reader_new(NULL);
    int col = -1, rc = 0, done = 0;
    static char buf[65536];
    struct csv_record rec;
    if (!r) {
        fclose(f);
        return -1;
    }
    while (!done && rc == 0) {
        size_t n = fread(buf, 1, sizeof buf, f);
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "relance: %s: %s\n", path, strerror(errno));
                rc = -1;
                break;
            }
            csv_reader_finish(r);
            done = 1;
        } else {
            csv_reader_feed(r, buf, n);
        }
        for (;;) {
            int st = csv_reader_next(r, &rec);
            if (st < 0)
                rc = -1;
            if (st <= 0)
                break;
            if (enroll_record(path, &rec, &col, out) < 0) {
                rc = -1;
                break;
            }
        }
    }
    if (rc == 0 && col < 0) {
        fprintf(stderr, "relance: %s: empty file (a header row with an 'email' column is needed)\n", path);
        rc = -1;
    }
    csv_reader_free(r);
    fclose(f);
    return rc;
}

int cmd_enroll(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return usage_enroll();
    const char *sequence = NULL, *csv = NULL, *where = NULL;
    int parallel = 0, rc = CLI_ERROR;
    struct emails emails = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--sequence") == 0 && has)
            sequence = argv[++i];
        else if (strcmp(a, "--contact") == 0 && has) {
            if (emails_add_address(&emails, argv[i + 1]) < 0)
                goto out;
            i++;
        } else if (strcmp(a, "--csv") == 0 && has)
            csv = argv[++i];
        else if (strcmp(a, "--where") == 0 && has)
            where = argv[++i];
        else if (strcmp(a, "--allow-parallel") == 0)
            parallel = 1;
        else {
            emails_free(&emails);
            return cli_fail(CLI_USAGE, "enroll: unexpected argument '%s' (see relance enroll --help)", a);
        }
    }
    int sources = (emails.n > 0) + (csv != NULL) + (where != NULL);
    if (!sequence || sources != 1) {
        emails_free(&emails);
        return cli_fail(CLI_USAGE, "enroll: give --sequence and one of --contact, --csv or --where "
                                   "(see relance enroll --help)");
    }
    if (csv && read_csv_emails(csv, &emails) < 0)
        goto out;
    char now[40];
    if (now_or_fail(now, sizeof now) < 0)
        goto out;
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        goto out;
    if (cli_exec(conn, "BEGIN") < 0)
        goto close;
    if (where) {
        /* The condition is the operator's own SQL: read-only, inside a
         * subtransaction, so it can select but never change anything. */
        char *sql = NULL;
        if (asprintf(&sql, "SELECT email FROM contacts WHERE (%s) ORDER BY id", where) < 0)
            goto rollback;
        if (cli_exec(conn, "SAVEPOINT pick") < 0 || cli_exec(conn, "SET TRANSACTION READ ONLY") < 0) {
            free(sql);
            goto rollback;
        }
        PGresult *r = PQexec(conn, sql);
        free(sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "relance: --where: %s", PQresultErrorMessage(r));
            PQclear(r);
            goto rollback;
        }
        for (int i = 0; i < PQntuples(r); i++)
            if (emails_add(&emails, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0)) < 0) {
                PQclear(r);
                goto rollback;
            }
        PQclear(r);
        if (cli_exec(conn, "ROLLBACK TO SAVEPOINT pick") < 0)
            goto rollback;
    }
    /* Serialise enrollments of one sequence: two enroll commands at once
     * must not both pass the "already enrolled elsewhere" check. */
    if (cli_exec(conn, "SELECT pg_advisory_xact_lock(7401720651)") < 0)
        goto rollback;
    size_t enrolled = 0, skipped = 0;
    for (size_t i = 0; i < emails.n; i++) {
        const char *p[4] = {sequence, emails.v[i], now, parallel ? "true" : "false"};
        PGresult *r = PQexecParams(conn, "SELECT relance_enroll($1, $2, $3, $4)", 4, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
            fprintf(stderr, "relance: %s\n", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
            if (hint)
                fprintf(stderr, "relance: %s\n", hint);
            PQclear(r);
            goto rollback;
        }
        const char *what = PQgetvalue(r, 0, 0);
        if (strcmp(what, "enrolled") == 0) {
            enrolled++;
        } else {
            skipped++;
            printf("skipped %s: %s\n", emails.v[i], what);
        }
        PQclear(r);
    }
    if (cli_exec(conn, "COMMIT") < 0)
        goto close;
    printf("enrolled %zu, skipped %zu\n", enrolled, skipped);
    rc = CLI_OK;
    goto close;
rollback:
    if (cli_exec(conn, "ROLLBACK") < 0)
        fprintf(stderr, "relance: rollback failed\n");
close:
    PQfinish(conn);
out:
    emails_free(&emails);
    return rc;
}

/* ---- enrollments show ---------------------------------------------------- */

/* One row per enrollment of the contact, with the reason the next step is
 * not sooner computed by the same SQL functions the scheduler uses. */
static const char show_sql[] =
    "WITH e AS ("
    " SELECT e.*, s.name, c.email, c.timezone AS ctz, v.timezone AS vtz, v.fallback_timezone, v.window_start_min,"
    "  v.sender_pool,"
    "  v.window_end_min, v.days, st.step_id, st.wait_seconds, st.wait_days, st.wait_business_days,"
    "  relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone,"
    "  (SELECT max(m.sent_at) FROM messages m WHERE m.enrollment_id = e.id) AS last_sent,"
    "  (SELECT count(*) FROM sequence_steps x WHERE x.sequence_id = e.sequence_id AND x.version = e.version)"
    "   AS n_steps"
    " FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s ON s.id = e.sequence_id"
    " JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version"
    " LEFT JOIN sequence_steps st ON st.sequence_id = e.sequence_id AND st.version = e.version"
    "  AND st.position = e.position"
    " WHERE c.email_key = lower(btrim($1)))"
    "SELECT e.id, e.name, e.version, e.state, e.state_reason,"
    " to_char(e.state_changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " coalesce(e.step_id, '-'), e.position + 1, e.n_steps,"
    " to_char(e.next_send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " to_char(e.next_send_at AT TIME ZONE e.zone, 'YYYY-MM-DD HH24:MI:SS'), e.zone,"
    " CASE"
    "  WHEN e.state = 'held' THEN 'held: ' || e.state_reason"
    "  WHEN e.state <> 'active' THEN e.state"
    "  WHEN e.next_send_at IS NULL THEN 'being sent now'"
    "  WHEN e.account_id IS NOT NULL AND (SELECT a.state = 'paused' FROM accounts a WHERE a.id = e.account_id)"
    "   THEN 'account paused: ' || (SELECT coalesce(a.state_reason, '') FROM accounts a WHERE a.id = e.account_id)"
    "  WHEN e.next_send_at <= $2 AND e.account_id IS NOT NULL AND (SELECT relance_account_remaining(a.id,"
    "       relance_local_day($2, a.timezone)) <= 0 FROM accounts a WHERE a.id = e.account_id)"
    "   THEN 'account capacity: the account reached its limit for today'"
    "  WHEN e.next_send_at <= $2 AND e.account_id IS NULL AND EXISTS (SELECT 1 FROM accounts a"
    "       WHERE a.pool = e.sender_pool) AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool"
    "       AND a.state = 'active' AND a.configured AND coalesce(relance_account_remaining(a.id,"
    "       relance_local_day($2, a.timezone)), 1) > 0)"
    "   THEN 'account capacity: every account of pool ' || e.sender_pool || ' is at its limit today or paused'"
    "  WHEN e.next_send_at <= $2 THEN 'due now'"
    "  WHEN e.position > 0 AND relance_add_wait(e.last_sent, e.zone, e.wait_seconds, e.wait_days,"
    "       e.wait_business_days) > $2 THEN 'wait: the step waits after the previous one'"
    "  WHEN relance_next_window(coalesce(CASE WHEN e.position > 0 THEN relance_add_wait(e.last_sent, e.zone,"
    "       e.wait_seconds, e.wait_days, e.wait_business_days) END, e.created_at), e.zone, e.window_start_min,"
    "       e.window_end_min, e.days) > coalesce(CASE WHEN e.position > 0 THEN relance_add_wait(e.last_sent,"
    "       e.zone, e.wait_seconds, e.wait_days, e.wait_business_days) END, e.created_at)"
    "   THEN CASE WHEN (e.days >> (extract(isodow FROM coalesce(CASE WHEN e.position > 0 THEN"
    "       relance_add_wait(e.last_sent, e.zone, e.wait_seconds, e.wait_days, e.wait_business_days) END,"
    "       e.created_at) AT TIME ZONE e.zone)::int - 1)) & 1 = 0"
    "        THEN 'weekday: not a sending day in ' || e.zone"
    "        ELSE 'window: outside the sending window in ' || e.zone END"
    "  ELSE 'jitter: a random delay inside the window' END"
    " FROM e ORDER BY e.id";

int cmd_enrollments(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 2) {
        printf("usage: relance enrollments show EMAIL\n\n"
               "Shows each enrollment of a contact: sequence and version, state and why,\n"
               "the current step, the next send time in UTC and in the contact's local\n"
               "time, and why it is not sooner (wait, window, weekday, held for a field).\n");
        return argc < 2 && !cli_wants_help(argc, argv) ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "show") != 0 || argc != 3)
        return cli_fail(CLI_USAGE, "enrollments: usage: relance enrollments show EMAIL");
    char now[40];
    if (now_or_fail(now, sizeof now) < 0)
        return CLI_ERROR;
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return CLI_ERROR;
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *p[2] = {contact_email_key(argv[2], norm), now};
    PGresult *r = PQexecParams(conn, show_sql, 2, NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else if (PQntuples(r) == 0) {
        fprintf(stderr, "relance: no enrollment for %s\n", argv[2]);
        rc = CLI_ERROR;
    }
    for (int i = 0; rc == CLI_OK && i < PQntuples(r); i++) {
        printf("enrollment %s: %s v%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        printf("  state: %s (%s, since %s)\n", PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
        printf("  step: %s (%s of %s)\n", PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
        if (!PQgetisnull(r, i, 9))
            printf("  next send: %s (%s %s)\n", PQgetvalue(r, i, 9), PQgetvalue(r, i, 10), PQgetvalue(r, i, 11));
        else
            printf("  next send: -\n");
        printf("  why not sooner: %s\n", PQgetvalue(r, i, 12));
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* ---- pause, resume, stop -------------------------------------------------- */

int cmd_pause(struct cli *cli, int argc, char **argv)
{
    const char *verb = argv[0];
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance %s (--enrollment ID | --contact EMAIL | --sequence NAME)\n\n"
               "pause: active or held enrollments stop going forward and keep their place.\n"
               "resume: paused enrollments go on; every gate (window, weekday, wait) is\n"
               "        checked again at send time, so nothing goes out off-hours.\n"
               "stop: enrollments end for good (state completed, reason 'stopped').\n",
               verb);
        return CLI_OK;
    }
    if (argc != 3)
        return cli_fail(CLI_USAGE, "%s: give one of --enrollment ID, --contact EMAIL, --sequence NAME", verb);
    const char *which;
    if (strcmp(argv[1], "--enrollment") == 0)
        which = "e.id = $1::bigint";
    else if (strcmp(argv[1], "--contact") == 0)
        which = "e.contact_id = (SELECT id FROM contacts WHERE email_key = lower(btrim($1)))";
    else if (strcmp(argv[1], "--sequence") == 0)
        which = "e.sequence_id = (SELECT id FROM sequences WHERE name = $1)";
    else
        return cli_fail(CLI_USAGE, "%s: unknown option '%s'", verb, argv[1]);
    if (strcmp(argv[1], "--enrollment") == 0 && strspn(argv[2], "0123456789") != strlen(argv[2]))
        return cli_fail(CLI_ERROR, "%s: --enrollment takes a number, not '%s'", verb, argv[2]);
    const char *set, *from;
    if (strcmp(verb, "pause") == 0) {
        set = "state = 'paused', state_reason = 'paused by user'";
        from = "('active', 'held')";
    } else if (strcmp(verb, "resume") == 0) {
        set = "state = 'active', state_reason = 'resumed by user'";
        from = "('paused')";
    } else {
        set = "state = 'completed', state_reason = 'stopped by user', next_send_at = NULL";
        from = "('active', 'paused', 'held')";
    }
    char now[40];
    if (now_or_fail(now, sizeof now) < 0)
        return CLI_ERROR;
    char *sql = NULL;
    if (asprintf(&sql, "UPDATE enrollments e SET %s, state_changed_at = $2 WHERE %s AND e.state IN %s", set, which,
                 from) < 0)
        return CLI_ERROR;
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn) {
        free(sql);
        return CLI_ERROR;
    }
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *p[2] = {strcmp(argv[1], "--contact") == 0 ? contact_email_key(argv[2], norm) : argv[2], now};
    PGresult *r = PQexecParams(conn, sql, 2, NULL, p, NULL, NULL, 0);
    free(sql);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else {
        const char *n = PQcmdTuples(r);
        printf("%s %s enrollment%s\n",
               strcmp(verb, "pause") == 0 ? "paused" : strcmp(verb, "resume") == 0 ? "resumed" : "stopped", n,
               strcmp(n, "1") == 0 ? "" : "s");
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* ---- messages list --------------------------------------------------------- */

int cmd_messages(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 2) {
        printf("usage: relance messages list [--state STATE] [--limit N]\n\n"
               "One message a line: time (UTC), state, recipient, sequence, step, sender, last\n"
               "reply. STATE is sending, sent, deferred, bounced, unknown or failed. 'unknown'\n"
               "messages may have been delivered: relance never sends them again.\n");
        return argc < 2 && !cli_wants_help(argc, argv) ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "list") != 0)
        return cli_fail(CLI_USAGE, "messages: use 'list' (see relance messages --help)");
    const char *state = NULL, *limit = "1000";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
            limit = argv[++i];
        else
            return cli_fail(CLI_USAGE, "messages: unexpected argument '%s'", argv[i]);
    }
    static const char *const states[] = {"sending", "sent", "deferred", "bounced", "unknown", "failed", NULL};
    int known = !state;
    for (size_t i = 0; state && states[i]; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known)
        return cli_fail(CLI_ERROR, "messages: unknown state '%s' (sending, sent, deferred, bounced, unknown, failed)",
                        state);
    if (strspn(limit, "0123456789") != strlen(limit) || !*limit)
        return cli_fail(CLI_ERROR, "messages: --limit takes a number");
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return CLI_ERROR;
    const char *p[2] = {state, limit};
    PGresult *r = PQexecParams(conn,
                               "SELECT to_char(coalesce(m.sent_at, m.created_at) AT TIME ZONE 'UTC', "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), m.state, m.recipient, s.name, m.step_id, "
                               "coalesce(m.sender, '-'), coalesce(m.reply, '-') "
                               "FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                               "JOIN sequences s ON s.id = e.sequence_id "
                               "WHERE $1::text IS NULL OR m.state = $1 ORDER BY m.id LIMIT $2::int",
                               2, NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    }
    for (int i = 0; rc == CLI_OK && i < PQntuples(r); i++)
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    PQclear(r);
    PQfinish(conn);
    return rc;
}
