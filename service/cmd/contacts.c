/* cmd/contacts: `relance contacts import|show|list|export`.
 *
 * It owns the CSV import: the delimiter (--delimiter, or csv.c's guess from
 * the header line), the header and --map rules, the per-row checks
 * done in C (CSV syntax, field count, email and company-domain syntax, the
 * time zone against PostgreSQL's pg_timezone_names, read once before the
 * load), and streaming the good rows through COPY into a temporary staging
 * table, all in one transaction. It does not parse CSV (csv.c), decide what
 * a valid address is (contact.c), nor hold the SQL that refuses rows by line
 * (crm_id taken, duplicate email or crm_id) and applies the rest in one
 * upsert (relance_contacts_import_* in sql/functions/contacts.sql).
 *
 * Import rules (also in `relance contacts import --help`):
 * - a row's empty cell never wipes a stored value; custom fields are merged
 *   into the stored ones, key by key;
 * - the same email twice in a file: the last valid row wins, the earlier
 *   ones are reported as duplicates (and counted as rejected);
 * - a crm_id held by another contact, or given to two emails in the file
 *   (the first row keeps it), rejects the row;
 * - company_domain, when not given, is derived from the email (NULL for
 *   free mail) for new contacts and for contacts that have none; a given
 *   one replaces the stored one;
 * - "updated" counts the existing contacts the file matched; one whose
 *   values did not change is not rewritten (updated_at stays, and held
 *   enrollments are not woken);
 * - a time zone PostgreSQL does not know is a warning, not a reject: the
 *   row is imported as if the cell were empty, so the sequence's
 *   fallback_timezone applies (one odd cell should not lose a prospect);
 * - exit 0 once the file was read and applied, rejected rows or not; exit 1
 *   when the file cannot be read, has no usable header, or the database
 *   refuses the load (then nothing is applied).
 *
 * A long import draws a progress bar on a terminal (progress.c).
 *
 * Export writes every contact as CSV in the columns import reads (the
 * fields, then one column per custom field key found in any contact), so
 * that export then import into an empty database gives the same contacts.
 * PostgreSQL writes the CSV (COPY ... TO STDOUT, which quotes as RFC 4180
 * asks) and it is streamed to the output as it comes: no contact list is
 * held in memory. */
#include "buf.h"
#include "cli.h"
#include "contact.h"
#include "csv.h"
#include "json.h"
#include "pgerr.h"
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum field {
    F_EMAIL,
    F_FIRST_NAME,
    F_LAST_NAME,
    F_TITLE,
    F_COMPANY,
    F_COMPANY_DOMAIN,
    F_TIMEZONE,
    F_CRM_ID,
    F_COUNT,
    F_CUSTOM = F_COUNT, /* a key of the fields object */
    F_IGNORE,           /* a column with no header, or mapped to nothing */
};

static const char *const field_names[F_COUNT] = {
    "email", "first_name", "last_name", "title", "company", "company_domain", "timezone", "crm_id",
};

#define READ_CHUNK (256 * 1024)
#define COPY_FLUSH (256 * 1024)
#define PROGRESS_MIN_BYTES (1024 * 1024)

struct column {
    enum field field;
    char *name; /* the header, trimmed; the custom field's key for F_CUSTOM */
};

struct map {
    const char *column, *target; /* from --map COLUMN=TARGET */
    size_t column_len;
    int used;
};

struct reject {
    unsigned long line;
    char *why;
    int warning; /* the row was imported all the same */
};

struct import {
    const char *path;
    int fd, eof;
    char *chunk;
    struct csv_reader *reader;
    int delimiter_known; /* given, or guessed from the first read */
    struct column *cols;
    size_t n_cols;
    int col_of[F_COUNT]; /* column index of each known field, or -1 */
    struct map *maps;
    size_t n_maps;
    struct reject *rejects;
    size_t n_rejects, cap_rejects, n_warnings;
    struct buf copy, json;
    PGconn *conn;
    PGresult *zones; /* pg_timezone_names, when the file has a timezone column */
    const char **zone_names; /* sorted case-insensitively */
    size_t n_zones;
    unsigned long rows;
    long long size;
    struct progress bar; /* on a terminal, for a file of PROGRESS_MIN_BYTES or more */
};

/* ---- small helpers ------------------------------------------------------ */

/* Trims spaces and tabs: the start of s and its new length in *n. */
static const char *trimmed(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t')) {
        s++;
        (*n)--;
    }
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
        (*n)--;
    return s;
}

