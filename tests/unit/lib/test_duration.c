/* Unit tests for duration: parsing and canonical formatting, as a table
 * of inputs and what each must give. */
#include "duration.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct row {
    const char *input;
    int ok;
    int64_t seconds;
    int32_t days, business_days;
    const char *formatted;   /* canonical form, or the start of the error */
};

static const struct row rows[] = {
    {"90s", 1, 90, 0, 0, "1m 30s"},
    {"45m", 1, 2700, 0, 0, "45m"},
    {"2h", 1, 7200, 0, 0, "2h"},
    {"0", 1, 0, 0, 0, "0"},
    {"  0", 1, 0, 0, 0, "0"},
    {"1 day", 1, 0, 1, 0, "1 day"},
    {"3 days", 1, 0, 3, 0, "3 days"},
    {"3d", 1, 0, 3, 0, "3 days"},
    {"1 week", 1, 0, 7, 0, "7 days"},
    {"2 weeks", 1, 0, 14, 0, "14 days"},
    {"1 business day", 1, 0, 0, 1, "1 business day"},
    {"3 business days", 1, 0, 0, 3, "3 business days"},
    {"1 day 4h", 1, 14400, 1, 0, "1 day 4h"},
    {"2 business days 3h", 1, 10800, 0, 2, "2 business days 3h"},
    {"1h 30m", 1, 5400, 0, 0, "1h 30m"},
    {"1h, 30m, 15s", 1, 5415, 0, 0, "1h 30m 15s"},
    {"10 minutes", 1, 600, 0, 0, "10m"},
    {"36h", 1, 129600, 0, 0, "36h"},
    {"", 0, 0, 0, 0, "empty duration"},
    {"soon", 0, 0, 0, 0, "expected a number"},
    {"3", 0, 0, 0, 0, "missing unit"},
    {"0.5s", 0, 0, 0, 0, "fractions are not supported in duration '0.5s'"},
    {"1h 1.5m", 0, 0, 0, 0, "fractions are not supported in duration '1h 1.5m'"},
    {"3 dais", 0, 0, 0, 0, "unknown unit 'dais'"},
    {"3 business", 0, 0, 0, 0, "unknown unit 'business'"},
    {"1h 2h", 0, 0, 0, 0, "unit 'h' given twice"},
    {"1 day 2 business days", 0, 0, 0, 0, "duration '1 day 2 business days' mixes"},
    {"-5m", 0, 0, 0, 0, "expected a number"},
    {"99999999999h", 0, 0, 0, 0, "number too large"},
    {"5m later", 0, 0, 0, 0, "expected a number in duration '5m later'"},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        struct duration d = {-1, -1, -1};
        char err[200] = "", buf[96];
        int rc = duration_parse(r->input, &d, err, sizeof err);
        if (r->ok) {
            if (rc != 0)
                fail_msg("'%s': unexpected error: %s", r->input, err);
            assert_int_equal(d.seconds, r->seconds);
            assert_int_equal(d.days, r->days);
            assert_int_equal(d.business_days, r->business_days);
            duration_format(&d, buf, sizeof buf);
            assert_string_equal(buf, r->formatted);
            assert_int_equal(duration_is_elapsed(&d), r->days == 0 && r->business_days == 0);
            /* the canonical form reads back to the same duration */
            struct duration again;
            assert_int_equal(duration_parse(buf, &again, err, sizeof err), 0);
            assert_memory_equal(&again, &d, sizeof d);
        } else {
            if (rc == 0)
                fail_msg("'%s': accepted, expected an error", r->input);
            if (strncmp(err, r->formatted, strlen(r->formatted)) != 0)
                fail_msg("'%s': error '%s' does not start with '%s'", r->input, err, r->formatted);
        }
    }
}

static void test_format_truncates_safely(void **state)
{
    (void)state;
    struct duration d = {3 * 3600 + 61, 2, 0};
    char buf[8];
    duration_format(&d, buf, sizeof buf);
    assert_true(strlen(buf) < sizeof buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_format_truncates_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
