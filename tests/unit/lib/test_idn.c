/* Unit tests of internationalised addresses: idn's domain conversion
 * (UTS #46 non-transitional, A-labels, lower case), contact's address
 * normalisation built on it (one mailbox, one spelling; UTF-8 local
 * parts), and the From/To headers message writes for such addresses.
 * Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "contact.h"
#include "idn.h"
#include "message.h"

static void test_domain_to_ascii(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out, *err; /* out NULL: refused with err */
    } rows[] = {
        {"b\xC3\xBC" "cher.example", "xn--bcher-kva.example", NULL},         /* bücher */
        {"B\xC3\x9C" "CHER.EXAMPLE", "xn--bcher-kva.example", NULL},         /* BÜCHER: mapped to lower case */
        {"stra\xC3\x9F" "e.de", "xn--strae-oqa.de", NULL},                   /* straße: ß kept (nontransitional) */
        {"fa\xC3\x9F.de", "xn--fa-hia.de", NULL},                            /* not fass.de */
        {"xn--bcher-kva.example", "xn--bcher-kva.example", NULL},            /* already an A-label */
        {"XN--BCHER-KVA.Example", "xn--bcher-kva.example", NULL},            /* mixed-case A-label */
        {"Xn--Bcher-Kva.example", "xn--bcher-kva.example", NULL},
        {"\xE4\xBE\x8B\xE5\xAD\x90.\xE4\xB8\xAD\xE5\x9B\xBD", "xn--fsqu00a.xn--fiqs8s", NULL}, /* 例子.中国 */
        {"acme\xE3\x80\x82" "example", "acme.example", NULL},               /* ideographic full stop */
        {"b\xEF\xBD\x95" "cher.example", "bucher.example", NULL},           /* full-width u */
        {"Acme.EXAMPLE", "acme.example", NULL},                              /* plain: lower-cased only */
        {"ab--cd.example", "ab--cd.example", NULL},                          /* plain ASCII is never refused here */
        {"-bad-.example", "-bad-.example", NULL},                            /* ... contact.c refuses it */
        {"-b\xC3\xBC" "cher-.example", NULL, "a domain label starts or ends with '-'"},
        {"xn--zz.example", NULL, "not a valid internationalised domain name (IDNA2008"},
        {"xn--abc.example", NULL, "not a valid internationalised domain name (IDNA2008"},
        {"b\xC3\xBC" "cher.ab--cd.example", NULL, "not a valid internationalised domain name (IDNA2008"},
        {"b\xC3\xBC" "\xff" "cher.example", NULL, "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[CONTACT_DOMAIN_MAX + 1], why[200] = "";
        int rc = idn_domain_to_ascii(rows[i].in, strlen(rows[i].in), out, sizeof out, why, sizeof why);
        if (rows[i].out) {
            if (rc != 0)
                fail_msg("'%s' refused: %s", rows[i].in, why);
            assert_string_equal(out, rows[i].out);
        } else {
            if (rc != -EINVAL)
                fail_msg("'%s': rc %d ('%s'), want -EINVAL", rows[i].in, rc, out);
            if (!strstr(why, rows[i].err))
                fail_msg("'%s': got '%s', want '%s'", rows[i].in, why, rows[i].err);
        }
    }
    /* Lengths are the A-labels': 55 ü make a 61-byte A-label, 60 ü a
     * 66-byte one; five labels of 61 bytes make a 317-byte domain. */
    static const struct {
        int per_label, labels;
        const char *err;
    } big_rows[] = {
        {55, 1, NULL},
        {60, 1, "a domain label is longer than 63 bytes"},
        {55, 5, "the domain is longer than 253 bytes"},
    };
    for (size_t i = 0; i < sizeof big_rows / sizeof big_rows[0]; i++) {
        char big[800], out[CONTACT_DOMAIN_MAX + 1], why[200] = "";
        size_t o = 0;
        for (int l = 0; l < big_rows[i].labels; l++) {
            for (int k = 0; k < big_rows[i].per_label; k++) {
                memcpy(big + o, "\xC3\xBC", 2);
                o += 2;
            }
            big[o++] = '.';
        }
        memcpy(big + o, "example", 8);
        int rc = idn_domain_to_ascii(big, strlen(big), out, sizeof out, why, sizeof why);
        if (!big_rows[i].err) {
            if (rc != 0)
                fail_msg("%d x %d: refused: %s", big_rows[i].labels, big_rows[i].per_label, why);
            assert_int_equal(strlen(out), 61 + 1 + 7);
            continue;
        }
        assert_true(rc == -EINVAL || rc == -ENOSPC);
        if (!strstr(why, big_rows[i].err))
            fail_msg("%d x %d: got '%s', want '%s'", big_rows[i].labels, big_rows[i].per_label, why,
                     big_rows[i].err);
    }
}

