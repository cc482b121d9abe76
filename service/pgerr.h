/* pgerr: the first line of PostgreSQL's error — the one form in which
 * relance shows a server's error, as a log value or in a command's
 * "relance: ..." line. libpq's messages end with a newline and may go on
 * with DETAIL, HINT or CONTEXT lines; one line per event keeps only the
 * first. Nothing is kept past the call. */
#ifndef RELANCE_PGERR_H
#define RELANCE_PGERR_H

#include <libpq-fe.h>
#include <stddef.h>

/* Copies the first line of the error into buf (size bytes, cut to fit)
 * and returns buf. The error is res's (PQresultErrorMessage) or, when
 * res is NULL or carries none, conn's (PQerrorMessage; conn may be NULL),
 * or else none (NULL for ""): what to say when no answer came, as when
 * the connection closed with the query in flight. */
const char *pgerr_line(const PGresult *res, const PGconn *conn, const char *none, char *buf, size_t size);

#endif
