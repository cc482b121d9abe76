/* linkrewrite: finds the links of an HTML or text part and asks the
 * caller's callback for each one's tracked URL (see linkrewrite.h).
 *
 * The HTML side is a small tokenizer after the HTML standard's: it knows
 * text, comments, declarations, end tags, start tags with their
 * attributes (any quoting), and the elements whose content is raw text,
 * and nothing more: it never builds a tree and never fixes markup. Every
 * byte it does not replace is copied as it came, and a tag or quote that
 * never closes ends the work: the rest is copied untouched. An href is
 * decoded as a browser would before the callback sees it; where this
 * decoder cannot be sure what the browser reads (a named character
 * reference outside the few it knows), the link is left alone rather than
 * sent somewhere else. Owns the eligibility rules; not what a tracked URL
 * looks like. */
#include "linkrewrite.h"

#include <errno.h>
#include <string.h>

#include "utf8.h"

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* HTML's white space in tags */
static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* s[0..n) equals the lower-case word w, ignoring ASCII case */
static int word_eq(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n != wl)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)w[i])
            return 0;
    return 1;
}

/* s[0..n) starts with the lower-case word w, ignoring ASCII case */
static int starts_with(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n >= wl && word_eq(s, wl, w);
}

/* ---- which URLs are tracked ---- */

/* 1 when url (as the browser reads it) may be offered to the callback */
static int eligible(const char *url, size_t n, const struct linkrewrite_opts *o)
{
    size_t skip;
    if (starts_with(url, n, "https://"))
        skip = 8;
    else if (starts_with(url, n, "http://"))
        skip = 7;
    else
        return 0; /* mailto:, tel:, #x, relative, javascript:, data:, ... */
    if (n == skip)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        /* a URL with white space, a control byte or a byte no URL may
         * hold inside is broken markup, and browsers differ on it: it is
         * left as written */
        if (c <= ' ' || c == 0x7f || strchr("<>\"`\\", c))
            return 0;
        /* a template field that was never rendered, raw or escaped: a
         * tracked redirect to it would hide the mistake */
        if (i + 1 < n && ((c == '{' && url[i + 1] == '{') || (c == '}' && url[i + 1] == '}')))
            return 0;
        if (i + 6 <= n && (starts_with(url + i, 6, "%7b%7b") || starts_with(url + i, 6, "%7d%7d")))
            return 0;
    }
    if (o->unsubscribe_url && strlen(o->unsubscribe_url) == n && memcmp(o->unsubscribe_url, url, n) == 0)
        return 0;
    return 1;
}

/* Asks the callback for url[0..n)'s tracked form, into tracked. Returns
 * 1 (tracked holds it), 0 (leave the link), or a negative code. */
static int ask(const struct linkrewrite_opts *o, struct buf *url, struct buf *tracked)
{
    if (url->oom)
        return -ENOMEM;
    if (url->len == 0)
        return 0;
    /* browsers drop the white space around an href's URL */
    size_t a = 0, n = url->len;
    while (a < n && is_space((unsigned char)url->p[a]))
        a++;
    while (n > a && is_space((unsigned char)url->p[n - 1]))
        n--;
    if (!eligible(url->p + a, n - a, o))
        return 0;
    url->p[n] = '\0';
    buf_clear(tracked);
    int rc = o->track(o->ctx, url->p + a, tracked);
    if (rc < 0)
        return rc;
    if (tracked->oom)
        return -ENOMEM;
    if (rc == 0 || tracked->len == 0)
        return 0;
    return 1;
}

/* ---- character references in an attribute value ---- */

/* The named references HTML still decodes without a ';' (the HTML
 * standard's legacy Latin-1 set): inside an attribute, "&name" not
 * followed by a letter, digit or '=' is one of these decoded. */
static const char *const legacy_names[] = {
    "AElig", "AMP", "Aacute", "Acirc", "Agrave", "Aring", "Atilde", "Auml", "COPY", "Ccedil", "ETH",
    "Eacute", "Ecirc", "Egrave", "Euml", "GT", "Iacute", "Icirc", "Igrave", "Iuml", "LT", "Ntilde",
    "Oacute", "Ocirc", "Ograve", "Oslash", "Otilde", "Ouml", "QUOT", "REG", "THORN", "Uacute", "Ucirc",
    "Ugrave", "Uuml", "Yacute", "aacute", "acirc", "acute", "aelig", "agrave", "amp", "aring", "atilde",
    "auml", "brvbar", "ccedil", "cedil", "cent", "copy", "curren", "deg", "divide", "eacute", "ecirc",
    "egrave", "eth", "euml", "frac12", "frac14", "frac34", "gt", "iacute", "icirc", "iexcl", "igrave",
    "iquest", "iuml", "laquo", "lt", "macr", "micro", "middot", "nbsp", "not", "ntilde", "oacute",
    "ocirc", "ograve", "ordf", "ordm", "oslash", "otilde", "ouml", "para", "plusmn", "pound", "quot",
    "raquo", "reg", "sect", "shy", "sup1", "sup2", "sup3", "szlig", "thorn", "times", "uacute", "ucirc",
    "ugrave", "uml", "uuml", "yacute", "yen", "yuml",
};

