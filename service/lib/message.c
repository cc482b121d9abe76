/* message: turns one email's fields into RFC 5322 + MIME text.
 *
 * Owns header encoding (RFC 2047 encoded words, folding, the
 * control-character scrub that makes header injection impossible), the
 * Date format, Message-ID generation from caller-supplied randomness,
 * body transfer encoding (7bit or quoted-printable) and the
 * multipart/alternative layout. Does not own rendering templates (the
 * template module), DKIM (dkim), SMTP dot-stuffing or envelopes (the
 * sender) — and does no I/O and no logging. */
#include "message.h"

#include "buf.h"
#include "idn.h"
#include "utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_SOFT 78   /* RFC 5322 2.1.1 SHOULD */
#define LINE_EW 76     /* RFC 2047 2: a line holding encoded words */
#define LINE_QP 76     /* RFC 2045 6.7 */
#define WORD_MAX 900   /* an unbreakable ASCII run longer than this is encoded */

/* Column of the end of the buffer: characters since the last LF. */
static size_t end_column(const struct buf *b)
{
    size_t i = b->len;
    while (i > 0 && b->p[i - 1] != '\n')
        i--;
    return b->len - i;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies text into out with every control character — C0 (CR and LF
 * included), DEL, C1 and the Unicode line and paragraph separators —
 * replaced by a space, so that no header value can start a new line.
 * Returns -EILSEQ when text is not UTF-8. */
static int header_scrub(const char *text, struct buf *out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_decode(s + i, n - i, NULL);
        if (k == 0)
            return -EILSEQ;
        int ctl = 0;
        if (k == 1)
            ctl = s[i] < 0x20 || s[i] == 0x7F;
        else if (k == 2)
            ctl = s[i] == 0xC2 && s[i + 1] < 0xA0;
        else if (k == 3)
            ctl = s[i] == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9);
        if (ctl)
            buf_addc(out, ' ');
        else
            buf_add(out, s + i, k);
        i += k;
    }
    return 0;
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* RFC 2047 Q: characters that may stay literal in an encoded word in any
 * position (the 5.(3) phrase set, which also suits unstructured text). */
static int q_literal(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' || c == '*' ||
           c == '+' || c == '-' || c == '/';
}

static size_t q_cost(const unsigned char *s, size_t n)
{
    size_t cost = 0;
    for (size_t i = 0; i < n; i++)
        cost += (q_literal(s[i]) || s[i] == ' ') ? 1 : 3;
    return cost;
}

static const char hexdig[] = "0123456789ABCDEF";
static const char b64dig[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void q_put(struct buf *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (q_literal(s[i])) {
            buf_addc(b, (char)s[i]);
        } else if (s[i] == ' ') {
            buf_addc(b, '_');
        } else {
            char e[3] = {'=', hexdig[s[i] >> 4], hexdig[s[i] & 15]};
            buf_add(b, e, 3);
        }
    }
}

static void b64_put(struct buf *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        char e[4] = {b64dig[(v >> 18) & 63], b64dig[(v >> 12) & 63], i + 1 < n ? b64dig[(v >> 6) & 63] : '=',
                     i + 2 < n ? b64dig[v & 63] : '='};
        buf_add(b, e, 4);
    }
}

/* Appends s (valid UTF-8, already scrubbed) as encoded words, the first
 * starting at the buffer's current column, folded with CRLF SP. */
static void encoded_words(struct buf *b, const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    /* Q keeps mostly-Latin text readable; B is shorter for other scripts */
    int use_q = q_cost(s, n) * 3 <= (n + 2) / 3 * 4 * 4;
    size_t i = 0;
    while (i < n) {
        size_t col = end_column(b);
        /* An encoded word must hold at least one 4-byte character. */
        size_t room = col + 24 <= LINE_EW ? LINE_EW - col : 24;
        size_t payload_max = room - 12;   /* "=?UTF-8?Q?" and "?=" */
        size_t j = i, cost = 0;
        while (j < n) {
            size_t k = utf8_decode(s + j, n - j, NULL);
            size_t c;
            if (use_q) {
                c = cost + q_cost(s + j, k);
            } else {
                c = (j + k - i + 2) / 3 * 4;
            }
            if (c > payload_max)
                break;
            cost = c;
            j += k;
        }
        buf_adds(b, use_q ? "=?UTF-8?Q?" : "=?UTF-8?B?");
        if (use_q)
            q_put(b, s + i, j - i);
        else
            b64_put(b, s + i, j - i);
        buf_adds(b, "?=");
        i = j;
        if (i < n)
            buf_adds(b, "\r\n ");
    }
}

