/* Unit tests for webhook_url: which webhook URLs relance accepts, with
 * and without an allow-list, as a table. */
#include "webhook_url.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct row {
    const char *url;
    int ok, listed;
    const char *why; /* the start of the reason when refused */
};

static char *allow[] = {"crm.internal", "127.0.0.1", "[::1]", "::1", "Localhost.", NULL};

static const struct row with_list[] = {
    {"https://crm.example.com/hooks/relance", 1, 0, NULL},
    {"https://crm.example.com:8443/h?x=1", 1, 0, NULL},
    {"http://crm.internal/h", 1, 1, NULL},
    {"http://CRM.Internal./h", 1, 1, NULL},
    {"http://127.0.0.1:9000/h", 1, 1, NULL},
    {"http://[::1]:9000/h", 1, 1, NULL},
    {"http://localhost:9000/h", 1, 1, NULL},
    {"http://crm.example.com/h", 0, 0, "http is allowed only for hosts listed"},
    {"https://10.0.0.5/h", 0, 0, "10.0.0.5 is not a public address"},
    {"https://169.254.169.254/latest/meta-data", 0, 0, "169.254.169.254 is not a public address"},
    {"https://[fd00::1]/h", 0, 0, "fd00::1 is not a public address"},
    {"https://127.0.0.2/h", 0, 0, "127.0.0.2 is not a public address"},
    {"https://user:pw@crm.example.com/h", 0, 0, "a user name or password"},
    {"ftp://crm.example.com/h", 0, 0, "the scheme must be https"},
    {"file:///etc/passwd", 0, 0, "the scheme must be https"},
    {"crm.example.com/h", 0, 0, "not an absolute"},
    {"https://", 0, 0, "not an absolute"},
    {"", 0, 0, "not an absolute"},
};

static const struct row without_list[] = {
    {"https://93.184.215.14/h", 1, 0, NULL},
    {"http://127.0.0.1:9000/h", 0, 0, "http is allowed only"},
    {"https://127.0.0.1:9000/h", 0, 0, "127.0.0.1 is not a public address"},
    {"https://localhost/h", 0, 0, "localhost is not a public address"},
    {"https://LocalHost./h", 0, 0, "localhost is not a public address"},
    {"https://[::ffff:10.1.1.1]/h", 0, 0, "::ffff:10.1.1.1 is not a public address"},
};

static void check_rows(const struct row *rows, size_t n, char *const *list)
{
    for (size_t i = 0; i < n; i++) {
        char why[300] = "";
        int listed = -1;
        int rc = webhook_url_check(rows[i].url, list, &listed, why, sizeof why);
        if ((rc == 0) != rows[i].ok)
            fail_msg("%s: rc %d (%s)", rows[i].url, rc, why);
        if (rc == 0 && listed != rows[i].listed)
            fail_msg("%s: listed %d", rows[i].url, listed);
        if (rc != 0 && strncmp(why, rows[i].why, strlen(rows[i].why)) != 0)
            fail_msg("%s: why '%s', want '%s...'", rows[i].url, why, rows[i].why);
    }
}

static void test_with_a_list(void **state)
{
    (void)state;
    check_rows(with_list, sizeof with_list / sizeof with_list[0], allow);
}

static void test_without_a_list(void **state)
{
    (void)state;
    check_rows(without_list, sizeof without_list / sizeof without_list[0], NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_a_list),
        cmocka_unit_test(test_without_a_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
