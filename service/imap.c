/* imap: the IMAP client on curl_uv. It owns one easy handle per channel,
 * the per-command options (URL and TLS, login, the command), the reading
 * of the server's responses and what they mean. It does not know
 * accounts' state, the database or classification, and it logs nothing.
 *
 * Every command but APPEND is a libcurl "custom request" (CURLOPT_
 * CUSTOMREQUEST): libcurl logs in (STARTTLS first for imap://), SELECTs
 * the URL's mailbox when the URL names one, sends our command and waits
 * for its tagged answer. libcurl hands every line the server sends —
 * literals included — to the header callback, and only there do we read
 * them: a response reader (pure, below) reassembles responses with their
 * literals from those pieces, and pure parsers read STATUS, EXAMINE, SEARCH, FETCH
 * and LIST out of them. libcurl's own URL fetch sends BODY[] and its URL
 * search returns sequence numbers: neither is used.
 *
 * libcurl 7.88 reads response lines through a buffer of CURLOPT_BUFFERSIZE
 * bytes and cuts a line longer than half of it: with the default 16 KiB a
 * 64 KiB literal arrives cut. Fetches ask for prefixes of at most 64 KiB
 * (BODY.PEEK[HEADER]<0.N>, BODY.PEEK[TEXT]<0.N>), so no line exceeds
 * that, and the buffer is 160 KiB. Should a response still arrive cut, the
 * reader ends the command in the middle of a literal: the command fails
 * with -EPROTO and the next one opens a new connection. */
#include "imap.h"

#include "buf.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_TIMEOUT_MS 120000L
#define DEFAULT_IDLE_TIMEOUT_S 300L
#define RECEIVE_BUFFER (160L * 1024)
#define RESPONSE_MAX (IMAP_FETCH_HEADER_MAX + IMAP_FETCH_BODY_MAX + 4096)
#define FOLDER_MAX 512

/* ======================================================================
 * Pure parts
 * ====================================================================== */

/* ---- the response reader */

void imap_reader_init(struct imap_reader *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
}

void imap_reader_reset(struct imap_reader *r)
{
    r->len = 0;
    r->literal_left = 0;
    r->tail_len = 0;
    r->truncated = 0;
    r->failed = 0;
}

void imap_reader_free(struct imap_reader *r)
{
    free(r->buf);
    imap_reader_init(r, r->max);
}

int imap_reader_pending(const struct imap_reader *r)
{
    return r->len > 0 || r->literal_left > 0 || r->truncated;
}

