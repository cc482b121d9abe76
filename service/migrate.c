/* migrate: the migration runner and the "is this database migrated?"
 * check shared by `relance migrate`, `relance serve` and the commands that
 * need a migrated database. It owns the two bookkeeping tables,
 * relance_migrations and relance_functions; the schema itself is sql/'s.
 *
 * The rules (sql/README.md says them to the author of a change):
 * - A numbered migration (sql/migrations/NNN_*.sql) is forward-only and
 *   never edited once it landed. From 017 on it holds only tables,
 *   columns, indexes, data moves and DROP FUNCTION for a signature change;
 *   tests/integration/test_sql_layout.py refuses one that defines a
 *   function, procedure or trigger.
 * - sql/functions/NAME.sql hold the current definition of every function and
 *   trigger (CREATE OR REPLACE). They are applied after the numbered
 *   migrations, in file-name order, in the same transaction, with
 *   check_function_bodies off so the order of files does not matter,
 *   whenever a file's checksum differs from the recorded one.
 * - Rolling upgrade: replicas of the previous release may still run while
 *   the new one migrates, on the new release's functions. A function whose
 *   signature or behaviour they depend on changes under a new name
 *   (relance_claim_account_v2); the old name stays for one release and a
 *   later numbered migration drops it (expand, then contract). So a
 *   binary accepts a database whose function files a newer release wrote
 *   (a row of relance_functions with a higher release, or a numbered
 *   migration it does not know), and its `relance migrate` never puts
 *   older functions back; it refuses one whose function files are older
 *   than its own, until `relance migrate` runs. A release bumps
 *   project(VERSION) in CMakeLists.txt: that is how "newer" is known.
 * - The previous release reads only relance_migrations and ignores rows it
 *   does not know: the function files' rows live in their own table so
 *   that its check (and its tests counting migrations) see nothing new. */
#include "migrate.h"

#include "pgerr.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any fixed number: the lock key for "a migration is running". */
#define MIGRATE_LOCK_KEY 7401720650

#define FUNCTIONS_PREFIX "functions/"

const char migrate_status_sql[] =
    "SELECT name, checksum, NULL::text AS release FROM relance_migrations"
    " UNION ALL SELECT '" FUNCTIONS_PREFIX "' || name, checksum, release FROM relance_functions"
    " ORDER BY 1";

void migrate_checksum(const struct migration *m, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(m->sql, m->len, md, &n, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        pgerr_line(r, conn, NULL, err, errlen);
    PQclear(r);
    return ok ? 0 : -1;
}

/* Orders two releases ("0.2.0"; a suffix such as "-rc1" is ignored) by
 * their numeric parts: <0, 0 or >0. */
static int release_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        char *ea, *eb;
        long x = strtol(a, &ea, 10), y = strtol(b, &eb, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*ea != '.' && *eb != '.')
            break;
        a = *ea == '.' ? ea + 1 : ea;
        b = *eb == '.' ? eb + 1 : eb;
    }
    return 0;
}

/* The row of res for name (under prefix), or -1. */
static int find_row(const PGresult *res, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix);
    for (int r = 0; r < PQntuples(res); r++) {
        const char *v = PQgetvalue(res, r, 0);
        if (strncmp(v, prefix, plen) == 0 && strcmp(v + plen, name) == 0)
            return r;
    }
    return -1;
}

/* What the database's rows (migrate_status_sql) say against what this
 * binary embeds. */
struct status {
    int missing;                    /* numbered migrations not applied */
    const struct migration *edited; /* a numbered migration whose checksum differs */
    int newer;                      /* a newer release migrated: its functions stay */
    char newer_what[96];            /* how that is known, for the log */
    const struct migration *stale;  /* the first function file to apply */
    int stale_row;                  /* its row, or -1 when never applied */
};