static int reject_add(struct import *im, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Notes a problem of the row at line: a reject, or with im->n_warnings
 * raised just before, a warning (see warn_add). */
static int reject_add(struct import *im, unsigned long line, const char *fmt, ...)
{
    if (im->n_rejects == im->cap_rejects) {
        size_t cap = im->cap_rejects ? 2 * im->cap_rejects : 64;
        struct reject *v = realloc(im->rejects, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        im->rejects = v;
        im->cap_rejects = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *why = NULL;
    int n = vasprintf(&why, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    im->rejects[im->n_rejects].line = line;
    im->rejects[im->n_rejects].why = why;
    im->rejects[im->n_rejects].warning = 0;
    im->n_rejects++;
    return 0;
}

/* A warning goes in the same list as the rejects, so that stderr has one
 * FILE:LINE line per problem in line order; it is not counted as rejected. */
static int warn_add(struct import *im, unsigned long line, const char *zone, size_t n)
{
    if (reject_add(im, line, "unknown time zone '%.*s': imported without one", (int)(n > 100 ? 100 : n), zone) < 0)
        return -ENOMEM;
    im->rejects[im->n_rejects - 1].warning = 1;
    im->n_warnings++;
    return 0;
}

static int by_line(const void *a, const void *b)
{
    const struct reject *x = a, *y = b;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* COPY text format: backslash, tab and line breaks escaped. */
static void copy_value(struct buf *b, const char *s, size_t n)
{
    if (!s) {
        buf_adds(b, "\\N");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
            buf_addc(b, '\\');
            c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
        }
        buf_addc(b, c);
    }
}

/* Runs sql (no parameters): 0, or -1 with the error printed. */
static int exec_sql(PGconn *conn, const char *sql, const char *what)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: %s: %s\n", what, pgerr_line(r, conn, NULL, m, sizeof m));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

/* ---- time zones ------------------------------------------------------------ */

/* Loads PostgreSQL's zone names (what the scheduler's SQL will accept),
 * before the COPY starts. */
static int zones_load(struct import *im)
{
    im->zones = PQexec(im->conn, "SELECT name FROM pg_timezone_names");
    if (PQresultStatus(im->zones) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: reading the time zone names: %s\n",
                pgerr_line(im->zones, im->conn, NULL, m, sizeof m));
        return -1;
    }
    im->n_zones = (size_t)PQntuples(im->zones);
    im->zone_names = calloc(im->n_zones ? im->n_zones : 1, sizeof *im->zone_names);
    if (!im->zone_names)
        return -1;
    for (size_t i = 0; i < im->n_zones; i++)
        im->zone_names[i] = PQgetvalue(im->zones, (int)i, 0);
    contact_zones_sort(im->zone_names, im->n_zones);
    return 0;
}

/* ---- reading the file ---------------------------------------------------- */

/* Reads the start of the file until its first line break (or a full chunk,
 * or the end), guesses the delimiter from it and hands it to the reader. */
static int delimiter_guess(struct import *im)
{
    size_t have = 0;
    while (have < READ_CHUNK && !memchr(im->chunk, '\n', have) && !memchr(im->chunk, '\r', have)) {
        ssize_t n = read(im->fd, im->chunk + have, READ_CHUNK - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "relance: cannot read %s: %s\n", im->path, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    if (csv_reader_delimiter(im->reader, csv_delimiter_detect(im->chunk, have)) < 0)
        return -1; /* detect returns one the reader takes */
    im->delimiter_known = 1;
    if (have) {
        csv_reader_feed(im->reader, im->chunk, have);
    } else {
        csv_reader_finish(im->reader);
        im->eof = 1;
    }
    return 0;
}

/* The next CSV record: 1, 0 at the end of the file, -1 on a read error or
 * out of memory (printed). */
static int next_record(struct import *im, struct csv_record *rec)
{
    for (;;) {
        int rc = csv_reader_next(im->reader, rec);
        if (rc > 0)
            return 1;
        if (rc < 0) {
            fprintf(stderr, "relance: %s: out of memory\n", im->path);
            return -1;
        }
        if (im->eof)
            return 0;
        if (!im->delimiter_known)
            return delimiter_guess(im) < 0 ? -1 : next_record(im, rec);
        ssize_t n = read(im->fd, im->chunk, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "relance: cannot read %s: %s\n", im->path, strerror(errno));
            return -1;
        }
        if (n == 0) {
            csv_reader_finish(im->reader);
            im->eof = 1;
        } else {
            csv_reader_feed(im->reader, im->chunk, (size_t)n);
        }
    }
}

/* ---- the header ------------------------------------------------------------ */

static int field_lookup(const char *s, size_t n)
{
    for (int f = 0; f < F_COUNT; f++) {
        if (strlen(field_names[f]) == n && strncasecmp(s, field_names[f], n) == 0)
            return f;
    }
    /* the HTTP API's name for the CRM's id */
    if (n == 11 && strncasecmp(s, "external_id", n) == 0)
        return F_CRM_ID;
    return -1;
}

static void columns_list(const struct import *im, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < im->n_cols && o + 1 < size; i++)
        o += (size_t)snprintf(out + o, size - o, "%s'%s'", i ? ", " : "", im->cols[i].name);
}

/* Gives each header column a meaning; -1 with the reason printed when the
 * header cannot be used. */
static int header_read(struct import *im, const struct csv_record *rec)
{
    if (rec->error) {
        fprintf(stderr, "%s:%lu: the header row is broken: %s\n", im->path, rec->line, rec->error);
        return -1;
    }
    im->cols = calloc(rec->n_fields, sizeof *im->cols);
    if (!im->cols)
        return -1;
    im->n_cols = rec->n_fields;
    for (int f = 0; f < F_COUNT; f++)
        im->col_of[f] = -1;
    for (size_t i = 0; i < rec->n_fields; i++) {
        size_t n = rec->lengths[i];
        const char *s = trimmed(rec->fields[i], &n);
        im->cols[i].name = strndup(s, n);
        if (!im->cols[i].name)
            return -1;
    }
    for (size_t i = 0; i < im->n_cols; i++) {
        struct column *c = &im->cols[i];
        const char *target = c->name;
        size_t n = strlen(c->name);
        for (size_t m = 0; m < im->n_maps; m++) {
            if (im->maps[m].column_len == n && strncasecmp(im->maps[m].column, c->name, n) == 0) {
                im->maps[m].used = 1;
                target = im->maps[m].target;
            }
        }
        n = strlen(target);
        const char *t = trimmed(target, &n);
        int f = field_lookup(t, n);
        if (n == 0) {
            c->field = F_IGNORE;
            continue;
        }
        if (f < 0) {
            c->field = F_CUSTOM;
            if (t != c->name || n != strlen(c->name)) {
                char *key = strndup(t, n);
                if (!key)
                    return -1;
                free(c->name);
                c->name = key;
            }
            for (size_t j = 0; j < i; j++) {
                if (im->cols[j].field == F_CUSTOM && strcmp(im->cols[j].name, c->name) == 0) {
                    fprintf(stderr, "%s:%lu: two columns give the custom field '%s' (columns %zu and %zu)\n",
                            im->path, rec->line, c->name, j + 1, i + 1);
                    return -1;
                }
            }
            continue;
        }
        if (im->col_of[f] >= 0) {
            fprintf(stderr, "%s:%lu: columns %d and %zu both give %s; keep one, or rename one with --map\n",
                    im->path, rec->line, im->col_of[f] + 1, i + 1, field_names[f]);
            return -1;
        }
        c->field = (enum field)f;
        im->col_of[f] = (int)i;
    }
    char cols[600];
    columns_list(im, cols, sizeof cols);
    for (size_t m = 0; m < im->n_maps; m++) {
        if (!im->maps[m].used) {
            fprintf(stderr, "relance: --map %s=%s: %s has no column '%.*s' (columns: %s)\n", im->maps[m].column,
                    im->maps[m].target, im->path, (int)im->maps[m].column_len, im->maps[m].column, cols);
            return -1;
        }
    }
    if (im->col_of[F_EMAIL] < 0) {
        const char *hint = NULL;
        for (size_t i = 0; i < im->n_cols && !hint; i++) {
            if (strcasestr(im->cols[i].name, "mail"))
                hint = im->cols[i].name;
        }
        fprintf(stderr, "%s:%lu: the header has no email column (columns: %s)", im->path, rec->line, cols);
        if (hint)
            fprintf(stderr, "; to use '%s', add --map \"%s=email\"\n", hint, hint);
        else
            fprintf(stderr, "; the first row must name the columns, one of them email\n");
        return -1;
    }
    return 0;
}

/* ---- one row ----------------------------------------------------------------- */

static int row_add(struct import *im, const struct csv_record *rec)
{
    unsigned long line = rec->line;
    if (rec->error) {
        if (rec->error_line != line)
            return reject_add(im, line, "%s (line %lu)", rec->error, rec->error_line);
        return reject_add(im, line, "%s", rec->error);
    }
    if (rec->n_fields < im->n_cols)
        return reject_add(im, line, "%zu fields, the header has %zu", rec->n_fields, im->n_cols);
    for (size_t i = im->n_cols; i < rec->n_fields; i++) {
        size_t n = rec->lengths[i];
        trimmed(rec->fields[i], &n);
        if (n)
            return reject_add(im, line, "%zu fields, the header has %zu", rec->n_fields, im->n_cols);
    }

    const char *val[F_COUNT] = {0};
    size_t len[F_COUNT] = {0};
    for (int f = 0; f < F_COUNT; f++) {
        int c = im->col_of[f];
        if (c < 0)
            continue;
        size_t n = rec->lengths[c];
        const char *s = trimmed(rec->fields[c], &n);
        if (n) {
            val[f] = s;
            len[f] = n;
        }
    }
    char email[CONTACT_EMAIL_MAX + 1], domain[CONTACT_DOMAIN_MAX + 1], err[300];
    if (!val[F_EMAIL])
        return reject_add(im, line, "missing email");
    if (contact_email_normalize(rec->fields[im->col_of[F_EMAIL]], email, err, sizeof err) < 0)
        return reject_add(im, line, "%s", err);
    const char *given = NULL;
    if (val[F_COMPANY_DOMAIN]) {
        if (contact_company_domain_normalize(rec->fields[im->col_of[F_COMPANY_DOMAIN]], domain, err, sizeof err) < 0)
            return reject_add(im, line, "%s", err);
        given = domain;
    }
    const char *derived = contact_email_company_domain(email);
    if (val[F_TIMEZONE]) {
        char zone[128];
        const char *canon = NULL;
        if (len[F_TIMEZONE] < sizeof zone) {
            memcpy(zone, val[F_TIMEZONE], len[F_TIMEZONE]);
            zone[len[F_TIMEZONE]] = '\0';
            canon = contact_zone_find(im->zone_names, im->n_zones, zone);
        }
        if (canon) {
            val[F_TIMEZONE] = canon;
            len[F_TIMEZONE] = strlen(canon);
        } else {
            if (warn_add(im, line, val[F_TIMEZONE], len[F_TIMEZONE]) < 0)
                return -ENOMEM;
            val[F_TIMEZONE] = NULL; /* as an empty cell: a stored zone stays */
            len[F_TIMEZONE] = 0;
        }
    }

    /* Custom fields: non-empty cells only, so an empty one keeps the stored value. */
    struct buf *j = &im->json;
    buf_clear(j);
    for (size_t i = 0; i < im->n_cols; i++) {
        if (im->cols[i].field != F_CUSTOM)
            continue;
        size_t n = rec->lengths[i];
        const char *s = trimmed(rec->fields[i], &n);
        if (!n)
            continue;
        buf_addc(j, j->len ? ',' : '{');
        json_add_string(j, im->cols[i].name);
        buf_addc(j, ':');
        json_add_stringn(j, s, n);
    }
    buf_adds(j, j->len ? "}" : "{}");

    /* line, email, first_name, last_name, title, company, company_domain,
     * derived_domain, timezone, crm_id, fields */
    struct buf *b = &im->copy;
    buf_addf(b, "%lu\t", line);
    copy_value(b, email, strlen(email));
    static const enum field order[] = {F_FIRST_NAME, F_LAST_NAME, F_TITLE, F_COMPANY};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        buf_addc(b, '\t');
        copy_value(b, val[order[i]], len[order[i]]);
    }
    buf_addc(b, '\t');
    copy_value(b, given, given ? strlen(given) : 0);
    buf_addc(b, '\t');
    copy_value(b, derived, derived ? strlen(derived) : 0);
    buf_addc(b, '\t');
    copy_value(b, val[F_TIMEZONE], len[F_TIMEZONE]);
    buf_addc(b, '\t');
    copy_value(b, val[F_CRM_ID], len[F_CRM_ID]);
    buf_addc(b, '\t');
    copy_value(b, j->p, j->len);
    buf_addc(b, '\n');
    return j->oom || b->oom ? -ENOMEM : 0;
}

static int copy_flush(struct import *im)
{
    if (im->copy.len == 0)
        return 0;
    if (PQputCopyData(im->conn, im->copy.p, (int)im->copy.len) != 1) {
        char m[1024];
        fprintf(stderr, "relance: loading %s: %s\n", im->path, pgerr_line(NULL, im->conn, NULL, m, sizeof m));
        return -1;
    }
    buf_clear(&im->copy);
    return 0;
}

/* ---- the SQL ------------------------------------------------------------------- */

/* The checks and the upsert are relance_contacts_import_* (sql/functions/
 * contacts.sql, which says the rules); only the COPY, which a function
 * cannot run, is here. */
static const char sql_copy[] =
    "COPY contacts_import (line, email, first_name, last_name, title, company,"
    " company_domain, derived_domain, timezone, crm_id, fields) FROM STDIN";

/* Runs the checks and the upsert, collecting SQL rejects; fills the counts. */
static int apply(struct import *im, long long *inserted, long long *kept)
{
    PGresult *r = PQexec(im->conn, "SELECT inserted, applied FROM relance_contacts_import_apply()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: saving the contacts: %s\n", pgerr_line(r, im->conn, NULL, m, sizeof m));
        PQclear(r);
        return -1;
    }
    *inserted = atoll(PQgetvalue(r, 0, 0));
    *kept = atoll(PQgetvalue(r, 0, 1));
    PQclear(r);
    r = PQexec(im->conn, "SELECT line, reject FROM relance_contacts_import_rejects()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: reading the rejected rows: %s\n", pgerr_line(r, im->conn, NULL, m, sizeof m));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (reject_add(im, strtoul(PQgetvalue(r, i, 0), NULL, 10), "%s", PQgetvalue(r, i, 1)) < 0) {
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return 0;
}

/* ---- import --------------------------------------------------------------------- */

static void import_free(struct import *im)
{
    if (im->fd >= 0)
        close(im->fd);
    free(im->chunk);
    csv_reader_free(im->reader);
    for (size_t i = 0; i < im->n_cols; i++)
        free(im->cols[i].name);
    free(im->cols);
    free(im->maps);
    for (size_t i = 0; i < im->n_rejects; i++)
        free(im->rejects[i].why);
    free(im->rejects);
    buf_free(&im->copy);
    buf_free(&im->json);
    free(im->zone_names);
    PQclear(im->zones);
}

enum { OPT_MAP, OPT_DELIMITER };

static const struct cli_option import_options[] = {
    [OPT_MAP] = {"map", 0, "COLUMN=FIELD",
                 "read COLUMN as FIELD (a field above or a custom field's\n"
                 "name); --map COLUMN= ignores the column. Repeatable.", CLI_OPTION_REPEAT, 0},
    [OPT_DELIMITER] = {"delimiter", 0, "C",
                       "the field delimiter: ',' ';' or tab (written as a tab,\n"
                       "\\t or 'tab'); by default the one of these that splits\n"
                       "the header line into the most columns", 0, 0},
    {0},
};

static int import_run(struct cli *cli, const struct cli_args *args)
{
    struct import im = {.fd = -1, .path = args->operands[0]};
    int rc = CLI_ERROR, in_copy = 0, pos = 0;
    struct csv_record rec;

    im.maps = calloc((size_t)cli_args_count(args, OPT_MAP) + 1, sizeof *im.maps);
    if (!im.maps)
        goto fail;
    for (const char *spec = cli_args_next(args, OPT_MAP, &pos); spec; spec = cli_args_next(args, OPT_MAP, &pos)) {
        const char *eq = strrchr(spec, '=');
        if (!eq || eq == spec) {
            rc = cli_fail(CLI_USAGE, "contacts import: --map '%s' is not COLUMN=FIELD", spec);
            goto fail;
        }
        size_t n = (size_t)(eq - spec);
        struct map *m = &im.maps[im.n_maps++];
        m->column = trimmed(spec, &n);
        m->column_len = n;
        m->target = eq + 1;
    }

    const char *delimiter = cli_args_value(args, OPT_DELIMITER);
    int delim = delimiter ? csv_delimiter_parse(delimiter) : ',';
    if (delim < 0) {
        rc = cli_fail(CLI_USAGE, "contacts import: --delimiter takes ',', ';' or tab (a tab, \\t or 'tab'), not '%s'",
                      delimiter);
        goto fail;
    }

    if (strcmp(im.path, "-") == 0) {
        im.fd = dup(STDIN_FILENO);
    } else {
        im.fd = open(im.path, O_RDONLY | O_CLOEXEC);
    }
    if (im.fd < 0) {
        fprintf(stderr, "relance: cannot read %s: %s\n", im.path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(im.fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "relance: cannot read %s: it is a directory\n", im.path);
        goto fail;
    }
    im.size = S_ISREG(st.st_mode) ? (long long)st.st_size : 0;
    char label[64];
    snprintf(label, sizeof label, "importing %s", im.path);
    progress_start(&im.bar, label, PROGRESS_BYTES, (unsigned long long)im.size, PROGRESS_MIN_BYTES);
    im.chunk = malloc(READ_CHUNK);
    im.reader = csv_reader_new(NULL);
    if (!im.chunk || !im.reader)
        goto fail;
    if (delimiter) {
        if (csv_reader_delimiter(im.reader, (char)delim) < 0)
            goto fail; /* csv_delimiter_parse gives only what the reader takes */
        im.delimiter_known = 1;
    }

    int got = next_record(&im, &rec);
    if (got < 0)
        goto fail;
    if (got == 0) {
        fprintf(stderr, "%s: the file is empty; the first row must name the columns, one of them email\n", im.path);
        goto fail;
    }
    if (header_read(&im, &rec) < 0)
        goto fail;

    im.conn = cli->conn; /* from here on, a failure means nothing was imported */
    if (im.col_of[F_TIMEZONE] >= 0 && zones_load(&im) < 0)
        goto fail;
    if (exec_sql(im.conn, "BEGIN", "starting the import") < 0 || exec_sql(im.conn, "SELECT relance_contacts_import_stage()", "staging") < 0)
        goto fail;
    PGresult *r = PQexec(im.conn, sql_copy);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        char m[1024];
        fprintf(stderr, "relance: loading %s: %s\n", im.path, pgerr_line(r, im.conn, NULL, m, sizeof m));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    in_copy = 1;
    for (;;) {
        got = next_record(&im, &rec);
        if (got < 0)
            goto fail;
        if (got == 0)
            break;
        im.rows++;
        if (row_add(&im, &rec) < 0) {
            fprintf(stderr, "relance: out of memory\n");
            goto fail;
        }
        if (im.copy.len >= COPY_FLUSH && copy_flush(&im) < 0)
            goto fail;
        if ((im.rows & 1023) == 0)
            progress_update(&im.bar, im.rows, csv_reader_offset(im.reader));
    }
    if (copy_flush(&im) < 0)
        goto fail;
    in_copy = 0;
    if (PQputCopyEnd(im.conn, NULL) != 1) {
        char m[1024];
        fprintf(stderr, "relance: loading %s: %s\n", im.path, pgerr_line(NULL, im.conn, NULL, m, sizeof m));
        goto fail;
    }
    r = PQgetResult(im.conn);
    int copied = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!copied) {
        char m[1024];
        fprintf(stderr, "relance: loading %s: %s\n", im.path, pgerr_line(r, im.conn, NULL, m, sizeof m));
    }
    PQclear(r);
    for (r = PQgetResult(im.conn); r; r = PQgetResult(im.conn))
        PQclear(r);
    if (!copied)
        goto fail;
    progress_update(&im.bar, im.rows, (unsigned long long)im.size);
    progress_phase(&im.bar, "checking and saving");

    long long inserted = 0, kept = 0;
    if (apply(&im, &inserted, &kept) < 0 || exec_sql(im.conn, "COMMIT", "committing the import") < 0)
        goto fail;
    progress_finish(&im.bar, 1);

    if (im.n_rejects)
        qsort(im.rejects, im.n_rejects, sizeof *im.rejects, by_line);
    for (size_t i = 0; i < im.n_rejects; i++)
        fprintf(stderr, "%s:%lu: %s\n", im.path, im.rejects[i].line, im.rejects[i].why);
    printf("inserted %lld, updated %lld, rejected %zu\n", inserted, kept - inserted, im.n_rejects - im.n_warnings);
    rc = CLI_OK;
fail:
    progress_finish(&im.bar, 0);
    if (in_copy && im.conn)
        (void)PQputCopyEnd(im.conn, "import abandoned");
    if (rc != CLI_OK && im.conn && PQtransactionStatus(im.conn) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(im.conn, "ROLLBACK");
        PQclear(rb);
    }
    if (rc == CLI_ERROR && im.conn)
        fprintf(stderr, "relance: %s: nothing was imported\n", im.path);
    import_free(&im);
    return rc;
}

/* ---- show and list -------------------------------------------------------------- */

/* Prints s with line breaks and backslashes escaped, so one value stays on one line. */
static void print_value(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '\r')
            fputs("\\r", stdout);
        else if (*s == '\\')
            fputs("\\\\", stdout);
        else
            putchar(*s);
    }
}

