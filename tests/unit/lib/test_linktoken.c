/* Unit tests for linktoken: tokens read back; every changed character,
 * every changed bit of the signed bytes and every shortened token is
 * refused; a wrong secret is refused and the previous one accepted; the
 * token is URL-safe and holds no address. */
#include "linktoken.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const char *const current = "0123456789abcdef0123456789abcdef-current";
static const char *const previous = "fedcba9876543210fedcba9876543210-previous";
static const char *const other = "an entirely different secret of enough length";

struct row {
    char kind;
    const char *message_id;
    const char *data;
};

static const struct row rows[] = {
    {LINKTOKEN_UNSUBSCRIBE, "3f2a9c0e5b7d41e8a6c2d9f0b1e4a7c3@mail.acme.example", NULL},
    {LINKTOKEN_UNSUBSCRIBE, "a@b", NULL},
    {LINKTOKEN_OPEN, "0000000000000000000000000000000@x.example", NULL},
    {LINKTOKEN_CLICK, "5e1@acme.example", "https://acme.example/pricing?plan=pro&utm=x#top"},
};

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char tok[LINKTOKEN_MAX];
        const struct row *r = &rows[i];
        size_t dn = r->data ? strlen(r->data) : 0;
        assert_int_equal(linktoken_make(current, r->kind, r->message_id, r->data, dn, tok, sizeof tok), 0);
        /* URL-safe, and nothing of the id or an address in clear */
        assert_int_equal(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                         strlen(tok));
        assert_null(strchr(tok, '@'));
        struct linktoken t;
        const char *secrets[] = {current, previous};
        assert_int_equal(linktoken_open(secrets, 2, tok, strlen(tok), &t), 0);
        assert_int_equal(t.kind, r->kind);
        assert_string_equal(t.message_id, r->message_id);
        assert_int_equal(t.data_len, dn);
        if (dn)
            assert_memory_equal(t.data, r->data, dn);
    }
}

/* Every character of a token replaced by each other character of the
 * alphabet, and every bit of its bytes flipped: never accepted. */
static void test_tampering(void **state)
{
    (void)state;
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *secrets[] = {current, previous};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char tok[LINKTOKEN_MAX], bad[LINKTOKEN_MAX];
        size_t dn = rows[i].data ? strlen(rows[i].data) : 0;
        assert_int_equal(linktoken_make(current, rows[i].kind, rows[i].message_id, rows[i].data, dn, tok, sizeof tok),
                         0);
        size_t len = strlen(tok);
        for (size_t p = 0; p < len; p++) {
            for (size_t a = 0; a < 64; a++) {
                if (alphabet[a] == tok[p])
                    continue;
                memcpy(bad, tok, len + 1);
                bad[p] = alphabet[a];
                struct linktoken t;
                int rc = linktoken_open(secrets, 2, bad, len, &t);
                if (rc != -EACCES && rc != -EINVAL)
                    fail_msg("row %zu: character %zu changed to '%c' gave %d", i, p, alphabet[a], rc);
            }
        }
    }
}

/* Every bit of the signed bytes, flipped: the token re-encoded from the
 * changed bytes (a well-formed token, only its tag wrong). */
static void test_every_bit(void **state)
{
    (void)state;
    char tok[LINKTOKEN_MAX];
    const char *id = "3f2a9c0e5b7d41e8a6c2d9f0b1e4a7c3@mail.acme.example";
    assert_int_equal(linktoken_make(current, 'u', id, NULL, 0, tok, sizeof tok), 0);
    size_t len = strlen(tok);
    /* every bit: flipping bit b of character p's 6-bit value changes
     * the bytes under it */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *secrets[] = {current};
    for (size_t p = 0; p < len; p++) {
        int v = (int)(strchr(alphabet, tok[p]) - alphabet);
        for (int b = 0; b < 6; b++) {
            char bad[LINKTOKEN_MAX];
            memcpy(bad, tok, len + 1);
            bad[p] = alphabet[v ^ (1 << b)];
            struct linktoken t;
            int rc = linktoken_open(secrets, 1, bad, len, &t);
            assert_true(rc == -EACCES || rc == -EINVAL);
        }
    }
}

