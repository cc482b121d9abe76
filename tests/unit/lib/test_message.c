/* Unit tests for message: RFC 2047 header encoding, quoted-printable,
 * Date and Message-ID formats, header injection, body normalisation and
 * the multipart/alternative layout. Table-driven; each table row is one
 * input and what must come out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"

/* ---- small decoders, written for the tests, to check round trips ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int b64val(char c)
{
    static const char d[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(d, c);
    return c && p ? (int)(p - d) : -1;
}

/* Returns 1 when s[0..n) is well-formed UTF-8. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (k == 0 || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

/* Decodes a folded header value: unfolds, then decodes encoded words
 * (whitespace between two encoded words dropped). Each word's bytes must
 * be valid UTF-8 on their own: a split character fails the test. */
static char *decode_header(const char *v)
{
    size_t n = strlen(v);
    char *unf = malloc(n + 1), *out = malloc(n + 1);
    size_t u = 0, o = 0;
    assert_non_null(unf);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\r') {
            assert_int_equal(v[i + 1], '\n');
            assert_true(v[i + 2] == ' ' || v[i + 2] == '\t');
            i++;
            continue;
        }
        unf[u++] = v[i];
    }
    unf[u] = '\0';
    int prev_word = 0;
    size_t word_end = 0;
    for (size_t i = 0; i < u;) {
        if (strncmp(unf + i, "=?UTF-8?", 8) == 0) {
            char enc = unf[i + 8];
            const char *start = unf + i + 10;
            const char *end = strstr(start, "?=");
            assert_non_null(end);
            if (prev_word)   /* drop the whitespace between words */
                o = word_end;
            size_t word_start = o;
            if (enc == 'Q') {
                for (const char *p = start; p < end; p++) {
                    if (*p == '_') {
                        out[o++] = ' ';
                    } else if (*p == '=') {
                        out[o++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                        p += 2;
                    } else {
                        out[o++] = *p;
                    }
                }
            } else {
                assert_int_equal(enc, 'B');
                uint32_t acc = 0;
                int bits = 0;
                for (const char *p = start; p < end && *p != '='; p++) {
                    acc = (acc << 6) | (uint32_t)b64val(*p);
                    bits += 6;
                    if (bits >= 8) {
                        out[o++] = (char)((acc >> (bits - 8)) & 0xFF);
                        bits -= 8;
                    }
                }
            }
            assert_true(utf8_valid((const unsigned char *)out + word_start, o - word_start));
            assert_true(end + 2 - (unf + i) <= 75);   /* RFC 2047 2: an encoded word is at most 75 */
            i = (size_t)(end + 2 - unf);
            prev_word = 1;
            word_end = o;
        } else {
            if (unf[i] != ' ')
                prev_word = 0;
            out[o++] = unf[i++];
        }
    }
    out[o] = '\0';
    free(unf);
    return out;
}

/* Decodes quoted-printable; hard breaks come out as CRLF. */
static char *decode_qp(const char *in, size_t *out_len)
{
    size_t n = strlen(in), o = 0;
    char *out = malloc(n + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=' && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
        } else if (in[i] == '=') {
            assert_true(hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0);
            out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Every line of s (CRLF-separated) at most max octets; no bare CR or LF. */
static void assert_lines(const char *s, size_t len, size_t max)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            assert_true(i + 1 < len && s[i + 1] == '\n');
            i++;
            line = 0;
            continue;
        }
        assert_int_not_equal(s[i], '\n');
        line++;
        if (line > max)
            fail_msg("line longer than %zu octets near offset %zu", max, i);
    }
}

/* ---- RFC 2047 ---- */

