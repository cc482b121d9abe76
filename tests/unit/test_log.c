/* Unit test of log's JSON lines: which values become JSON numbers (the
 * rule in log.h) and which stay strings, read back from stderr through
 * log_capture.h. Also that the text format is unchanged by the rule. */
#include "log.h"
#include "log_capture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* Everything the logger wrote between begin and now, before end rewinds. */
static void capture_read(struct log_capture *c, char *out, size_t size)
{
    fflush(stderr);
    rewind(c->f);
    size_t n = fread(out, 1, size - 1, c->f);
    out[n] = '\0';
}

static void test_json_numbers(void **state)
{
    (void)state;
    struct log_capture c;
    char out[4096];
    assert_int_equal(log_capture_begin(&c), 0);
    log_setup(LOG_FORMAT_JSON, LOG_DEBUG);
    log_event(LOG_INFO, "test", "values", "int", "42", "neg", "-3", "zero", "0", "dec", "0.25", "lead", "007",
              "exp", "1e3", "plus", "+1", "dot", "1.", "big", "12345678901234567", "word", "abc", "empty", "",
              "null", (const char *)NULL, "minus", "-", "mixed", "550 5.1.1", NULL);
    capture_read(&c, out, sizeof out);
    free(log_capture_end(&c, "test", "values"));
    static const char *const want[] = {
        "\"int\":42,",        "\"neg\":-3,",       "\"zero\":0,",  "\"dec\":0.25,",  "\"lead\":\"007\",",
        "\"exp\":\"1e3\",",   "\"plus\":\"+1\",",  "\"dot\":\"1.\",", "\"big\":\"12345678901234567\",",
        "\"word\":\"abc\",",  "\"empty\":\"\",",   "\"null\":\"-\",", "\"minus\":\"-\",",
        "\"mixed\":\"550 5.1.1\"}",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) {
            fprintf(stderr, "missing %s in %s", want[i], out);
            fail();
        }
}

static void test_text_unchanged(void **state)
{
    (void)state;
    struct log_capture c;
    char out[1024];
    assert_int_equal(log_capture_begin(&c), 0);
    log_event(LOG_INFO, "test", "values", "int", "42", "word", "a b", NULL);
    capture_read(&c, out, sizeof out);
    free(log_capture_end(&c, "test", "values"));
    assert_non_null(strstr(out, " info test: values int=42 word=\"a b\"\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_text_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
