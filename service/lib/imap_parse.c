/* imap_parse: the response reader and the parsers (imap_parse.h). Pure:
 * bytes in, values out. */
#include "imap_parse.h"

#include "buf.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FOLDER_MAX 512

/* ---- the response reader */

void imap_reader_init(struct imap_reader *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
}

void imap_reader_reset(struct imap_reader *r)
{
    if (r->resp.oom)
        buf_free(&r->resp); /* a new command starts with a clean slate */
    buf_clear(&r->resp);
    r->literal_left = 0;
    r->tail_len = 0;
    r->truncated = 0;
    r->failed = 0;
}

void imap_reader_free(struct imap_reader *r)
{
    buf_free(&r->resp);
    imap_reader_init(r, r->max);
}

int imap_reader_pending(const struct imap_reader *r)
{
    return r->resp.len > 0 || r->literal_left > 0 || r->truncated;
}

/* Stores p[0..n) in the current response, up to max bytes. */
static int store(struct imap_reader *r, const char *p, size_t n)
{
    size_t len = r->resp.len;
    if (len + n > r->max) {
        r->truncated = 1;
        n = len < r->max ? r->max - len : 0;
    }
    if (n == 0)
        return 0;
    buf_add(&r->resp, p, n);
    if (r->resp.oom) {
        r->failed = 1;
        r->truncated = 1;
        return -ENOMEM;
    }
    return 0;
}

/* Keeps the last bytes of the line being read (stored or not). */
static void tail_add(struct imap_reader *r, const char *p, size_t n)
{
    const size_t size = sizeof r->tail;
    if (n >= size) {
        memcpy(r->tail, p + n - size, size);
        r->tail_len = size;
        return;
    }
    if (r->tail_len + n > size) {
        size_t drop = r->tail_len + n - size;
        memmove(r->tail, r->tail + drop, r->tail_len - drop);
        r->tail_len -= drop;
    }
    memcpy(r->tail + r->tail_len, p, n);
    r->tail_len += n;
}

/* The N of a line that ends with "{N}" or "{N+}" (then CRLF or LF), or
 * -1 when the line announces no literal. */
static int64_t literal_announced(const struct imap_reader *r)
{
    size_t n = r->tail_len;
    const char *t = r->tail;
    if (n && t[n - 1] == '\n')
        n--;
    if (n && t[n - 1] == '\r')
        n--;
    if (!n || t[n - 1] != '}')
        return -1;
    n--;
    if (n && t[n - 1] == '+')
        n--;
    size_t end = n;
    while (n && isdigit((unsigned char)t[n - 1]))
        n--;
    if (n == end || !n || t[n - 1] != '{' || end - n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = n; i < end; i++)
        v = v * 10 + (t[i] - '0');
    return v;
}

int imap_reader_feed(struct imap_reader *r, const char *p, size_t n, imap_response_cb on_response, void *arg)
{
    int rc = 0;
    while (n > 0) {
        if (r->literal_left > 0) {
            size_t take = r->literal_left < n ? (size_t)r->literal_left : n;
            if (store(r, p, take) < 0)
                rc = -ENOMEM;
            r->literal_left -= take;
            p += take;
            n -= take;
            continue;
        }
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (store(r, p, take) < 0)
            rc = -ENOMEM;
        tail_add(r, p, take);
        p += take;
        n -= take;
        if (!nl)
            break;
        int64_t lit = literal_announced(r);
        r->tail_len = 0;
        if (lit > 0) {
            r->literal_left = (uint64_t)lit;
            continue;
        }
        if (lit == 0)
            continue; /* "{0}": an empty literal, the line goes on */
        if (r->resp.len)
            on_response(arg, r->resp.p, r->resp.len, r->truncated);
        else if (r->truncated)
            on_response(arg, "", 0, 1);
        buf_clear(&r->resp);
        r->truncated = 0;
    }
    return rc;
}

/* ---- tokens */

struct cur {
    const char *p, *e;
};

static int at_end(const struct cur *c)
{
    return c->p >= c->e || *c->p == '\r' || *c->p == '\n';
}

static void skip_sp(struct cur *c)
{
    while (c->p < c->e && *c->p == ' ')
        c->p++;
}