static const struct {
    const char *in;
    const char *expected;   /* NULL: only check the round trip and the limits */
} header_rows[] = {
    {"Hello world", "Hello world"},
    {"", ""},
    {"Café", "=?UTF-8?Q?Caf=C3=A9?="},
    {"Réunion de l'équipe", "=?UTF-8?Q?R=C3=A9union_de_l=27=C3=A9quipe?="},
    {"Hello 👋", "=?UTF-8?Q?Hello_=F0=9F=91=8B?="},
    {"日本語の件名", "=?UTF-8?B?5pel5pys6Kqe44Gu5Lu25ZCN?="},
    {"x\r\nBcc: a@b", "x  Bcc: a@b"},
    {"tab\there\x7f", "tab here "},
    {"looks =?like?= a word", "=?UTF-8?Q?looks_=3D=3Flike=3F=3D_a_word?="},
    {"A fairly long ASCII subject line that goes on and on past seventy-eight columns for sure",
     "A fairly long ASCII subject line that goes on and on past\r\n seventy-eight columns for sure"},
    {"Re: Suite à notre échange sur l'automatisation des relances commerciales de votre équipe", NULL},
    {"🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀", NULL},
    {"中文主题：关于我们下周的会议安排以及需要准备的材料清单，请尽快回复确认时间地点和参会人员名单", NULL},
    {"ASCII then é then more ASCII text to make the line fold over the limit somewhere here", NULL},
    {"a\xc2\x85" "b\xe2\x80\xa8" "c", "a b c"},   /* NEL and LINE SEPARATOR are line breaks too */
};

static void test_header_encode(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof header_rows / sizeof header_rows[0]; r++) {
        char *out = NULL;
        assert_int_equal(message_header_encode(header_rows[r].in, strlen("Subject: "), &out), 0);
        if (header_rows[r].expected)
            assert_string_equal(out, header_rows[r].expected);
        /* limits: 76 per line with encoded words (first line after "Subject: ") */
        char *line = out;
        size_t col = strlen("Subject: ");
        for (char *p = out;; p++) {
            if (*p == '\r' || *p == '\0') {
                assert_true(col + (size_t)(p - line) <= 78);
                if (!*p)
                    break;
                assert_true(p[1] == '\n' && p[2] == ' ');
                line = p + 2;
                col = 0;
                p++;
            } else {
                assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F);
            }
        }
        char *back = decode_header(out);
        /* control characters came in as spaces; otherwise the text is back */
        char *want = strdup(header_rows[r].in);
        for (unsigned char *p = (unsigned char *)want; *p; p++)
            if (*p < 0x20 || *p == 0x7F)
                *p = ' ';
        if (strstr(header_rows[r].in, "\xc2\x85") == NULL)
            assert_string_equal(back, want);
        free(want);
        free(back);
        free(out);
    }
}

static void test_header_encode_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {"\xff", "caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "ok \xf5\x80\x80\x80"};
    for (size_t r = 0; r < sizeof bad / sizeof bad[0]; r++) {
        char *out = NULL;
        assert_int_equal(message_header_encode(bad[r], 9, &out), -EILSEQ);
        assert_null(out);
    }
}

/* ---- quoted-printable ---- */

#define A10 "aaaaaaaaaa"
static const struct {
    const char *in;
    const char *expected;
} qp_rows[] = {
    {"", ""},
    {"abc", "abc"},
    {"a=b", "a=3Db"},
    {"café", "caf=C3=A9"},
    {"trailing \n", "trailing=20\r\n"},
    {"tab\t", "tab=09"},
    {"mid space ok", "mid space ok"},
    {"l1\nl2\r\nl3\rl4", "l1\r\nl2\r\nl3\r\nl4"},
    {"bell\x07", "bell=07"},
    /* 76 fits on one line; 77 needs a soft break after 75 */
    {A10 A10 A10 A10 A10 A10 A10 "aaaaaa", A10 A10 A10 A10 A10 A10 A10 "aaaaaa"},
    {A10 A10 A10 A10 A10 A10 A10 "aaaaaaa", A10 A10 A10 A10 A10 A10 A10 "aaaaa=\r\naa"},
    /* a UTF-8 character never straddles a soft break */
    {A10 A10 A10 A10 A10 A10 A10 "aaaaé", A10 A10 A10 A10 A10 A10 A10 "aaaa=\r\n=C3=A9"},
    /* nor does an =XX escape */
    {A10 A10 A10 A10 A10 A10 A10 "aaaa=b", A10 A10 A10 A10 A10 A10 A10 "aaaa=\r\n=3Db"},
    /* a trailing space at a soft break stays literal, at a hard break it is encoded */
    {A10 A10 A10 A10 A10 A10 A10 "aaaa bc", A10 A10 A10 A10 A10 A10 A10 "aaaa =\r\nbc"},
    {". leading dot\n", ". leading dot\r\n"},
};

