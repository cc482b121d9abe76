/* cmd/enroll: `relance enroll`, which enrolls contacts (given by address,
 * from a CSV file's email column, or chosen by a read-only SQL condition)
 * into a sequence's current version. It owns the command line, reading
 * the CSV (a bad row is reported as FILE:LINE and skipped, as `contacts
 * import` does), the transaction, the progress bar and the summary; every
 * decision (who may be enrolled: not unknown, suppressed, already enrolled
 * or active elsewhere) is relance_enroll_many's in SQL, with the time
 * passed in from clock.c so tests can move it (RELANCE_TEST_CLOCK). The
 * addresses go ENROLL_CHUNK at a time, so each statement stays small and
 * the bar moves, all in one transaction. */
#include "cli.h"
#include "contact.h"
#include "csv.h"
#include "pgarray.h"
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Addresses per relance_enroll_many call: large enough that the round
 * trips do not count, small enough that the array and the result of one
 * call stay a few MiB. */
#define ENROLL_CHUNK 10000
/* Fewer addresses than this are done before a bar would be worth seeing. */
#define ENROLL_PROGRESS_MIN 5000

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

/* Reports a row of an enroll CSV that is skipped, as `contacts import`
 * reports the rows it rejects: FILE:LINE: reason, on stderr. */
static void bad_row(const char *path, unsigned long line, const char *why, unsigned long *n_bad)
{
    fprintf(stderr, "%s:%lu: %s\n", path, line, why);
    (*n_bad)++;
}

/* Handles one record of an enroll CSV. A bad row (CSV syntax, no or an
 * invalid address) is reported and skipped, so one typo in a file of
 * thousands does not stop the rest; only a missing header stops the file
 * (returns -1), and so does running out of memory. */
static int enroll_record(const char *path, const struct csv_record *rec, int *col, struct emails *out,
                         unsigned long *n_bad)
{
    if (*col < 0) { /* the header row */
        if (rec->error) {
            fprintf(stderr, "relance: %s:%lu: %s\n", path, rec->error_line ? rec->error_line : rec->line, rec->error);
            return -1;
        }
        *col = csv_record_find(rec, "email");
        if (*col < 0) {
            fprintf(stderr, "relance: %s:%lu: no 'email' column in the header row\n", path, rec->line);
            return -1;
        }
        return 0;
    }
    char why[320], norm[CONTACT_EMAIL_MAX + 1];
    if (rec->error) {
        if (rec->error_line && rec->error_line != rec->line)
            snprintf(why, sizeof why, "%s (line %lu)", rec->error, rec->error_line);
        else
            snprintf(why, sizeof why, "%s", rec->error);
        bad_row(path, rec->line, why, n_bad);
        return 0;
    }
    const char *email = (size_t)*col < rec->n_fields ? rec->fields[*col] : "";
    size_t n = strspn(email, " \t");
    if (email[n] == '\0') {
        bad_row(path, rec->line, "missing email", n_bad);
        return 0;
    }
    if (contact_email_normalize(email, norm, why, sizeof why) < 0) {
        bad_row(path, rec->line, why, n_bad);
        return 0;
    }
    return emails_add(out, norm, strlen(norm));
}

/* Reads the 'email' column of a CSV file, with the given delimiter or (0)
 * the one csv.c guesses from the header line, as `contacts import` does,
 * reporting and skipping bad rows (counted in *n_bad). A file that cannot
 * be read, or has no header row with an 'email' column, fails as a whole. */