/* The named references this decoder knows: the ones a URL may hold. */
static const struct {
    const char *name;
    char c;
} known_names[] = {
    {"amp", '&'}, {"AMP", '&'}, {"lt", '<'}, {"LT", '<'}, {"gt", '>'}, {"GT", '>'},
    {"quot", '"'}, {"QUOT", '"'}, {"apos", '\''},
};

static int name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(s, name, n) == 0;
}

/* The byte a known reference name stands for, or 0. */
static char known_char(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
        if (name_is(s, n, known_names[i].name))
            return known_names[i].c;
    return 0;
}

static int is_legacy(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof legacy_names / sizeof legacy_names[0]; i++)
        if (name_is(s, n, legacy_names[i]))
            return 1;
    return 0;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes the attribute value v[0..n) into out as a browser reads it.
 * Returns 0, or -1 when a reference's meaning is beyond this decoder
 * (the link is then left alone). */
static int decode_value(const char *v, size_t n, struct buf *out)
{
    size_t i = 0;
    while (i < n) {
        if (v[i] != '&') {
            buf_addc(out, v[i++]);
            continue;
        }
        size_t j = i + 1;
        if (j < n && v[j] == '#') {
            j++;
            int hex = j < n && (v[j] == 'x' || v[j] == 'X');
            if (hex)
                j++;
            size_t digits = j;
            unsigned long cp = 0;
            while (j < n && (hex ? hex_value((unsigned char)v[j]) >= 0 : (v[j] >= '0' && v[j] <= '9'))) {
                if (cp <= 0x10FFFF)
                    cp = cp * (hex ? 16 : 10) + (unsigned long)(hex ? hex_value((unsigned char)v[j]) : v[j] - '0');
                j++;
            }
            if (j == digits) { /* "&#" or "&#x" alone is text */
                buf_addc(out, v[i++]);
                continue;
            }
            if (j < n && v[j] == ';')
                j++;
            /* 0x80..0x9F map through windows-1252 in browsers */
            if (cp >= 0x80 && cp <= 0x9F)
                return -1;
            if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                cp = 0xFFFD;
            char enc[4];
            size_t len = utf8_encode((uint32_t)cp, enc);
            buf_add(out, enc, len);
            i = j;
            continue;
        }
        while (j < n && is_alnum((unsigned char)v[j]))
            j++;
        const char *name = v + i + 1;
        size_t nl = j - i - 1;
        if (nl == 0) {
            buf_addc(out, v[i++]);
            continue;
        }
        char c = known_char(name, nl);
        if (j < n && v[j] == ';') {
            if (!c)
                return -1; /* maybe one of HTML's two thousand names */
            buf_addc(out, c);
            i = j + 1;
            continue;
        }
        /* no ';': text, unless the whole name is a legacy one and no '='
         * follows (a longer run of letters is always text in a value) */
        if ((j < n && v[j] == '=') || !is_legacy(name, nl)) {
            buf_add(out, v + i, j - i);
            i = j;
            continue;
        }
        if (!c)
            return -1;
        buf_addc(out, c);
        i = j;
    }
    /* a NUL from the markup would cut the URL short for the callback */
    if (!out->oom && memchr(out->p ? out->p : "", '\0', out->len))
        return -1;
    return 0;
}

/* Appends url escaped for a double-quoted attribute value. */
static void add_escaped(struct buf *out, const char *url, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (url[i]) {
        case '&':
            buf_adds(out, "&amp;");
            break;
        case '"':
            buf_adds(out, "&quot;");
            break;
        case '<':
            buf_adds(out, "&lt;");
            break;
        case '>':
            buf_adds(out, "&gt;");
            break;
        default:
            buf_addc(out, url[i]);
        }
    }
}

/* ---- HTML ---- */

/* Where the first case-insensitive "</name" that ends a raw text element
 * starts in s[from..n), or n. */
