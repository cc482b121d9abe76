/* Unit test of pgerr_line without a server: libpq's own error for a
 * socket that does not exist is two lines long (the failure, then "Is the
 * server running locally...?"), which is exactly what the helper must
 * cut. Rows: which message wins (the result's, the connection's, the
 * fallback), the cut at the first line break, the cut to the buffer. */
#include "pgerr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_first_line(void **state)
{
    (void)state;
    PGconn *conn = PQconnectdb("host=/nonexistent-relance-test port=1 connect_timeout=1");
    assert_non_null(conn);
    assert_int_equal(PQstatus(conn), CONNECTION_BAD);
    const char *full = PQerrorMessage(conn);
    const char *nl = strchr(full, '\n');
    assert_non_null(nl);
    assert_true(nl[1] != '\0'); /* more than one line: there is something to cut */
    size_t first = (size_t)(nl - full);

    PGresult *with_msg = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR); /* copies conn's message */
    PGresult *no_msg = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
    assert_non_null(with_msg);
    assert_non_null(no_msg);
    assert_string_equal(PQresultErrorMessage(no_msg), "");

    struct row {
        const PGresult *res;
        const PGconn *conn;
        const char *none;
        size_t size;
        const char *want; /* NULL: the first line of conn's message */
    } rows[] = {
        {NULL, NULL, NULL, 256, ""},
        {NULL, NULL, "database connection lost", 256, "database connection lost"},
        {NULL, conn, "unused", 256, NULL},             /* no result: the connection's */
        {with_msg, NULL, NULL, 256, NULL},             /* the result's own */
        {no_msg, conn, NULL, 256, NULL},               /* a result without one: the connection's */
        {no_msg, NULL, "no answer", 256, "no answer"}, /* neither: the fallback */
        {with_msg, NULL, NULL, 11, "connection"},      /* cut to the buffer */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[256];
        memset(buf, 'x', sizeof buf);
        const char *got = pgerr_line(rows[i].res, rows[i].conn, rows[i].none, buf, rows[i].size);
        assert_ptr_equal(got, buf);
        if (rows[i].want) {
            if (strcmp(got, rows[i].want) != 0)
                fail_msg("row %zu: want '%s', got '%s'", i, rows[i].want, got);
        } else if (strlen(got) != first || strncmp(got, full, first) != 0) {
            fail_msg("row %zu: want the first line of '%s', got '%s'", i, full, got);
        }
    }
    PQclear(with_msg);
    PQclear(no_msg);
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
