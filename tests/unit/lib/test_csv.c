/* Unit tests of csv: quoting, BOM, line endings, embedded line breaks and
 * their line numbers, broken records and the resynchronisation after them,
 * limits. Table-driven: every input is also fed in chunks of 1, 2, 3, 7
 * bytes, and must read the same whatever the chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

/* Renders every record as one line: "L[f1][f2]" or "L!reason@E", with
 * line breaks inside fields written \n and \r. */
static char *read_all(const char *in, size_t len, size_t chunk, const struct csv_limits *lim, char delim)
{
    struct csv_reader *r = csv_reader_new(lim);
    assert_non_null(r);
    if (delim)
        assert_int_equal(csv_reader_delimiter(r, delim), 0);
    size_t cap = 4096, o = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    size_t pos = 0;
    int finished = 0;
    for (;;) {
        struct csv_record rec;
        int rc = csv_reader_next(r, &rec);
        assert_true(rc >= 0);
        if (rc == 0) {
            if (finished)
                break;
            if (pos < len) {
                size_t n = len - pos < chunk ? len - pos : chunk;
                csv_reader_feed(r, in + pos, n);
                pos += n;
            } else {
                csv_reader_finish(r);
                finished = 1;
            }
            continue;
        }
        assert_true(o + 1024 < cap);
        o += (size_t)snprintf(out + o, cap - o, "%lu", rec.line);
        if (rec.error) {
            assert_int_equal(rec.n_fields, 0);
            o += (size_t)snprintf(out + o, cap - o, "!%s@%lu", rec.error, rec.error_line);
        }
        for (size_t i = 0; i < rec.n_fields; i++) {
            assert_int_equal(strlen(rec.fields[i]), rec.lengths[i]);
            out[o++] = '[';
            for (const char *c = rec.fields[i]; *c; c++) {
                if (*c == '\n' || *c == '\r') {
                    out[o++] = '\\';
                    out[o++] = *c == '\n' ? 'n' : 'r';
                } else {
                    out[o++] = *c;
                }
            }
            out[o++] = ']';
        }
        out[o++] = '\n';
        out[o] = '\0';
    }
    assert_int_equal(csv_reader_offset(r), len);
    csv_reader_free(r);
    return out;
}

struct row {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *want;
};

static void check_rows_delim(const struct row *rows, size_t n, const struct csv_limits *lim, char delim)
{
    static const size_t chunks[] = {1, 2, 3, 7, 1 << 20};
    for (size_t i = 0; i < n; i++) {
        size_t len = rows[i].len ? rows[i].len : strlen(rows[i].in);
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            char *got = read_all(rows[i].in, len, chunks[c], lim, delim);
            if (strcmp(got, rows[i].want) != 0)
                fail_msg("row %zu, chunks of %zu:\ninput: %s\ngot:\n%swant:\n%s", i, chunks[c], rows[i].in, got,
                         rows[i].want);
            free(got);
        }
    }
}

static void check_rows(const struct row *rows, size_t n, const struct csv_limits *lim)
{
    check_rows_delim(rows, n, lim, 0);
}

static void test_good(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"", 0, ""},
        {"\n\r\n\n", 0, ""},
        {"a,b,c\n1,2,3\n", 0, "1[a][b][c]\n2[1][2][3]\n"},
        {"a,b", 0, "1[a][b]\n"},
        {"a,", 0, "1[a][]\n"},
        {",,\n", 0, "1[][][]\n"},
        {"a,b\r\nc,d\r\n", 0, "1[a][b]\n2[c][d]\n"},
        {"a\rb\r", 0, "1[a]\n2[b]\n"},
        {"a\n\n\nb\n", 0, "1[a]\n4[b]\n"},
        {"a\r\n\r\nb", 0, "1[a]\n3[b]\n"},
        {"\"\"\n", 0, "1[]\n"},
        {"\"a,b\",c\n", 0, "1[a,b][c]\n"},
        {"\"say \"\"hi\"\"\"\n", 0, "1[say \"hi\"]\n"},
        {"\"\"\"\"", 0, "1[\"]\n"},
        {"x, y ,z\n", 0, "1[x][ y ][z]\n"},
        {"\"a\nb\",c\nd,e\n", 0, "1[a\\nb][c]\n3[d][e]\n"},
        {"a,\"1\n2\n3\"\nb,c\n", 0, "1[a][1\\n2\\n3]\n4[b][c]\n"},
        {"\"a\r\nb\"\r\nc\r\n", 0, "1[a\\r\\nb]\n3[c]\n"},
        {"\"a\rb\"\rc", 0, "1[a\\rb]\n3[c]\n"},
        {"\"x\",\"\"\n", 0, "1[x][]\n"},
        {"\xEF\xBB\xBF" "email,name\nx@y.example,\xC3\xA9\n", 0, "1[email][name]\n2[x@y.example][\xC3\xA9]\n"},
        {"\xEF\xBB\xBF", 0, ""},
        {"\xEF\xBB\xBF\"q\"\n", 0, "1[q]\n"},
        {"\xE6\x97\xA5\xE6\x9C\xAC,\xF0\x9F\x98\x80\n", 0, "1[\xE6\x97\xA5\xE6\x9C\xAC][\xF0\x9F\x98\x80]\n"},
        {"\xEF\xBC\xA1\n", 0, "1[\xEF\xBC\xA1]\n"}, /* starts like a BOM, is not one */
    };
    check_rows(rows, sizeof rows / sizeof rows[0], NULL);
}