static size_t raw_text_end(const char *s, size_t n, size_t from, const char *name, size_t nl)
{
    for (size_t i = from; i + 2 + nl <= n; i++) {
        if (s[i] != '<' || s[i + 1] != '/' || !word_eq(s + i + 2, nl, name))
            continue;
        size_t k = i + 2 + nl;
        if (k == n || is_space((unsigned char)s[k]) || s[k] == '/' || s[k] == '>')
            return i;
    }
    return n;
}

/* Elements whose content is text to HTML: an <a> inside is not a link. */
static const char *const raw_elements[] = {"script", "style", "title", "textarea", "xmp"};

/* The attribute of a start tag that may be replaced. */
struct href {
    size_t start, end;       /* the value as written, quotes included */
    size_t vstart, vend;     /* the value itself */
};

/* Reads the start tag at s[at] ('<' then a letter). Sets *end past its
 * '>' and *name, *nl to its name; *h to its first href (h->start == 0
 * when none). Returns 0, or -1 when the tag never ends. */
static int read_start_tag(const char *s, size_t n, size_t at, size_t *end, const char **name, size_t *nl,
                          struct href *h)
{
    size_t i = at + 1;
    while (i < n && !is_space((unsigned char)s[i]) && s[i] != '/' && s[i] != '>')
        i++;
    *name = s + at + 1;
    *nl = i - at - 1;
    h->start = 0;
    for (;;) {
        while (i < n && (is_space((unsigned char)s[i]) || s[i] == '/'))
            i++;
        if (i >= n)
            return -1;
        if (s[i] == '>') {
            *end = i + 1;
            return 0;
        }
        /* an attribute name: a leading '=' belongs to it, as in HTML */
        size_t an = i++;
        while (i < n && !is_space((unsigned char)s[i]) && s[i] != '/' && s[i] != '>' && s[i] != '=')
            i++;
        size_t anl = i - an;
        while (i < n && is_space((unsigned char)s[i]))
            i++;
        if (i >= n)
            return -1;
        if (s[i] != '=')
            continue; /* no value */
        i++;
        while (i < n && is_space((unsigned char)s[i]))
            i++;
        if (i >= n)
            return -1;
        size_t vs = i, vbeg, vend;
        if (s[i] == '"' || s[i] == '\'') {
            const char *q = memchr(s + i + 1, s[i], n - i - 1);
            if (!q)
                return -1;
            vbeg = i + 1;
            vend = (size_t)(q - s);
            i = vend + 1;
        } else if (s[i] == '>') {
            continue; /* "href=>": an empty value; the '>' ends the tag */
        } else {
            vbeg = i;
            while (i < n && !is_space((unsigned char)s[i]) && s[i] != '>')
                i++;
            vend = i;
        }
        /* the first of duplicate attributes is the one HTML keeps */
        if (h->start == 0 && word_eq(s + an, anl, "href")) {
            h->start = vs;
            h->end = i;
            h->vstart = vbeg;
            h->vend = vend;
        }
    }
}