static int show_run(struct cli *cli, const struct cli_args *args)
{
    char email[CONTACT_EMAIL_MAX + 1], err[300];
    if (contact_email_normalize(args->operands[0], email, err, sizeof err) < 0)
        return cli_fail(CLI_ERROR, "%s", err);
    PGconn *conn = cli->conn;
    static const char *const keys[] = {
        "email", "first_name", "last_name", "title", "company", "company_domain", "timezone", "crm_id",
        "suppressed", "created_at", "updated_at",
    };
    const char *params[1] = {email};
    int rc = CLI_ERROR;
    PGresult *r = PQexecParams(conn,
                               "SELECT email, first_name, last_name, title, company, company_domain, timezone,"
                               " crm_id, CASE WHEN relance_suppressed(email) THEN 'yes' ELSE 'no' END,"
                               " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                               " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                               " id FROM contacts WHERE email_key = lower($1)",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: %s\n", pgerr_line(r, conn, NULL, m, sizeof m));
        goto fail;
    }
    if (PQntuples(r) == 0) {
        fprintf(stderr, "relance: no contact with the email %s\n", email);
        goto fail;
    }
    for (int i = 0; i < (int)(sizeof keys / sizeof keys[0]); i++) {
        printf("%s: ", keys[i]);
        print_value(PQgetvalue(r, 0, i));
        putchar('\n');
    }
    const char *id[1] = {PQgetvalue(r, 0, 11)};
    PGresult *f = PQexecParams(conn, "SELECT key, value FROM contacts, jsonb_each_text(fields)"
                                     " WHERE id = $1 ORDER BY key COLLATE \"C\"",
                               1, NULL, id, NULL, NULL, 0);
    if (PQresultStatus(f) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: %s\n", pgerr_line(f, conn, NULL, m, sizeof m));
        PQclear(f);
        goto fail;
    }
    for (int i = 0; i < PQntuples(f); i++) {
        printf("fields.");
        print_value(PQgetvalue(f, i, 0));
        printf(": ");
        print_value(PQgetvalue(f, i, 1));
        putchar('\n');
    }
    PQclear(f);
    rc = CLI_OK;
fail:
    PQclear(r);
    return rc;
}