static void test_qp(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof qp_rows / sizeof qp_rows[0]; r++) {
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(message_qp_encode(qp_rows[r].in, strlen(qp_rows[r].in), &out, &len), 0);
        assert_string_equal(out, qp_rows[r].expected);
        assert_int_equal(len, strlen(qp_rows[r].expected));
        free(out);
    }
}

/* Long mixed-script text: lines within 76, decoding gives it back. */
static void test_qp_round_trip(void **state)
{
    (void)state;
    static const char *const pieces[] = {"Bonjour à tous, ", "日本語 ", "🚀", "=", " ", "\t", "x", "é", "\n", "\r\n"};
    char in[8192];
    size_t n = 0;
    uint32_t seed = 12345;
    while (n < sizeof in - 64) {
        seed = seed * 1103515245u + 12345u;
        const char *p = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
        memcpy(in + n, p, strlen(p));
        n += strlen(p);
    }
    in[n] = '\0';
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(message_qp_encode(in, n, &out, &len), 0);
    assert_lines(out, len, 76);
    for (size_t i = 0; i + 2 < len; i++) /* no whitespace right before a hard break */
        if (out[i + 1] == '\r' && out[i] != '=')
            assert_true(out[i] != ' ' && out[i] != '\t');
    size_t dlen = 0;
    char *back = decode_qp(out, &dlen);
    /* the input's bare LFs became CRLF */
    char want[16384];
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            want[w++] = '\r';
        want[w++] = in[i];
    }
    assert_int_equal(dlen, w);
    assert_memory_equal(back, want, w);
    free(back);
    free(out);
}

/* ---- Message-ID and Date ---- */

static void test_message_id(void **state)
{
    (void)state;
    unsigned char r10[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, ff[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    char out[128];
    assert_int_equal(message_id_make("acme.example", r10, sizeof r10, out, sizeof out), 0);
    assert_string_equal(out, "<aaaqeayeaudaocaj@acme.example>");
    assert_int_equal(message_id_make("acme.example", ff, sizeof ff, out, sizeof out), 0);
    assert_string_equal(out, "<7777777777776@acme.example>");
    assert_int_equal(message_id_make("bad domain", ff, 8, out, sizeof out), -EINVAL);
    assert_int_equal(message_id_make("acme.example>\r\nBcc: x", ff, 8, out, sizeof out), -EINVAL);
    assert_int_equal(message_id_make("acme.example", ff, 4, out, sizeof out), -EINVAL);
    assert_int_equal(message_id_make("acme.example", ff, 8, out, 10), -ENOSPC);
}

static const struct message base_message = {
    .from_addr = "alice@acme.example",
    .from_name = "Alice Martin",
    .to_addr = "bob@corp.example",
    .subject = "Hello",
    .date = 1700000000,
    .message_id = "<m1@acme.example>",
    .list_unsubscribe = "<mailto:alice@acme.example?subject=unsubscribe>",
    .text = "Hi Bob,\nShort note.\n",
};

/* Builds m; returns the message (caller frees). Fails the test on error. */
static char *build(const struct message *m, size_t *len)
{
    char *out = NULL, err[256] = "";
    size_t n = 0;
    int rc = message_build(m, &out, &n, err, sizeof err);
    if (rc != 0)
        fail_msg("message_build: %d %s", rc, err);
    assert_int_equal(strlen(out), n);
    assert_lines(out, n, 998);
    if (len)
        *len = n;
    return out;
}

/* The unfolded value of the first header called name, or NULL. */
static char *header_value(const char *msg, const char *name)
{
    size_t nl = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    for (const char *p = msg; p && p < end; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            char *out = malloc(strlen(v) + 1);
            size_t o = 0;
            for (;;) {
                const char *e = strstr(v, "\r\n");
                memcpy(out + o, v, (size_t)(e - v));
                o += (size_t)(e - v);
                if (e[2] != ' ' && e[2] != '\t')
                    break;
                v = e + 2;
            }
            out[o] = '\0';
            return out;
        }
    }
    return NULL;
}

/* The names of the header fields, one per line, in order. */
static void header_names(const char *msg, char *out, size_t outlen)
{
    const char *end = strstr(msg, "\r\n\r\n");
    size_t o = 0;
    for (const char *p = msg; p <= end; p = strstr(p, "\r\n") + 2) {
        if (*p == ' ' || *p == '\t')
            continue;
        size_t n = strcspn(p, ":\r");
        assert_true(o + n + 2 < outlen);
        memcpy(out + o, p, n);
        o += n;
        out[o++] = '\n';
    }
    out[o] = '\0';
}

static const struct {
    time_t t;
    int offset;
    const char *expected;
} date_rows[] = {
    {0, 0, "Thu, 01 Jan 1970 00:00:00 +0000"},
    {1700000000, 60, "Tue, 14 Nov 2023 23:13:20 +0100"},
    {1700000000, -330, "Tue, 14 Nov 2023 16:43:20 -0530"},
    {951782400, 0, "Tue, 29 Feb 2000 00:00:00 +0000"},
};

static void test_date(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof date_rows / sizeof date_rows[0]; r++) {
        struct message m = base_message;
        m.date = date_rows[r].t;
        m.utc_offset_minutes = date_rows[r].offset;
        char *msg = build(&m, NULL);
        char *v = header_value(msg, "Date");
        assert_string_equal(v, date_rows[r].expected);
        free(v);
        free(msg);
    }
    struct message m = base_message;
    char *out = NULL, err[200];
    size_t n;
    m.utc_offset_minutes = 24 * 60;
    assert_int_equal(message_build(&m, &out, &n, err, sizeof err), -EINVAL);
}

