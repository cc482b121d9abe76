/* Unit tests of contact: email normalisation and syntax (valid, invalid
 * with their reasons), company domains given by hand, and the free-mail
 * list. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "contact.h"

static void test_email_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"alice@acme.example", "alice@acme.example"},
        {"  Alice.Martin@ACME.Example \t", "Alice.Martin@acme.example"},
        {"\xC2\xA0" "bob@acme.example\xE2\x80\x8B", "bob@acme.example"},
        {"\xEF\xBB\xBF" "bob@acme.example", "bob@acme.example"},
        {"bob+sales@acme.example", "bob+sales@acme.example"},
        {"o'brien@acme.example", "o'brien@acme.example"},
        {"x_y-z.w@sub.acme.co.uk", "x_y-z.w@sub.acme.co.uk"},
        {"a!#$%&*/=?^`{|}~@acme.example", "a!#$%&*/=?^`{|}~@acme.example"},
        {"t@example.com", "t@example.com"},
        {"t@foo.test", "t@foo.test"},
        {"t@mail.invalid", "t@mail.invalid"},
        {"t@xn--mnchen-3ya.de", "t@xn--mnchen-3ya.de"},
        {"t@M\xC3\xBCnchen.DE", "t@xn--mnchen-3ya.de"},        /* IDNs as A-labels (test_idn.c has more) */
        {"t@\xE4\xBE\x8B\xE5\xAD\x90.\xE4\xB8\xAD\xE5\x9B\xBD", /* 例子.中国 */
         "t@xn--fsqu00a.xn--fiqs8s"},
        {"j\xC3\xB6rg@acme.example", "j\xC3\xB6rg@acme.example"}, /* RFC 6531 local part, as given */
        {"alice@acme\xE3\x80\x82" "example", "alice@acme.example"}, /* UTS #46: an ideographic full stop is a dot */
        {"t@1und1.de", "t@1und1.de"},
        {"t@a-b.example", "t@a-b.example"},
        {"UPPER@Acme.EXAMPLE", "UPPER@acme.example"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[CONTACT_EMAIL_MAX + 1], err[300] = "";
        int rc = contact_email_normalize(rows[i].in, out, err, sizeof err);
        if (rc != 0)
            fail_msg("'%s' refused: %s", rows[i].in, err);
        assert_string_equal(out, rows[i].out);
    }
}

static void test_email_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *in, *err;
    } rows[] = {
        {"", "missing email address"},
        {"   ", "missing email address"},
        {"x@", "invalid email address 'x@': no domain after '@'"},
        {"@acme.example", "invalid email address '@acme.example': nothing before '@'"},
        {"alice", "invalid email address 'alice': no '@'"},
        {"a@b@acme.example", "more than one '@'"},
        {"alice@localhost", "the domain needs a dot"},
        {"alice@acme", "the domain needs a dot"},
        {"alice@.acme.example", "the domain starts with a dot"},
        {"alice@acme.example.", "the domain ends with a dot"},
        {"alice@acme..example", "empty label"},
        {"alice@-acme.example", "starts or ends with '-'"},
        {"alice@acme-.example", "starts or ends with '-'"},
        {"alice@acme_x.example", "a character other than"},
        {"alice@acme .example", "holds a space"},
        {"alice smith@acme.example", "holds a space"},
        {".alice@acme.example", "starts or ends with a dot"},
        {"alice.@acme.example", "starts or ends with a dot"},
        {"al..ice@acme.example", "two dots in a row"},
        {"\"alice smith\"@acme.example", "quoted local parts are not supported"},
        {"al(i)ce@acme.example", "a character not allowed before '@'"},
        {"al,ice@acme.example", "a character not allowed before '@'"},
        {"Alice <alice@acme.example>", "without a name or <>"},
        {"<alice@acme.example>", "without a name or <>"},
        {"alice@[192.0.2.1]", "address literals"},
        {"alice@192.0.2.1", "the top-level domain is not made of letters"},
        {"alice@acme.c", "the top-level domain is one letter"},
        {"alice@acme.c0m", "the top-level domain is not made of letters"},
        {"alice@acme.\xff", "not valid UTF-8"},
        {"alice@ac\xC2\xA0me.example", "a space or an invisible character"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@acme.example",
         "longer than 64 bytes"},
        {"a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", "longer than 63 bytes"},
        {"a\nb@acme.example", "invalid email address 'a?b@acme.example'"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[CONTACT_EMAIL_MAX + 1], err[300] = "";
        int rc = contact_email_normalize(rows[i].in, out, err, sizeof err);
        if (rc != -EINVAL)
            fail_msg("'%s' accepted as '%s'", rows[i].in, out);
        if (!strstr(err, rows[i].err))
            fail_msg("'%s': got '%s', want '%s'", rows[i].in, err, rows[i].err);
    }
    /* Too long as a whole: 64 + 1 + 190 bytes. */
    char big[400], out[CONTACT_EMAIL_MAX + 1], err[300];
    memset(big, 'a', 64);
    big[64] = '@';
    size_t o = 65;
    for (int l = 0; l < 4; l++) {
        memset(big + o, 'b', 47);
        o += 47;
        big[o++] = '.';
    }
    memcpy(big + o, "example", 8);
    assert_int_equal(contact_email_normalize(big, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "longer than 254 bytes"));
    assert_non_null(strstr(err, "...'")); /* the address is shown cut */
}