/* One mailbox, one spelling: every way of writing it gives the same. */
static void test_one_spelling(void **state)
{
    (void)state;
    static const char *const same[] = {
        "user@b\xC3\xBC" "cher.example",
        "user@xn--bcher-kva.example",
        "user@XN--BCHER-KVA.EXAMPLE",
        "user@B\xC3\x9C" "CHER.example",
        " user@B\xC3\xBC" "cher.Example\xC2\xA0",
        "user@b\x75\xCC\x88" "cher.example", /* u + combining diaeresis: NFC makes it ü */
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char out[CONTACT_EMAIL_MAX + 1], err[300] = "";
        if (contact_email_normalize(same[i], out, err, sizeof err) != 0)
            fail_msg("'%s' refused: %s", same[i], err);
        assert_string_equal(out, "user@xn--bcher-kva.example");
    }
}

static void test_email_idn(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out, *err; /* out NULL: refused with err */
    } rows[] = {
        {"USER@B\xC3\x9C" "CHER.example", "USER@xn--bcher-kva.example", NULL}, /* the local part keeps its case */
        {"a@stra\xC3\x9F" "e.de", "a@xn--strae-oqa.de", NULL},
        {"jos\xC3\xA9@example.com", "jos\xC3\xA9@example.com", NULL},         /* RFC 6531 local part */
        {"Jos\xC3\xA9.Mar\xC3\xAD" "a@B\xC3\x9C" "CHER.example", "Jos\xC3\xA9.Mar\xC3\xAD" "a@xn--bcher-kva.example",
         NULL},
        {"\xE7\x94\xB0\xE4\xB8\xAD@\xE4\xBE\x8B\xE5\xAD\x90.\xE4\xB8\xAD\xE5\x9B\xBD", /* 田中@例子.中国 */
         "\xE7\x94\xB0\xE4\xB8\xAD@xn--fsqu00a.xn--fiqs8s", NULL},
        {"a@-bad-.example", NULL, "invalid email address 'a@-bad-.example': a domain label starts or ends with '-'"},
        {"a@-b\xC3\xBC" "cher.example", NULL, "a domain label starts or ends with '-'"},
        {"a@b\xC3\xBC" "cher..example", NULL, "the domain has an empty label (..)"},
        {"a@.b\xC3\xBC" "cher.example", NULL, "the domain starts with a dot"},
        {"a@b\xC3\xBC" "cher.example.", NULL, "the domain ends with a dot"},
        {"a@xn--bcher-kva.example.", NULL, "the domain ends with a dot"},
        {"a@b\xC3\xBC" "cher", NULL, "the domain needs a dot"},
        {"a@xn--zz.example", NULL, "not a valid internationalised domain name (IDNA2008"},
        {"a@b\xC3\xBC" "cher_x.example", NULL, "a character other than letters, digits"},
        {"a@b\xC3\xBC" "cher\xE2\x80\x8B.example", NULL, "a space or an invisible character"}, /* U+200B */
        {"jo\xC2\xA0se@example.com", NULL, "before '@' holds a space or an invisible character"},
        {"jo\xC2\x85se@example.com", NULL, "before '@' holds a space or an invisible character"},  /* C1 NEL */
        {"jo\xC3se@example.com", NULL, "before '@' is not valid UTF-8"},
        {"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
         "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
         "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9@example.com", /* 33 é: 66 bytes */
         NULL, "longer than 64 bytes"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[CONTACT_EMAIL_MAX + 1], err[300] = "";
        int rc = contact_email_normalize(rows[i].in, out, err, sizeof err);
        if (rows[i].out) {
            if (rc != 0)
                fail_msg("'%s' refused: %s", rows[i].in, err);
            assert_string_equal(out, rows[i].out);
        } else {
            if (rc != -EINVAL)
                fail_msg("'%s' accepted as '%s'", rows[i].in, out);
            if (!strstr(err, rows[i].err))
                fail_msg("'%s': got '%s', want '%s'", rows[i].in, err, rows[i].err);
        }
    }
}