static int read_csv_emails(const char *path, char delimiter, struct emails *out, unsigned long *n_bad)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "relance: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct csv_reader *r = csv_reader_new(NULL);
    int col = -1, rc = 0, done = 0, first = 1;
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
            /* fread fills buf unless the file ends: the header line is in
             * it, or at least the first 64 KiB of it. */
            if (first && csv_reader_delimiter(r, delimiter ? delimiter : csv_delimiter_detect(buf, n)) < 0) {
                rc = -1;
                break;
            }
            first = 0;
            csv_reader_feed(r, buf, n);
        }
        for (;;) {
            int st = csv_reader_next(r, &rec);
            if (st < 0)
                rc = -1;
            if (st <= 0)
                break;
            if (enroll_record(path, &rec, &col, out, n_bad) < 0) {
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

/* The skipped contacts counted by reason, for the summary line: a rerun
 * over 200,000 contacts says "skipped 200000: already active in this
 * sequence 200000" instead of one line each (those with --verbose). */
struct tally {
    struct reason {
        char *why;
        size_t n;
    } *v;
    size_t n, cap;
};

/* Counts one skip. Reasons that name something after ": " ("active in
 * another sequence: alpha") are counted under the part before it. */
static int tally_add(struct tally *t, const char *why, size_t count)
{
    size_t len = strcspn(why, ":");
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->v[i].why) == len && strncmp(t->v[i].why, why, len) == 0) {
            t->v[i].n += count;
            return 0;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct reason *grown = realloc(t->v, cap * sizeof *grown);
        if (!grown)
            return -1;
        t->v = grown;
        t->cap = cap;
    }
    t->v[t->n].why = strndup(why, len);
    if (!t->v[t->n].why)
        return -1;
    t->v[t->n++].n = count;
    return 0;
}

static int by_count(const void *a, const void *b)
{
    const struct reason *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->why, y->why);
}

/* Prints "enrolled N, skipped M: reason K, reason K", the most frequent
 * reason first. */
static void tally_print(struct tally *t, size_t enrolled)
{
    size_t skipped = 0;
    for (size_t i = 0; i < t->n; i++)
        skipped += t->v[i].n;
    if (t->n)
        qsort(t->v, t->n, sizeof *t->v, by_count);
    printf("enrolled %zu, skipped %zu", enrolled, skipped);
    for (size_t i = 0; i < t->n; i++)
        printf("%s%s %zu", i ? ", " : ": ", t->v[i].why, t->v[i].n);
    printf("\n");
}

static void tally_free(struct tally *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].why);
    free(t->v);
}

enum { OPT_SEQUENCE, OPT_CONTACT, OPT_CSV, OPT_DELIMITER, OPT_WHERE, OPT_ALLOW_PARALLEL, OPT_VERBOSE };