static void test_domains(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out, *err;
    } rows[] = {
        {"acme.example", "acme.example", NULL},
        {" ACME.Example ", "acme.example", NULL},
        {"https://www.Acme.example/about?x=1", "acme.example", NULL},
        {"http://acme.example:8080", "acme.example", NULL},
        {"www.acme.example.", "acme.example", NULL},
        {"", "", NULL},
        {"  ", "", NULL},
        {"acme", NULL, "invalid company domain 'acme': the domain needs a dot"},
        {"acme corp.example", NULL, "holds a space"},
        {"https://", NULL, "no domain"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[CONTACT_DOMAIN_MAX + 1], err[300] = "";
        int rc = contact_company_domain_normalize(rows[i].in, out, err, sizeof err);
        if (rows[i].out) {
            if (rc != 0)
                fail_msg("'%s' refused: %s", rows[i].in, err);
            assert_string_equal(out, rows[i].out);
        } else {
            assert_int_equal(rc, -EINVAL);
            if (!strstr(err, rows[i].err))
                fail_msg("'%s': got '%s', want '%s'", rows[i].in, err, rows[i].err);
        }
    }
    static const struct {
        const char *in, *out, *err;
    } bare[] = {
        {"Acme.Example", "acme.example", NULL},
        {"www.acme.example", "www.acme.example", NULL}, /* a bare domain is taken as written */
        {"", NULL, "invalid domain '': no domain"},
        {"acme", NULL, "the domain needs a dot"},
        {"https://acme.example", NULL, "a character other than"},
    };
    for (size_t i = 0; i < sizeof bare / sizeof bare[0]; i++) {
        char out[CONTACT_DOMAIN_MAX + 1], err[300] = "";
        int rc = contact_domain_normalize(bare[i].in, out, err, sizeof err);
        if (bare[i].out) {
            assert_int_equal(rc, 0);
            assert_string_equal(out, bare[i].out);
        } else {
            assert_int_equal(rc, -EINVAL);
            if (!strstr(err, bare[i].err))
                fail_msg("'%s': got '%s', want '%s'", bare[i].in, err, bare[i].err);
        }
    }
}

/* A suppression pattern: an address, or @domain, each by its own rules. */
static void test_pattern(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out, *err;
    } rows[] = {
        {"Ann@ACME.example", "Ann@acme.example", NULL},
        {" @Acme.Example", "@acme.example", NULL},
        {"@B\xC3\xBC" "cher.example", "@xn--bcher-kva.example", NULL},
        {"@acme", NULL, "needs a dot (like example.com) (a domain is written @example.com)"},
        {"@", NULL, "invalid domain ''"},
        {"acme.example", NULL, "invalid email address"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[CONTACT_EMAIL_MAX + 1], err[300] = "";
        int rc = contact_pattern_normalize(rows[i].in, out, err, sizeof err);
        if (rows[i].out) {
            assert_int_equal(rc, 0);
            assert_string_equal(out, rows[i].out);
        } else {
            assert_int_equal(rc, -EINVAL);
            if (!strstr(err, rows[i].err))
                fail_msg("'%s': got '%s', want '%s'", rows[i].in, err, rows[i].err);
        }
    }
}

static void test_freemail(void **state)
{
    (void)state;
    static const struct {
        const char *email, *company; /* NULL: free mail */
    } rows[] = {
        {"a@gmail.com", NULL},
        {"a@googlemail.com", NULL},
        {"a@yahoo.com", NULL},
        {"a@yahoo.fr", NULL},
        {"a@yahoo.co.uk", NULL},
        {"a@yahoo.com.br", NULL},
        {"a@hotmail.com", NULL},
        {"a@hotmail.fr", NULL},
        {"a@outlook.com", NULL},
        {"a@outlook.de", NULL},
        {"a@live.com", NULL},
        {"a@live.co.uk", NULL},
        {"a@msn.com", NULL},
        {"a@icloud.com", NULL},
        {"a@me.com", NULL},
        {"a@aol.com", NULL},
        {"a@proton.me", NULL},
        {"a@protonmail.com", NULL},
        {"a@gmx.de", NULL},
        {"a@gmx.net", NULL},
        {"a@gmx.at", NULL},
        {"a@web.de", NULL},
        {"a@orange.fr", NULL},
        {"a@free.fr", NULL},
        {"a@laposte.net", NULL},
        {"a@yandex.ru", NULL},
        {"a@mail.ru", NULL},
        {"a@qq.com", NULL},
        {"a@163.com", NULL},
        {"a@naver.com", NULL},
        {"a@t-online.de", NULL},
        {"a@acme.example", "acme.example"},
        {"a@sales.acme.co.uk", "sales.acme.co.uk"},
        {"a@gmail.acme.example", "gmail.acme.example"},
        {"a@yahoo.company.example", "yahoo.company.example"}, /* not a country suffix */
        {"a@mygmail.com", "mygmail.com"},
        {"a@liveperson.com", "liveperson.com"},
        {"a@acmeyahoo.fr", "acmeyahoo.fr"},
        {"a@free.example", "free.example"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *got = contact_email_company_domain(rows[i].email);
        if (rows[i].company) {
            if (!got || strcmp(got, rows[i].company) != 0)
                fail_msg("%s: got %s, want %s", rows[i].email, got ? got : "(free mail)", rows[i].company);
        } else if (got) {
            fail_msg("%s: got %s, want free mail", rows[i].email, got);
        }
    }
    assert_null(contact_email_company_domain("no-at-sign"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_valid),
        cmocka_unit_test(test_email_invalid),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_freemail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