static void status_read(const PGresult *res, struct status *st)
{
    memset(st, 0, sizeof *st);
    for (int i = 0; i < migrations_embedded_count; i++) {
        const struct migration *m = &migrations_embedded[i];
        int r = find_row(res, "", m->name);
        char sum[65];
        if (r < 0) {
            st->missing++;
            continue;
        }
        migrate_checksum(m, sum);
        if (!st->edited && strcmp(PQgetvalue(res, r, 1), sum) != 0)
            st->edited = m;
    }
    for (int r = 0; r < PQntuples(res) && !st->newer; r++) {
        const char *name = PQgetvalue(res, r, 0);
        int known = 0;
        if (strncmp(name, FUNCTIONS_PREFIX, strlen(FUNCTIONS_PREFIX)) == 0) {
            const char *release = PQgetvalue(res, r, 2);
            if (release_cmp(release, RELANCE_VERSION) > 0) {
                st->newer = 1;
                snprintf(st->newer_what, sizeof st->newer_what, "relance %s applied its functions", release);
            }
            continue;
        }
        for (int i = 0; i < migrations_embedded_count && !known; i++)
            known = strcmp(name, migrations_embedded[i].name) == 0;
        if (!known) {
            st->newer = 1;
            snprintf(st->newer_what, sizeof st->newer_what, "it applied migration %s", name);
        }
    }
    for (int i = 0; i < functions_embedded_count && !st->stale; i++) {
        const struct migration *f = &functions_embedded[i];
        int r = find_row(res, FUNCTIONS_PREFIX, f->name);
        char sum[65];
        migrate_checksum(f, sum);
        if (r < 0 || strcmp(PQgetvalue(res, r, 1), sum) != 0) {
            st->stale = f;
            st->stale_row = r;
        }
    }
}

int migrate_check_result(const PGresult *res, char *err, size_t errlen)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* undefined_table: never migrated, or by a release before the
         * function files (relance_functions) */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42P01") == 0)
            return 0;
        pgerr_line(res, NULL, NULL, err, errlen);
        return -1;
    }
    struct status st;
    status_read(res, &st);
    if (st.edited) {
        snprintf(err, errlen,
                 "migration %s changed after it was applied (checksum differs); "
                 "migrations are never edited once applied: add a new one instead",
                 st.edited->name);
        return -1;
    }
    if (st.missing)
        return 0;
    if (st.stale && !st.newer) {
        if (st.stale_row < 0)
            snprintf(err, errlen, "the database lacks this relance's function file %s: run 'relance migrate'",
                     st.stale->name);
        else
            snprintf(err, errlen,
                     "the database's function file %s differs from this relance's (relance %s applied it): "
                     "run 'relance migrate'",
                     st.stale->name, PQgetvalue(res, st.stale_row, 2));
        return -1;
    }
    return 1;
}

int migrate_check(PGconn *conn, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, migrate_status_sql);
    int rc = migrate_check_result(r, err, errlen);
    PQclear(r);
    return rc;
}

/* Runs one file's text (it may hold several statements: simple-query
 * protocol) and records it. */
static int apply_one(PGconn *conn, const struct migration *m, const char *record, const char *release,
                     char *why, size_t whylen)
{
    if (exec_ok(conn, m->sql, why, whylen) < 0)
        return -1;
    char sum[65];
    migrate_checksum(m, sum);
    const char *params[3] = {m->name, sum, release};
    PGresult *r = PQexecParams(conn, record, release ? 3 : 2, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        pgerr_line(r, conn, NULL, why, whylen);
    PQclear(r);
    return ok ? 0 : -1;
}

/* Applies, in one transaction, the numbered migrations the database
 * lacks and then the function files whose checksum differs (none when a
 * newer release migrated). Marks in applied[] what it applied (migrations
 * first, then function files); prints nothing, since nothing is done
 * until COMMIT. */
static int apply_all(PGconn *conn, const PGresult *done, const struct status *st, unsigned char *applied,
                     char *err, size_t errlen)
{
    static const char record_migration[] = "INSERT INTO relance_migrations (name, checksum) VALUES ($1, $2)";
    /* every file's row says which release's functions the database has;
     * applied_at moves only when the file was applied */
    static const char record_function[] =
        "INSERT INTO relance_functions AS f (name, checksum, release) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, release = EXCLUDED.release,"
        " applied_at = CASE WHEN f.checksum = EXCLUDED.checksum THEN f.applied_at ELSE now() END";
    char why[1024];
    const char *what = "", *name = "";
    if (exec_ok(conn, "BEGIN", why, sizeof why) < 0)
        goto fail;
    for (int i = 0; i < migrations_embedded_count; i++) {
        const struct migration *m = &migrations_embedded[i];
        if (find_row(done, "", m->name) >= 0)
            continue;
        what = "migration ";
        name = m->name;
        if (apply_one(conn, m, record_migration, NULL, why, sizeof why) < 0)
            goto fail;
        applied[i] = 1;
    }
    what = "";
    /* LANGUAGE sql bodies are checked at creation by default: off, so a
     * function may call one defined in a later file */
    if (!st->newer && exec_ok(conn, "SET LOCAL check_function_bodies = off", why, sizeof why) < 0)
        goto fail;
    for (int i = 0; i < functions_embedded_count && !st->newer; i++) {
        const struct migration *f = &functions_embedded[i];
        int r = find_row(done, FUNCTIONS_PREFIX, f->name);
        char sum[65];
        migrate_checksum(f, sum);
        int same = r >= 0 && strcmp(PQgetvalue(done, r, 1), sum) == 0;
        what = "function file ";
        name = f->name;
        if (same) {
            /* unchanged: only the release that vouches for it moves */
            if (strcmp(PQgetvalue(done, r, 2), RELANCE_VERSION) == 0)
                continue;
            const char *params[3] = {f->name, sum, RELANCE_VERSION};
            PGresult *res = PQexecParams(conn, record_function, 3, NULL, params, NULL, NULL, 0);
            int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            if (!ok)
                pgerr_line(res, conn, NULL, why, sizeof why);
            PQclear(res);
            if (!ok)
                goto fail;
            continue;
        }
        if (apply_one(conn, f, record_function, RELANCE_VERSION, why, sizeof why) < 0)
            goto fail;
        applied[migrations_embedded_count + i] = 1;
    }
    what = "";
    if (exec_ok(conn, "COMMIT", why, sizeof why) < 0)
        goto fail;
    return 0;
fail:;
    char ignored[64];
    exec_ok(conn, "ROLLBACK", ignored, sizeof ignored);
    if (*what)
        snprintf(err, errlen, "%s%s failed: %s", what, name, why);
    else
        snprintf(err, errlen, "migration failed: %s", why);
    return -1;
}

int migrate_lock(PGconn *conn, int hold, char *err, size_t errlen)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_%slock(%lld)", hold ? "" : "un", (long long)MIGRATE_LOCK_KEY);
    return exec_ok(conn, sql, err, errlen);
}

