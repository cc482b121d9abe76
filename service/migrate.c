/* migrate: the migration runner and the "is this database migrated?"
 * check shared by `relance migrate`, `relance serve` and the commands that
 * need a migrated database. */
#include "migrate.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Any fixed number: the lock key for "a migration is running". */
#define MIGRATE_LOCK_KEY 7401720650

const char migrate_status_sql[] =
    "SELECT name, checksum FROM relance_migrations ORDER BY name";

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
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int migrate_check_result(const PGresult *res, char *err, size_t errlen)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42P01") == 0) /* undefined_table: never migrated */
            return 0;
        snprintf(err, errlen, "%s", PQresultErrorMessage(res));
        err[strcspn(err, "\n")] = '\0';
        return -1;
    }
    int rows = PQntuples(res), found = 0;
    for (int i = 0; i < migrations_embedded_count; i++) {
        const struct migration *m = &migrations_embedded[i];
        char sum[65];
        migrate_checksum(m, sum);
        for (int r = 0; r < rows; r++) {
            if (strcmp(PQgetvalue(res, r, 0), m->name) != 0)
                continue;
            if (strcmp(PQgetvalue(res, r, 1), sum) != 0) {
                snprintf(err, errlen,
                         "migration %s changed after it was applied (checksum differs); "
                         "migrations are never edited once applied: add a new one instead",
                         m->name);
                return -1;
            }
            found++;
        }
    }
    return found == migrations_embedded_count;
}

int migrate_check(PGconn *conn, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, migrate_status_sql);
    int rc = migrate_check_result(r, err, errlen);
    PQclear(r);
    return rc;
}

static int apply_one(PGconn *conn, const struct migration *m, const char *sum, char *err, size_t errlen)
{
    char why[1024];
    if (exec_ok(conn, "BEGIN", why, sizeof why) < 0)
        goto fail;
    /* The text may hold several statements: simple-query protocol. */
    if (exec_ok(conn, m->sql, why, sizeof why) < 0)
        goto fail;
    const char *params[2] = {m->name, sum};
    PGresult *r = PQexecParams(conn, "INSERT INTO relance_migrations (name, checksum) VALUES ($1, $2)", 2, NULL,
                               params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(why, sizeof why, "%s", PQresultErrorMessage(r));
    PQclear(r);
    if (!ok || exec_ok(conn, "COMMIT", why, sizeof why) < 0)
        goto fail;
    return 0;
fail:
    exec_ok(conn, "ROLLBACK", err, errlen);
    /* libpq messages end with a newline; keep the error one line. */
    why[strcspn(why, "\n")] = '\0';
    snprintf(err, errlen, "migration %s failed: %s", m->name, why);
    return -1;
}

int migrate_run(PGconn *conn, FILE *out, char *err, size_t errlen)
{
    char lock[128];
    int rc = -1;
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", (long long)MIGRATE_LOCK_KEY);
    if (exec_ok(conn, "SET client_min_messages = warning", err, errlen) < 0 ||
        exec_ok(conn, lock, err, errlen) < 0)
        return -1;
    if (exec_ok(conn,
                "CREATE TABLE IF NOT EXISTS relance_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen) < 0)
        goto unlock;
    PGresult *done = PQexec(conn, migrate_status_sql);
    if (PQresultStatus(done) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(done));
        PQclear(done);
        goto unlock;
    }
    if (migrate_check_result(done, err, errlen) < 0) {
        PQclear(done);
        goto unlock;
    }
    int applied = 0;
    for (int i = 0; i < migrations_embedded_count; i++) {
        const struct migration *m = &migrations_embedded[i];
        int present = 0;
        for (int r = 0; r < PQntuples(done); r++)
            present |= strcmp(PQgetvalue(done, r, 0), m->name) == 0;
        if (present)
            continue;
        char sum[65];
        migrate_checksum(m, sum);
        if (apply_one(conn, m, sum, err, errlen) < 0) {
            PQclear(done);
            goto unlock;
        }
        applied++;
        if (out)
            fprintf(out, "applied %s\n", m->name);
    }
    PQclear(done);
    if (out && applied == 0)
        fprintf(out, "up to date (%d migrations)\n", migrations_embedded_count);
    rc = 0;
unlock:;
    char ignored[64];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_unlock(%lld)", (long long)MIGRATE_LOCK_KEY);
    if (exec_ok(conn, lock, ignored, sizeof ignored) < 0 && rc == 0) {
        snprintf(err, errlen, "could not release the migration lock");
        rc = -1;
    }
    return rc;
}
