/* Unit tests of json, table-driven: the writer's escaping (every escape,
 * the bad UTF-8 policy: replaced by U+FFFD), the reader on valid
 * documents (dumped back through the writer, so reading and writing
 * agree), every error with its byte offset and JSON Pointer, the nesting
 * limit, numbers, the duplicate-name policy (the last one wins), the
 * accessors, and every cut of a document failing without reading past
 * its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define S(lit) lit, sizeof lit - 1 /* a literal with its length: NULs count */

/* ---- writer ---- */

static const struct write_row {
    const char *in;
    size_t len;
    const char *out;
} write_rows[] = {
    {S(""), "\"\""},
    {S("plain text / slash"), "\"plain text / slash\""},
    {S("say \"hi\" \\ bye"), "\"say \\\"hi\\\" \\\\ bye\""},
    {S("a\nb\rc\td"), "\"a\\nb\\rc\\td\""},
    {S("\b\f\x01\x1f\x7f"), "\"\\u0008\\u000c\\u0001\\u001f\\u007f\""},
    {S("nul\0here"), "\"nul\\u0000here\""},
    /* valid UTF-8 of every length passes as it is */
    {S("caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80\""},
    /* each byte that starts nothing valid becomes U+FFFD */
    {S("a\x80z"), "\"a\xef\xbf\xbdz\""},                             /* a lone continuation byte */
    {S("end\xc3"), "\"end\xef\xbf\xbd\""},                           /* cut short */
    {S("\xc0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\""},                 /* overlong NUL */
    {S("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* a surrogate */
    {S("\xf5\x80\x80\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* past U+10FFFF */
    {S("\xff\"x"), "\"\xef\xbf\xbd\\\"x\""},
};

static void test_write(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof write_rows / sizeof write_rows[0]; i++) {
        const struct write_row *r = &write_rows[i];
        struct buf b = {0};
        buf_adds(&b, "x"); /* appends after what is there */
        json_add_stringn(&b, r->in, r->len);
        assert_false(b.oom);
        if (strcmp(b.p + 1, r->out) != 0)
            fail_msg("row %zu: want %s, got %s", i, r->out, b.p + 1);
        /* what is written reads back as the same bytes (after U+FFFD) */
        struct json_doc *d;
        struct json_error err;
        if (json_parse(b.p + 1, b.len - 1, &d, &err) != 0)
            fail_msg("row %zu: the output does not parse: %s at %zu", i, err.what, err.offset);
        size_t n;
        const char *text = json_text(d, 0, &n);
        assert_non_null(text);
        int replaced = strstr(r->out, "\xef\xbf\xbd") != NULL;
        if (!replaced && (n != r->len || memcmp(text, r->in, n) != 0))
            fail_msg("row %zu: read back is not the input", i);
        json_free(d);
        buf_free(&b);
    }
    struct buf b = {0};
    json_add_string(&b, NULL);
    json_add_string(&b, "");
    assert_string_equal(b.p, "null\"\"");
    buf_free(&b);
}

/* ---- reader: valid documents ---- */

/* Writes value i back as compact JSON through the public accessors. */
static void dump(struct buf *b, const struct json_doc *d, int i)
{
    size_t n;
    const char *t;
    switch (json_type(d, i)) {
    case JSON_NULL:
    case JSON_FALSE:
    case JSON_TRUE:
        buf_adds(b, json_type_names[json_type(d, i)]);
        return;
    case JSON_NUMBER:
        buf_adds(b, json_text(d, i, NULL));
        return;
    case JSON_STRING:
        t = json_text(d, i, &n);
        json_add_stringn(b, t, n);
        return;
    case JSON_ARRAY:
    case JSON_OBJECT:
        break;
    }
    int object = json_type(d, i) == JSON_OBJECT;
    buf_addc(b, object ? '{' : '[');
    size_t count = 0;
    for (int v = json_first(d, i); v >= 0; v = json_next(d, v), count++) {
        if (count)
            buf_addc(b, ',');
        if (object) {
            t = json_key(d, v, &n);
            assert_non_null(t);
            json_add_stringn(b, t, n);
            buf_addc(b, ':');
        } else {
            assert_null(json_key(d, v, NULL));
            assert_int_equal(json_at(d, i, count), v);
        }
        dump(b, d, v);
    }
    assert_int_equal(count, json_count(d, i));
    buf_addc(b, object ? '}' : ']');
}

static const struct read_row {
    const char *in;
    const char *dump; /* NULL: the same as in */
} read_rows[] = {
    {"{}", NULL},
    {"[]", NULL},
    {"null", NULL},
    {"true", NULL},
    {"false", NULL},
    {"\"top\"", NULL},
    {"0", NULL},
    {"-0", NULL},
    {"-12.5e+3", NULL},
    {"1E-7", NULL},
    {"123456789012345678901234567890", NULL}, /* kept as written */
    {" \t\r\n{ \"a\" : [ 1 , 2 , { \"b\" : null } ] , \"c\" : true } \n", "{\"a\":[1,2,{\"b\":null}],\"c\":true}"},
    {"[[],{},[[]],{\"\":{}}]", NULL},
    /* every escape; \u with a surrogate pair; \u0000 */
    {"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u20AC \\ud83d\\ude00 \\u0000\"",
     "\"\\\" \\\\ / \\u0008 \\u000c \\n \\r \\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\u0000\""},
    /* raw UTF-8 in strings and names */
    {"{\"nom\xc3\xa9\":\"\xe2\x80\x94\"}", NULL},
    /* a repeated name is kept (the last one wins in json_get) */
    {"{\"a\":1,\"a\":2}", NULL},
};

static void test_read(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof read_rows / sizeof read_rows[0]; i++) {
        const struct read_row *r = &read_rows[i];
        struct json_doc *d;
        struct json_error err;
        if (json_parse(r->in, strlen(r->in), &d, &err) != 0)
            fail_msg("row %zu (%s): %s at %zu", i, r->in, err.what, err.offset);
        struct buf b = {0};
        dump(&b, d, 0);
        const char *want = r->dump ? r->dump : r->in;
        if (strcmp(b.p, want) != 0)
            fail_msg("row %zu: want %s, got %s", i, want, b.p);
        buf_free(&b);
        json_free(d);
    }
}

/* ---- reader: errors ---- */

static const struct error_row {
    const char *in;
    size_t len;
    size_t offset;
    const char *what;
    const char *path;
} error_rows[] = {
    {S(""), 0, "expected a value", ""},
    {S("   "), 3, "expected a value", ""},
    {S("tru"), 0, "unexpected character", ""},
    {S("nul"), 0, "unexpected character", ""},
    {S("-"), 1, "expected a digit", ""},
    {S("+1"), 0, "expected a digit", ""},
    {S("NaN"), 0, "expected a digit", ""},
    {S("/* no comments */ 1"), 0, "expected a digit", ""},
    {S("01"), 1, "trailing data after the value", ""}, /* no leading zeros */
    {S("1."), 2, "expected a digit after '.'", ""},
    {S("1e"), 2, "expected a digit in the exponent", ""},
    {S("1e+"), 3, "expected a digit in the exponent", ""},
    {S("{} {}"), 3, "trailing data after the value", ""},
    {S("\"abc"), 4, "unterminated string", ""},
    {S("\"a\tb\""), 2, "control character in a string", ""},
    {S("\"a\0b\""), 2, "control character in a string", ""},
    {S("\"\\"), 1, "unterminated escape", ""},
    {S("\"\\x\""), 3, "unknown escape", ""},
    {S("\"\\u12\""), 3, "bad \\u escape", ""},
    {S("\"\\u12g4\""), 3, "bad \\u escape", ""},
    {S("\"\\ude00\""), 7, "lone low surrogate", ""},
    {S("\"\\ud83d\""), 7, "lone high surrogate", ""},
    {S("\"\\ud83d\\u0041\""), 7, "lone high surrogate", ""},
    {S("\"ok\x80\""), 3, "invalid UTF-8 in a string", ""},
    {S("\"\xc0\xaf\""), 1, "invalid UTF-8 in a string", ""},   /* overlong '/' */
    {S("\"\xed\xa0\x80\""), 1, "invalid UTF-8 in a string", ""}, /* a surrogate */
    {S("{\"a\":1,}"), 7, "expected a member name", ""},
    {S("{'a':1}"), 1, "expected a member name", ""},
    {S("{\"a\" 1}"), 5, "expected ':'", "/a"},
    {S("{\"a\":1"), 6, "expected ',' or '}'", ""},
    {S("[1 2]"), 3, "expected ',' or ']'", ""},
    {S("[1,]"), 3, "expected a digit", "/1"},
    {S("{\"a\":{\"b/c\":[1,tru]}}"), 15, "unexpected character", "/a/b~1c/1"},
    {S("{\"x~\":\"\\q\"}"), 9, "unknown escape", "/x~0"},
    {S("[{\"k\":[[\"\xff\"]]}]"), 9, "invalid UTF-8 in a string", "/0/k/0/0"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof error_rows / sizeof error_rows[0]; i++) {
        const struct error_row *r = &error_rows[i];
        struct json_doc *d = (struct json_doc *)&d; /* not NULL: the call must clear it */
        struct json_error err;
        int rc = json_parse(r->in, r->len, &d, &err);
        if (rc != -EINVAL || d != NULL)
            fail_msg("row %zu (%s): want -EINVAL and no document, got %d", i, r->in, rc);
        if (err.offset != r->offset || strcmp(err.what, r->what) != 0 || strcmp(err.path, r->path) != 0)
            fail_msg("row %zu (%s): want '%s' at %zu in '%s', got '%s' at %zu in '%s'", i, r->in, r->what,
                     r->offset, r->path, err.what, err.offset, err.path);
    }
    struct json_error err = {.offset = 21, .what = "trailing data after the value"};
    char text[64];
    json_error_text(&err, text, sizeof text);
    assert_string_equal(text, "invalid JSON at byte 21: trailing data after the value");
}

/* JSON_DEPTH_MAX containers inside the top-level one read; one more is
 * refused at its bracket, with the path down to it. */
static void test_depth(void **state)
{
    (void)state;
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = JSON_DEPTH_MAX + 1 + (size_t)extra;
        char *s = malloc(2 * n);
        assert_non_null(s);
        memset(s, '[', n);
        memset(s + n, ']', n);
        struct json_doc *d;
        struct json_error err;
        int rc = json_parse(s, 2 * n, &d, &err);
        if (!extra) {
            assert_int_equal(rc, 0);
            json_free(d);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_int_equal(err.offset, JSON_DEPTH_MAX + 1);
            assert_string_equal(err.what, "nested too deeply");
            assert_int_equal(strlen(err.path), 2 * (JSON_DEPTH_MAX + 1)); /* "/0" at every level */
        }
        free(s);
    }
    /* objects count the same */
    struct buf b = {0};
    for (int k = 0; k <= JSON_DEPTH_MAX + 1; k++)
        buf_adds(&b, "{\"a\":");
    buf_adds(&b, "1");
    for (int k = 0; k <= JSON_DEPTH_MAX + 1; k++)
        buf_addc(&b, '}');
    struct json_doc *d;
    struct json_error err;
    assert_int_equal(json_parse(b.p, b.len, &d, &err), -EINVAL);
    assert_string_equal(err.what, "nested too deeply");
    buf_free(&b);
}

/* ---- accessors ---- */

static void test_accessors(void **state)
{
    (void)state;
    const char *in = "{\"n\":[0,-9223372036854775808,9223372036854775808,1.5,2e3,\"7\"],"
                     "\"dup\":\"first\",\"e\":{},\"dup\":\"last\",\"z\":[]}";
    struct json_doc *d;
    struct json_error err;
    assert_int_equal(json_parse(in, strlen(in), &d, &err), 0);
    assert_int_equal(json_type(d, 0), JSON_OBJECT);
    assert_int_equal(json_count(d, 0), 5);

    /* the last of a repeated name wins; iteration sees both */
    int dup = json_get(d, 0, "dup");
    assert_true(dup >= 0);
    assert_string_equal(json_text(d, dup, NULL), "last");
    int seen = 0;
    for (int v = json_first(d, 0); v >= 0; v = json_next(d, v))
        seen += strcmp(json_key(d, v, NULL), "dup") == 0;
    assert_int_equal(seen, 2);
    assert_int_equal(json_get(d, 0, "missing"), -1);
    assert_int_equal(json_get(d, 0, "du"), -1);

    /* numbers */
    int n = json_get(d, 0, "n");
    int64_t x = 1;
    assert_int_equal(json_int64(d, json_at(d, n, 0), &x), 0);
    assert_int_equal(x, 0);
    assert_int_equal(json_int64(d, json_at(d, n, 1), &x), 0);
    assert_true(x == INT64_MIN);
    assert_int_equal(json_int64(d, json_at(d, n, 2), &x), -ERANGE);
    assert_int_equal(json_int64(d, json_at(d, n, 3), &x), -EINVAL);
    assert_int_equal(json_int64(d, json_at(d, n, 4), &x), -EINVAL);
    assert_int_equal(json_int64(d, json_at(d, n, 5), &x), -EINVAL); /* a string is not a number */
    assert_string_equal(json_text(d, json_at(d, n, 4), NULL), "2e3");
    assert_int_equal(json_at(d, n, 6), -1);

    /* empty containers, wrong types */
    int e = json_get(d, 0, "e"), z = json_get(d, 0, "z");
    assert_int_equal(json_first(d, e), -1);
    assert_int_equal(json_first(d, z), -1);
    assert_int_equal(json_get(d, n, "x"), -1);   /* not an object */
    assert_int_equal(json_at(d, 0, 0), -1);      /* not an array */
    assert_null(json_text(d, e, NULL));
    assert_int_equal(json_first(d, dup), -1);    /* a string holds nothing */
    assert_int_equal(json_next(d, 0), -1);       /* the top has no sibling */
    assert_null(json_key(d, 0, NULL));

    /* where values are: byte offsets and paths */
    assert_int_equal(json_offset(d, 0), 0);
    assert_int_equal(json_offset(d, n), 5);
    assert_int_equal(json_offset(d, json_at(d, n, 1)), 8);
    char path[64];
    json_path(d, json_at(d, n, 5), path, sizeof path);
    assert_string_equal(path, "/n/5");
    json_path(d, 0, path, sizeof path);
    assert_string_equal(path, "");
    json_path(d, json_at(d, n, 5), path, 3); /* cut to fit */
    assert_string_equal(path, "/n");
    json_free(d);
    json_free(NULL);
}

/* A member's pointer from its parent's: RFC 6901's escapes, cut to fit. */
static void test_pointer_join(void **state)
{
    (void)state;
    static const struct {
        const char *base, *name, *want;
        size_t size;
    } rows[] = {
        {"", "email", "/email", 64},
        {"/contacts/3", "email", "/contacts/3/email", 64},
        {"/fields", "a/b", "/fields/a~1b", 64},
        {"/fields", "~x", "/fields/~0x", 64},
        {"/fields", "", "/fields/", 64},
        {"/contacts/3", "email", "/contacts/3/e", 14}, /* cut to fit */
        {"/contacts/3", "email", "/contacts/", 11},    /* the base cut too */
        {"/fields", "a/b", "/fields/a", 11},           /* an escape never halved */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[64];
        memset(buf, 'x', sizeof buf);
        json_pointer_join(buf, rows[i].size, rows[i].base, rows[i].name, strlen(rows[i].name));
        if (strcmp(buf, rows[i].want) != 0)
            fail_msg("row %zu: '%s' + '%s' in %zu: '%s', not '%s'", i, rows[i].base, rows[i].name, rows[i].size,
                     buf, rows[i].want);
    }
    char same[32] = "/contacts/1"; /* base and buf may be the same */
    json_pointer_join(same, sizeof same, same, "title", 5);
    assert_string_equal(same, "/contacts/1/title");
}

/* Every proper prefix of a document fails (no document, no read past its
 * end: each prefix sits in a block of exactly its size for ASan). */
static void test_truncated(void **state)
{
    (void)state;
    const char *doc = "{\"a\":[1.5e+3,-0,true,false,null,\"x\\u00e9\\ud83d\\ude00\\n\"],\"b\":{\"c\":\"\xc3\xa9\"}}";
    for (size_t n = 0; n < strlen(doc); n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, doc, n);
        struct json_doc *d;
        struct json_error err;
        if (json_parse(copy, n, &d, &err) == 0)
            fail_msg("a document cut at %zu bytes parsed", n);
        assert_true(err.offset <= n);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_pointer_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