/* Stores p[0..n) in the current response, up to max bytes. */
static int store(struct imap_reader *r, const char *p, size_t n)
{
    if (r->len + n > r->max) {
        r->truncated = 1;
        n = r->len < r->max ? r->max - r->len : 0;
    }
    if (n == 0)
        return 0;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *grown = realloc(r->buf, cap);
        if (!grown) {
            r->failed = 1;
            r->truncated = 1;
            return -ENOMEM;
        }
        r->buf = grown;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    r->buf[r->len] = '\0';
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
        if (r->buf && r->len)
            on_response(arg, r->buf, r->len, r->truncated);
        else if (r->truncated)
            on_response(arg, "", 0, 1);
        r->len = 0;
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
static int list_parse(const char *resp, size_t len, int *flags, char *delim_out, char *name, size_t name_size)
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

int imap_parse_list(const char *resp, size_t len, int *flags, char *name, size_t name_size)
{
    char delim;
    return list_parse(resp, len, flags, &delim, name, name_size);
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

/* ======================================================================
 * The client
 * ====================================================================== */

enum op { OP_NONE, OP_STATUS, OP_EXAMINE, OP_SEARCH, OP_FETCH, OP_LIST, OP_APPEND, OP_CAPABILITY };

/* What one fetch asked for and what came back, by index in want. */
struct fetch_state {
    uint32_t *want;           /* the UIDs asked for, ascending */
    size_t n;
    int sizes_only;           /* imap_fetch_sizes */
    char **fetched;           /* the FETCH response of each (imap_fetch) */
    size_t *fetched_len;
    struct imap_message *msgs; /* what the reply gives; uid 0: not (yet) seen */
};

static void fetch_state_free(struct fetch_state *f)
{
    for (size_t i = 0; f->fetched && i < f->n; i++)
        free(f->fetched[i]);
    free(f->fetched);
    free(f->fetched_len);
    free(f->want);
    free(f->msgs);
    memset(f, 0, sizeof *f);
}

struct imap {
    struct curl_uv *cu;
    CURL *easy;
    const struct imap_account *acct;
    char base[512];       /* scheme://host[:port], no path */
    int implicit_tls;
    char *default_cainfo; /* libcurl's built-in CA bundle */
    char errbuf[CURL_ERROR_SIZE];
    struct imap_reader reader;
    int fresh;            /* the next command opens a new connection */
    int in_cb;            /* a command's callback is running */
    int close_pending;    /* imap_close came during it */

    /* the command in flight */
    int busy;
    enum op op;
    imap_cb cb;
    void *arg;
    char *url;
    char cmd[FOLDER_MAX * 2 + 128];
    char folder[FOLDER_MAX];
    uint32_t from_uid;
    struct fetch_state fx; /* a fetch's, from its start to the end of its callback */
    const char *data;     /* APPEND */
    size_t len, off;
    char tagged[IMAP_TEXT_MAX];
    size_t bytes;
    int oom;
    int unreadable;       /* a response of the command's kind could not be read */
    int refused;          /* a tagged NO or BAD came */
    /* what was read */
    int got_status;
    uint32_t uidnext, uidvalidity;
    uint32_t *uids;
    size_t n_uids, cap_uids;
    struct imap_select sel;
    char sent[FOLDER_MAX];
    int sent_special;
    int sent_named;
    int sent_rank;        /* imap_sent_rank of sent, when sent_named */
    /* the server's CAPABILITY, read once before the first LIST */
    int caps;             /* IMAP_CAP_* */
    int caps_known;
};

static void on_search_uid(void *arg, uint32_t n)
{
    struct imap *im = arg;
    if (n < im->from_uid)
        return; /* "n:*" with n past the last UID still returns the last */
    if (im->n_uids == im->cap_uids) {
        size_t cap = im->cap_uids ? im->cap_uids * 2 : 64;
        uint32_t *grown = cap > (1u << 24) ? NULL : realloc(im->uids, cap * sizeof *grown);
        if (!grown) {
            im->oom = 1;
            return;
        }
        im->uids = grown;
        im->cap_uids = cap;
    }
    im->uids[im->n_uids++] = n;
}

/* The index of uid in the fetch's want list, or SIZE_MAX. */
static size_t want_index(const struct fetch_state *f, uint32_t uid)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->want[mid] == uid)
            return mid;
        if (f->want[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static void on_response(void *arg, const char *resp, size_t len, int truncated)
{
    struct imap *im = arg;
    char text[IMAP_TEXT_MAX];
    if (imap_parse_tagged(resp, len, text, sizeof text)) {
        /* keep a refusal: libcurl's LOGOUT after it answers OK */
        if (!im->refused)
            memcpy(im->tagged, text, sizeof text);
        if (strncasecmp(text, "OK", 2) != 0)
            im->refused = 1;
        return;
    }
    switch (im->op) {
    case OP_STATUS: {
        char name[FOLDER_MAX];
        uint32_t next, validity;
        if (imap_parse_status(resp, len, name, sizeof name, &next, &validity) == 0 &&
            (strcmp(name, im->folder) == 0 ||
             (strcasecmp(name, "INBOX") == 0 && strcasecmp(im->folder, "INBOX") == 0))) {
            im->got_status = 1;
            im->uidnext = next;
            im->uidvalidity = validity;
        }
        break;
    }
    case OP_EXAMINE:
        (void)imap_parse_select(resp, len, &im->sel); /* other untagged answers are not ours */
        break;
    case OP_SEARCH:
        if (len >= 8 && strncasecmp(resp, "* SEARCH", 8) == 0 &&
            imap_parse_search(resp, len, on_search_uid, im) < 0)
            im->unreadable = 1; /* a partial list would skip messages for good */
        break;
    case OP_FETCH: {
        struct fetch_state *fx = &im->fx;
        struct imap_fetch_data f;
        if (imap_parse_fetch(resp, len, &f) < 0 || !f.has_uid || !(fx->sizes_only ? f.has_size : f.has_header))
            break; /* an unsolicited FETCH (flags) is no answer */
        size_t i = want_index(fx, f.uid);
        if (i == SIZE_MAX || fx->msgs[i].uid)
            break; /* not asked for, or seen already */
        fx->msgs[i].uid = f.uid;
        fx->msgs[i].size = f.size;
        if (fx->sizes_only)
            break;
        (void)truncated; /* a cut response still holds a readable prefix */
        fx->fetched[i] = malloc(len + 1);
        if (!fx->fetched[i]) {
            im->oom = 1;
            break;
        }
        memcpy(fx->fetched[i], resp, len);
        fx->fetched[i][len] = '\0';
        fx->fetched_len[i] = len;
        break;
    }
    case OP_CAPABILITY: {
        int caps;
        if (imap_parse_capability(resp, len, &caps) == 0)
            im->caps |= caps;
        break;
    }
    case OP_LIST: {
        char name[FOLDER_MAX];
        char delim;
        int flags, rank;
        if (list_parse(resp, len, &flags, &delim, name, sizeof name) < 0 || (flags & IMAP_LIST_NOSELECT))
            break;
        if (im->sent_special)
            break; /* the \Sent folder wins over any name */
        if (flags & IMAP_LIST_SENT) {
            snprintf(im->sent, sizeof im->sent, "%s", name);
            im->sent_special = 1;
            break;
        }
        rank = imap_sent_rank(name, delim);
        if (rank >= 0 && (!im->sent_named || rank < im->sent_rank)) {
            snprintf(im->sent, sizeof im->sent, "%s", name);
            im->sent_named = 1;
            im->sent_rank = rank;
        }
        break;
    }
    default:
        break;
    }
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userp)
{
    struct imap *im = userp;
    size_t total = size * nitems;
    im->bytes += total;
    if (imap_reader_feed(&im->reader, buf, total, on_response, im) < 0)
        im->oom = 1;
    return total;
}

/* Untagged responses also reach the write callback: already read above. */
static size_t on_write(char *buf, size_t size, size_t nitems, void *userp)
{
    (void)buf;
    (void)userp;
    return size * nitems;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct imap *im = userp;
    size_t room = size * nitems, left = im->len - im->off;
    size_t n = left < room ? left : room;
    memcpy(buf, im->data + im->off, n);
    im->off += n;
    return n;
}

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static int text_has(const char *text, const char *word)
{
    return text && strcasestr(text, word) != NULL;
}

/* What a finished command's CURLcode and answers mean. */
static int outcome(struct imap *im, CURLcode code, struct imap_reply *r)
{
    const char *why = im->errbuf[0] ? im->errbuf : curl_easy_strerror(code);
    switch (code) {
    case CURLE_OK:
        if (im->oom) {
            copy_text(r->text, sizeof r->text, "out of memory while reading the answer");
            return -ENOMEM;
        }
        if (imap_reader_pending(&im->reader)) {
            /* the answer ended inside a literal or a line: cut somewhere */
            im->fresh = 1;
            copy_text(r->text, sizeof r->text, "the server's answer was cut; reconnecting");
            return -EPROTO;
        }
        if (im->unreadable) {
            copy_text(r->text, sizeof r->text, "the server's answer could not be read");
            return -EPROTO;
        }
        copy_text(r->text, sizeof r->text, im->tagged);
        return 0;
    case CURLE_LOGIN_DENIED:
        /* libcurl 7.88 reports a refused SELECT as a login failure too */
        if (text_has(why, "select")) {
            copy_text(r->text, sizeof r->text, im->tagged[0] ? im->tagged : why);
            return -ENOENT;
        }
        copy_text(r->text, sizeof r->text, im->tagged[0] ? im->tagged : why);
        return -EACCES;
    case CURLE_QUOTE_ERROR:
    case CURLE_UPLOAD_FAILED:
    case CURLE_REMOTE_FILE_NOT_FOUND:
        copy_text(r->text, sizeof r->text, im->tagged[0] ? im->tagged : why);
        if (text_has(im->tagged, "NONEXISTENT") || text_has(im->tagged, "TRYCREATE") ||
            text_has(im->tagged, "doesn't exist") || text_has(im->tagged, "does not exist") ||
            code == CURLE_REMOTE_FILE_NOT_FOUND)
            return -ENOENT;
        return -EPROTO;
    default:
        copy_text(r->text, sizeof r->text, why);
        im->fresh = 1;
        /* libcurl's charge for the answer's lines (imap.h): the command
         * asked for too much at once, the server is fine */
        return code == CURLE_RECV_ERROR && text_has(why, "Too large response") ? -E2BIG : -EIO;
    }
}

static int cmp_uid(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void channel_free(struct imap *im)
{
    curl_easy_cleanup(im->easy);
    free(im->default_cainfo);
    free(im->url);
    free(im->uids);
    fetch_state_free(&im->fx);
    imap_reader_free(&im->reader);
    free(im);
}

static int list_after_capability(struct imap *im, struct imap_reply *r);

static void finish(struct imap *im, CURLcode code, int cancelled)
{
    struct imap_reply r;
    memset(&r, 0, sizeof r);
    r.curl_code = code;
    r.bytes_read = im->bytes;
    if (cancelled) {
        r.status = -ECANCELED;
        copy_text(r.text, sizeof r.text, "the IMAP channel was closed");
    } else {
        r.status = outcome(im, code, &r);
    }
    if (im->op == OP_CAPABILITY && !cancelled && list_after_capability(im, &r) == 0)
        return; /* the LIST runs now; its end fires the callback */
    /* the fetch's state leaves im: the callback may start another command */
    struct fetch_state fx = im->fx;
    memset(&im->fx, 0, sizeof im->fx);
    if (r.status == 0) {
        switch (im->op) {
        case OP_EXAMINE:
            if (!im->sel.uidvalidity || !im->sel.has_uidnext) {
                r.status = -EPROTO;
                copy_text(r.text, sizeof r.text,
                          im->sel.uidvalidity ? "no UIDNEXT in the EXAMINE answer" : "no UIDVALIDITY in the EXAMINE answer");
            }
            r.uidnext = im->sel.uidnext;
            r.uidvalidity = im->sel.uidvalidity;
            r.exists = im->sel.exists;
            break;
        case OP_STATUS:
            if (!im->got_status || !im->uidvalidity) {
                r.status = -EPROTO;
                copy_text(r.text, sizeof r.text, "no STATUS in the server's answer");
            }
            r.uidnext = im->uidnext;
            r.uidvalidity = im->uidvalidity;
            break;
        case OP_SEARCH:
            if (im->n_uids > 1) /* an empty search has no array: qsort(NULL, 0) is undefined */
                qsort(im->uids, im->n_uids, sizeof *im->uids, cmp_uid);
            r.uids = im->uids;
            r.n_uids = im->n_uids;
            break;
        case OP_FETCH:
            /* in place: the k-th found message moves to k <= i */
            for (size_t i = 0; i < fx.n; i++) {
                struct imap_fetch_data f;
                if (!fx.msgs[i].uid)
                    continue; /* expunged since the search */
                struct imap_message m = {.uid = fx.msgs[i].uid, .size = fx.msgs[i].size};
                if (!fx.sizes_only) {
                    if (!fx.fetched[i] || imap_parse_fetch(fx.fetched[i], fx.fetched_len[i], &f) < 0)
                        continue;
                    m.seen = f.seen;
                    m.header = f.header;
                    m.header_len = f.header_len;
                    m.body = f.has_body ? f.body : "";
                    m.body_len = f.body_len;
                }
                fx.msgs[r.n_messages++] = m;
            }
            r.messages = fx.msgs;
            break;
        case OP_LIST:
            r.folder = im->sent[0] ? im->sent : "Sent";
            r.special_use = im->sent_special;
            break;
        default:
            break;
        }
    }
    if (im->op == OP_EXAMINE && r.status < 0)
        im->fresh = 1; /* the server may have nothing selected now; libcurl thinks otherwise */
    imap_cb cb = im->cb;
    void *arg = im->arg;
    im->busy = 0;
    im->cb = NULL;
    im->arg = NULL;
    im->data = NULL;
    im->in_cb = 1;
    cb(im, &r, arg);
    im->in_cb = 0;
    fetch_state_free(&fx); /* what the reply pointed into */
    if (im->close_pending) {
        channel_free(im);
        return;
    }
    im->n_uids = 0;
    if (im->cap_uids > 4096) {
        free(im->uids);
        im->uids = NULL;
        im->cap_uids = 0;
    }
}

static void on_done(struct curl_uv *cu, CURL *easy, CURLcode result, void *arg)
{
    struct imap *im = arg;
    (void)cu;
    (void)easy;
    if (result == CURLE_ABORTED_BY_CALLBACK && !im->errbuf[0])
        copy_text(im->errbuf, sizeof im->errbuf, "the transport was closed or lost its socket");
    finish(im, result, 0);
}

/* Sets every per-command option; the handle keeps options between
 * commands, so unused ones are reset. path is the URL's mailbox (NULL:
 * none). Returns 0, or a negative error. */
static int configure(struct imap *im, const char *path, const char *custom, int upload)
{
    const struct imap_account *a = im->acct;
    CURL *e = im->easy;
    long connect_ms = a->connect_timeout_ms > 0 ? a->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    long timeout_ms = a->timeout_ms > 0 ? a->timeout_ms : DEFAULT_TIMEOUT_MS;
    long idle_s = a->idle_timeout_s > 0 ? a->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
    const char *token = NULL;
    if (a->auth == IMAP_AUTH_XOAUTH2) {
        token = a->bearer ? a->bearer(a->bearer_arg) : NULL;
        if (!token || !*token)
            return -EAGAIN;
    }
    free(im->url);
    im->url = NULL;
    char *escaped = NULL;
    if (path) {
        escaped = curl_easy_escape(e, path, 0);
        if (!escaped)
            return -ENOMEM;
    }
    if (asprintf(&im->url, "%s/%s", im->base, escaped ? escaped : "") < 0)
        im->url = NULL;
    curl_free(escaped);
    if (!im->url)
        return -ENOMEM;

    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, im->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "imap,imaps") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USE_SSL, a->tls == IMAP_TLS_NONE ? (long)CURLUSESSL_NONE
                                                                        : (long)CURLUSESSL_ALL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file ? a->ca_file : im->default_cainfo) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERNAME, a->username) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, a->auth == IMAP_AUTH_PASSWORD ? a->password : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, token) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_LOGIN_OPTIONS, token ? "AUTH=XOAUTH2" : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, custom) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, upload ? 1L : 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, upload ? (curl_off_t)im->len : (curl_off_t)-1) !=
           CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, (timeout_ms + 999) / 1000) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, idle_s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, im->fresh ? 1L : 0L) != CURLE_OK;
    return bad ? -EINVAL : 0;
}