enum { OPT_LIMIT };

static const struct cli_option list_options[] = {
    [OPT_LIMIT] = {"limit", 0, "N", "print the first N only", 0, 0},
    {0},
};

static int list_run(struct cli *cli, const struct cli_args *args)
{
    const char *limit = cli_args_value(args, OPT_LIMIT);
    if (limit) {
        char *end;
        errno = 0;
        long long n = strtoll(limit, &end, 10);
        if (errno || end == limit || *end || n < 0)
            return cli_fail(CLI_USAGE, "contacts list: --limit needs a number of contacts, not '%s'", limit);
    }
    PGconn *conn = cli->conn;
    const char *params[1] = {limit};
    int rc = CLI_ERROR;
    if (!PQsendQueryParams(conn,
                           "SELECT email, trim(concat_ws(' ', first_name, last_name)), coalesce(company, ''),"
                           " coalesce(timezone, '') FROM contacts ORDER BY email_key COLLATE \"C\" LIMIT $1::bigint",
                           1, NULL, params, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        char m[1024];
        fprintf(stderr, "relance: %s\n", pgerr_line(NULL, conn, NULL, m, sizeof m));
        return CLI_ERROR;
    }
    rc = CLI_OK;
    for (PGresult *r = PQgetResult(conn); r; r = PQgetResult(conn)) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE) {
            for (int c = 0; c < 4; c++) {
                if (c)
                    putchar('\t');
                print_value(PQgetvalue(r, 0, c));
            }
            putchar('\n');
        } else if (st != PGRES_TUPLES_OK) {
            char m[1024];
            fprintf(stderr, "relance: %s\n", pgerr_line(r, conn, NULL, m, sizeof m));
            rc = CLI_ERROR;
        }
        PQclear(r);
    }
    return rc;
}

