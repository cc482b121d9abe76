/* cmd/enroll: `relance enroll`, which enrolls contacts (given by address,
 * from a CSV file's email column, or chosen by a read-only SQL condition)
 * into a sequence's current version. It owns the command line, reading
 * the CSV and the transaction; every decision (who may be enrolled: not
 * unknown, suppressed, already enrolled or active elsewhere) is
 * relance_enroll's in SQL, with the time passed in from clock.c so tests
 * can move it (RELANCE_TEST_CLOCK). */
#include "cli.h"
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
    if (cli_now(now, sizeof now) < 0)
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