static int start(struct imap *im, enum op op, const char *path, const char *custom, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (!cb)
        return -EINVAL;
    im->op = op;
    int rc = configure(im, path, custom, op == OP_APPEND);
    if (rc < 0)
        return rc;
    im->fresh = 0;
    imap_reader_reset(&im->reader);
    im->errbuf[0] = '\0';
    im->tagged[0] = '\0';
    im->bytes = 0;
    im->oom = 0;
    im->unreadable = 0;
    im->refused = 0;
    im->got_status = 0;
    im->uidnext = im->uidvalidity = 0;
    memset(&im->sel, 0, sizeof im->sel);
    im->n_uids = 0;
    im->sent[0] = '\0';
    im->sent_special = im->sent_named = 0;
    im->cb = cb;
    im->arg = arg;
    if (curl_uv_transfer_start(im->cu, im->easy, on_done, im) < 0) {
        im->cb = NULL;
        im->arg = NULL;
        return -ENOMEM;
    }
    im->busy = 1;
    return 0;
}

static int folder_ok(const char *folder)
{
    return folder && *folder && strlen(folder) < FOLDER_MAX && !strpbrk(folder, "\r\n");
}

/* "VERB "folder"TAIL" as a command of ours, with no mailbox in the URL:
 * libcurl sends it without a SELECT of its own. */