/* ---- export ----------------------------------------------------------------- */

enum { OPT_OUTPUT, OPT_EXPORT_DELIMITER };

static const struct cli_option export_options[] = {
    [OPT_OUTPUT] = {"output", 'o', "FILE", "write to FILE (replaced) instead of standard output", 0, 0},
    [OPT_EXPORT_DELIMITER] = {"delimiter", 0, "C",
                              "the field delimiter: ',' (the default), ';' or tab\n"
                              "(written as a tab, \\t or 'tab')", 0, 0},
    {0},
};

/* The COPY statement that writes every contact: the fields import reads,
 * then one column per custom field key (sorted), named by its key. NULL
 * with the error printed. */
static char *export_sql(PGconn *conn, char delimiter)
{
    PGresult *r = PQexec(conn, "SELECT k FROM contacts, jsonb_object_keys(fields) k GROUP BY k ORDER BY k COLLATE \"C\"");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: reading the custom field names: %s\n", pgerr_line(r, conn, NULL, m, sizeof m));
        PQclear(r);
        return NULL;
    }
    struct buf sql = {0};
    buf_adds(&sql, "COPY (SELECT email, first_name, last_name, title, company, company_domain, timezone, crm_id");
    for (int i = 0; i < PQntuples(r) && !sql.oom; i++) {
        const char *key = PQgetvalue(r, i, 0);
        size_t n = (size_t)PQgetlength(r, i, 0);
        char *lit = PQescapeLiteral(conn, key, n), *id = PQescapeIdentifier(conn, key, n);
        if (lit && id)
            buf_addf(&sql, ", fields->>%s AS %s", lit, id);
        else
            sql.oom = 1;
        PQfreemem(lit);
        PQfreemem(id);
    }
    PQclear(r);
    char d[2] = {delimiter, '\0'};
    char *lit = PQescapeLiteral(conn, d, 1);
    if (lit)
        buf_addf(&sql, " FROM contacts ORDER BY email_key COLLATE \"C\") TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER %s)",
                 lit);
    PQfreemem(lit);
    if (!lit || sql.oom) {
        fprintf(stderr, "relance: out of memory\n");
        buf_free(&sql);
        return NULL;
    }
    return sql.p;
}