/* ---- whole messages ---- */

static void test_plain_message(void **state)
{
    (void)state;
    const char *refs[] = {"<m0@acme.example>", "<m1@acme.example>"};
    struct message m = base_message;
    m.in_reply_to = "<m1@acme.example>";
    m.references = refs;
    m.n_references = 2;
    m.message_id = "<m2@acme.example>";
    m.subject = "Re: Hello";
    char *msg = build(&m, NULL);
    assert_string_equal(msg, "From: Alice Martin <alice@acme.example>\r\n"
                             "To: bob@corp.example\r\n"
                             "Subject: Re: Hello\r\n"
                             "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                             "Message-ID: <m2@acme.example>\r\n"
                             "In-Reply-To: <m1@acme.example>\r\n"
                             "References: <m0@acme.example> <m1@acme.example>\r\n"
                             "List-Unsubscribe: <mailto:alice@acme.example?subject=unsubscribe>\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: 7bit\r\n"
                             "\r\n"
                             "Hi Bob,\r\n"
                             "Short note.\r\n");
    free(msg);
}

static const struct {
    const char *from_name;
    const char *to_name;
    const char *expected_from;
    const char *expected_to;
} address_rows[] = {
    {"Alice Martin", NULL, "Alice Martin <alice@acme.example>", "bob@corp.example"},
    {"Martin, Alice", "Bob O'Brien", "\"Martin, Alice\" <alice@acme.example>", "Bob O'Brien <bob@corp.example>"},
    {"Say \"hi\" \\o/", "", "\"Say \\\"hi\\\" \\\\o/\" <alice@acme.example>", "bob@corp.example"},
    {"Amélie Dupré", "Zoë", "=?UTF-8?Q?Am=C3=A9lie_Dupr=C3=A9?= <alice@acme.example>",
     "=?UTF-8?Q?Zo=C3=AB?= <bob@corp.example>"},
    {"山田太郎", NULL, "=?UTF-8?B?5bGx55Sw5aSq6YOO?= <alice@acme.example>", "bob@corp.example"},
    {"x\r\nBcc: a@b", "y\nCc: c@d", "\"x  Bcc: a@b\" <alice@acme.example>", "\"y Cc: c@d\" <bob@corp.example>"},
};