static int eat(struct cur *c, char ch)
{
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* The case-insensitive word w, followed by a space, '(' or the end. */
static int eat_word(struct cur *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->e - c->p) < n || strncasecmp(c->p, w, n) != 0)
        return 0;
    const char *after = c->p + n;
    if (after < c->e && *after != ' ' && *after != '(' && *after != '\r' && *after != '\n')
        return 0;
    c->p = after;
    return 1;
}

static int number(struct cur *c, uint64_t *v)
{
    const char *s = c->p;
    uint64_t x = 0;
    while (c->p < c->e && isdigit((unsigned char)*c->p) && c->p - s < 19)
        x = x * 10 + (uint64_t)(*c->p++ - '0');
    if (c->p == s || (c->p < c->e && isdigit((unsigned char)*c->p)))
        return -1;
    *v = x;
    return 0;
}

static int number32(struct cur *c, uint32_t *v)
{
    uint64_t x;
    if (number(c, &x) < 0 || x > UINT32_MAX)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

static int atom_char(char ch)
{
    return ch > ' ' && ch < 0x7f && ch != '(' && ch != ')' && ch != '{' && ch != '"' && ch != '\\' &&
           ch != '%' && ch != '*' && ch != ']';
}

/* A string value: quoted, literal, or an atom when atom_ok; or NIL.
 * Points *s and *n at its raw bytes (a quoted string still escaped; *quoted
 * says so). Returns 0, 1 for NIL, -1 when none is there. */
static int string_span(struct cur *c, const char **s, size_t *n, int *quoted, int atom_ok)
{
    *quoted = 0;
    if (c->p >= c->e)
        return -1;
    if (*c->p == '"') {
        const char *b = ++c->p;
        while (c->p < c->e && *c->p != '"') {
            if (*c->p == '\\' && c->p + 1 < c->e)
                c->p++;
            c->p++;
        }
        if (c->p >= c->e)
            return -1;
        *s = b;
        *n = (size_t)(c->p - b);
        *quoted = 1;
        c->p++;
        return 0;
    }
    if (*c->p == '{' || (*c->p == '~' && c->p + 1 < c->e && c->p[1] == '{')) {
        if (*c->p == '~')
            c->p++;
        c->p++;
        uint64_t len;
        if (number(c, &len) < 0)
            return -1;
        eat(c, '+');
        if (!eat(c, '}'))
            return -1;
        eat(c, '\r');
        if (!eat(c, '\n'))
            return -1;
        size_t avail = (size_t)(c->e - c->p);
        if (len > avail)
            len = avail; /* cut by the reader's cap: keep what is there */
        *s = c->p;
        *n = (size_t)len;
        c->p += len;
        return 0;
    }
    if (c->e - c->p >= 3 && strncasecmp(c->p, "NIL", 3) == 0 &&
        (c->e - c->p == 3 || !atom_char(c->p[3]) || c->p[3] == ']')) {
        c->p += 3;
        *s = NULL;
        *n = 0;
        return 1;
    }
    if (!atom_ok)
        return -1;
    const char *b = c->p;
    while (c->p < c->e && (atom_char(*c->p) || *c->p == ']' || *c->p == '%' || *c->p == '*'))
        c->p++;
    if (c->p == b)
        return -1;
    *s = b;
    *n = (size_t)(c->p - b);
    return 0;
}

/* A string into out, unescaped, cut to out_size - 1; NIL gives "". */
static int string_copy(struct cur *c, char *out, size_t out_size)
{
    const char *s;
    size_t n;
    int quoted;
    int rc = string_span(c, &s, &n, &quoted, 1);
    if (rc < 0)
        return -1;
    size_t k = 0;
    for (size_t i = 0; s && i < n; i++) {
        char ch = s[i];
        if (quoted && ch == '\\' && i + 1 < n)
            ch = s[++i];
        if (k + 1 < out_size)
            out[k++] = ch;
    }
    if (out_size)
        out[k] = '\0';
    return 0;
}

/* Skips one value of any shape: a parenthesized list, a string, a
 * literal, an atom (with a bracketed section and <partial>). */
static int skip_value(struct cur *c, int depth)
{
    if (depth > 32 || c->p >= c->e)
        return -1;
    if (*c->p == '(') {
        c->p++;
        for (;;) {
            skip_sp(c);
            if (c->p >= c->e)
                return -1;
            if (*c->p == ')') {
                c->p++;
                return 0;
            }
            if (skip_value(c, depth + 1) < 0)
                return -1;
        }
    }
    const char *s;
    size_t n;
    int quoted;
    if (*c->p == '"' || *c->p == '{' || *c->p == '~')
        return string_span(c, &s, &n, &quoted, 0) < 0 ? -1 : 0;
    const char *b = c->p;
    while (c->p < c->e && *c->p != ' ' && *c->p != '(' && *c->p != ')' && *c->p != '\r' && *c->p != '\n') {
        if (*c->p == '[') {
            const char *close = memchr(c->p, ']', (size_t)(c->e - c->p));
            if (!close)
                return -1;
            c->p = close;
        }
        c->p++;
    }
    return c->p == b ? -1 : 0;
}

/* "* " at the start of an untagged response. */
static int untagged(struct cur *c)
{
    return eat(c, '*') && eat(c, ' ');
}

/* ---- parsers */

int imap_parse_status(const char *resp, size_t len, char *mailbox, size_t mailbox_size, uint32_t *uidnext,
                      uint32_t *uidvalidity)
{
    struct cur c = {resp, resp + len};
    *uidnext = *uidvalidity = 0;
    if (!untagged(&c) || !eat_word(&c, "STATUS"))
        return -1;
    skip_sp(&c);
    if (string_copy(&c, mailbox, mailbox_size) < 0)
        return -1;
    skip_sp(&c);
    if (!eat(&c, '('))
        return -1;
    for (;;) {
        skip_sp(&c);
        if (eat(&c, ')'))
            return 0;
        if (c.p >= c.e)
            return -1;
        uint32_t v;
        if (eat_word(&c, "UIDNEXT")) {
            skip_sp(&c);
            if (number32(&c, &v) < 0)
                return -1;
            *uidnext = v;
        } else if (eat_word(&c, "UIDVALIDITY")) {
            skip_sp(&c);
            if (number32(&c, &v) < 0)
                return -1;
            *uidvalidity = v;
        } else {
            if (skip_value(&c, 0) < 0)
                return -1;
            skip_sp(&c);
            if (skip_value(&c, 0) < 0)
                return -1;
        }
    }
}

size_t imap_fetch_plan(const uint32_t *sizes, size_t n, size_t cap)
{
    const uint64_t most = IMAP_FETCH_HEADER_MAX + IMAP_FETCH_BODY_MAX;
    if (cap > IMAP_FETCH_BATCH)
        cap = IMAP_FETCH_BATCH;
    uint64_t weight = 0;
    size_t k = 0;
    while (k < n && k < cap) {
        uint64_t w = weight + (sizes[k] ? (sizes[k] < most ? sizes[k] : most) + 256 : 64);
        if (k > 0 && w * (k + 1) / 2 > IMAP_FETCH_CHARGE_MAX)
            break;
        weight = w;
        k++;
    }
    return k ? k : (n ? 1 : 0);
}

int imap_parse_select(const char *resp, size_t len, struct imap_select *sel)
{
    struct cur c = {resp, resp + len};
    if (!untagged(&c))
        return -1;
    uint32_t v;
    if (eat_word(&c, "OK")) {
        skip_sp(&c);
        if (!eat(&c, '['))
            return -1;
        int which = eat_word(&c, "UIDNEXT") ? 1 : eat_word(&c, "UIDVALIDITY") ? 2 : 0;
        if (!which)
            return -1;
        skip_sp(&c);
        if (number32(&c, &v) < 0 || !eat(&c, ']'))
            return -1;
        if (which == 1) {
            sel->uidnext = v;
            sel->has_uidnext = 1;
        } else {
            sel->uidvalidity = v;
        }
        return 0;
    }
    if (number32(&c, &v) < 0)
        return -1;
    skip_sp(&c);
    if (!eat_word(&c, "EXISTS"))
        return -1;
    sel->exists = v;
    return 0;
}

int imap_parse_search(const char *resp, size_t len, void (*each)(void *arg, uint32_t n), void *arg)
{
    struct cur c = {resp, resp + len};
    if (!untagged(&c) || !eat_word(&c, "SEARCH"))
        return -1;
    for (;;) {
        skip_sp(&c);
        if (at_end(&c))
            return 0;
        if (*c.p == '(') { /* CONDSTORE's (MODSEQ n) */
            if (skip_value(&c, 0) < 0)
                return -1;
            continue;
        }
        uint32_t v;
        if (number32(&c, &v) < 0)
            return -1;
        each(arg, v);
    }
}

/* An item name: atom characters, a [section] with anything inside, then
 * an optional <origin>. */
static int item_name(struct cur *c, const char **s, size_t *n)
{
    const char *b = c->p;
    while (c->p < c->e && *c->p != ' ' && *c->p != '(' && *c->p != ')' && *c->p != '\r' && *c->p != '\n') {
        if (*c->p == '[') {
            const char *close = memchr(c->p, ']', (size_t)(c->e - c->p));
            if (!close)
                return -1;
            c->p = close;
        }
        c->p++;
    }
    *s = b;
    *n = (size_t)(c->p - b);
    return *n ? 0 : -1;
}

/* name is "BODY[section]" or "BODY[section]<n>" for this section. */
static int is_section(const char *s, size_t n, const char *section)
{
    size_t k = strlen(section);
    if (n < 6 + k || strncasecmp(s, "BODY[", 5) != 0 || strncasecmp(s + 5, section, k) != 0 || s[5 + k] != ']')
        return 0;
    return n == 6 + k || s[6 + k] == '<';
}

int imap_parse_fetch(const char *resp, size_t len, struct imap_fetch_data *out)
{
    struct cur c = {resp, resp + len};
    memset(out, 0, sizeof *out);
    if (!untagged(&c) || number32(&c, &out->seq) < 0)
        return -1;
    skip_sp(&c);
    if (!eat_word(&c, "FETCH"))
        return -1;
    skip_sp(&c);
    if (!eat(&c, '('))
        return -1;
    for (;;) {
        skip_sp(&c);
        if (eat(&c, ')'))
            return 0;
        if (c.p >= c.e)
            return -1;
        const char *name;
        size_t n;
        if (item_name(&c, &name, &n) < 0)
            return -1;
        skip_sp(&c);
        if (n == 3 && strncasecmp(name, "UID", 3) == 0) {
            if (number32(&c, &out->uid) < 0)
                return -1;
            out->has_uid = 1;
        } else if (n == 11 && strncasecmp(name, "RFC822.SIZE", 11) == 0) {
            if (number32(&c, &out->size) < 0)
                return -1;
            out->has_size = 1;
        } else if (n == 5 && strncasecmp(name, "FLAGS", 5) == 0) {
            if (!eat(&c, '('))
                return -1;
            out->has_flags = 1;
            for (;;) {
                skip_sp(&c);
                if (eat(&c, ')'))
                    break;
                const char *f = c.p;
                if (skip_value(&c, 0) < 0)
                    return -1;
                if (c.p - f == 5 && strncasecmp(f, "\\Seen", 5) == 0)
                    out->seen = 1;
            }
        } else if (is_section(name, n, "HEADER") || is_section(name, n, "TEXT")) {
            const char *s;
            size_t sn;
            int quoted;
            int rc = string_span(&c, &s, &sn, &quoted, 0);
            if (rc < 0)
                return -1;
            if (toupper((unsigned char)name[5]) == 'H') {
                out->header = s ? s : "";
                out->header_len = sn;
                out->has_header = 1;
            } else {
                out->body = s ? s : "";
                out->body_len = sn;
                out->has_body = 1;
            }
        } else if (skip_value(&c, 0) < 0) {
            return -1;
        }
    }
}

static const struct {
    const char *name;
    int flag;
} list_flags[] = {
    {"\\Sent", IMAP_LIST_SENT},         {"\\Junk", IMAP_LIST_JUNK},         {"\\Drafts", IMAP_LIST_DRAFTS},
    {"\\Trash", IMAP_LIST_TRASH},       {"\\Archive", IMAP_LIST_ARCHIVE},   {"\\All", IMAP_LIST_ALL},
    {"\\Noselect", IMAP_LIST_NOSELECT}, {"\\NonExistent", IMAP_LIST_NOSELECT},
};

/* imap_parse_list, with the hierarchy delimiter (0 for NIL). */
int imap_parse_list(const char *resp, size_t len, int *flags, char *delim_out, char *name, size_t name_size)
{
    struct cur c = {resp, resp + len};
    *flags = 0;
    *delim_out = 0;
    if (!untagged(&c) || !eat_word(&c, "LIST"))
        return -1;
    skip_sp(&c);
    if (!eat(&c, '('))
        return -1;
    for (;;) {
        skip_sp(&c);
        if (eat(&c, ')'))
            break;
        const char *f = c.p;
        if (skip_value(&c, 0) < 0)
            return -1;
        for (size_t i = 0; i < sizeof list_flags / sizeof list_flags[0]; i++)
            if ((size_t)(c.p - f) == strlen(list_flags[i].name) &&
                strncasecmp(f, list_flags[i].name, (size_t)(c.p - f)) == 0)
                *flags |= list_flags[i].flag;
    }
    skip_sp(&c);
    char delim[8];
    if (string_copy(&c, delim, sizeof delim) < 0) /* "/" or NIL */
        return -1;
    *delim_out = delim[0];
    skip_sp(&c);
    if (string_copy(&c, name, name_size) < 0)
        return -1;
    return 0;
}

static const struct {
    const char *name;
    int cap;
} cap_names[] = {
    {"SPECIAL-USE", IMAP_CAP_SPECIAL_USE},
    {"LIST-EXTENDED", IMAP_CAP_LIST_EXTENDED},
    {"IDLE", IMAP_CAP_IDLE},
    {"UNSELECT", IMAP_CAP_UNSELECT},
};

int imap_parse_capability(const char *resp, size_t len, int *caps)
{
    struct cur c = {resp, resp + len};
    int bracketed = 0;
    *caps = 0;
    if (!untagged(&c))
        return -1;
    if (eat_word(&c, "OK")) { /* a greeting's or a login's [CAPABILITY ...] */
        skip_sp(&c);
        if (!eat(&c, '['))
            return -1;
        bracketed = 1;
    }
    if (c.e - c.p < 10 || strncasecmp(c.p, "CAPABILITY", 10) != 0)
        return -1;
    c.p += 10;
    if (!at_end(&c) && *c.p != ' ' && *c.p != ']')
        return -1;
    for (;;) {
        skip_sp(&c);
        if (at_end(&c) || (bracketed && *c.p == ']'))
            return 0;
        const char *w = c.p;
        while (c.p < c.e && *c.p != ' ' && *c.p != '\r' && *c.p != '\n' && !(bracketed && *c.p == ']'))
            c.p++;
        size_t n = (size_t)(c.p - w);
        for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++)
            if (n == strlen(cap_names[i].name) && strncasecmp(w, cap_names[i].name, n) == 0)
                *caps |= cap_names[i].cap;
    }
}