static int folder_command(struct imap *im, enum op op, const char *verb, const char *folder, const char *tail,
                          imap_cb cb, void *arg)
{
    char q[FOLDER_MAX * 2 + 3];
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || imap_quote(folder, q, sizeof q) < 0)
        return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    snprintf(im->cmd, sizeof im->cmd, "%s %s%s", verb, q, tail);
    return start(im, op, NULL, im->cmd, cb, arg);
}

int imap_status(struct imap *im, const char *folder, imap_cb cb, void *arg)
{
    return folder_command(im, OP_STATUS, "STATUS", folder, " (UIDNEXT UIDVALIDITY)", cb, arg);
}

/* libcurl keeps its own idea of the selected mailbox and skips its SELECT
 * when a later command's URL names the one it selected last: after this
 * EXAMINE of F, the next command here is for F (the search), so either
 * libcurl selects F again or F is already what the server has selected.
 * Should EXAMINE fail, the server has nothing selected while libcurl may
 * think otherwise: the next command opens a new connection (finish). */
int imap_examine(struct imap *im, const char *folder, imap_cb cb, void *arg)
{
    return folder_command(im, OP_EXAMINE, "EXAMINE", folder, "", cb, arg);
}

int imap_search(struct imap *im, const char *folder, uint32_t from, time_t since, imap_cb cb, void *arg)
{
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || from == 0)
        return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    im->from_uid = from;
    char date[40] = "";
    struct tm tm;
    if (since > 0 && gmtime_r(&since, &tm))
        snprintf(date, sizeof date, " SINCE %d-%s-%d", tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900);
    snprintf(im->cmd, sizeof im->cmd, "UID SEARCH UID %lu:*%s", (unsigned long)from, date);
    return start(im, OP_SEARCH, folder, im->cmd, cb, arg);
}

