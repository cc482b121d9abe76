/* Unit tests for clock_parse_iso, as a table of inputs and what each must
 * give: every time an API client sends goes through it before PostgreSQL
 * sees it, so each row PostgreSQL would refuse must be refused here. */
#include "clock.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct row {
    const char *input;
    int ok;
    double epoch; /* when ok */
};

static const struct row rows[] = {
    {"2026-03-02T09:00:00Z", 1, 1772442000},
    {"2026-03-02T09:00Z", 1, 1772442000},                /* seconds optional */
    {"2026-03-02 09:00:00Z", 1, 1772442000},             /* a space for the T */
    {"2026-03-02t09:00:00z", 1, 1772442000},
    {"2026-03-02T09:00:00.250Z", 1, 1772442000.25},
    {"2026-03-02T10:30:00+01:30", 1, 1772442000},
    {"2026-03-02T04:00:00-05:00", 1, 1772442000},
    {"2024-02-29T00:00:00Z", 1, 1709164800},             /* a leap year's day */
    {"2000-02-29T00:00:00Z", 1, 951782400},
    {"2026-12-31T23:59:60Z", 1, 1798761600},             /* a leap second: the next one */
    {"2026-03-02T09:00:00+15:59", 1, 1772384460},
    {"2026-02-31T09:00:00Z", 0, 0},                      /* no such day */
    {"2026-02-29T09:00:00Z", 0, 0},
    {"1900-02-29T09:00:00Z", 0, 0},
    {"2026-04-31T09:00:00Z", 0, 0},
    {"2026-13-01T09:00:00Z", 0, 0},
    {"2026-00-01T09:00:00Z", 0, 0},
    {"2026-03-00T09:00:00Z", 0, 0},
    {"0000-03-02T09:00:00Z", 0, 0},                      /* PostgreSQL has no year 0 */
    {"2026-03-02T24:00:00Z", 0, 0},
    {"2026-03-02T09:60:00Z", 0, 0},
    {"2026-03-02T09:00:61Z", 0, 0},
    {"2026-03-02T09:00:00+16:00", 0, 0},                 /* PostgreSQL refuses it */
    {"2026-03-02T09:00:00+01:60", 0, 0},
    {"2026-03-02T09:00:00", 0, 0},                       /* no offset: ambiguous */
    {"2026-03-02T09:00:00.Z", 0, 0},
    {"2026-03-02T09:00:00Zjunk", 0, 0},
    {"2026-3-02T09:00:00Z", 0, 0},                       /* one-digit fields */
    {"+026-03-02T09:00:00Z", 0, 0},                      /* signs where digits go */
    {" 2026-03-02T09:00:00Z", 0, 0},
    {"2026-03-02T 9:00:00Z", 0, 0},
    {"2026-03-02T09:00:00+1:00", 0, 0},
    {"2026-03-02", 0, 0},
    {"", 0, 0},
};

static void test_parse_iso(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double t = -1;
        int rc = clock_parse_iso(rows[i].input, &t);
        if ((rc == 0) != rows[i].ok)
            fail_msg("'%s': %s, expected %s", rows[i].input, rc == 0 ? "taken" : "refused",
                     rows[i].ok ? "taken" : "refused");
        if (rows[i].ok && fabs(t - rows[i].epoch) > 1e-6)
            fail_msg("'%s': %.6f, expected %.6f", rows[i].input, t, rows[i].epoch);
    }
}

/* What clock_format writes, clock_parse_iso reads back. */
static void test_round_trip(void **state)
{
    (void)state;
    const double times[] = {0, 1772442000.5, 951782400, 4102444799.999999};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char buf[64];
        double back = -1;
        clock_format(times[i], buf, sizeof buf);
        assert_int_equal(clock_parse_iso(buf, &back), 0);
        if (fabs(back - times[i]) > 1e-6)
            fail_msg("%.6f -> '%s' -> %.6f", times[i], buf, back);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_iso),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
