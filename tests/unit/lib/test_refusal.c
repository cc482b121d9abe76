/* Unit tests of refusal: the five sender-authentication codes refuse the
 * account at once, other 5.7.x blocks do not, every 4.7.x is a temporary
 * refusal to count unless its text says greylisting, and anything else
 * (recipient codes, malformed or missing statuses) says nothing against
 * the account. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "refusal.h"

struct row {
    const char *status;
    const char *text;
    enum refusal_class want;
};

static const struct row rows[] = {
    /* Gmail, Outlook.com: the sender is not authenticated */
    {"5.7.25", "The IP address sending this message does not have a PTR record setup", REFUSAL_UNAUTHENTICATED},
    {"5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
     REFUSAL_UNAUTHENTICATED},
    {"5.7.27", "The sender's SPF record does not authorize the sending IP", REFUSAL_UNAUTHENTICATED},
    {"5.7.30", "This mail has been blocked because the sender is unauthenticated", REFUSAL_UNAUTHENTICATED},
    {"5.7.515", "Access denied, sending domain example.com doesn't meet the required authentication level",
     REFUSAL_UNAUTHENTICATED},
    {"5.7.515", NULL, REFUSAL_UNAUTHENTICATED},
    /* other blocks count against max_policy_blocks, not at once */
    {"5.7.1", "Rejected for policy reasons", REFUSAL_NONE},
    {"5.7.0", "Authentication required", REFUSAL_NONE},
    {"5.7.28", "unusual rate of unsolicited mail", REFUSAL_NONE},
    {"5.7.51", "RestrictDomainsToIPAddresses", REFUSAL_NONE},
    {"5.7.5150", "not a code", REFUSAL_NONE},
    {"5.7.2", NULL, REFUSAL_NONE},
    /* temporary forms: counted; 3 of a code within an hour pause (SQL) */
    {"4.7.26", "This mail has been rate limited because it is unauthenticated", REFUSAL_TEMPORARY},
    {"4.7.515", "sending domain temporarily below the authentication level", REFUSAL_TEMPORARY},
    {"4.7.28", "Our system has detected an unusual rate of unsolicited mail", REFUSAL_TEMPORARY},
    {"4.7.0", "Temporary authentication failure", REFUSAL_TEMPORARY},
    {"4.7.1", "Service temporarily unavailable", REFUSAL_TEMPORARY},
    {"4.7.1", NULL, REFUSAL_TEMPORARY},
    /* greylisting is about a new sender and recipient pair, not the account */
    {"4.7.1", "Greylisted, please try again in 300 seconds", REFUSAL_NONE},
    {"4.7.1", "<x@y.example>: Recipient address rejected: GRAYLISTED", REFUSAL_NONE},
    {"4.7.0", "grey-listed for 5 minutes", REFUSAL_NONE},
    /* recipient-side and other codes */
    {"5.1.1", "User unknown", REFUSAL_NONE},
    {"4.2.1", "Try later", REFUSAL_NONE},
    {"4.2.0", "Greylisted", REFUSAL_NONE},
    {"5.2.2", "Mailbox full", REFUSAL_NONE},
    {"2.7.26", "not a refusal", REFUSAL_NONE},
    /* malformed and missing */
    {"5.7.", NULL, REFUSAL_NONE},
    {"5.7.26 ", NULL, REFUSAL_NONE},
    {"5.7.x", NULL, REFUSAL_NONE},
    {"57.26", NULL, REFUSAL_NONE},
    {"", "5.7.26 in the text alone does not decide", REFUSAL_NONE},
    {NULL, NULL, REFUSAL_NONE},
};

static void test_classes(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum refusal_class got = refusal_classify(rows[i].status, rows[i].text);
        if (got != rows[i].want) {
            fprintf(stderr, "row %zu \"%s\" \"%s\": got %s, want %s\n", i,
                    rows[i].status ? rows[i].status : "(null)", rows[i].text ? rows[i].text : "(null)",
                    refusal_class_name(got), refusal_class_name(rows[i].want));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(refusal_class_name(REFUSAL_NONE), "none");
    assert_string_equal(refusal_class_name(REFUSAL_UNAUTHENTICATED), "unauthenticated");
    assert_string_equal(refusal_class_name(REFUSAL_TEMPORARY), "temporary");
    assert_string_equal(refusal_class_name(REFUSAL_CLASS_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