static void test_truncated_and_extended(void **state)
{
    (void)state;
    char tok[LINKTOKEN_MAX];
    assert_int_equal(linktoken_make(current, 'u', "abc@acme.example", NULL, 0, tok, sizeof tok), 0);
    const char *secrets[] = {current};
    struct linktoken t;
    size_t len = strlen(tok);
    for (size_t n = 0; n < len; n++) {
        int rc = linktoken_open(secrets, 1, tok, n, &t);
        if (rc != -EACCES && rc != -EINVAL)
            fail_msg("the first %zu of %zu characters gave %d", n, len, rc);
    }
    char longer[LINKTOKEN_MAX + 8];
    snprintf(longer, sizeof longer, "%sAA", tok);
    assert_true(linktoken_open(secrets, 1, longer, strlen(longer), &t) < 0);
    snprintf(longer, sizeof longer, "%s=", tok);
    assert_int_equal(linktoken_open(secrets, 1, longer, strlen(longer), &t), -EINVAL);
    assert_int_equal(linktoken_open(secrets, 1, "", 0, &t), -EINVAL);
    assert_int_equal(linktoken_open(secrets, 1, "../../etc/passwd", 16, &t), -EINVAL);
}

static void test_secrets(void **state)
{
    (void)state;
    char tok[LINKTOKEN_MAX];
    struct linktoken t;
    assert_int_equal(linktoken_make(previous, 'u', "abc@acme.example", NULL, 0, tok, sizeof tok), 0);
    /* a wrong secret */
    const char *wrong[] = {other};
    assert_int_equal(linktoken_open(wrong, 1, tok, strlen(tok), &t), -EACCES);
    /* made before the rotation: the previous secret, second, opens it */
    const char *rotated[] = {current, previous};
    assert_int_equal(linktoken_open(rotated, 2, tok, strlen(tok), &t), 1);
    assert_string_equal(t.message_id, "abc@acme.example");
    /* after the previous one is dropped, no longer */
    assert_int_equal(linktoken_open(rotated, 1, tok, strlen(tok), &t), -EACCES);
    /* a short secret neither signs nor opens */
    assert_false(linktoken_secret_ok("short"));
    assert_int_equal(linktoken_make("short", 'u', "abc@acme.example", NULL, 0, tok, sizeof tok), -EINVAL);
    const char *shorts[] = {"short", current};
    assert_int_equal(linktoken_make(current, 'u', "abc@acme.example", NULL, 0, tok, sizeof tok), 0);
    assert_int_equal(linktoken_open(shorts, 2, tok, strlen(tok), &t), 1);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char tok[LINKTOKEN_MAX];
    assert_int_equal(linktoken_make(current, 'x', "abc@acme.example", NULL, 0, tok, sizeof tok), -EINVAL);
    assert_int_equal(linktoken_make(current, 'u', "", NULL, 0, tok, sizeof tok), -EINVAL);
    assert_int_equal(linktoken_make(current, 'u', "<abc@acme.example>", NULL, 0, tok, sizeof tok), -EINVAL);
    assert_int_equal(linktoken_make(current, 'u', "a b@acme.example", NULL, 0, tok, sizeof tok), -EINVAL);
    assert_int_equal(linktoken_make(current, 'u', "abc@acme.example", NULL, 0, tok, 10), -ENOSPC);
    char id[LINKTOKEN_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_int_equal(linktoken_make(current, 'u', id, NULL, 0, tok, sizeof tok), -EINVAL);
    id[LINKTOKEN_ID_MAX] = '\0';
    assert_int_equal(linktoken_make(current, 'u', id, NULL, 0, tok, sizeof tok), 0);
    /* the same inputs give the same token: a link is stable */
    char again[LINKTOKEN_MAX];
    assert_int_equal(linktoken_make(current, 'u', id, NULL, 0, again, sizeof again), 0);
    assert_string_equal(tok, again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_every_bit),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