static void test_broken(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"ab\"c,d\ne,f\n", 0, "1!quote inside an unquoted field@1\n2[e][f]\n"},
        {"a, \"b\"\nc\n", 0, "1!quote inside an unquoted field@1\n2[c]\n"},
        {"\"a\"b,c\nd\n", 0, "1!text after a closing quote@1\n2[d]\n"},
        {"\"a\" ,c\r\nd\r\n", 0, "1!text after a closing quote@1\n2[d]\n"},
        {"a,\"bc", 0, "1!unterminated quoted field@1\n"},
        {"a,\"bc\n", 0, "1!unterminated quoted field@1\n"},
        /* A stray opening quote swallows the lines after it: they come back. */
        {"x\n\"a,b\nc,d\ne,f\n", 0, "1[x]\n2!unterminated quoted field@2\n3[c][d]\n4[e][f]\n"},
        {"x\r\n\"a,b\r\nc,d\r\ne,f", 0, "1[x]\n2!unterminated quoted field@2\n3[c][d]\n4[e][f]\n"},
        {"h\n\"oops,1\nok,2\nbad\"x,3\nfine,4\n", 0,
         "1[h]\n2!text after a closing quote@4\n3[ok][2]\n4!quote inside an unquoted field@4\n5[fine][4]\n"},
        {"a,\"ok\nstill\" x\nb\n", 0, "1!text after a closing quote@2\n2!quote inside an unquoted field@2\n3[b]\n"},
        {"\xff,a\nb\n", 0, "1!invalid UTF-8 (the file must be UTF-8)@1\n2[b]\n"},
        {"\xC0\xAF\n", 0, "1!invalid UTF-8 (the file must be UTF-8)@1\n"},  /* overlong */
        {"\xED\xA0\x80\n", 0, "1!invalid UTF-8 (the file must be UTF-8)@1\n"}, /* surrogate */
        {"\"a\n\xff\",b\nc\n", 0, "1!invalid UTF-8 (the file must be UTF-8)@1\n3[c]\n"},
        {"\xEF\xBBx\n", 0, "1!invalid UTF-8 (the file must be UTF-8)@1\n"},
        {"a\0b,c\nd\n", 8, "1!NUL byte in a field@1\n2[d]\n"},
    };
    check_rows(rows, sizeof rows / sizeof rows[0], NULL);
}

static void test_limits(void **state)
{
    (void)state;
    static const struct csv_limits lim = {.max_field = 4, .max_record = 12, .max_fields = 3};
    static const struct row rows[] = {
        {"abcd,x\n", 0, "1[abcd][x]\n"},
        {"abcde,x\nok\n", 0, "1!field too long@1\n2[ok]\n"},
        {"\"abcde\",x\nok\n", 0, "1!field too long@1\n2[ok]\n"},
        {"a,b,c\n", 0, "1[a][b][c]\n"},
        {"a,b,c,d\ne\n", 0, "1!too many fields@1\n2[e]\n"},
    };
    check_rows(rows, sizeof rows / sizeof rows[0], &lim);
    static const struct csv_limits lim_record = {.max_record = 12};
    static const struct row long_rows[] = {
        {"abcdefghijkl\n", 0, "1[abcdefghijkl]\n"},
        {"abcdefghijklm\nz\n", 0, "1!record too long@1\n2[z]\n"},
        {"\"ab\nab\nab\nab\"\nz\n", 0,
         "1!record too long@4\n2[ab]\n3[ab]\n4!quote inside an unquoted field@4\n5[z]\n"},
    };
    check_rows(long_rows, sizeof long_rows / sizeof long_rows[0], &lim_record);
}