/* UID FETCH uids[0..n) (items), as one command. */
static int fetch_start(struct imap *im, const char *folder, const uint32_t *uids, size_t n, size_t max,
                       const char *items, int sizes_only, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || !uids || n == 0 || n > max)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (uids[i] == 0 || (i > 0 && uids[i] <= uids[i - 1]))
            return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    /* the UID set, runs of consecutive UIDs as a:b */
    struct buf cmd = {0};
    buf_adds(&cmd, "UID FETCH ");
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && uids[j + 1] == uids[j] + 1)
            j++;
        if (j > i)
            buf_addf(&cmd, "%s%lu:%lu", i ? "," : "", (unsigned long)uids[i], (unsigned long)uids[j]);
        else
            buf_addf(&cmd, "%s%lu", i ? "," : "", (unsigned long)uids[i]);
        i = j + 1;
    }
    buf_addf(&cmd, " (%s)", items);
    struct fetch_state *fx = &im->fx;
    fetch_state_free(fx);
    fx->n = n;
    fx->sizes_only = sizes_only;
    fx->want = malloc(n * sizeof *fx->want);
    fx->msgs = calloc(n, sizeof *fx->msgs);
    if (!sizes_only) {
        fx->fetched = calloc(n, sizeof *fx->fetched);
        fx->fetched_len = calloc(n, sizeof *fx->fetched_len);
    }
    int rc = -ENOMEM;
    if (!cmd.oom && fx->want && fx->msgs && (sizes_only || (fx->fetched && fx->fetched_len))) {
        memcpy(fx->want, uids, n * sizeof *uids);
        rc = start(im, OP_FETCH, folder, cmd.p, cb, arg); /* libcurl copies the command */
    }
    buf_free(&cmd);
    if (rc < 0)
        fetch_state_free(fx);
    return rc;
}