static void test_domains_idn(void **state)
{
    (void)state;
    char out[CONTACT_DOMAIN_MAX + 1], err[300] = "";
    assert_int_equal(contact_domain_normalize(" B\xC3\xBC" "cher.Example ", out, err, sizeof err), 0);
    assert_string_equal(out, "xn--bcher-kva.example");
    assert_int_equal(contact_domain_normalize("xn--zz.example", out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid domain 'xn--zz.example': not a valid internationalised domain name"));
    assert_int_equal(contact_company_domain_normalize("https://www.B\xC3\xBC" "cher.example/about", out, err,
                                                      sizeof err), 0);
    assert_string_equal(out, "xn--bcher-kva.example");
    /* the company domain derived from an email is its ASCII domain */
    char email[CONTACT_EMAIL_MAX + 1];
    assert_int_equal(contact_email_normalize("a@B\xC3\xBC" "cher.example", email, err, sizeof err), 0);
    assert_string_equal(contact_email_company_domain(email), "xn--bcher-kva.example");
}

/* The value of header name in msg (unfolded), malloc'd. */
static char *header(const char *msg, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = msg; p && *p && !(p[0] == '\r' && p[1] == '\n'); p = strstr(p, "\r\n") + 2) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 2, *e = strstr(v, "\r\n");
            return strndup(v, (size_t)(e - v));
        }
    }
    return NULL;
}

static void test_message_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *want_from, *want_to; /* want NULL: refused */
    } rows[] = {
        {"alice@acme.example", "user@xn--bcher-kva.example", "alice@acme.example", "user@xn--bcher-kva.example"},
        /* a contact stored with a UTF-8 domain (before imports converted it) still gets a valid header */
        {"alice@acme.example", "user@B\xC3\xBC" "cher.example", "alice@acme.example", "user@xn--bcher-kva.example"},
        {"alice@b\xC3\xBC" "cher.example", "bob@corp.example", "alice@xn--bcher-kva.example", "bob@corp.example"},
        /* RFC 6532: the UTF-8 local part as is (only sent over SMTPUTF8) */
        {"alice@acme.example", "jos\xC3\xA9@example.com", "alice@acme.example", "jos\xC3\xA9@example.com"},
        {"alice@acme.example", "user@xn--zz.example", NULL, NULL},
        {"alice@acme.example", "user@b\xC3\xBC" "cher..example", NULL, NULL},
        {"alice@acme.example", "jo\xC2\x85se@example.com", NULL, NULL},
        {"alice@acme.example", "jo\xC3se@example.com", NULL, NULL},
        {"alice@acme.example", "jos\xC3\xA9 <x@example.com>", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct message m = {
            .from_addr = rows[i].from,
            .to_addr = rows[i].to,
            .subject = "Hello",
            .date = 1700000000,
            .message_id = "<m1@acme.example>",
            .text = "Hi.",
        };
        char *msg = NULL, err[300] = "";
        size_t len = 0;
        int rc = message_build(&m, &msg, &len, err, sizeof err);
        if (!rows[i].want_to) {
            if (rc != -EINVAL)
                fail_msg("To '%s' accepted", rows[i].to);
            assert_non_null(strstr(err, "address '"));
            free(msg);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' -> '%s' refused: %s", rows[i].from, rows[i].to, err);
        char *from = header(msg, "From"), *to = header(msg, "To");
        assert_non_null(from);
        assert_non_null(to);
        assert_string_equal(from, rows[i].want_from);
        assert_string_equal(to, rows[i].want_to);
        free(from);
        free(to);
        free(msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_to_ascii), cmocka_unit_test(test_one_spelling),
        cmocka_unit_test(test_email_idn),       cmocka_unit_test(test_domains_idn),
        cmocka_unit_test(test_message_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