static void test_addresses(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof address_rows / sizeof address_rows[0]; r++) {
        struct message m = base_message;
        m.from_name = address_rows[r].from_name;
        m.to_name = address_rows[r].to_name;
        char *msg = build(&m, NULL);
        char *from = header_value(msg, "From"), *to = header_value(msg, "To");
        assert_string_equal(from, address_rows[r].expected_from);
        assert_string_equal(to, address_rows[r].expected_to);
        free(from);
        free(to);
        free(msg);
    }
}

/* Hostile values in every header a caller fills: never a new header. */
static void test_header_injection(void **state)
{
    (void)state;
    static const char *const evil[] = {"x\r\nBcc: a@b", "x\nBcc: a@b", "x\rBcc: a@b", "x\r\n\r\nbody",
                                       "é\r\nBcc: a@b", "x\r\n Bcc: a@b"};
    for (size_t r = 0; r < sizeof evil / sizeof evil[0]; r++) {
        struct message_header extra = {"X-Campaign", evil[r]};
        struct message m = base_message;
        m.subject = evil[r];
        m.from_name = evil[r];
        m.to_name = evil[r];
        m.list_unsubscribe = r == 4 ? NULL : evil[r];   /* List-Unsubscribe takes ASCII only */
        m.extra = &extra;
        m.n_extra = 1;
        char *msg = build(&m, NULL);
        char names[512];
        header_names(msg, names, sizeof names);
        const char *want = r == 4 ? "From\nTo\nSubject\nDate\nMessage-ID\nX-Campaign\nMIME-Version\n"
                                    "Content-Type\nContent-Transfer-Encoding\n"
                                  : "From\nTo\nSubject\nDate\nMessage-ID\nList-Unsubscribe\nX-Campaign\n"
                                    "MIME-Version\nContent-Type\nContent-Transfer-Encoding\n";
        assert_string_equal(names, want);
        assert_null(strstr(msg, "\nBcc"));
        free(msg);
    }
}

static const struct {
    struct message m;
    int rc;
} reject_rows[] = {
    {{.from_addr = "alice@acme.example\r\nBcc: x@y", .to_addr = "b@c.example", .subject = "",
      .message_id = "<a@b>"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "Bob <b@c.example>", .subject = "", .message_id = "<a@b>"},
     -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "", .message_id = "a@b"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "",
      .message_id = "<a@b>\r\nBcc: x"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "", .message_id = "<a@b>",
      .in_reply_to = "<x y@z>"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "caf\xe9", .message_id = "<a@b>"},
     -EILSEQ},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "", .message_id = "<a@b>",
      .text = "bad \xff byte"}, -EILSEQ},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "", .message_id = "<a@b>",
      .html = "<p>x</p>", .boundary = "bad boundary"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "", .message_id = "<a@b>",
      .html = "<p>x</p>", .text = "--abc\n", .boundary = "abc"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = "", .message_id = "<a@b>",
      .list_unsubscribe = "<mailto:é@x>"}, -EINVAL},
    {{.from_addr = "alice@acme.example", .to_addr = "b@c.example", .subject = NULL, .message_id = "<a@b>"},
     -EINVAL},
};

static void test_rejects(void **state)
{
    (void)state;
    struct message_header from = {"from", "x@y"}, bcc = {"Bcc", "x@y"}, colon = {"X:Y", "v"};
    for (size_t r = 0; r < sizeof reject_rows / sizeof reject_rows[0] + 3; r++) {
        struct message m;
        int want = -EINVAL;
        if (r < sizeof reject_rows / sizeof reject_rows[0]) {
            m = reject_rows[r].m;
            want = reject_rows[r].rc;
        } else {
            m = base_message;
            size_t k = r - sizeof reject_rows / sizeof reject_rows[0];
            m.extra = k == 0 ? &from : k == 1 ? &bcc : &colon;
            m.n_extra = 1;
        }
        char *out = NULL, err[256] = "";
        size_t n = 0;
        assert_int_equal(message_build(&m, &out, &n, err, sizeof err), want);
        assert_null(out);
        assert_true(err[0] != '\0');
    }
}

