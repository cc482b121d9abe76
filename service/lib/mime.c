/* mime: reads received mail into a tree of parts. It owns header
 * unfolding and lookup, RFC 2047 words, RFC 2231 parameters, multipart
 * splitting, base64 and quoted-printable, charset conversion to UTF-8 and
 * the field blocks of RFC 3464 delivery reports. It does not decide what
 * a message means (that is classify) and does not build outgoing mail
 * (that is message). Every loop is bounded by the input length, the part
 * and header limits of mime.h and the nesting limit, so a hostile message
 * costs at most a few passes over its bytes. Pure: no I/O, no logging. */
#include "mime.h"

#include "buf.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void add_cp(struct buf *b, uint32_t cp)
{
    char t[4];
    buf_add(b, t, utf8_encode(cp, t));
}

/* Hands the buffer over as a NUL-terminated string (never NULL unless
 * out of memory, which frees it). */
static int take(struct buf *b, char **out, size_t *out_len)
{
    buf_add(b, "", 0); /* an empty result is still a string */
    if (!b->oom) {
        *out = b->p;
        if (out_len)
            *out_len = b->len;
        return 0;
    }
    buf_free(b);
    *out = NULL;
    if (out_len)
        *out_len = 0;
    return -ENOMEM;
}

/* ---- UTF-8 and single-byte charsets ---- */

/* Windows-1252 0x80..0x9F; the five holes keep their Latin-1 C1 value. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static void add_cp1252(struct buf *b, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x80)
            buf_addc(b, (char)c);
        else if (c < 0xA0)
            add_cp(b, cp1252_high[c - 0x80]);
        else
            add_cp(b, c);
    }
}

/* Copies valid UTF-8; bad bytes become U+FFFD. */
static void add_utf8_lossy(struct buf *b, const char *in, size_t len)
{
    const unsigned char *u = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_decode(u + i, len - i, NULL);
        if (k == 0) {
            add_cp(b, 0xFFFD);
            i++;
        } else {
            buf_add(b, in + i, k);
            i += k;
        }
    }
}

/* UTF-8 when it is, else Windows-1252 (what undeclared 8-bit mail is). */
static void add_guess(struct buf *b, const char *in, size_t len)
{
    if (utf8_valid(in, len))
        buf_add(b, in, len);
    else
        add_cp1252(b, in, len);
}

static int charset_is(const char *cs, const char *const *names)
{
    for (size_t i = 0; names[i]; i++)
        if (strcasecmp(cs, names[i]) == 0)
            return 1;
    return 0;
}

static const char *const utf8_names[] = {"utf-8", "utf8", "unicode-1-1-utf-8", NULL};
static const char *const ascii_names[] = {"", "us-ascii", "ascii", "ansi_x3.4-1968",
                                          "unknown-8bit", "x-unknown", "default", NULL};
static const char *const latin1_names[] = {
    "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "iso-ir-100",
    "cp819", "ibm819", "windows-1252", "cp1252", "x-cp1252", "iso-8859-15", "iso8859-15",
    "latin-9", "latin9", NULL};