/* Names of the folder for sent mail, best first, in UTF-8: the common
 * English ones, then what Outlook/Exchange, Apple Mail, Thunderbird and
 * webmails create in other languages. */
static const char *const sent_names[] = {
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "Sent Mails",
    "Sent-Mail",
    "Gesendete Elemente",
    "Gesendete Objekte",
    "Gesendet",
    "Éléments envoyés",
    "Messages envoyés",
    "Envoyés",
    "Elementos enviados",
    "Enviados",
    "Enviadas",
    "Posta inviata",
    "Inviati",
    "Verzonden items",
    "Verzonden",
    "Skickat",
    "Skickade objekt",
    "Sendt",
    "Sendte elementer",
    "Wysłane",
    "Odeslaná pošta",
    "Отправленные",
};

/* base64 value of a modified UTF-7 character (RFC 3501 5.1.3: ',' for '/'),
 * or -1. */
static int mutf7_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == ',' ? 63 : -1;
}

/* A folder name from modified UTF-7 (what LIST gives) into UTF-8 (what
 * sent_names holds). -1 when it is not valid modified UTF-7 or does not
 * fit. */
static int mutf7_decode(const char *in, char *out, size_t size)
{
    size_t k = 0;
    for (const char *p = in; *p;) {
        if (*p != '&') {
            if (k + 1 >= size)
                return -1;
            out[k++] = *p++;
            continue;
        }
        p++;
        if (*p == '-') { /* "&-" is '&' */
            if (k + 1 >= size)
                return -1;
            out[k++] = '&';
            p++;
            continue;
        }
        uint32_t bits = 0, high = 0;
        int nbits = 0;
        while (*p && *p != '-') {
            int v = mutf7_value(*p++);
            if (v < 0)
                return -1;
            bits = (bits << 6 | (uint32_t)v) & 0xffffff;
            nbits += 6;
            if (nbits < 16)
                continue;
            nbits -= 16;
            uint32_t unit = bits >> nbits & 0xffff;
            if (unit >= 0xd800 && unit < 0xdc00) {
                if (high)
                    return -1;
                high = unit;
                continue;
            }
            uint32_t cp = unit;
            if (unit >= 0xdc00 && unit < 0xe000) {
                if (!high)
                    return -1;
                cp = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
                high = 0;
            } else if (high) {
                return -1;
            }
            char u[4];
            size_t n = utf8_encode(cp, u);
            if (k + n >= size)
                return -1;
            memcpy(out + k, u, n);
            k += n;
        }
        if (*p != '-' || high)
            return -1;
        p++;
    }
    out[k] = '\0';
    return 0;
}