int linkrewrite_html(const char *html, size_t len, const struct linkrewrite_opts *o, struct buf *out, int *count)
{
    struct buf url = {0}, tracked = {0};
    int rc = 0;
    *count = 0;
    size_t i = 0, copied = 0; /* html[copied..i) is still to be copied */
    while (i < len) {
        const char *lt = memchr(html + i, '<', len - i);
        if (!lt)
            break;
        i = (size_t)(lt - html);
        size_t rest = len - i;
        if (starts_with(html + i, rest, "<!--")) {
            /* "<!-->" and "<!--->" are empty comments to HTML */
            size_t from = i + 4;
            if (from < len && html[from] == '>') {
                i = from + 1;
                continue;
            }
            if (from + 1 < len && html[from] == '-' && html[from + 1] == '>') {
                i = from + 2;
                continue;
            }
            const char *e = NULL;
            for (size_t k = from; k + 3 <= len && !e; k++)
                if (html[k] == '-' && html[k + 1] == '-' && html[k + 2] == '>')
                    e = html + k;
            if (!e) {
                i = len;
                break;
            }
            i = (size_t)(e - html) + 3;
            continue;
        }
        if (rest >= 3 && html[i + 1] == '/' && is_alpha((unsigned char)html[i + 2])) {
            /* an end tag: read as a start tag is, since a quoted '>' in
             * its attributes does not end it either */
            size_t end;
            const char *name;
            size_t nl;
            struct href h;
            if (read_start_tag(html, len, i + 1, &end, &name, &nl, &h) < 0) {
                i = len;
                break;
            }
            i = end;
            continue;
        }
        if (rest >= 2 && (html[i + 1] == '!' || html[i + 1] == '?' || html[i + 1] == '/')) {
            /* a declaration, processing instruction or bogus end tag: to
             * its '>' */
            const char *e = memchr(html + i + 1, '>', rest - 1);
            if (!e) {
                i = len;
                break;
            }
            i = (size_t)(e - html) + 1;
            continue;
        }
        if (rest < 2 || !is_alpha((unsigned char)html[i + 1])) {
            i++; /* a '<' that opens no tag is text */
            continue;
        }
        size_t end;
        const char *name;
        size_t nl;
        struct href h;
        if (read_start_tag(html, len, i, &end, &name, &nl, &h) < 0) {
            i = len; /* never closed: the rest stays as it is */
            break;
        }
        if (h.start && (word_eq(name, nl, "a") || word_eq(name, nl, "area"))) {
            buf_clear(&url);
            int r = decode_value(html + h.vstart, h.vend - h.vstart, &url) < 0 ? 0 : ask(o, &url, &tracked);
            if (r < 0) {
                rc = r;
                goto done;
            }
            if (r == 1) {
                buf_add(out, html + copied, h.start - copied);
                buf_addc(out, '"');
                add_escaped(out, tracked.p, tracked.len);
                buf_addc(out, '"');
                copied = h.end;
                (*count)++;
            }
        }
        i = end;
        for (size_t k = 0; k < sizeof raw_elements / sizeof raw_elements[0]; k++)
            if (word_eq(name, nl, raw_elements[k]))
                i = raw_text_end(html, len, i, raw_elements[k], strlen(raw_elements[k]));
    }
    buf_add(out, html + copied, len - copied);
done:
    if (rc == 0 && (out->oom || url.oom || tracked.oom))
        rc = -ENOMEM;
    buf_free(&url);
    buf_free(&tracked);
    return rc;
}

/* ---- text ---- */

/* Where a bare URL starting at s[at] ends, linkifier style. */
static size_t url_end(const char *s, size_t n, size_t at)
{
    size_t e = at;
    while (e < n) {
        unsigned char c = (unsigned char)s[e];
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"')
            break;
        e++;
    }
    /* trailing punctuation belongs to the sentence; a closing bracket
     * stays when the URL opened one (Wikipedia's "Foo_(bar)") */
    while (e > at) {
        char c = s[e - 1];
        if (strchr(".,;:!?'*_~", c)) {
            e--;
            continue;
        }
        if (c == ')' || c == ']') {
            char open = c == ')' ? '(' : '[';
            size_t opens = 0, closes = 0;
            for (size_t k = at; k < e; k++) {
                opens += s[k] == open;
                closes += s[k] == c;
            }
            if (closes > opens) {
                e--;
                continue;
            }
        }
        break;
    }
    return e;
}

int linkrewrite_text(const char *text, size_t len, const struct linkrewrite_opts *o, struct buf *out, int *count)
{
    struct buf url = {0}, tracked = {0};
    int rc = 0;
    *count = 0;
    size_t i = 0, copied = 0;
    size_t ulen = o->unsubscribe_url ? strlen(o->unsubscribe_url) : 0;
    while (i < len) {
        /* the unsubscribe URL as written, whole: its token may end in a
         * character url_end takes for punctuation ('_'), and cut short it
         * would no longer be known as the unsubscribe URL */
        if (ulen && len - i >= ulen && memcmp(text + i, o->unsubscribe_url, ulen) == 0 &&
            (i == 0 || !is_alnum((unsigned char)text[i - 1]))) {
            i += ulen;
            continue;
        }
        if (lower((unsigned char)text[i]) != 'h' || (i > 0 && is_alnum((unsigned char)text[i - 1])) ||
            !(starts_with(text + i, len - i, "http://") || starts_with(text + i, len - i, "https://"))) {
            i++;
            continue;
        }
        size_t e = url_end(text, len, i);
        buf_clear(&url);
        buf_add(&url, text + i, e - i);
        int r = ask(o, &url, &tracked);
        if (r < 0) {
            rc = r;
            goto done;
        }
        if (r == 1) {
            buf_add(out, text + copied, i - copied);
            buf_add(out, tracked.p, tracked.len);
            copied = e;
            (*count)++;
        }
        i = e > i ? e : i + 1;
    }
    buf_add(out, text + copied, len - copied);
done:
    if (rc == 0 && (out->oom || url.oom || tracked.oom))
        rc = -ENOMEM;
    buf_free(&url);
    buf_free(&tracked);
    return rc;
}