static void add_iconv(struct buf *b, iconv_t cd, const char *in, size_t len)
{
    char *ip = (char *)in;
    size_t left = len;
    char chunk[1024];
    while (left > 0 && !b->oom) {
        char *op = chunk;
        size_t room = sizeof chunk;
        size_t r = iconv(cd, &ip, &left, &op, &room);
        buf_add(b, chunk, (size_t)(op - chunk));
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            /* EILSEQ or EINVAL: one bad byte, then resynchronise. */
            add_cp(b, 0xFFFD);
            ip++;
            left--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    char *op = chunk;
    size_t room = sizeof chunk;
    iconv(cd, NULL, NULL, &op, &room);
    buf_add(b, chunk, (size_t)(op - chunk));
}

static void add_charset(struct buf *b, const char *charset, const char *in, size_t len)
{
    char cs[48];
    size_t n = 0;
    for (const char *s = charset ? charset : ""; *s && n + 1 < sizeof cs; s++) {
        if (*s == '"' || *s == '\'' || isspace((unsigned char)*s))
            continue;
        cs[n++] = (char)tolower((unsigned char)*s);
    }
    cs[n] = '\0';
    if (charset_is(cs, utf8_names)) {
        add_utf8_lossy(b, in, len);
        return;
    }
    if (charset_is(cs, ascii_names)) {
        add_guess(b, in, len);
        return;
    }
    if (charset_is(cs, latin1_names) && strstr(cs, "15") == NULL) {
        add_cp1252(b, in, len);
        return;
    }
    /* Only plain names go to iconv: no paths, no option suffixes. */
    int sane = n > 0 && n < 40;
    for (size_t i = 0; i < n && sane; i++)
        sane = isalnum((unsigned char)cs[i]) || cs[i] == '-' || cs[i] == '_' || cs[i] == '.' ||
               cs[i] == ':';
    if (sane && utf8_valid(in, len)) {
        /* Pure ASCII needs no conversion in any ASCII-compatible set. */
        size_t i = 0;
        while (i < len && (unsigned char)in[i] < 0x80 && in[i] != 0x1B && in[i] != '+')
            i++;
        if (i == len) {
            buf_add(b, in, len);
            return;
        }
    }
    if (sane) {
        iconv_t cd = iconv_open("UTF-8", cs);
        if (cd != (iconv_t)-1) {
            add_iconv(b, cd, in, len);
            iconv_close(cd);
            return;
        }
    }
    add_guess(b, in, len);
}

int mime_charset_to_utf8(const char *charset, const char *in, size_t len, char **out,
                         size_t *out_len)
{
    struct buf b = {0};
    add_charset(&b, charset, in, len);
    return take(&b, out, out_len);
}

/* ---- transfer encodings ---- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static void add_base64(struct buf *b, const char *in, size_t len)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            if (in[i] == '=')
                bits = 0; /* padding: a new group may follow (concatenated chunks) */
            continue;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_addc(b, (char)((acc >> bits) & 0xFF));
        }
    }
}

int mime_base64_decode(const char *in, size_t len, char **out, size_t *out_len)
{
    struct buf b = {0};
    add_base64(&b, in, len);
    return take(&b, out, out_len);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* underscore: RFC 2047 "Q" reads '_' as a space. */
static void add_qp(struct buf *b, const char *in, size_t len, int underscore)
{
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '_' && underscore) {
            buf_addc(b, ' ');
        } else if (c == '=') {
            size_t j = i + 1;
            while (j < len && (in[j] == ' ' || in[j] == '\t'))
                j++;
            if (j < len && (in[j] == '\n' || in[j] == '\r')) {
                if (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n')
                    j++;
                i = j; /* soft line break */
            } else if (j == len) {
                i = j;
            } else if (i + 2 < len && hex_value((unsigned char)in[i + 1]) >= 0 &&
                       hex_value((unsigned char)in[i + 2]) >= 0) {
                buf_addc(b, (char)(hex_value((unsigned char)in[i + 1]) * 16 +
                                   hex_value((unsigned char)in[i + 2])));
                i += 2;
            } else {
                buf_addc(b, '=');
            }
        } else {
            buf_addc(b, c);
        }
    }
}

int mime_qp_decode(const char *in, size_t len, char **out, size_t *out_len)
{
    struct buf b = {0};
    add_qp(&b, in, len, 0);
    return take(&b, out, out_len);
}

/* ---- headers ---- */

static int field_name_char(unsigned char c)
{
    return c > 32 && c < 127 && c != ':';
}

/* End of the line starting at i (index of '\n' or len) */
static size_t line_end(const char *p, size_t len, size_t i)
{
    const char *e = memchr(p + i, '\n', len - i);
    return e ? (size_t)(e - p) : len;
}

void mime_headers_free(struct mime_headers *h)
{
    for (size_t i = 0; i < h->count; i++) {
        free(h->items[i].name);
        free(h->items[i].value);
    }
    free(h->items);
    h->items = NULL;
    h->count = 0;
}