/* Appends ASCII text folded at spaces so lines stay near LINE_SOFT. A fold
 * goes only before a space followed by a non-space, so no line is all
 * whitespace and unfolding gives the text back. */
static void fold_ascii(struct buf *b, const char *s, size_t n)
{
    size_t col = end_column(b);
    size_t i = 0;
    while (i < n) {
        /* segment: leading spaces up to and including the last before a word, then the word */
        size_t j = i;
        if (s[j] == ' ') {
            j++;
            if (j < n && s[j] != ' ') {
                while (j < n && s[j] != ' ')
                    j++;
                if (col + (j - i) > LINE_SOFT && col > 0) {
                    buf_adds(b, "\r\n");
                    col = 0;
                }
            }
        } else {
            while (j < n && s[j] != ' ')
                j++;
        }
        buf_add(b, s + i, j - i);
        col += j - i;
        i = j;
    }
}

static size_t longest_word(const char *s, size_t n)
{
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < n; i++) {
        cur = s[i] == ' ' ? 0 : cur + 1;
        if (cur > best)
            best = cur;
    }
    return best;
}

/* Appends an unstructured value: ASCII folded, or encoded words when it
 * holds non-ASCII, an unbreakable run, or a "=?" a reader would try to
 * decode. Returns 0 or -EILSEQ. */
static int put_unstructured(struct buf *b, const char *text)
{
    struct buf clean = {0};
    int rc = header_scrub(text, &clean);
    if (rc < 0)
        goto done;
    if (clean.oom) {
        b->oom = 1;
        goto done;
    }
    const char *s = clean.p ? clean.p : "";
    size_t n = clean.len;
    if (is_ascii(s, n) && longest_word(s, n) <= WORD_MAX && !strstr(s, "=?"))
        fold_ascii(b, s, n);
    else
        encoded_words(b, s, n);
done:
    buf_free(&clean);
    return rc;
}

int message_header_encode(const char *text, size_t used, char **out)
{
    struct buf b = {0};
    /* a placeholder prefix gives the first line its column */
    for (size_t i = 0; i < used && i < 200; i++)
        buf_addc(&b, 'x');
    size_t skip = b.len;
    int rc = put_unstructured(&b, text);
    if (rc == 0 && b.oom)
        rc = -ENOMEM;
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    if (!b.p) { /* nothing was written: an empty value with no prefix */
        *out = strdup("");
        return *out ? 0 : -ENOMEM;
    }
    memmove(b.p, b.p + skip, b.len - skip + 1);
    *out = b.p;
    return 0;
}

static int atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Appends a display name: atoms as they are, other ASCII as a quoted
 * string, non-ASCII as encoded words. */
static int put_phrase(struct buf *b, const char *name)
{
    struct buf clean = {0};
    int rc = header_scrub(name, &clean);
    if (rc < 0 || clean.oom)
        goto done;
    const char *s = clean.p ? clean.p : "";
    size_t n = clean.len;
    int plain = n > 0 && s[0] != ' ' && s[n - 1] != ' ', ascii = is_ascii(s, n);
    for (size_t i = 0; i < n && plain; i++)
        if (!atext((unsigned char)s[i]) && !(s[i] == ' ' && s[i + 1] != ' '))
            plain = 0;
    /* the quoted string's length: a backslash before each quote and
     * backslash, and the two quotes (it cannot be folded: it must fit) */
    size_t quoted = n + 2;
    for (size_t i = 0; i < n; i++)
        quoted += s[i] == '"' || s[i] == '\\';
    if (ascii && n <= WORD_MAX && plain && !strstr(s, "=?")) {
        fold_ascii(b, s, n);
    } else if (ascii && quoted <= WORD_MAX && !strstr(s, "=?")) {
        buf_addc(b, '"');
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\')
                buf_addc(b, '\\');
            buf_addc(b, s[i]);
        }
        buf_addc(b, '"');
    } else {
        encoded_words(b, s, n);
    }