int imap_fetch(struct imap *im, const char *folder, const uint32_t *uids, size_t n, size_t body_max, imap_cb cb,
               void *arg)
{
    if (body_max > IMAP_FETCH_BODY_MAX)
        body_max = IMAP_FETCH_BODY_MAX;
    char items[128];
    snprintf(items, sizeof items, "UID RFC822.SIZE FLAGS BODY.PEEK[HEADER]<0.%d>", IMAP_FETCH_HEADER_MAX);
    if (body_max)
        snprintf(items + strlen(items), sizeof items - strlen(items), " BODY.PEEK[TEXT]<0.%zu>", body_max);
    return fetch_start(im, folder, uids, n, IMAP_FETCH_BATCH, items, 0, cb, arg);
}

int imap_fetch_sizes(struct imap *im, const char *folder, const uint32_t *uids, size_t n, imap_cb cb, void *arg)
{
    return fetch_start(im, folder, uids, n, IMAP_SIZES_MAX, "UID RFC822.SIZE", 1, cb, arg);
}

/* RETURN (SPECIAL-USE) is LIST-EXTENDED syntax flagging SPECIAL-USE
 * folders: a server that lacks either may refuse the whole command
 * (Courier answers NO). A plain LIST still carries \Sent on servers
 * that flag folders without LIST-EXTENDED; else the name decides. */
static int list_start(struct imap *im, imap_cb cb, void *arg)
{
    const int both = IMAP_CAP_SPECIAL_USE | IMAP_CAP_LIST_EXTENDED;
    snprintf(im->cmd, sizeof im->cmd, "%s",
             (im->caps & both) == both ? "LIST \"\" \"*\" RETURN (SPECIAL-USE)" : "LIST \"\" \"*\"");
    return start(im, OP_LIST, NULL, im->cmd, cb, arg);
}