static int add_field(struct mime_headers *h, size_t *cap, const char *p, size_t name_len,
                     size_t vstart, size_t vend)
{
    if (h->count >= MIME_MAX_HEADERS)
        return 0;
    if (h->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct mime_header *n = realloc(h->items, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        h->items = n;
        *cap = ncap;
    }
    char *name = strndup(p, name_len);
    struct buf v = {0};
    for (size_t i = vstart; i < vend && v.len < MIME_MAX_HEADER_LEN; i++) {
        char c = p[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '\0')
            c = ' ';
        if (c == '\t')
            c = ' ';
        buf_addc(&v, c);
    }
    char *value = NULL;
    if (take(&v, &value, NULL) < 0 || !name) {
        free(name);
        free(value);
        return -ENOMEM;
    }
    size_t s = 0, e = strlen(value);
    while (s < e && value[s] == ' ')
        s++;
    while (e > s && value[e - 1] == ' ')
        e--;
    memmove(value, value + s, e - s);
    value[e - s] = '\0';
    h->items[h->count].name = name;
    h->items[h->count].value = value;
    h->count++;
    return 0;
}

int mime_headers_parse(const char *p, size_t len, struct mime_headers *out, size_t *consumed)
{
    size_t cap = 0, i = 0;
    out->items = NULL;
    out->count = 0;
    while (i < len) {
        size_t e = line_end(p, len, i);
        size_t ce = e;
        if (ce > i && p[ce - 1] == '\r')
            ce--;
        if (ce == i) { /* the empty line that ends the block */
            i = e < len ? e + 1 : len;
            break;
        }
        size_t n = 0;
        while (i + n < ce && field_name_char((unsigned char)p[i + n]))
            n++;
        size_t colon = i + n;
        while (colon < ce && (p[colon] == ' ' || p[colon] == '\t'))
            colon++; /* "Subject : x" exists in the wild */
        if (n == 0 || colon >= ce || p[colon] != ':')
            break; /* not a field: the body starts here */
        /* The field runs on over continuation lines. */
        size_t fe = e;
        while (fe < len) {
            size_t next = fe + 1;
            if (next >= len || (p[next] != ' ' && p[next] != '\t'))
                break;
            size_t ne = line_end(p, len, next);
            /* a whitespace-only line is a broken separator; stop there */
            size_t k = next;
            while (k < ne && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
                k++;
            if (k == ne)
                break;
            fe = ne;
        }
        if (add_field(out, &cap, p + i, n, colon + 1 - i, fe - i) < 0) {
            mime_headers_free(out);
            *consumed = 0;
            return -ENOMEM;
        }
        i = fe < len ? fe + 1 : len;
    }
    *consumed = i;
    return 0;
}

const char *mime_headers_get_nth(const struct mime_headers *h, const char *name, size_t n)
{
    for (size_t i = 0; i < h->count; i++)
        if (strcasecmp(h->items[i].name, name) == 0 && n-- == 0)
            return h->items[i].value;
    return NULL;
}

const char *mime_headers_get(const struct mime_headers *h, const char *name)
{
    return mime_headers_get_nth(h, name, 0);
}

static void percent_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%' && hex_value((unsigned char)r[1]) >= 0 && hex_value((unsigned char)r[2]) >= 0) {
            *w++ = (char)(hex_value((unsigned char)r[1]) * 16 + hex_value((unsigned char)r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

int mime_param_get(const char *value, const char *param, char *buf, size_t len)
{
    if (!value || len == 0)
        return -1;
    size_t plen = strlen(param);
    const char *s = value;
    int in_quote = 0;
    /* skip the main value */
    for (; *s; s++) {
        if (*s == '"')
            in_quote = !in_quote;
        else if (*s == ';' && !in_quote)
            break;
    }
    while (*s == ';') {
        s++;
        while (*s == ' ' || *s == '\t' || *s == ';')
            s++;
        const char *name = s;
        while (*s && *s != '=' && *s != ';')
            s++;
        const char *name_end = s;
        while (name_end > name && (name_end[-1] == ' ' || name_end[-1] == '\t'))
            name_end--;
        if (*s != '=')
            continue;
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = 0;
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                if (n + 1 < len)
                    buf[n++] = *s;
                s++;
            }
            if (*s == '"')
                s++;
            while (*s && *s != ';')
                s++;
        } else {
            while (*s && *s != ';') {
                if (n + 1 < len)
                    buf[n++] = *s;
                s++;
            }
            while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                n--;
        }
        buf[n] = '\0';
        size_t nl = (size_t)(name_end - name);
        if (nl == plen && strncasecmp(name, param, plen) == 0)
            return 0;
        if (nl == plen + 1 && strncasecmp(name, param, plen) == 0 && name[plen] == '*') {
            /* RFC 2231: charset'language'percent-encoded */
            char *q = strchr(buf, '\'');
            char *q2 = q ? strchr(q + 1, '\'') : NULL;
            if (q2)
                memmove(buf, q2 + 1, strlen(q2 + 1) + 1);
            percent_decode(buf);
            return 0;
        }
    }
    buf[0] = '\0';
    return -1;
}

/* ---- RFC 2047 ---- */

struct words {
    struct buf out;
    struct buf raw;       /* undecoded text waiting to be added */
    struct buf pending;   /* decoded bytes of adjacent words in one charset */
    char charset[48];
};

static void words_flush_pending(struct words *w)
{
    if (w->pending.len)
        add_charset(&w->out, w->charset, w->pending.p, w->pending.len);
    buf_clear(&w->pending);
}

static void words_flush_raw(struct words *w)
{
    if (w->raw.len)
        add_guess(&w->out, w->raw.p, w->raw.len);
    buf_clear(&w->raw);
}

/* Tries an encoded word at s; on success returns its length. */
static size_t encoded_word(struct words *w, const char *s)
{
    if (s[0] != '=' || s[1] != '?')
        return 0;
    const char *cs = s + 2;
    const char *q1 = strchr(cs, '?');
    if (!q1 || q1 - cs == 0 || q1 - cs >= 47)
        return 0;
    char enc = (char)toupper((unsigned char)q1[1]);
    if ((enc != 'B' && enc != 'Q') || q1[2] != '?')
        return 0;
    const char *text = q1 + 3;
    const char *end = strstr(text, "?=");
    if (!end)
        return 0;
    for (const char *t = text; t < end; t++)
        if (*t == ' ' || *t == '\t')
            return 0;
    char charset[48];
    size_t n = (size_t)(q1 - cs);
    memcpy(charset, cs, n);
    charset[n] = '\0';
    char *star = strchr(charset, '*'); /* RFC 2231 language suffix */
    if (star)
        *star = '\0';
    words_flush_raw(w);
    if (strcasecmp(charset, w->charset) != 0)
        words_flush_pending(w);
    snprintf(w->charset, sizeof w->charset, "%s", charset);
    if (enc == 'B')
        add_base64(&w->pending, text, (size_t)(end - text));
    else
        add_qp(&w->pending, text, (size_t)(end - text), 1);
    return (size_t)(end + 2 - s);
}

char *mime_words_decode(const char *value)
{
    struct words w = {0};
    const char *s = value ? value : "";
    int after_word = 0;
    while (*s) {
        size_t k = encoded_word(&w, s);
        if (k) {
            s += k;
            after_word = 1;
            continue;
        }
        if (after_word && (*s == ' ' || *s == '\t')) {
            /* whitespace between two encoded words disappears */
            const char *t = s;
            while (*t == ' ' || *t == '\t')
                t++;
            size_t k2 = encoded_word(&w, t);
            if (k2) {
                s = t + k2;
                continue;
            }
        }
        words_flush_pending(&w);
        buf_addc(&w.raw, *s);
        after_word = 0;
        s++;
    }
    words_flush_pending(&w);
    words_flush_raw(&w);
    free(w.raw.p);
    free(w.pending.p);
    char *out = NULL;
    if (w.raw.oom || w.pending.oom)
        w.out.oom = 1;
    if (take(&w.out, &out, NULL) < 0)
        return NULL;
    return out;
}

/* ---- parts ---- */

struct ctx {
    size_t parts;
};

void mime_part_free(struct mime_part *part)
{
    if (!part)
        return;
    mime_headers_free(&part->headers);
    free(part->body);
    for (size_t i = 0; i < part->part_count; i++)
        mime_part_free(&part->parts[i]);
    free(part->parts);
    memset(part, 0, sizeof *part);
}

static void parse_type(const char *value, const char *fallback, char *type, size_t len)
{
    size_t n = 0;
    const char *s = value ? value : "";
    while (*s == ' ')
        s++;
    for (; *s && *s != ';' && *s != ' ' && n + 1 < len; s++)
        type[n++] = (char)tolower((unsigned char)*s);
    type[n] = '\0';
    char *slash = strchr(type, '/');
    if (!slash || slash == type || slash[1] == '\0')
        snprintf(type, len, "%s", fallback);
}

static int is_texty(const char *type)
{
    return strncmp(type, "text/", 5) == 0 || strncmp(type, "message/", 8) == 0 ||
           strcmp(type, "application/json") == 0;
}

static int decode_transfer(const struct mime_headers *h, const char *p, size_t len, char **out,
                           size_t *out_len)
{
    const char *cte = mime_headers_get(h, "Content-Transfer-Encoding");
    char enc[32] = "";
    if (cte) {
        size_t n = 0;
        while (*cte == ' ' || *cte == '"')
            cte++;
        for (; *cte && *cte != ' ' && *cte != ';' && *cte != '"' && n + 1 < sizeof enc; cte++)
            enc[n++] = (char)tolower((unsigned char)*cte);
        enc[n] = '\0';
    }
    if (strcmp(enc, "base64") == 0)
        return mime_base64_decode(p, len, out, out_len);
    if (strcmp(enc, "quoted-printable") == 0)
        return mime_qp_decode(p, len, out, out_len);
    struct buf b = {0};
    buf_add(&b, p, len);
    return take(&b, out, out_len);
}

static int parse_part(struct ctx *c, const char *p, size_t len, unsigned depth,
                      const char *default_type, int headers_only, struct mime_part *out);

static int add_child(struct mime_part *parent, size_t *cap, struct mime_part *child)
{
    if (parent->part_count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct mime_part *n = realloc(parent->parts, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        parent->parts = n;
        *cap = ncap;
    }
    parent->parts[parent->part_count++] = *child;
    return 0;
}

/* Is the line p[i..e) a delimiter "--boundary" or "--boundary--"?
 * Returns 0 (no), 1 (delimiter) or 2 (close delimiter). */
static int delimiter(const char *p, size_t i, size_t e, const char *bd, size_t bl)
{
    if (e - i < bl + 2 || p[i] != '-' || p[i + 1] != '-' || memcmp(p + i + 2, bd, bl) != 0)
        return 0;
    size_t k = i + 2 + bl;
    int close = 0;
    if (e - k >= 2 && p[k] == '-' && p[k + 1] == '-') {
        close = 1;
        k += 2;
    }
    while (k < e && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
        k++;
    if (k != e)
        return 0;
    return close ? 2 : 1;
}

static int parse_multipart(struct ctx *c, const char *p, size_t len, const char *bd,
                           struct mime_part *out)
{
    size_t bl = strlen(bd), cap = 0, i = 0;
    size_t start = 0;
    int in_part = 0;
    const char *child_type = strcmp(out->type, "multipart/digest") == 0 ? "message/rfc822"
                                                                        : "text/plain";
    while (i <= len) {
        size_t e = i < len ? line_end(p, len, i) : len;
        int d = i < len ? delimiter(p, i, e, bd, bl) : 2;
        if (d) {
            if (in_part) {
                size_t end = i;
                /* the line break before the delimiter belongs to it */
                if (end > start && p[end - 1] == '\n')
                    end--;
                if (end > start && p[end - 1] == '\r')
                    end--;
                if (c->parts >= MIME_MAX_PARTS) {
                    out->flags |= MIME_TRUNCATED;
                    return 0;
                }
                struct mime_part child;
                int rc = parse_part(c, p + start, end - start, out->depth + 1, child_type, 0,
                                    &child);
                if (rc == 0)
                    rc = add_child(out, &cap, &child);
                if (rc < 0) {
                    mime_part_free(&child);
                    return rc;
                }
                out->flags |= child.flags & MIME_TRUNCATED;
            }
            if (d == 2)
                return 0;
            in_part = 1;
            start = e < len ? e + 1 : len;
        }
        if (i >= len)
            break;
        i = e < len ? e + 1 : len;
    }
    return 0;
}

static int guess_boundary(const char *p, size_t len, char *bd, size_t bdlen)
{
    size_t limit = len < 8192 ? len : 8192;
    for (size_t i = 0; i < limit;) {
        size_t e = line_end(p, len, i);
        size_t ce = e;
        if (ce > i && p[ce - 1] == '\r')
            ce--;
        if (ce - i > 4 && ce - i < bdlen && p[i] == '-' && p[i + 1] == '-') {
            int ok = 1;
            for (size_t k = i + 2; k < ce && ok; k++)
                ok = p[k] > ' ' && p[k] < 127;
            if (ok) {
                memcpy(bd, p + i + 2, ce - i - 2);
                bd[ce - i - 2] = '\0';
                return 0;
            }
        }
        i = e + 1;
    }
    return -1;
}

static int parse_part(struct ctx *c, const char *p, size_t len, unsigned depth,
                      const char *default_type, int headers_only, struct mime_part *out)
{
    size_t used = 0;
    int rc;
    memset(out, 0, sizeof *out);
    out->depth = depth;
    c->parts++;
    rc = mime_headers_parse(p, len, &out->headers, &used);
    if (rc < 0)
        return rc;
    if (out->headers.count == 0)
        out->flags |= MIME_NO_HEADERS;
    if (out->headers.count >= MIME_MAX_HEADERS)
        out->flags |= MIME_TRUNCATED;
    if (headers_only) {
        snprintf(out->type, sizeof out->type, "text/rfc822-headers");
        return 0;
    }
    const char *body = p + used;
    size_t blen = len - used;
    const char *ct = mime_headers_get(&out->headers, "Content-Type");
    parse_type(ct, default_type, out->type, sizeof out->type);
    if (mime_param_get(ct, "charset", out->charset, sizeof out->charset) == 0)
        for (char *s = out->charset; *s; s++)
            *s = (char)tolower((unsigned char)*s);
    int deep = depth >= MIME_MAX_DEPTH || c->parts >= MIME_MAX_PARTS;
    if (deep)
        out->flags |= MIME_TRUNCATED;

    if (!deep && strncmp(out->type, "multipart/", 10) == 0) {
        char bd[256];
        if (mime_param_get(ct, "boundary", bd, sizeof bd) == 0 && bd[0]) {
            rc = parse_multipart(c, body, blen, bd, out);
            if (rc < 0 || out->part_count > 0)
                return rc;
        }
        /* The declared boundary is nowhere (mangled in transit): take
         * the first "--token" line, if it comes back later. */
        if (guess_boundary(body, blen, bd, sizeof bd) == 0) {
            rc = parse_multipart(c, body, blen, bd, out);
            if (rc < 0 || out->part_count > 0)
                return rc;
        }
        /* no usable boundary: read it as text */
        snprintf(out->type, sizeof out->type, "text/plain");
    }
    char *dec = NULL;
    size_t dlen = 0;
    rc = decode_transfer(&out->headers, body, blen, &dec, &dlen);
    if (rc < 0)
        return rc;
    int embedded = strcmp(out->type, "message/rfc822") == 0 ||
                   strcmp(out->type, "message/global") == 0;
    int embedded_headers = strcmp(out->type, "text/rfc822-headers") == 0 ||
                           strcmp(out->type, "message/global-headers") == 0 ||
                           strcmp(out->type, "message/rfc822-headers") == 0;
    if (!deep && (embedded || embedded_headers)) {
        struct mime_part child;
        size_t cap = 0;
        const char *q = dec;
        size_t qlen = dlen;
        /* an mbox separator sometimes survives in forwarded mail */
        if (qlen >= 5 && memcmp(q, "From ", 5) == 0) {
            size_t e = line_end(q, qlen, 0);
            q += e < qlen ? e + 1 : qlen;
            qlen = (size_t)(dec + dlen - q);
        }
        rc = parse_part(c, q, qlen, depth + 1, "text/plain", embedded_headers, &child);
        if (rc == 0)
            rc = add_child(out, &cap, &child);
        if (rc < 0) {
            mime_part_free(&child);
            free(dec);
            return rc;
        }
        out->flags |= child.flags & MIME_TRUNCATED;
        if (embedded) {
            free(dec);
            return 0;
        }
    }
    if (is_texty(out->type)) {
        rc = mime_charset_to_utf8(out->charset, dec, dlen, &out->body, &out->body_len);
        free(dec);
        return rc;
    }
    out->body = dec;
    out->body_len = dlen;
    return 0;
}

int mime_message_parse(const char *raw, size_t len, struct mime_part *out)
{
    struct ctx c = {0};
    if (len > MIME_MAX_INPUT)
        len = MIME_MAX_INPUT;
    /* an mbox "From " line before the headers */
    if (len >= 5 && memcmp(raw, "From ", 5) == 0) {
        size_t e = line_end(raw, len, 0);
        size_t skip = e < len ? e + 1 : len;
        raw += skip;
        len -= skip;
    }
    return parse_part(&c, raw, len, 0, "text/plain", 0, out);
}

/* ---- delivery-status ---- */

void mime_dsn_free(struct mime_dsn *dsn)
{
    for (size_t i = 0; i < dsn->count; i++)
        mime_headers_free(&dsn->blocks[i]);
    free(dsn->blocks);
    dsn->blocks = NULL;
    dsn->count = 0;
}

int mime_dsn_parse(const char *body, size_t len, struct mime_dsn *out)
{
    size_t i = 0, cap = 0;
    out->blocks = NULL;
    out->count = 0;
    while (i < len && out->count < MIME_MAX_PARTS) {
        /* skip blank lines between blocks */
        size_t e = line_end(body, len, i);
        size_t k = i;
        while (k < e && (body[k] == ' ' || body[k] == '\t' || body[k] == '\r'))
            k++;
        if (k == e) {
            i = e + 1;
            continue;
        }
        struct mime_headers h;
        size_t used = 0;
        if (mime_headers_parse(body + i, len - i, &h, &used) < 0)
            goto fail;
        if (h.count == 0) {
            mime_headers_free(&h);
            i = e + 1; /* not a field: skip the line */
            continue;
        }
        if (out->count == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct mime_headers *n = realloc(out->blocks, ncap * sizeof *n);
            if (!n) {
                mime_headers_free(&h);
                goto fail;
            }
            out->blocks = n;
            cap = ncap;
        }
        out->blocks[out->count++] = h;
        i += used;
    }
    return 0;
fail:
    mime_dsn_free(out);
    return -ENOMEM;
}

const struct mime_part *mime_part_find(const struct mime_part *root, const char *type)
{
    if (!root)
        return NULL;
    if (strcmp(root->type, type) == 0)
        return root;
    for (size_t i = 0; i < root->part_count; i++) {
        const struct mime_part *f = mime_part_find(&root->parts[i], type);
        if (f)
            return f;
    }
    return NULL;
}
