/* Unit tests for whsig: the Standard Webhooks specification's own example
 * (its secret, id, timestamp, payload and the signature it gives), and the
 * secrets relance makes and refuses. The integration test checks real
 * requests with the npm standardwebhooks package. */
#include "whsig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_the_specification_example(void **state)
{
    (void)state;
    char sig[WHSIG_SIGNATURE_MAX];
    const char *body = "{\"test\": 2432232314}";
    assert_int_equal(whsig_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                "1614265330", body, strlen(body), sig, sizeof sig), 0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* one byte of the body, the id or the timestamp changes it */
    char other[WHSIG_SIGNATURE_MAX];
    assert_int_equal(whsig_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                "1614265331", body, strlen(body), other, sizeof other), 0);
    assert_string_not_equal(sig, other);
}

struct row {
    const char *secret;
    int valid;
};

static const struct row secrets[] = {
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1},   /* 24 bytes */
    {"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1}, /* 32 */
    {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0},         /* no prefix */
    {"whsec_", 0},
    {"whsec_c2hvcnQ=", 0},                            /* 5 bytes: too short */
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", 0},    /* not base64 */
    {"whsec_MfKQ9r8GKYqrTwjUPD8I=PZIo2LaLaSw", 0},   /* padding inside */
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw", 0},
};

static void test_secrets(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (whsig_secret_valid(secrets[i].secret) != secrets[i].valid)
            fail_msg("%s: want valid=%d", secrets[i].secret, secrets[i].valid);
    char sig[WHSIG_SIGNATURE_MAX];
    assert_int_equal(whsig_sign("whsec_c2hvcnQ=", "1", "2", "x", 1, sig, sizeof sig), -1);
}

/* A made secret reads back, and signs. */
static void test_format(void **state)
{
    (void)state;
    unsigned char key[32];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char)(i * 37 + 11);
    char s[WHSIG_SECRET_MAX], sig[WHSIG_SIGNATURE_MAX];
    assert_int_equal(whsig_secret_format(key, sizeof key, s, sizeof s), 0);
    assert_int_equal(strncmp(s, "whsec_", 6), 0);
    assert_int_equal(strlen(s), 6 + 44);
    assert_true(whsig_secret_valid(s));
    assert_int_equal(whsig_sign(s, "7", "1700000000", "{}", 2, sig, sizeof sig), 0);
    assert_int_equal(strlen(sig), 3 + 44);
    assert_int_equal(whsig_secret_format(key, 8, s, sizeof s), -1);
    assert_int_equal(whsig_secret_format(key, sizeof key, s, 20), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_specification_example),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