done:
    if (clean.oom)
        b->oom = 1;
    buf_free(&clean);
    return rc;
}

/* An LDH domain of dot-separated labels. */
static int ldh_domain(const char *d)
{
    if (!*d || *d == '.')
        return 0;
    for (const char *p = d; *p; p++) {
        unsigned char c = (unsigned char)*p;
        int ldh = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ldh && !(c == '.' && p[1] && p[1] != '.'))
            return 0;
    }
    return 1;
}

/* The addr-spec relance writes, into out: a dot-atom local part of atext
 * or UTF-8 letters (RFC 6532: raw UTF-8 in a header, which only an
 * SMTPUTF8 transaction may carry — the sender sends such a message only
 * to a server that offers it), and the domain in ASCII form, U-labels as
 * A-labels (idn.c), so that an address stored with a UTF-8 domain still
 * makes a valid header. Returns 0, or -EINVAL with why. */
static int addr_spec(const char *a, char *out, size_t outlen, char *why, size_t whylen)
{
    const char *at = a ? strrchr(a, '@') : NULL;
    size_t n = a ? strlen(a) : 0;
    snprintf(why, whylen, "not an address like name@example.com");
    if (!at || at == a || n > 254 || !at[1] || a[0] == '.' || at[-1] == '.')
        return -EINVAL;
    const unsigned char *u = (const unsigned char *)a;
    for (size_t i = 0; a + i < at; i++) {
        if (u[i] >= 0x80) {
            uint32_t cp = 0;
            size_t k = utf8_decode(u + i, (size_t)(at - a) - i, &cp);
            /* no C1 control, no space or separator (U+2000-U+206F, U+3000) */
            if (!k || cp < 0xA0 || (cp >= 0x2000 && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF)
                return -EINVAL;
            i += k - 1;
        } else if (!atext(u[i]) && !(u[i] == '.' && u[i + 1] != '.')) {
            return -EINVAL;
        }
    }
    size_t local = (size_t)(at - a);
    if (local + 2 > outlen)
        return -EINVAL;
    memcpy(out, a, local);
    out[local] = '@';
    if (idn_domain_to_ascii(at + 1, n - local - 1, out + local + 1, outlen - local - 1, why, whylen) < 0)
        return -EINVAL;
    if (!ldh_domain(out + local + 1)) {
        snprintf(why, whylen, "not an address like name@example.com");
        return -EINVAL;
    }
    return 0;
}

/* "<left@right>" with printable ASCII and no specials that would end it. */
static int msgid_ok(const char *id)
{
    size_t n = strlen(id);
    if (n < 5 || n > 250 || id[0] != '<' || id[n - 1] != '>')
        return 0;
    int ats = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c >= 0x7F || strchr("<>\"\\(),;:[]", c))
            return 0;
        if (c == '@')
            ats++;
    }
    return ats == 1 && id[1] != '@' && id[n - 2] != '@';
}

int message_id_make(const char *domain, const unsigned char *rnd, size_t nrnd, char *out, size_t outlen)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    if (!domain || !idn_ldh_name_ok(domain) || !rnd || nrnd < 8 || nrnd > 64)
        return -EINVAL;
    size_t need = 1 + (nrnd * 8 + 4) / 5 + 1 + strlen(domain) + 1 + 1;
    if (outlen < need)
        return -ENOSPC;
    size_t o = 0;
    out[o++] = '<';
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < nrnd; i++) {
        acc = (acc << 8) | rnd[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o++] = '@';
    memcpy(out + o, domain, strlen(domain));
    o += strlen(domain);
    out[o++] = '>';
    out[o] = '\0';
    return 0;
}

static int put_date(struct buf *b, time_t date, int offset)
{
    static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (offset <= -24 * 60 || offset >= 24 * 60 || date < 0 || date > (time_t)253402300799LL)
        return -EINVAL;
    time_t local = date + (time_t)offset * 60;
    struct tm tm;
    if (!gmtime_r(&local, &tm) || tm.tm_year + 1900 < 1900 || tm.tm_year + 1900 > 9999)
        return -EINVAL;
    int a = offset < 0 ? -offset : offset;
    char s[64];
    snprintf(s, sizeof s, "Date: %s, %02d %s %04d %02d:%02d:%02d %c%02d%02d\r\n", wday[tm.tm_wday], tm.tm_mday,
             mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, offset < 0 ? '-' : '+', a / 60,
             a % 60);
    buf_adds(b, s);
    return 0;
}