static const struct {
    const char *text;
    const char *cte;
    const char *body;
} body_rows[] = {
    {"a\rb\nc\r\nd", "7bit", "a\r\nb\r\nc\r\nd\r\n"},
    {".\n.. dots are the transport's business\n", "7bit", ".\r\n.. dots are the transport's business\r\n"},
    {"", "7bit", ""},
    {"Merci beaucoup !\n", "7bit", "Merci beaucoup !\r\n"},
    {"Déjà vu\n", "quoted-printable", "D=C3=A9j=C3=A0 vu\r\n"},
    {"trailing \n", "7bit", "trailing \r\n"},
    {A10 A10 A10 A10 A10 A10 A10 "aaaaaaaa", "7bit", A10 A10 A10 A10 A10 A10 A10 "aaaaaaaa\r\n"},
    {A10 A10 A10 A10 A10 A10 A10 "aaaaaaaaa", "quoted-printable", A10 A10 A10 A10 A10 A10 A10 "aaaaa=\r\naaaa\r\n"},
    {"form\ffeed", "quoted-printable", "form=0Cfeed\r\n"},
};

static void test_bodies(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof body_rows / sizeof body_rows[0]; r++) {
        struct message m = base_message;
        m.text = body_rows[r].text;
        char *msg = build(&m, NULL);
        char *cte = header_value(msg, "Content-Transfer-Encoding");
        assert_string_equal(cte, body_rows[r].cte);
        const char *body = strstr(msg, "\r\n\r\n") + 4;
        assert_string_equal(body, body_rows[r].body);
        free(cte);
        free(msg);
    }
}

/* Text and HTML: one multipart/alternative with two parts, in order. */
static void test_multipart(void **state)
{
    (void)state;
    static const struct {
        const char *text, *html, *boundary;
    } rows[] = {
        {"Bonjour Bob,\nà bientôt\n", "<p>Bonjour Bob,</p>\n<p>à bientôt</p>", NULL},
        {"plain\n", "<p>plain</p>\n", "b1"},
        {"", "<p>only html</p>", NULL},
        {"text", "", NULL},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct message m = base_message;
        m.text = rows[r].text;
        m.html = rows[r].html;
        m.boundary = rows[r].boundary;
        size_t len = 0;
        char *msg = build(&m, &len);
        char *ct = header_value(msg, "Content-Type");
        assert_non_null(ct);
        assert_true(strncmp(ct, "multipart/alternative; boundary=\"", 33) == 0);
        char bd[100];
        snprintf(bd, sizeof bd, "%.*s", (int)strlen(ct) - 34, ct + 33);
        if (rows[r].boundary)
            assert_string_equal(bd, rows[r].boundary);
        else
            assert_true(strncmp(bd, "=_relance_", 10) == 0);
        char d1[128], d2[128];
        snprintf(d1, sizeof d1, "\r\n--%s\r\n", bd);
        snprintf(d2, sizeof d2, "\r\n--%s--\r\n", bd);
        const char *p1 = strstr(msg, d1);
        assert_non_null(p1);
        const char *p2 = strstr(p1 + 1, d1);
        assert_non_null(p2);
        assert_null(strstr(p2 + 1, d1));
        const char *p3 = strstr(p2 + 1, d2);
        assert_non_null(p3);
        assert_int_equal(p3 + strlen(d2), msg + len);   /* the close delimiter ends the message */
        assert_true(strncmp(p1 + strlen(d1), "Content-Type: text/plain; charset=utf-8\r\n", 41) == 0);
        assert_true(strncmp(p2 + strlen(d1), "Content-Type: text/html; charset=utf-8\r\n", 40) == 0);
        /* the boundary occurs nowhere else */
        size_t count = 0;
        for (const char *p = strstr(msg, bd); p; p = strstr(p + 1, bd))
            count++;
        assert_int_equal(count, 4);
        /* same Message-ID, same boundary */
        char *again = build(&m, NULL);
        assert_string_equal(again, msg);
        free(again);
        free(ct);
        free(msg);
    }
}