/* finish() of a CAPABILITY sent for imap_sent_folder: the LIST follows on
 * the same callback. Returns 0 when it started (the callback is now the
 * LIST's), else -1 with r saying why for the callback to hear. A refused
 * CAPABILITY (every IMAP server has it, but) is taken as "nothing
 * extended"; a transport failure is reported as it is. */
static int list_after_capability(struct imap *im, struct imap_reply *r)
{
    if (r->status < 0 && r->status != -EPROTO)
        return -1;
    im->caps_known = 1;
    imap_cb cb = im->cb;
    void *arg = im->arg;
    im->busy = 0;
    int rc = list_start(im, cb, arg);
    if (rc == 0)
        return 0;
    im->busy = 1; /* finish() ends the command as a failure */
    im->cb = cb;
    im->arg = arg;
    r->status = rc;
    copy_text(r->text, sizeof r->text, "cannot start LIST");
    return -1;
}

int imap_sent_folder(struct imap *im, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (im->caps_known)
        return list_start(im, cb, arg);
    im->caps = 0;
    snprintf(im->cmd, sizeof im->cmd, "CAPABILITY");
    return start(im, OP_CAPABILITY, NULL, im->cmd, cb, arg);
}

int imap_append(struct imap *im, const char *folder, const char *data, size_t len, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || !data || len == 0)
        return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    im->data = data;
    im->len = len;
    im->off = 0;
    /* libcurl sends APPEND mailbox (\Seen) {len} and the bytes */
    int rc = start(im, OP_APPEND, folder, NULL, cb, arg);
    if (rc < 0)
        im->data = NULL;
    return rc;
}

void imap_reconnect(struct imap *im)
{
    im->fresh = 1;
}

/* scheme://host[:port] of url, without a path; implicit_tls for imaps. */
static int url_base(const char *url, char *base, size_t size, int *implicit_tls)
{
    if (!url)
        return -1;
    if (strncasecmp(url, "imap://", 7) == 0)
        *implicit_tls = 0;
    else if (strncasecmp(url, "imaps://", 8) == 0)
        *implicit_tls = 1;
    else
        return -1;
    const char *host = strstr(url, "://") + 3;
    size_t n = strcspn(host, "/?#");
    if (n == 0 || (size_t)(host - url) + n + 1 > size)
        return -1;
    memcpy(base, url, (size_t)(host - url) + n);
    base[(size_t)(host - url) + n] = '\0';
    return 0;
}

struct imap *imap_new(struct curl_uv *cu, const struct imap_account *a)
{
    struct imap *im = calloc(1, sizeof *im);
    if (!im)
        return NULL;
    im->cu = cu;
    im->acct = a;
    imap_reader_init(&im->reader, RESPONSE_MAX);
    if (url_base(a->url, im->base, sizeof im->base, &im->implicit_tls) < 0)
        goto fail;
    if (im->implicit_tls && a->tls == IMAP_TLS_NONE)
        goto fail; /* imaps:// is TLS by definition */
    if (!a->username || !*a->username)
        goto fail;
    if (a->auth == IMAP_AUTH_PASSWORD && (!a->password || !*a->password))
        goto fail;
    im->easy = curl_easy_init();
    if (!im->easy)
        goto fail;
    char *cainfo = NULL;
    if (curl_easy_getinfo(im->easy, CURLINFO_CAINFO, &cainfo) == CURLE_OK && cainfo) {
        im->default_cainfo = strdup(cainfo);
        if (!im->default_cainfo)
            goto fail;
    }
    int bad = 0;
    bad |= curl_easy_setopt(im->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_ERRORBUFFER, im->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_HEADERDATA, im) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_WRITEDATA, im) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_READFUNCTION, on_read) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_READDATA, im) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER) != CURLE_OK;
    bad |= curl_easy_setopt(im->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    if (bad)
        goto fail;
    return im;
fail:
    if (im->easy)
        curl_easy_cleanup(im->easy);
    free(im->default_cainfo);
    imap_reader_free(&im->reader);
    free(im);
    return NULL;
}

void imap_close(struct imap *im)
{
    if (!im || im->close_pending)
        return;
    if (im->in_cb) {
        /* from inside its own callback: freed once that returns */
        im->close_pending = 1;
        return;
    }
    if (im->busy && curl_uv_transfer_abort(im->cu, im->easy) == 0) {
        im->close_pending = 1;
        finish(im, CURLE_ABORTED_BY_CALLBACK, 1); /* frees im */
        return;
    }
    channel_free(im);
}