/* "Name: [phrase] <addr>" or "Name: addr". */
static int put_address(struct buf *b, const char *hname, const char *addr, const char *name, char *err,
                       size_t errlen)
{
    char spec[320], why[200];
    if (addr_spec(addr, spec, sizeof spec, why, sizeof why) < 0) {
        seterr(err, errlen, "%s address '%.100s' cannot be written: %s", hname, addr ? addr : "(none)", why);
        return -EINVAL;
    }
    buf_adds(b, hname);
    buf_adds(b, ": ");
    if (name && *name) {
        int rc = put_phrase(b, name);
        if (rc < 0) {
            seterr(err, errlen, "%s name is not valid UTF-8", hname);
            return rc;
        }
        if (end_column(b) + strlen(spec) + 3 > LINE_SOFT)
            buf_adds(b, "\r\n");
        buf_adds(b, " <");
        buf_adds(b, spec);
        buf_addc(b, '>');
    } else {
        buf_adds(b, spec);
    }
    buf_adds(b, "\r\n");
    return 0;
}

static const char *const own_headers[] = {
    "From",        "To",         "Bcc",              "Subject",        "Date",
    "Message-ID",  "MIME-Version", "Content-Type",   "Content-Transfer-Encoding",
    "In-Reply-To", "References", "List-Unsubscribe", "DKIM-Signature",
};

static int header_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 76)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (n[i] <= 0x20 || n[i] >= 0x7F || n[i] == ':')
            return 0;
    for (size_t i = 0; i < sizeof own_headers / sizeof own_headers[0]; i++)
        if (strcasecmp(n, own_headers[i]) == 0)
            return 0;
    return 1;
}

/* Lone CR and lone LF become CRLF; a final line gets its CRLF. Checks
 * UTF-8 and reports whether 7bit would do: ASCII text (tabs allowed) in
 * lines of at most LINE_SOFT. */
static int normalise(const char *text, struct buf *out, int *seven_bit)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), line = 0;
    int seven = 1;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\r' || s[i] == '\n') {
            buf_adds(out, "\r\n");
            i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
            line = 0;
            continue;
        }
        size_t k = utf8_decode(s + i, n - i, NULL);
        if (k == 0)
            return -EILSEQ;
        if (k > 1 || (s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F)
            seven = 0;
        buf_add(out, s + i, k);
        i += k;
        line++;
        if (line > LINE_SOFT)
            seven = 0;
    }
    if (out->len > 0 && out->p[out->len - 1] != '\n')
        buf_adds(out, "\r\n");
    *seven_bit = seven;
    return 0;
}

/* QP units: one byte, or a whole UTF-8 sequence, that must stay on one
 * line. Writes the unit's text into u and returns its length. */
static size_t qp_unit(const unsigned char *s, size_t n, size_t i, char *u, int at_eol)
{
    unsigned char c = s[i];
    if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol)) {
        u[0] = (char)c;
        return 1;
    }
    size_t k = c >= 0x80 ? utf8_decode(s + i, n - i, NULL) : 1;
    if (k == 0)
        k = 1;
    for (size_t j = 0; j < k; j++) {
        u[3 * j] = '=';
        u[3 * j + 1] = hexdig[s[i + j] >> 4];
        u[3 * j + 2] = hexdig[s[i + j] & 15];
    }
    return 3 * k;
}

