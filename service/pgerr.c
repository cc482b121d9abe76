/* pgerr: the first line of PostgreSQL's error (see pgerr.h). It owns the
 * choice between the result's message and the connection's, and the cut
 * at the first line break; what the line is shown with is the caller's. */
#include "pgerr.h"

#include <stdio.h>
#include <string.h>

const char *pgerr_line(const PGresult *res, const PGconn *conn, const char *none, char *buf, size_t size)
{
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if ((!m || !*m) && conn)
        m = PQerrorMessage(conn);
    if (!m || !*m)
        m = none ? none : "";
    snprintf(buf, size, "%.*s", (int)strcspn(m, "\n"), m);
    return buf;
}
