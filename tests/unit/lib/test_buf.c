/* Unit tests of buf: appends of every kind, the NUL after the contents,
 * clearing for reuse, and the sticky failure (a size that would overflow
 * size_t sets oom, and later appends change nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"

static void test_appends(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_add(&b, "", 0);
    assert_non_null(b.p); /* an empty append still makes a string */
    assert_string_equal(b.p, "");
    buf_adds(&b, "ab");
    buf_addc(&b, 'c');
    buf_addf(&b, "%d-%s", 42, "x");
    buf_add(&b, "yz\0w", 4); /* bytes, NUL included */
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.p, "abc42-xyz\0w", 11);
    assert_int_equal(b.p[b.len], '\0');
    assert_int_equal(b.oom, 0);
    buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len + b.cap, 0);
}

/* Byte by byte across many growths: the fast path of buf_addc keeps the
 * NUL and the length right at every capacity boundary. */
static void test_addc_growth(void **state)
{
    (void)state;
    struct buf b = {0};
    for (size_t i = 0; i < 5000; i++) {
        buf_addc(&b, (char)('a' + i % 26));
        assert_int_equal(b.len, i + 1);
        assert_int_equal(b.p[b.len], '\0');
        assert_true(b.cap > b.len);
    }
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(b.p[i], 'a' + i % 26);
    buf_free(&b);
}

static void test_clear(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_clear(&b); /* on an empty buffer: nothing to keep */
    assert_null(b.p);
    buf_adds(&b, "hello");
    size_t cap = b.cap;
    char *p = b.p;
    buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.p, "");
    buf_adds(&b, "again");
    assert_string_equal(b.p, "again");
    buf_free(&b);
}

static void test_sticky_failure(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_adds(&b, "kept");
    buf_add(&b, "x", SIZE_MAX - 2); /* would overflow: refused, nothing read */
    assert_int_equal(b.oom, 1);
    assert_string_equal(b.p, "kept");
    buf_adds(&b, "lost");
    buf_addc(&b, '!');
    buf_addf(&b, "%s", "lost");
    assert_int_equal(b.len, 4);
    assert_string_equal(b.p, "kept");
    buf_clear(&b); /* clearing keeps the failure for whoever checks */
    assert_int_equal(b.oom, 1);
    buf_free(&b);
    assert_int_equal(b.oom, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_addc_growth),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_sticky_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