/* A text that holds the derived boundary line goes quoted-printable,
 * where "=_" cannot occur. */
static void test_boundary_in_text(void **state)
{
    (void)state;
    struct message m = base_message;
    m.html = "<p>x</p>";
    char *first = build(&m, NULL);
    char *ct = header_value(first, "Content-Type");
    char bd[100], text[200];
    snprintf(bd, sizeof bd, "%.*s", (int)strlen(ct) - 34, ct + 33);
    snprintf(text, sizeof text, "line\n--%s\nmore\n", bd);
    m.text = text;
    char *msg = build(&m, NULL);
    char *ct2 = header_value(msg, "Content-Type");
    assert_string_equal(ct2, ct);
    const char *part = strstr(msg, "Content-Type: text/plain");
    assert_non_null(part);
    assert_true(strncmp(strstr(part, "\r\n") + 2, "Content-Transfer-Encoding: quoted-printable\r\n", 45) == 0);
    size_t count = 0;
    for (const char *p = strstr(msg, bd); p; p = strstr(p + 1, bd))
        count++;
    assert_int_equal(count, 4);
    free(ct2);
    free(ct);
    free(msg);
    free(first);
}

/* Everything at its largest: still no line over 998, all CRLF. */
static void test_limits(void **state)
{
    (void)state;
    char subject[3000], name[1200], text[20000], value[1500];
    size_t n = 0;
    while (n < sizeof subject - 8) {
        memcpy(subject + n, "été ", 5);
        n += 5;
    }
    subject[n] = '\0';
    memset(name, 'N', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    const char *refs[40];
    for (size_t i = 0; i < 40; i++)
        refs[i] = "<0123456789abcdefghij0123456789@acme.example>";
    struct message_header extra = {"X-Long", value};
    struct message m = base_message;
    m.subject = subject;
    m.from_name = name;
    m.to_name = subject;
    m.text = text;
    m.html = text;
    m.references = refs;
    m.n_references = 40;
    m.extra = &extra;
    m.n_extra = 1;
    size_t len;
    char *msg = build(&m, &len);   /* build() checks lines and CRLF */
    char *s = header_value(msg, "Subject");
    char *back = decode_header(s);
    assert_string_equal(back, subject);
    free(back);
    free(s);
    free(msg);
}

/* A display name of quotes under the length limit whose quoted form
 * (a backslash before each) would not be (found by fuzz_message): encoded
 * words instead, every line within 998, and it decodes back. */
static void test_quoted_name_limit(void **state)
{
    (void)state;
    char name[700];
    for (size_t i = 0; i < sizeof name - 1; i++)
        name[i] = i % 3 ? '"' : '9';
    name[sizeof name - 1] = '\0';
    struct message m = base_message;
    m.to_name = name;
    char *msg = build(&m, NULL); /* build() checks lines and CRLF */
    char *to = header_value(msg, "To");
    char *back = decode_header(to);
    char want[800];
    snprintf(want, sizeof want, "%s <%s>", name, m.to_addr);
    assert_string_equal(back, want);
    free(back);
    free(to);
    free(msg);
}

/* An empty value with no header prefix: an empty result, not a crash. */
static void test_header_encode_empty(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t used;
    } rows[] = {{"", 0}, {"", 9}, {"\r\n", 0}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *out = NULL;
        assert_int_equal(message_header_encode(rows[i].in, rows[i].used, &out), 0);
        assert_non_null(out);
        assert_true(strspn(out, " ") == strlen(out));
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encode),  cmocka_unit_test(test_header_encode_invalid),
        cmocka_unit_test(test_qp),             cmocka_unit_test(test_qp_round_trip),
        cmocka_unit_test(test_message_id),     cmocka_unit_test(test_date),
        cmocka_unit_test(test_plain_message),  cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_header_injection), cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_bodies),         cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_boundary_in_text),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_quoted_name_limit),
        cmocka_unit_test(test_header_encode_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
