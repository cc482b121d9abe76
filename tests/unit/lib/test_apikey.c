/* Unit tests for apikey: the key format built from given bytes (uniform
 * base62 by rejection, running out of bytes), the parser of presented
 * keys, the scope list and the stored hash, as tables of inputs and what
 * each must give. */
#include "apikey.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define SECRET43(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define ID12(c) c c c c c c c c c c c c

/* ---- apikey_format: bytes in, key out */

struct format_row {
    const char *what;
    unsigned char fill;   /* every byte of the input has this value ... */
    size_t n;             /* ... and there are n of them */
    size_t outlen;
    int rc;
    const char *key;      /* when rc is 0 */
};

static const struct format_row format_rows[] = {
    {"zeros are '0'", 0, 55, APIKEY_LEN + 1, 0, "rl_" ID12("0") "_" SECRET43("0")},
    {"61 is 'z'", 61, 55, APIKEY_LEN + 1, 0, "rl_" ID12("z") "_" SECRET43("z")},
    {"62 wraps to '0'", 62, 55, APIKEY_LEN + 1, 0, "rl_" ID12("0") "_" SECRET43("0")},
    {"247 is the last byte taken", 247, 55, APIKEY_LEN + 1, 0, "rl_" ID12("z") "_" SECRET43("z")},
    {"10 is 'A'", 10, 55, APIKEY_LEN + 1, 0, "rl_" ID12("A") "_" SECRET43("A")},
    {"36 is 'a'", 36, 55, APIKEY_LEN + 1, 0, "rl_" ID12("a") "_" SECRET43("a")},
    {"extra bytes are left unused", 1, 200, APIKEY_LEN + 1, 0, "rl_" ID12("1") "_" SECRET43("1")},
    {"one byte short", 0, 54, APIKEY_LEN + 1, -EAGAIN, NULL},
    {"no bytes", 0, 0, APIKEY_LEN + 1, -EAGAIN, NULL},
    {"248 is rejected", 248, 1000, APIKEY_LEN + 1, -EAGAIN, NULL},
    {"255 is rejected", 255, 1000, APIKEY_LEN + 1, -EAGAIN, NULL},
    {"no room for the NUL", 0, 55, APIKEY_LEN, -ERANGE, NULL},
};

static void test_format_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof format_rows / sizeof format_rows[0]; i++) {
        const struct format_row *r = &format_rows[i];
        unsigned char random[1000];
        memset(random, r->fill, sizeof random);
        char out[APIKEY_LEN + 1];
        memset(out, 'x', sizeof out);
        int rc = apikey_format(random, r->n, out, r->outlen);
        if (rc != r->rc)
            fail_msg("%s: returned %d, expected %d", r->what, rc, r->rc);
        if (r->rc == 0)
            assert_string_equal(out, r->key);
        else if (memchr(out, '_', sizeof out))
            fail_msg("%s: out holds part of a key after an error", r->what);
    }
}

/* Rejected bytes are skipped, not mapped: 248..255 between the bytes that
 * count change nothing. */
static void test_format_skips_rejected_bytes(void **state)
{
    (void)state;
    unsigned char random[120];
    size_t n = 0;
    for (int i = 0; i < 55; i++) {
        random[n++] = (unsigned char)(248 + i % 8);
        random[n++] = (unsigned char)i;
    }
    char out[APIKEY_LEN + 1];
    assert_int_equal(apikey_format(random, n, out, sizeof out), 0);
    assert_string_equal(out, "rl_0123456789AB_CDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs");
    /* the last byte was needed: one fewer and it runs out */
    assert_int_equal(apikey_format(random, n - 1, out, sizeof out), -EAGAIN);
}

/* Every byte value below 248 is taken once: each of the 62 characters
 * comes out exactly four times, which is what makes the key uniform. */
static void test_format_is_uniform_over_accepted_bytes(void **state)
{
    (void)state;
    int count[256] = {0};
    unsigned char random[55];
    for (int v = 0; v < 256; v++) {
        memset(random, v, sizeof random);
        char out[APIKEY_LEN + 1];
        int rc = apikey_format(random, sizeof random, out, sizeof out);
        if (v >= 248) {
            assert_int_equal(rc, -EAGAIN);
            continue;
        }
        assert_int_equal(rc, 0);
        count[(unsigned char)out[3]]++;
    }
    int chars = 0;
    for (int c = 0; c < 256; c++) {
        if (!count[c])
            continue;
        chars++;
        if (count[c] != 4)
            fail_msg("'%c' comes from %d byte values, not 4", c, count[c]);
    }
    assert_int_equal(chars, 62);
}

/* ---- apikey_parse: presented strings */

struct parse_row {
    const char *key;
    int rc;
    const char *id;
};

#define GOOD_ID "AbC123xyz789"
#define GOOD_SECRET "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg"