static void test_find(void **state)
{
    (void)state;
    static const char in[] = " Email ,First_Name,\tcrm_id\t,\"E-mail\"\n";
    struct csv_reader *r = csv_reader_new(NULL);
    assert_non_null(r);
    csv_reader_feed(r, in, sizeof in - 1);
    struct csv_record rec;
    assert_int_equal(csv_reader_next(r, &rec), 1);
    static const struct {
        const char *name;
        int index;
    } rows[] = {
        {"email", 0}, {"EMAIL", 0}, {"first_name", 1}, {"crm_id", 2}, {"e-mail", 3}, {"mail", -1}, {"", -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(csv_record_find(&rec, rows[i].name), rows[i].index);
    assert_int_equal(csv_reader_next(r, &rec), 0);
    csv_reader_free(r);
}

/* ';' (French Excel) and tab files: the delimiter alone separates, a
 * comma is text, and quoting works as with commas. */
static void test_delimiter(void **state)
{
    (void)state;
    static const struct row semi[] = {
        {"\xEF\xBB\xBF" "email;pr\xC3\xA9nom\r\nx@y.example;Ren\xC3\xA9" "e\r\n", 0,
         "1[email][pr\xC3\xA9nom]\n2[x@y.example][Ren\xC3\xA9" "e]\n"},
        {"a,b;c\n", 0, "1[a,b][c]\n"},
        {"\"a;b\";\"c\"\"d\"\n;\n", 0, "1[a;b][c\"d]\n2[][]\n"},
        {"\"a\",b\nc\n", 0, "1!text after a closing quote@1\n2[c]\n"},
        {"a\tb;c\n", 0, "1[a\tb][c]\n"},
    };
    check_rows_delim(semi, sizeof semi / sizeof semi[0], NULL, ';');
    static const struct row tab[] = {
        {"email\tname\nx@y.example\t\"Dupont, Jean\"\n", 0, "1[email][name]\n2[x@y.example][Dupont, Jean]\n"},
        {"a;b,c\td\n", 0, "1[a;b,c][d]\n"},
    };
    check_rows_delim(tab, sizeof tab / sizeof tab[0], NULL, '\t');

    struct csv_reader *r = csv_reader_new(NULL);
    assert_non_null(r);
    assert_int_equal(csv_reader_delimiter(r, '|'), -EINVAL);
    assert_int_equal(csv_reader_delimiter(r, '"'), -EINVAL);
    assert_int_equal(csv_reader_delimiter(r, '\0'), -EINVAL);
    csv_reader_free(r);
}

static void test_detect(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        char want;
    } rows[] = {
        {"", ','},
        {"email\n", ','},
        {"email,name,company\n", ','},
        {"email;nom;soci\xC3\xA9t\xC3\xA9\r\n", ';'},
        {"\xEF\xBB\xBF" "email;nom\n", ';'},
        {"email\tname\tcompany\n", '\t'},
        {"email;nom\n" "a,b,c,d,e\n", ';'},                  /* the header line only */
        {"\"Nom, Pr\xC3\xA9nom\";email\n", ';'},               /* commas inside quotes do not count */
        {"\"a;b;c\nd;e\",email,x\n", ','},                    /* nor a quoted line break */
        {"\"say \"\"a,b,c\"\"\";email\n", ';'},                /* "" inside quotes */
        {"email;name,company\n", ','},                       /* a tie: comma first */
        {"email;name;company,title\n", ';'},
        {"email\tname;company\n", ';'},                       /* a tie of ; and tab: ; first */
        {"email,name", ','},                                  /* no line break yet */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char got = csv_delimiter_detect(rows[i].in, strlen(rows[i].in));
        if (got != rows[i].want)
            fail_msg("row %zu: %s: got '%c', want '%c'", i, rows[i].in, got, rows[i].want);
    }
}

static void test_delimiter_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int want;
    } rows[] = {
        {",", ','}, {";", ';'}, {"\t", '\t'}, {"\\t", '\t'}, {"tab", '\t'}, {"TAB", '\t'},
        {"", -EINVAL}, {"|", -EINVAL}, {",,", -EINVAL}, {"semicolon", -EINVAL}, {"\"", -EINVAL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (csv_delimiter_parse(rows[i].in) != rows[i].want)
            fail_msg("row %zu: '%s': got %d, want %d", i, rows[i].in, csv_delimiter_parse(rows[i].in), rows[i].want);
    }
}

/* A large input: the record count and the last line number stay right. */
static void test_many(void **state)
{
    (void)state;
    size_t n = 20000, cap = n * 32, o = 0;
    char *in = malloc(cap);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(in + o, cap - o, i % 3 ? "r%zu,x\r\n" : "\"r%zu\n\",y\n", i);
    struct csv_reader *r = csv_reader_new(NULL);
    assert_non_null(r);
    csv_reader_feed(r, in, o);
    csv_reader_finish(r);
    size_t count = 0;
    unsigned long line = 0;
    struct csv_record rec;
    for (;;) {
        int rc = csv_reader_next(r, &rec);
        assert_true(rc >= 0);
        if (rc == 0)
            break;
        assert_null(rec.error);
        assert_int_equal(rec.line, line + 1 + (count && (count - 1) % 3 == 0));
        line = rec.line;
        count++;
    }
    assert_int_equal(count, n);
    csv_reader_free(r);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),   cmocka_unit_test(test_broken), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_find),   cmocka_unit_test(test_many),   cmocka_unit_test(test_delimiter),
        cmocka_unit_test(test_detect), cmocka_unit_test(test_delimiter_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