static int export_run(struct cli *cli, const struct cli_args *args)
{
    const char *path = cli_args_value(args, OPT_OUTPUT), *delimiter = cli_args_value(args, OPT_EXPORT_DELIMITER);
    int delim = delimiter ? csv_delimiter_parse(delimiter) : ',';
    if (delim < 0)
        return cli_fail(CLI_USAGE, "contacts export: --delimiter takes ',', ';' or tab (a tab, \\t or 'tab'), not '%s'",
                        delimiter);
    PGconn *conn = cli->conn;
    int rc = CLI_ERROR;
    char *sql = NULL;
    FILE *out = stdout;
    if (path) {
        out = fopen(path, "w");
        if (!out) {
            fprintf(stderr, "relance: cannot write %s: %s\n", path, strerror(errno));
            return CLI_ERROR;
        }
    }
    /* One snapshot: the columns are the keys of the contacts written. */
    if (exec_sql(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting the export") < 0)
        goto done;
    sql = export_sql(conn, (char)delim);
    if (!sql)
        goto done;
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        char m[1024];
        fprintf(stderr, "relance: exporting the contacts: %s\n", pgerr_line(r, conn, NULL, m, sizeof m));
        PQclear(r);
        goto done;
    }
    PQclear(r);
    int write_failed = 0;
    for (;;) {
        char *row = NULL;
        int n = PQgetCopyData(conn, &row, 0);
        if (n < 0)
            break;
        if (!write_failed && fwrite(row, 1, (size_t)n, out) != (size_t)n)
            write_failed = errno ? errno : EIO; /* read on to the end: the connection stays usable */
        PQfreemem(row);
    }
    r = PQgetResult(conn);
    int copied = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!copied) {
        char m[1024];
        fprintf(stderr, "relance: exporting the contacts: %s\n", pgerr_line(r, conn, NULL, m, sizeof m));
    }
    const char *count = copied ? PQcmdTuples(r) : "";
    char rows[32];
    snprintf(rows, sizeof rows, "%s", count);
    PQclear(r);
    for (r = PQgetResult(conn); r; r = PQgetResult(conn))
        PQclear(r);
    if (!copied)
        goto done;
    if (!write_failed && fflush(out) != 0)
        write_failed = errno ? errno : EIO;
    if (path && !write_failed && fclose(out) != 0)
        write_failed = errno ? errno : EIO;
    if (path && !write_failed)
        out = NULL; /* closed */
    if (write_failed) {
        fprintf(stderr, "relance: writing %s: %s\n", path ? path : "standard output", strerror(write_failed));
        goto done;
    }
    if (path)
        printf("exported %s contacts to %s\n", rows, path);
    rc = CLI_OK;
done:
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *end = PQexec(conn, "ROLLBACK");
        PQclear(end);
    }
    free(sql);
    if (path && out) {
        fclose(out);
        if (rc != CLI_OK)
            unlink(path); /* no half file that looks like an export */
    }
    return rc;
}