static const struct parse_row parse_rows[] = {
    {"rl_" GOOD_ID "_" GOOD_SECRET, 0, GOOD_ID},
    {"rl_" ID12("0") "_" SECRET43("z"), 0, ID12("0")},
    {"RL_" GOOD_ID "_" GOOD_SECRET, -1, ""},
    {"rl-" GOOD_ID "_" GOOD_SECRET, -1, ""},
    {"xrl_" GOOD_ID "_" GOOD_SECRET, -1, ""},
    {" rl_" GOOD_ID "_" GOOD_SECRET, -1, ""},
    {"rl_" GOOD_ID "_" GOOD_SECRET " ", -1, ""},
    {"rl_" GOOD_ID "_" GOOD_SECRET "\n", -1, ""},
    {"rl_" GOOD_ID "_" GOOD_SECRET "a", -1, ""},
    {"rl_" GOOD_ID "_" "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg", -1, ""},   /* secret of 42 */
    {"rl_" "AbC123xyz78" "_" GOOD_SECRET "a", -1, ""},                            /* id of 11 */
    {"rl_" GOOD_ID "0" "_" "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg", -1, ""}, /* id of 13 */
    {"rl_" GOOD_ID GOOD_SECRET "a", -1, ""},                                      /* no separator */
    {"rl_" GOOD_ID "-" GOOD_SECRET, -1, ""},
    {"rl_" "AbC123-yz789" "_" GOOD_SECRET, -1, ""},
    {"rl_" GOOD_ID "_" "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcde_", -1, ""},
    {"rl_" GOOD_ID "_" "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcd+/", -1, ""},
    {"rl_" GOOD_ID "_" "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcd\xC3\xA9", -1, ""},
    {"rl_" "AbC123xyz7\xC3\xA9" "_" GOOD_SECRET, -1, ""},
    {"rl_", -1, ""},
    {"rl_" GOOD_ID, -1, ""},
    {"rl_" GOOD_ID "_", -1, ""},
    {"", -1, ""},
    {"Bearer rl_" GOOD_ID "_" GOOD_SECRET, -1, ""},
};

static void test_parse_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_rows / sizeof parse_rows[0]; i++) {
        const struct parse_row *r = &parse_rows[i];
        char id[APIKEY_ID_LEN + 1];
        memset(id, 'x', sizeof id);
        int rc = apikey_parse(r->key, id);
        if (rc != r->rc)
            fail_msg("'%s': returned %d, expected %d", r->key, rc, r->rc);
        if (strcmp(id, r->id) != 0)
            fail_msg("'%s': id '%.13s', expected '%s'", r->key, id, r->id);
    }
    char id[APIKEY_ID_LEN + 1];
    assert_int_equal(apikey_parse(NULL, id), -1);
}

/* What format writes, parse reads back, whatever the bytes. */
static void test_format_then_parse(void **state)
{
    (void)state;
    unsigned char random[128];
    for (int seed = 0; seed < 64; seed++) {
        uint32_t x = 2463534242u + (uint32_t)seed;
        for (size_t i = 0; i < sizeof random; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            random[i] = (unsigned char)x;
        }
        char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
        assert_int_equal(apikey_format(random, sizeof random, key, sizeof key), 0);
        assert_int_equal(strlen(key), APIKEY_LEN);
        assert_int_equal(apikey_parse(key, id), 0);
        assert_memory_equal(id, key + 3, APIKEY_ID_LEN);
    }
}

/* ---- scopes */

struct scope_row {
    const char *scope;
    int valid;
};

static const struct scope_row scope_rows[] = {
    {"contacts:read", 1},     {"contacts:write", 1},     {"enrollments:read", 1},   {"enrollments:write", 1},
    {"sequences:read", 1},    {"sequences:write", 1},    {"suppressions:read", 1},  {"suppressions:write", 1},
    {"accounts:read", 1},     {"accounts:write", 1},     {"stats:read", 1},         {"events:read", 1},
    {"webhooks:write", 1},    {"*", 1},
    {"", 0},                  {"contacts", 0},           {"contacts:", 0},          {"Contacts:read", 0},
    {"contacts:READ", 0},     {" contacts:read", 0},     {"contacts:read ", 0},     {"contacts:read,", 0},
    {"stats:write", 0},       {"events:write", 0},       {"webhooks:read", 0},      {"contacts:*", 0},
    {"**", 0},                {"admin", 0},              {"contacts:delete", 0},
};

static void test_scope_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof scope_rows / sizeof scope_rows[0]; i++)
        if (apikey_scope_valid(scope_rows[i].scope) != scope_rows[i].valid)
            fail_msg("'%s': expected %s", scope_rows[i].scope, scope_rows[i].valid ? "valid" : "invalid");
    assert_int_equal(apikey_scope_valid(NULL), 0);
    /* the list holds the 14 valid scopes above, and nothing else */
    size_t n = 0;
    while (apikey_scopes[n])
        n++;
    assert_int_equal(n, 14);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(apikey_scopes[i], scope_rows[i].scope);
}

/* ---- the stored hash: SHA-256 of the whole string */

static void test_hash(void **state)
{
    (void)state;
    static const struct {
        const char *key, *hex;
    } rows[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        unsigned char h[APIKEY_HASH_LEN];
        char hex[2 * APIKEY_HASH_LEN + 1];
        assert_int_equal(apikey_hash(rows[i].key, h), 0);
        for (size_t j = 0; j < sizeof h; j++)
            snprintf(hex + 2 * j, 3, "%02x", h[j]);
        assert_string_equal(hex, rows[i].hex);
    }
    /* a key's hash depends on every character, the id's included */
    unsigned char a[APIKEY_HASH_LEN], b[APIKEY_HASH_LEN];
    assert_int_equal(apikey_hash("rl_" GOOD_ID "_" GOOD_SECRET, a), 0);
    assert_int_equal(apikey_hash("rl_" "AbC123xyz780" "_" GOOD_SECRET, b), 0);
    assert_memory_not_equal(a, b, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_rows),
        cmocka_unit_test(test_format_skips_rejected_bytes),
        cmocka_unit_test(test_format_is_uniform_over_accepted_bytes),
        cmocka_unit_test(test_parse_rows),
        cmocka_unit_test(test_format_then_parse),
        cmocka_unit_test(test_scope_rows),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