int migrate_run(PGconn *conn, FILE *out, char *err, size_t errlen)
{
    char lock[128];
    int rc = -1;
    unsigned char *applied = NULL;
    PGresult *done = NULL;
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", (long long)MIGRATE_LOCK_KEY);
    if (exec_ok(conn, "SET client_min_messages = warning", err, errlen) < 0 ||
        exec_ok(conn, lock, err, errlen) < 0)
        return -1;
    if (exec_ok(conn,
                "CREATE TABLE IF NOT EXISTS relance_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen) < 0 ||
        /* release: the relance that applied the file or found it its own */
        exec_ok(conn,
                "CREATE TABLE IF NOT EXISTS relance_functions ("
                " name text PRIMARY KEY, checksum text NOT NULL, release text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen) < 0)
        goto unlock;
    done = PQexec(conn, migrate_status_sql);
    if (PQresultStatus(done) != PGRES_TUPLES_OK) {
        pgerr_line(done, conn, NULL, err, errlen);
        goto unlock;
    }
    struct status st;
    status_read(done, &st);
    if (st.edited) {
        snprintf(err, errlen,
                 "migration %s changed after it was applied (checksum differs); "
                 "migrations are never edited once applied: add a new one instead",
                 st.edited->name);
        goto unlock;
    }
    applied = calloc((size_t)migrations_embedded_count + (size_t)functions_embedded_count + 1, 1);
    if (!applied) {
        snprintf(err, errlen, "out of memory");
        goto unlock;
    }
    if (apply_all(conn, done, &st, applied, err, errlen) < 0)
        goto unlock;
    int n = 0;
    for (int i = 0; i < migrations_embedded_count; i++)
        if (applied[i]) {
            n++;
            if (out)
                fprintf(out, "applied %s\n", migrations_embedded[i].name);
        }
    for (int i = 0; i < functions_embedded_count; i++)
        if (applied[migrations_embedded_count + i]) {
            n++;
            if (out)
                fprintf(out, "functions: %s %s\n", functions_embedded[i].name,
                        find_row(done, FUNCTIONS_PREFIX, functions_embedded[i].name) < 0 ? "installed" : "updated");
        }
    if (out && st.newer)
        fprintf(out, "functions: left as they are: a release newer than relance %s migrated the database (%s)\n",
                RELANCE_VERSION, st.newer_what);
    if (out && n == 0)
        fprintf(out, "up to date (%d migrations, %d function files)\n", migrations_embedded_count,
                functions_embedded_count);
    rc = 0;
unlock:;
    char ignored[64];
    PQclear(done);
    free(applied);
    snprintf(lock, sizeof lock, "SELECT pg_advisory_unlock(%lld)", (long long)MIGRATE_LOCK_KEY);
    if (exec_ok(conn, lock, ignored, sizeof ignored) < 0 && rc == 0) {
        snprintf(err, errlen, "could not release the migration lock");
        rc = -1;
    }
    return rc;
}
