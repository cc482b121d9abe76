/* Unit tests of mime: header unfolding and lookup, RFC 2047 words,
 * parameters, transfer encodings, charsets, nesting, delivery-status
 * blocks, and hostile input (bounded work, no crash). Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "utf8.h"

/* Swaps "\n" for "\r\n" so every row runs with both line endings. */
static char *crlf(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *o = malloc(2 * n + 1);
    assert_non_null(o);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            o[k++] = '\r';
        o[k++] = s[i];
    }
    o[k] = '\0';
    return o;
}

/* The first leaf with a body, depth first. */
static const struct mime_part *first_leaf(const struct mime_part *p)
{
    if (p->part_count == 0)
        return p->body ? p : NULL;
    for (size_t i = 0; i < p->part_count; i++) {
        const struct mime_part *l = first_leaf(&p->parts[i]);
        if (l)
            return l;
    }
    return NULL;
}

static void test_headers(void **state)
{
    (void)state;
    static const struct {
        const char *msg, *name, *want; /* want NULL: absent */
    } rows[] = {
        {"Subject: hello\n\nbody", "subject", "hello"},
        {"SUBJECT: upper\n\nbody", "Subject", "upper"},
        {"Subject: folded\n  over\n\tthree lines\n\nb", "Subject", "folded  over three lines"},
        {"X-A: 1\nX-B:   trimmed   \n\nb", "X-B", "trimmed"},
        {"Subject : spaced colon\n\nb", "Subject", "spaced colon"},
        {"From x@y Mon Jan  1 00:00:00 2024\nSubject: after mbox line\n\nb", "Subject",
         "after mbox line"},
        {"Subject: a\n\nX-Not: a header\n", "X-Not", NULL},
        {"Subject: no blank line\nthis is body text\nX-Late: no\n", "X-Late", NULL},
        {"X-Empty:\n\nb", "X-Empty", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        for (int e = 0; e < 2; e++) {
            char *m = e ? crlf(rows[i].msg) : strdup(rows[i].msg);
            struct mime_part p;
            assert_int_equal(mime_message_parse(m, strlen(m), &p), 0);
            const char *v = mime_headers_get(&p.headers, rows[i].name);
            if (!rows[i].want)
                assert_null(v);
            else
                assert_string_equal(v, rows[i].want);
            mime_part_free(&p);
            free(m);
        }
    }
}

static void test_words(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"plain text", "plain text"},
        {"=?UTF-8?Q?R=C3=A9ponse_automatique?=", "Réponse automatique"},
        {"=?utf-8?b?QWJ3ZXNlbmhlaXRzbm90aXo=?=", "Abwesenheitsnotiz"},
        {"=?ISO-8859-1?Q?Absence_du_bureau_=E9t=E9?=", "Absence du bureau été"},
        {"=?windows-1252?Q?=93quoted=94_=80?=", "\xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x82\xAC"},
        {"=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"},          /* space between words drops */
        {"=?UTF-8?Q?a?= plain =?UTF-8?Q?b?=", "a plain b"},
        {"=?UTF-8?B?w6k=?==?UTF-8?B?w6k=?=", "éé"},
        {"=?UTF-8?B?4oKs?=", "€"},
        {"=?UTF-8*fr?Q?caf=C3=A9?=", "café"},          /* RFC 2231 language */
        {"=?UTF-8?X?bad?=", "=?UTF-8?X?bad?="},        /* unknown encoding kept */
        {"=?UTF-8?Q?unterminated", "=?UTF-8?Q?unterminated"},
        {"=?bogus-charset?Q?ok?=", "ok"},
        {"caf\xE9", "café"},                           /* raw Latin-1 read as 1252 */
        {"=?UTF-8?Q?=FF=FE?=", "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *d = mime_words_decode(rows[i].in);
        assert_non_null(d);
        assert_string_equal(d, rows[i].want);
        free(d);
    }
}