int message_qp_encode(const char *in, size_t len, char **out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    struct buf b = {0};
    size_t col = 0;
    buf_add(&b, "", 0);
    for (size_t i = 0; i < len;) {
        if (s[i] == '\r' || s[i] == '\n') {
            buf_adds(&b, "\r\n");
            i += (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
            col = 0;
            continue;
        }
        char u[12];
        int at_eol = i + 1 >= len || s[i + 1] == '\r' || s[i + 1] == '\n';
        size_t ulen = qp_unit(s, len, i, u, at_eol);
        size_t consumed = u[0] == '=' ? ulen / 3 : 1;
        int last = i + consumed >= len || s[i + consumed] == '\r' || s[i + consumed] == '\n';
        /* a line that goes on needs room for its soft break '=' */
        size_t limit = last ? LINE_QP : LINE_QP - 1;
        if (col > 0 && col + ulen > limit) {
            buf_adds(&b, "=\r\n");
            col = 0;
        }
        buf_add(&b, u, ulen);
        col += ulen;
        i += consumed;
    }
    if (b.oom) {
        buf_free(&b);
        return -ENOMEM;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

/* 64-bit FNV-1a, for a boundary that is stable for a given Message-ID. */
static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int boundary_ok(const char *bd)
{
    size_t n = strlen(bd);
    if (n == 0 || n > 70)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)bd[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c && strchr("'()+_,-./:=?", c));
        if (!ok)
            return 0;
    }
    return 1;
}

/* Appends a text part's Content-Type, Content-Transfer-Encoding, blank
 * line and body (ending in CRLF unless empty). The body is 7bit when it
 * can be and does not contain the boundary, else quoted-printable. */
static int put_part(struct buf *b, const char *text, const char *subtype, const char *boundary, char *err,
                    size_t errlen, const char *field)
{
    struct buf norm = {0};
    char *qp = NULL;
    size_t qplen = 0;
    int seven = 1;
    int rc = normalise(text ? text : "", &norm, &seven);
    if (rc < 0) {
        seterr(err, errlen, "%s is not valid UTF-8", field);
        goto done;
    }
    if (norm.oom) {
        rc = -ENOMEM;
        goto done;
    }
    const char *body = norm.p ? norm.p : "";
    char delim[80];
    if (boundary) {
        snprintf(delim, sizeof delim, "--%s", boundary);
        if (seven && strstr(body, delim))
            seven = 0;
    }
    buf_adds(b, "Content-Type: text/");
    buf_adds(b, subtype);
    buf_adds(b, "; charset=utf-8\r\nContent-Transfer-Encoding: ");
    if (seven) {
        buf_adds(b, "7bit\r\n\r\n");
        buf_add(b, body, norm.len);
        if (norm.len == 0 && boundary)
            buf_adds(b, "\r\n");   /* the delimiter's own CRLF */
    } else {
        rc = message_qp_encode(body, norm.len, &qp, &qplen);
        if (rc < 0)
            goto done;
        if (boundary && strstr(qp, delim)) {
            seterr(err, errlen, "the MIME boundary occurs in the %s", field);
            rc = -EINVAL;
            goto done;
        }
        buf_adds(b, "quoted-printable\r\n\r\n");
        buf_add(b, qp, qplen);
        if (qplen > 0 && qp[qplen - 1] != '\n')
            buf_adds(b, "\r\n");
        if (qplen == 0 && boundary)
            buf_adds(b, "\r\n");
    }
done:
    buf_free(&norm);
    free(qp);
    return rc;
}

/* Appends "Name: value\r\n" for an unstructured value. */
static int put_text_header(struct buf *b, const char *hname, const char *value, char *err, size_t errlen)
{
    buf_adds(b, hname);
    buf_adds(b, ": ");
    int rc = put_unstructured(b, value);
    if (rc < 0) {
        seterr(err, errlen, "%s is not valid UTF-8", hname);
        return rc;
    }
    buf_adds(b, "\r\n");
    return 0;
}

int message_build(const struct message *m, char **out, size_t *out_len, char *err, size_t errlen)
{
    struct buf b = {0};
    int rc = -EINVAL;
    char bd[80];

    if (!m->message_id || !msgid_ok(m->message_id)) {
        seterr(err, errlen, "Message-ID '%.100s' is not of the form <id@domain>",
               m->message_id ? m->message_id : "(none)");
        goto fail;
    }
    if (m->in_reply_to && !msgid_ok(m->in_reply_to)) {
        seterr(err, errlen, "In-Reply-To '%.100s' is not of the form <id@domain>", m->in_reply_to);
        goto fail;
    }
    for (size_t i = 0; i < m->n_references; i++) {
        if (!m->references[i] || !msgid_ok(m->references[i])) {
            seterr(err, errlen, "reference %zu is not of the form <id@domain>", i + 1);
            goto fail;
        }
    }
    if (!m->subject) {
        seterr(err, errlen, "the message has no subject");
        goto fail;
    }
    if (m->html) {
        if (m->boundary) {
            if (!boundary_ok(m->boundary)) {
                seterr(err, errlen, "MIME boundary '%.80s' has characters RFC 2046 does not allow",
                       m->boundary);
                goto fail;
            }
            snprintf(bd, sizeof bd, "%s", m->boundary);
        } else {
            /* "=_" never appears in quoted-printable output */
            uint64_t h1 = fnv1a(m->message_id, 0xcbf29ce484222325ULL);
            uint64_t h2 = fnv1a(m->message_id, h1 ^ 0x9e3779b97f4a7c15ULL);
            snprintf(bd, sizeof bd, "=_relance_%016llx%08llx", (unsigned long long)h1,
                     (unsigned long long)(h2 >> 32));
        }
    }

    rc = put_address(&b, "From", m->from_addr, m->from_name, err, errlen);
    if (rc < 0)
        goto fail;
    rc = put_address(&b, "To", m->to_addr, m->to_name, err, errlen);
    if (rc < 0)
        goto fail;
    rc = put_text_header(&b, "Subject", m->subject, err, errlen);
    if (rc < 0)
        goto fail;
    rc = put_date(&b, m->date, m->utc_offset_minutes);
    if (rc < 0) {
        seterr(err, errlen, "the date or its UTC offset (%d minutes) is out of range", m->utc_offset_minutes);
        goto fail;
    }
    buf_adds(&b, "Message-ID: ");
    buf_adds(&b, m->message_id);
    buf_adds(&b, "\r\n");
    if (m->in_reply_to) {
        buf_adds(&b, "In-Reply-To: ");
        buf_adds(&b, m->in_reply_to);
        buf_adds(&b, "\r\n");
    }
    if (m->n_references > 0) {
        buf_adds(&b, "References:");
        size_t col = strlen("References:");
        for (size_t i = 0; i < m->n_references; i++) {
            size_t n = strlen(m->references[i]);
            if (i > 0 && col + 1 + n > LINE_SOFT) {
                buf_adds(&b, "\r\n");
                col = 0;
            }
            buf_addc(&b, ' ');
            buf_adds(&b, m->references[i]);
            col += 1 + n;
        }
        buf_adds(&b, "\r\n");
    }
    if (m->list_unsubscribe) {
        struct buf clean = {0};
        rc = header_scrub(m->list_unsubscribe, &clean);
        const char *v = clean.p ? clean.p : "";
        if (rc < 0 || !is_ascii(v, clean.len) || longest_word(v, clean.len) > WORD_MAX) {
            seterr(err, errlen, "List-Unsubscribe must be ASCII URIs in <>");
            buf_free(&clean);
            rc = -EINVAL;
            goto fail;
        }
        buf_adds(&b, "List-Unsubscribe: ");
        fold_ascii(&b, v, clean.len);
        buf_adds(&b, "\r\n");
        if (clean.oom)
            b.oom = 1;
        buf_free(&clean);
    }
    for (size_t i = 0; i < m->n_extra; i++) {
        const struct message_header *h = &m->extra[i];
        if (!h->name || !h->value || !header_name_ok(h->name)) {
            seterr(err, errlen, "extra header '%.80s' is not a name relance lets a caller set",
                   h->name ? h->name : "(none)");
            rc = -EINVAL;
            goto fail;
        }
        rc = put_text_header(&b, h->name, h->value, err, errlen);
        if (rc < 0)
            goto fail;
    }
    buf_adds(&b, "MIME-Version: 1.0\r\n");
    if (!m->html) {
        rc = put_part(&b, m->text, "plain", NULL, err, errlen, "text body");
        if (rc < 0)
            goto fail;
    } else {
        buf_adds(&b, "Content-Type: multipart/alternative; boundary=\"");
        buf_adds(&b, bd);
        buf_adds(&b, "\"\r\n\r\n--");
        buf_adds(&b, bd);
        buf_adds(&b, "\r\n");
        rc = put_part(&b, m->text, "plain", bd, err, errlen, "text body");
        if (rc < 0)
            goto fail;
        buf_adds(&b, "--");
        buf_adds(&b, bd);
        buf_adds(&b, "\r\n");
        rc = put_part(&b, m->html, "html", bd, err, errlen, "HTML body");
        if (rc < 0)
            goto fail;
        buf_adds(&b, "--");
        buf_adds(&b, bd);
        buf_adds(&b, "--\r\n");
    }
    if (b.oom) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
fail:
    buf_free(&b);
    return rc;
}