/* A byte of UTF-8 lower-cased: ASCII, and the Latin-1 capitals
 * (U+00C0-U+00DE but U+00D7, "\xC3\x80"-"\xC3\x9E") when prev is 0xC3. */
static unsigned char fold(unsigned char prev, unsigned char ch)
{
    if (ch < 0x80)
        return (unsigned char)tolower(ch);
    if (prev == 0xc3 && ch >= 0x80 && ch <= 0x9e && ch != 0x97)
        return (unsigned char)(ch + 0x20);
    return ch;
}

/* a and b the same UTF-8, ignoring the case of ASCII and Latin-1. */
static int same_name(const char *a, const char *b)
{
    unsigned char pa = 0, pb = 0;
    for (;; a++, b++) {
        unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (fold(pa, ca) != fold(pb, cb))
            return 0;
        if (!ca)
            return 1;
        pa = ca;
        pb = cb;
    }
}

int imap_sent_rank(const char *name, char delim)
{
    char utf8[FOLDER_MAX * 2];
    if (!name || mutf7_decode(name, utf8, sizeof utf8) < 0)
        return -1;
    const char *leaf = utf8;
    int under_inbox = 0;
    if (delim && strncasecmp(utf8, "INBOX", 5) == 0 && utf8[5] == delim) {
        leaf = utf8 + 6;
        under_inbox = 1;
    }
    for (size_t i = 0; i < sizeof sent_names / sizeof sent_names[0]; i++)
        if (same_name(leaf, sent_names[i]))
            return (int)i * 2 + under_inbox;
    return -1;
}