static const struct cli_command subcommands[] = {
    {
        .name = "import",
        .summary = "add or update contacts from a CSV file",
        .operands = "FILE.csv",
        .min_operands = 1,
        .max_operands = 1,
        .about = "Adds or updates contacts from a CSV file (RFC 4180, UTF-8 with or without a BOM;\n"
                 "FILE '-' reads standard input). Fields are separated by ',' ';' or a tab: the\n"
                 "one that splits the first row into the most columns (outside quotes), or the\n"
                 "one --delimiter names. The first row names the columns, matched\n"
                 "case-insensitively: email (required), first_name, last_name, title, company,\n"
                 "company_domain, timezone (an IANA name), crm_id (or external_id: the CRM's\n"
                 "id); any other column is a custom field, stored under its header name and\n"
                 "usable in templates.\n"
                 "\n"
                 "Rows are matched to contacts by crm_id, then by email (case-insensitively): a\n"
                 "crm_id stored with another email moves that contact to the row's email, unless\n"
                 "it is another contact's. An internationalised domain is stored as its\n"
                 "A-labels, so user@b\xC3\xBC" "cher.example and user@xn--bcher-kva.example are\n"
                 "one contact. A non-ASCII local part is kept as\n"
                 "written and is sent only through servers that offer SMTPUTF8. An empty cell\n"
                 "never erases a stored value; custom fields are merged. company_domain, when not\n"
                 "given, comes from the email's domain (none for free mail such as gmail.com).\n"
                 "A row is refused, and reported on stderr as FILE:LINE: reason, for broken CSV,\n"
                 "a bad address, a crm_id whose contact and the email's differ (or given to an\n"
                 "earlier row), or an email that a later row repeats (the last wins). A time\n"
                 "zone that PostgreSQL does not know is not a refusal: the row is imported\n"
                 "without one (the sequence's fallback_timezone applies; a stored zone stays)\n"
                 "and stderr says FILE:LINE: unknown time zone 'X': imported without one.\n"
                 "The other rows are applied, all in one transaction; stdout gets one line:\n"
                 "  inserted N, updated N, rejected N\n"
                 "where updated counts the existing contacts the file matched. When stderr is a\n"
                 "terminal, a file of 1 MiB or more shows a progress bar there.\n"
                 "\n"
                 "Exit status: 0 when the file was applied (even with rejected rows), 1 when it\n"
                 "cannot be read, its header is unusable or the database refused it (nothing is\n"
                 "applied then), 2 on a usage error.\n",
        .options = import_options,
        .run = import_run,
    },
    {
        .name = "show",
        .summary = "one contact, as 'key: value' lines (custom fields as fields.NAME)",
        .operands = "EMAIL",
        .min_operands = 1,
        .max_operands = 1,
        .run = show_run,
    },
    {
        .name = "list",
        .summary = "contacts sorted by email, one per line: email, name, company and\n"
                   "time zone separated by tabs",
        .options = list_options,
        .run = list_run,
    },
    {
        .name = "export",
        .summary = "every contact as CSV, in the columns import reads",
        .about = "Writes every contact as CSV (RFC 4180, UTF-8, a header row), sorted by email: the\n"
                 "columns email, first_name, last_name, title, company, company_domain, timezone,\n"
                 "crm_id, then one column per custom field, named by its key (a contact without\n"
                 "that field has an empty cell). `relance contacts import` reads the file back:\n"
                 "export, then import into an empty database, gives the same contacts. Streamed\n"
                 "as PostgreSQL writes it, so a large table is never held in memory. With\n"
                 "--output, stdout gets one line: exported N contacts to FILE.\n",
        .options = export_options,
        .run = export_run,
    },
    {0},
};

const struct cli_command cmd_contacts = {
    .name = "contacts",
    .summary = "import contacts from CSV, show, list and export them",
    .subcommands = subcommands,
};
