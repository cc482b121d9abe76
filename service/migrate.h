/* migrate: applies the embedded sql/NNN_*.sql migrations.
 *
 * Each migration runs in its own transaction and is recorded in
 * relance_migrations with its SHA-256; the whole run holds a session
 * advisory lock so two processes never migrate at once. A migration whose
 * recorded checksum differs from the embedded one is an error, never
 * re-run. Used by `relance migrate` (blocking libpq: a command, not the
 * service loop) and by serve's readiness check (migrate_status_sql). */
#ifndef RELANCE_MIGRATE_H
#define RELANCE_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

struct migration {
    const char *name; /* "001_init.sql" */
    const char *sql;
    size_t len;
};

extern const struct migration migrations_embedded[];
extern const int migrations_embedded_count;

/* Hex SHA-256 of a migration's text into out[65]. */
void migrate_checksum(const struct migration *m, char out[65]);

/* Applies what is missing on conn. Prints one line per applied migration
 * to out (may be NULL). Returns 0, or -1 with a message in err. */
int migrate_run(PGconn *conn, FILE *out, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Checks that every embedded migration is recorded with its checksum.
 * Returns 1 (all applied), 0 (some missing or the table is absent), or -1
 * with a reason in err (a checksum differs, or a query failed). */
int migrate_check(PGconn *conn, char *err, size_t errlen) __attribute__((warn_unused_result));

/* One query that answers the same question, for the service's async
 * connection: it returns one row per recorded migration (name, checksum). */
extern const char migrate_status_sql[];
/* Compares the result of migrate_status_sql with the embedded list: 1
 * up to date, 0 not (or never) migrated, -1 checksum differs or error. */
int migrate_check_result(const PGresult *res, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