int imap_parse_tagged(const char *resp, size_t len, char *text, size_t text_size)
{
    const char *e = resp + len;
    const char *p = resp;
    if (p >= e || *p == '*' || *p == '+')
        return 0;
    while (p < e && atom_char(*p) && *p != '+')
        p++;
    if (p == resp || p >= e || *p != ' ')
        return 0;
    p++;
    if (!((e - p >= 2 && strncasecmp(p, "OK", 2) == 0) || (e - p >= 2 && strncasecmp(p, "NO", 2) == 0) ||
          (e - p >= 3 && strncasecmp(p, "BAD", 3) == 0)))
        return 0;
    size_t n = (size_t)(e - p);
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (text_size) {
        if (n >= text_size)
            n = text_size - 1;
        for (size_t i = 0; i < n; i++)
            text[i] = (unsigned char)p[i] < 0x20 ? ' ' : p[i];
        text[n] = '\0';
    }
    return 1;
}

int imap_quote(const char *folder, char *out, size_t out_size)
{
    size_t k = 0;
    if (!folder || out_size < 3)
        return -1;
    out[k++] = '"';
    for (const char *p = folder; *p; p++) {
        if (*p == '\r' || *p == '\n')
            return -1;
        if (*p == '"' || *p == '\\') {
            if (k + 1 >= out_size)
                return -1;
            out[k++] = '\\';
        }
        if (k + 1 >= out_size)
            return -1;
        out[k++] = *p;
    }
    if (k + 2 > out_size)
        return -1;
    out[k++] = '"';
    out[k] = '\0';
    return 0;
}