static const struct cli_option options[] = {
    [OPT_SEQUENCE] = {"sequence", 0, "NAME", "the sequence (its current version)", CLI_OPTION_REQUIRED, 0},
    [OPT_CONTACT] = {"contact", 0, "EMAIL", "a contact's address; repeatable", CLI_OPTION_REPEAT, 1},
    [OPT_CSV] = {"csv", 0, "FILE",
                 "the 'email' column of a CSV file with a header row (other\n"
                 "columns are ignored; ',' ';' or tab separated, as for\n"
                 "contacts import); a bad row is reported as FILE:LINE and\n"
                 "skipped, as contacts import does", 0, 1},
    [OPT_DELIMITER] = {"delimiter", 0, "C",
                       "the --csv file's delimiter: ',' ';' or tab (a tab, \\t or\n"
                       "'tab'); by default guessed from the header line", 0, 0},
    [OPT_WHERE] = {"where", 0, "SQL",
                   "a condition on the contacts table, run read-only, e.g.\n"
                   "--where \"company_domain = 'acme.example'\"", 0, 1},
    [OPT_ALLOW_PARALLEL] = {"allow-parallel", 0, NULL, "enroll contacts active in another sequence too", 0, 0},
    [OPT_VERBOSE] = {"verbose", 'v', NULL, "also print each skipped contact with its reason", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *sequence = cli_args_value(args, OPT_SEQUENCE), *csv = cli_args_value(args, OPT_CSV);
    const char *where = cli_args_value(args, OPT_WHERE);
    int parallel = cli_args_count(args, OPT_ALLOW_PARALLEL) > 0, rc = CLI_ERROR, pos = 0;
    int verbose = cli_args_count(args, OPT_VERBOSE) > 0;
    struct tally tally = {0};
    struct progress bar = {0}; /* off until started */
    PGconn *conn = cli->conn;
    struct emails emails = {0};
    unsigned long n_bad = 0;
    for (const char *c = cli_args_next(args, OPT_CONTACT, &pos); c; c = cli_args_next(args, OPT_CONTACT, &pos))
        if (emails_add_address(&emails, c) < 0)
            goto out;
    const char *delimiter = cli_args_value(args, OPT_DELIMITER);
    int delim = delimiter ? csv_delimiter_parse(delimiter) : 0;
    if (delim < 0 || (delimiter && !csv)) {
        rc = cli_fail(CLI_USAGE, delim < 0 ? "enroll: --delimiter takes ',', ';' or tab (a tab, \\t or 'tab'), not '%s'"
                                           : "enroll: --delimiter '%s' goes with --csv",
                      delimiter);
        goto out;
    }
    if (csv && read_csv_emails(csv, (char)delim, &emails, &n_bad) < 0)
        goto out;
    if (n_bad && tally_add(&tally, "bad row", n_bad) < 0)
        goto out;
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        goto out;
    if (cli_exec(conn, "BEGIN") < 0)
        goto out;
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
    /* relance_enroll_many takes the enroll lock itself (two enrolls at
     * once must not both pass the "already enrolled" judgement), held to
     * this transaction's end */
    size_t enrolled = 0;
    progress_start(&bar, "enrolling", PROGRESS_ROWS, emails.n, ENROLL_PROGRESS_MIN);
    for (size_t from = 0; from < emails.n; from += ENROLL_CHUNK) {
        size_t to = emails.n - from > ENROLL_CHUNK ? from + ENROLL_CHUNK : emails.n;
        struct buf array = {0};
        for (size_t i = from; i < to; i++)
            pgarray_add(&array, emails.v[i]);
        const char *list = pgarray_end(&array);
        if (!list) {
            buf_free(&array);
            fprintf(stderr, "relance: out of memory\n");
            goto failed;
        }
        const char *p[4] = {sequence, list, now, parallel ? "true" : "false"};
        PGresult *r = PQexecParams(conn, "SELECT email, outcome FROM relance_enroll_many($1, $2, $3, $4)", 4, NULL,
                                   p, NULL, NULL, 0);
        buf_free(&array);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
            progress_finish(&bar, 0);
            fprintf(stderr, "relance: %s\n", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
            if (hint)
                fprintf(stderr, "relance: %s\n", hint);
            PQclear(r);
            goto rollback;
        }
        if (verbose)
            progress_clear(&bar);
        for (int i = 0; i < PQntuples(r); i++) {
            const char *what = PQgetvalue(r, i, 1);
            if (strcmp(what, "enrolled") == 0) {
                enrolled++;
                continue;
            }
            if (verbose)
                printf("skipped %s: %s\n", PQgetvalue(r, i, 0), what);
            if (tally_add(&tally, what, 1) < 0) {
                PQclear(r);
                goto failed;
            }
        }
        PQclear(r);
        if (verbose)
            fflush(stdout);
        progress_update(&bar, to, to);
    }
    progress_finish(&bar, 1);
    if (cli_exec(conn, "COMMIT") < 0)
        goto out;
    tally_print(&tally, enrolled);
    rc = CLI_OK;
    goto out;
failed:
    progress_finish(&bar, 0);
rollback:
    if (cli_exec(conn, "ROLLBACK") < 0)
        fprintf(stderr, "relance: rollback failed\n");
out:
    emails_free(&emails);
    tally_free(&tally);
    return rc;
}

const struct cli_command cmd_enroll = {
    .name = "enroll",
    .summary = "enroll contacts into a sequence",
    .about = "Enrolls contacts into the current version of a sequence (the enrollment keeps\n"
             "that version). Idempotent: unknown, suppressed and already-enrolled contacts,\n"
             "and contacts active in another sequence (unless --allow-parallel), are skipped;\n"
             "the summary counts them by reason, and --verbose names each one:\n"
             "  enrolled 10, skipped 3: already active in this sequence 2, suppressed 1\n"
             "All of it is one transaction. When stderr is a terminal, 5,000 addresses or more\n"
             "show a progress bar there.\n",
    .options = options,
    .run = run,
};