static void test_params(void **state)
{
    (void)state;
    static const struct {
        const char *value, *param, *want;
    } rows[] = {
        {"text/plain; charset=utf-8", "charset", "utf-8"},
        {"text/plain; CHARSET=\"ISO-8859-1\"", "charset", "ISO-8859-1"},
        {"multipart/mixed;\tboundary=\"a;b\\\"c\"; x=y", "boundary", "a;b\"c"},
        {"multipart/report; report-type=delivery-status; boundary=XYZ", "report-type",
         "delivery-status"},
        {"attachment; filename*=UTF-8''na%C3%AFve.txt", "filename", "naïve.txt"},
        {"text/plain", "charset", NULL},
        {"text/plain; charset", "charset", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[64];
        int rc = mime_param_get(rows[i].value, rows[i].param, buf, sizeof buf);
        if (!rows[i].want) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(buf, rows[i].want);
        }
    }
}

static void test_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *msg, *type, *want;
    } rows[] = {
        {"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
         "Je suis absent jusqu'au 2 d=C3=A9cembre, =\nmerci.",
         "text/plain", "Je suis absent jusqu'au 2 décembre, merci."},
        {"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
         "Gr=FC=DFe", "text/plain", "Grüße"},
        {"Content-Type: text/plain; charset=windows-1252\n\n\x93Hi\x94 \x80", "text/plain",
         "\xE2\x80\x9CHi\xE2\x80\x9D \xE2\x82\xAC"},
        {"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
         "SGFzdGEgZWwg\nMSBkZSBkaWNpZW1icmU=", "text/plain", "Hasta el 1 de diciembre"},
        {"Content-Transfer-Encoding: base64\n\nSGk*!!=\n", "text/plain", "Hi"},
        {"Content-Type: text/plain; charset=iso-2022-jp\n\n\x1b$B$3$s\x1b(B", "text/plain",
         "\xE3\x81\x93\xE3\x82\x93"},
        {"Content-Type: multipart/mixed; boundary=\"b1\"\n\npreamble\n--b1\n"
         "Content-Type: multipart/alternative; boundary=b2\n\n--b2\n"
         "Content-Type: text/plain\n\ninner text\n--b2\nContent-Type: text/html\n\n<p>x</p>\n--b2--\n"
         "--b1\nContent-Type: application/octet-stream\n\nxx\n--b1--\nepilogue",
         "text/plain", "inner text"},
        {"Content-Type: multipart/mixed; boundary=\"declared\"\n\n--actual\n"
         "Content-Type: text/plain\n\nfound anyway\n--actual--\n", "text/plain", "found anyway"},
        {"Content-Type: multipart/mixed; boundary=nothere\n\nno parts at all", "text/plain",
         "no parts at all"},
        {"Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain\n\nembedded",
         "text/plain", "embedded"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        for (int e = 0; e < 2; e++) {
            char *m = e ? crlf(rows[i].msg) : strdup(rows[i].msg);
            struct mime_part p;
            assert_int_equal(mime_message_parse(m, strlen(m), &p), 0);
            const struct mime_part *l = first_leaf(&p);
            assert_non_null(l);
            assert_string_equal(l->type, rows[i].type);
            /* CRLF rows keep CR inside bodies; compare without them */
            char *b = strdup(l->body);
            char *w = b;
            for (char *r = b; *r; r++)
                if (*r != '\r')
                    *w++ = *r;
            *w = '\0';
            assert_string_equal(b, rows[i].want);
            assert_true(utf8_valid(l->body, l->body_len));
            free(b);
            mime_part_free(&p);
            free(m);
        }
    }
}

