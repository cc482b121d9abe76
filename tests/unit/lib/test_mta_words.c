/* Unit tests of mta_words: each common MTA's "no such user" wording
 * reads as user_unknown in any case, host and full-mailbox wordings keep
 * their own reasons, words about our sender never make the recipient
 * unknown, and the ambiguous wordings (OpenSMTPD's "Invalid recipient")
 * stay ambiguous. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "mta_words.h"

struct row {
    const char *text;
    enum mta_words_reason want;
};

static const struct row rows[] = {
    /* Exim */
    {"Unrouteable address", MTA_WORDS_USER_UNKNOWN},
    {"UNROUTEABLE ADDRESS", MTA_WORDS_USER_UNKNOWN},
    {"<x@y.example>: Recipient address rejected: Unrouteable address", MTA_WORDS_USER_UNKNOWN},
    {"unknown user", MTA_WORDS_USER_UNKNOWN},
    {"No Such User Here", MTA_WORDS_USER_UNKNOWN},
    {"Unknown local part x in <x@y.example>", MTA_WORDS_USER_UNKNOWN},
    {"Unrouteable mail domain \"nowhere.example\"", MTA_WORDS_HOST_UNKNOWN},
    /* Postfix */
    {"<x@y.example>: Recipient address rejected: User unknown in local recipient table", MTA_WORDS_USER_UNKNOWN},
    {"<x@y.example>: Recipient address rejected: User unknown in virtual mailbox table", MTA_WORDS_USER_UNKNOWN},
    {"<x@y.example>: Recipient address rejected: User unknown", MTA_WORDS_USER_UNKNOWN},
    {"<x@nowhere.example>: Recipient address rejected: Domain not found", MTA_WORDS_HOST_UNKNOWN},
    /* Sendmail, Courier */
    {"<x@y.example>... User unknown", MTA_WORDS_USER_UNKNOWN},
    {"User unknown.", MTA_WORDS_USER_UNKNOWN},
    {"No such user", MTA_WORDS_USER_UNKNOWN},
    /* qmail */
    {"sorry, no mailbox here by that name. (#5.1.1)", MTA_WORDS_USER_UNKNOWN},
    {"Sorry, No Mailbox Here By That Name", MTA_WORDS_USER_UNKNOWN},
    /* Exchange */
    {"Recipient not found by SMTP address lookup", MTA_WORDS_USER_UNKNOWN},
    {"RESOLVER.ADR.RecipNotFound; not found", MTA_WORDS_USER_UNKNOWN},
    {"resolver.adr.recipientnotfound; Recipient not found", MTA_WORDS_USER_UNKNOWN},
    /* Gmail */
    {"The email account that you tried to reach does not exist. Please try double-checking the recipient's email "
     "address for typos",
     MTA_WORDS_USER_UNKNOWN},
    /* the same words with an enhanced status in front: words do not care */
    {"5.1.1 <x@y.example>: Recipient address rejected: User unknown", MTA_WORDS_USER_UNKNOWN},
    {"5.0.0 Unrouteable address", MTA_WORDS_USER_UNKNOWN},
    /* ambiguous: OpenSMTPD, the RFC 5321 generic text */
    {"Invalid recipient", MTA_WORDS_AMBIGUOUS},
    {"invalid RECIPIENT: <x@y.example>", MTA_WORDS_AMBIGUOUS},
    {"5.0.0 Invalid recipient", MTA_WORDS_AMBIGUOUS},
    {"Requested action not taken: mailbox unavailable", MTA_WORDS_AMBIGUOUS},
    /* negative: full mailboxes, blocks, our sender */
    {"Mailbox full", MTA_WORDS_MAILBOX_FULL},
    {"user x: mailbox is full", MTA_WORDS_MAILBOX_FULL},
    {"5.7.1 <x@y.example>: Recipient address rejected: Rejected for policy reasons", MTA_WORDS_POLICY},
    {"5.7.1 Service unavailable; client host blocked using Spamhaus", MTA_WORDS_POLICY},
    {"Message rejected as spam", MTA_WORDS_POLICY},
    {"Sender unknown user", MTA_WORDS_NONE},
    {"<a@acme.example>: Sender address rejected: Domain not found", MTA_WORDS_NONE},
    {"<a@acme.example>: Sender address rejected: Access denied", MTA_WORDS_POLICY},
    {"Syntax error", MTA_WORDS_NONE},
    {"", MTA_WORDS_NONE},
    {NULL, MTA_WORDS_NONE},
};

static void test_reasons(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum mta_words_reason got = mta_words_reason(rows[i].text);
        if (got != rows[i].want) {
            fprintf(stderr, "row %zu \"%s\": got %s, want %s\n", i, rows[i].text ? rows[i].text : "(null)",
                    mta_words_reason_name(got), mta_words_reason_name(rows[i].want));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mta_words_reason_name(MTA_WORDS_USER_UNKNOWN), "user_unknown");
    assert_string_equal(mta_words_reason_name(MTA_WORDS_AMBIGUOUS), "ambiguous");
    assert_string_equal(mta_words_reason_name(MTA_WORDS_REASON_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