static void test_embedded_headers_and_dsn(void **state)
{
    (void)state;
    const char *msg =
        "From: MAILER-DAEMON@mx.example\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
        "--B\nContent-Type: text/plain\n\nnotice\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example\n\n"
        "Final-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <a@x.example>:\n user unknown\n\n"
        "Final-Recipient: rfc822; b@x.example\nAction: delayed\nStatus: 4.4.7\n\n"
        "--B\nContent-Type: text/rfc822-headers\n\nMessage-ID: <ours@relance.example>\nTo: a@x.example\n\n"
        "--B--\n";
    struct mime_part p;
    assert_int_equal(mime_message_parse(msg, strlen(msg), &p), 0);
    const struct mime_part *ds = mime_part_find(&p, "message/delivery-status");
    assert_non_null(ds);
    struct mime_dsn dsn;
    assert_int_equal(mime_dsn_parse(ds->body, ds->body_len, &dsn), 0);
    assert_int_equal(dsn.count, 3);
    assert_string_equal(mime_headers_get(&dsn.blocks[1], "status"), "5.1.1");
    assert_string_equal(mime_headers_get(&dsn.blocks[1], "Diagnostic-Code"),
                        "smtp; 550 5.1.1 <a@x.example>: user unknown");
    assert_string_equal(mime_headers_get(&dsn.blocks[2], "Action"), "delayed");
    mime_dsn_free(&dsn);
    const struct mime_part *h = mime_part_find(&p, "text/rfc822-headers");
    assert_non_null(h);
    assert_int_equal(h->part_count, 1);
    assert_string_equal(mime_headers_get(&h->parts[0].headers, "Message-ID"),
                        "<ours@relance.example>");
    mime_part_free(&p);
}

/* Builds hostile messages; each must parse, within the bounds. */
static char *hostile(int which, size_t *len)
{
    size_t cap = 4u << 20, n = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    switch (which) {
    case 0: /* endless nesting */
        for (int i = 0; i < 5000 && n + 200 < cap; i++)
            n += (size_t)snprintf(b + n, cap - n,
                                  "Content-Type: multipart/mixed; boundary=\"n%d\"\n\n--n%d\n", i, i);
        break;
    case 1: /* one huge folded header */
        n += (size_t)snprintf(b + n, cap - n, "Subject: x");
        while (n + 10 < 3u << 20)
            n += (size_t)snprintf(b + n, cap - n, "\n yy");
        n += (size_t)snprintf(b + n, cap - n, "\n\nbody");
        break;
    case 2: /* too many headers and parts */
        for (int i = 0; i < 5000; i++)
            n += (size_t)snprintf(b + n, cap - n, "X-H%d: v\n", i);
        n += (size_t)snprintf(b + n, cap - n, "Content-Type: multipart/mixed; boundary=z\n\n");
        for (int i = 0; i < 20000 && n + 64 < cap; i++)
            n += (size_t)snprintf(b + n, cap - n, "--z\n\np%d\n", i);
        break;
    case 3: /* broken encodings everywhere */
        n += (size_t)snprintf(b + n, cap - n,
                              "Subject: =?utf-8?B?!!!?= =?x?Q?=ZZ?= =?\n"
                              "Content-Type: text/plain; charset=\"../../etc//x\"\n"
                              "Content-Transfer-Encoding: base64\n\n=====\x01\x02\xff\xfe");
        break;
    case 4: /* message/rfc822 inside message/rfc822, many times */
        for (int i = 0; i < 3000 && n + 64 < cap; i++)
            n += (size_t)snprintf(b + n, cap - n, "Content-Type: message/rfc822\n\n");
        break;
    default: /* NUL bytes and lone CRs */
        memcpy(b, "Subject: a\0b\r\rc\n\n\0\0\0body\r", 25);
        n = 25;
        break;
    }
    *len = n;
    return b;
}

static void test_hostile(void **state)
{
    (void)state;
    for (int which = 0; which < 6; which++) {
        size_t len;
        char *b = hostile(which, &len);
        struct mime_part p;
        assert_int_equal(mime_message_parse(b, len, &p), 0);
        assert_true(p.headers.count <= MIME_MAX_HEADERS);
        if (which == 0 || which == 2 || which == 4) {
            if (!(p.flags & MIME_TRUNCATED))
                fail_msg("hostile message %d not marked truncated", which);
        }
        mime_part_free(&p);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_embedded_headers_and_dsn),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
