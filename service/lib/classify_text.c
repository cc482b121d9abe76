/* classify_text: the reading tools every part of classify shares. It
 * owns the normalised copy of a text that wording is matched on (ASCII
 * and Latin-1 letters lower-cased, typographic apostrophes as ', runs
 * of white space as one space), the patterns matched against it ('*'
 * stands for up to 60 characters, '~' for a word edge), the text buffer
 * capped at what any rule looks at, and the scanners for addresses and
 * Message-IDs. It holds no wording of its own: each table lives beside
 * the rule that reads it. Pure: no I/O, no logging. */
#include "classify_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void cls_text_add(struct buf *b, const char *s, size_t n)
{
    /* what lies past the cap is never read: drop it rather than copy it */
    if (b->len + n > CLS_TEXT_CAP)
        n = CLS_TEXT_CAP > b->len ? CLS_TEXT_CAP - b->len : 0;
    if (n == 0)
        return; /* b->p stays NULL until there is text */
    buf_add(b, s, n);
}

void cls_text_adds(struct buf *b, const char *s)
{
    cls_text_add(b, s, strlen(s));
}

const char *cls_text_str(const struct buf *b)
{
    return b->p ? b->p : "";
}

/* Lower-cases ASCII and Latin-1 capitals (U+00C0..U+00DE) and folds
 * white space runs into one space; typographic apostrophes become '. */
char *cls_norm(const char *s, size_t len)
{
    if (len > CLS_TEXT_CAP)
        len = CLS_TEXT_CAP;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || isspace(c)) {
            space = 1;
            continue;
        }
        if (space && n > 0)
            out[n++] = ' ';
        space = 0;
        if (c == 0xC3 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9E && (unsigned char)s[i + 1] != 0x97) {
            out[n++] = (char)c;
            out[n++] = (char)((unsigned char)s[i + 1] + 0x20);
            i++;
        } else if (c == 0xE2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
                   ((unsigned char)s[i + 2] == 0x98 || (unsigned char)s[i + 2] == 0x99)) {
            out[n++] = '\'';
            i += 2;
        } else if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] == 0xA0) {
            if (n > 0)
                out[n++] = ' ';
            i++;
        } else {
            out[n++] = (char)tolower(c);
        }
    }
    out[n] = '\0';
    return out;
}

int cls_alnum_at(const char *base, const char *s)
{
    if (s < base || *s == '\0')
        return 0;
    unsigned char c = (unsigned char)*s;
    return isalnum(c) || c >= 0x80;
}

/* Anchored match of pattern p at s: '*' is up to 60 characters, '~' a
 * word edge. */
static int amatch(const char *base, const char *s, const char *p, int budget)
{
    while (*p && *p != '*') {
        if (*p == '~') {
            if (cls_alnum_at(base, s - 1) && cls_alnum_at(base, s))
                return 0;
            p++;
            continue;
        }
        if (*s != *p)
            return 0;
        s++;
        p++;
    }
    if (!*p)
        return 1;
    if (budget <= 0)
        return 0;
    p++;
    for (int k = 0; k <= 60; k++) {
        if (amatch(base, s + k, p, budget - 1))
            return 1;
        if (!s[k])
            break;
    }
    return 0;
}

/* Where pattern pat first matches in text, or NULL. */
const char *cls_wfind(const char *text, const char *pat)
{
    char lit[64];
    size_t n = 0;
    const char *p = pat;
    while (*p == '~')
        p++;
    while (p[n] && p[n] != '*' && p[n] != '~' && n + 1 < sizeof lit) {
        lit[n] = p[n];
        n++;
    }
    lit[n] = '\0';
    if (n == 0)
        return NULL;
    /* leading '~' are zero-width: the literal starts the match */
    for (const char *s = strstr(text, lit); s; s = strstr(s + 1, lit)) {
        if (amatch(text, s, pat, 3))
            return s;
    }
    return NULL;
}

int cls_any_match(const char *text, const char *const *pats)
{
    for (size_t i = 0; pats[i]; i++)
        if (cls_wfind(text, pats[i]))
            return 1;
    return 0;
}

int cls_count_matches(const char *text, const char *const *pats)
{
    int n = 0;
    for (size_t i = 0; pats[i]; i++)
        if (cls_wfind(text, pats[i]))
            n++;
    return n;
}

void cls_copy_str(char *dst, size_t len, const char *src, size_t n)
{
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}


/* ---- addresses and message ids ---- */

static int local_char(unsigned char c)
{
    return isalnum(c) || strchr(".!#$%&'*+-/=?^_`{|}~", c) != NULL || c >= 0x80;
}

static int domain_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_' || c >= 0x80;
}

/* Finds the next address in s at or after *pos; copies it into out.
 * Returns the start of the address or NULL. */
const char *cls_next_address(const char *s, size_t *pos, char *out, size_t outlen)
{
    const char *at = strchr(s + *pos, '@');
    while (at) {
        const char *l = at;
        while (l > s && local_char((unsigned char)l[-1]) && at - l < 128)
            l--;
        while (l < at && (*l == '.' || *l == '\'' || *l == '=' || *l == '/'))
            l++;
        const char *r = at + 1;
        while (domain_char((unsigned char)*r) && r - at < 255)
            r++;
        while (r > at + 1 && (r[-1] == '.' || r[-1] == '-'))
            r--;
        *pos = (size_t)(r - s);
        if (l < at && r > at + 1 && memchr(at + 1, '.', (size_t)(r - at - 1))) {
            cls_copy_str(out, outlen, l, (size_t)(r - l));
            return l;
        }
        if (*pos <= (size_t)(at - s))
            *pos = (size_t)(at - s) + 1;
        at = strchr(s + *pos, '@');
    }
    return NULL;
}

/* The first address in a header-ish value ("Name <a@b>", "rfc822; a@b"). */
int cls_first_address(const char *v, char *out, size_t outlen)
{
    size_t pos = 0;
    if (!v)
        return -1;
    return cls_next_address(v, &pos, out, outlen) ? 0 : -1;
}

/* "<id@host>" from a Message-ID-ish value; the last one when last. */
int cls_extract_msgid(const char *v, int last, char *out, size_t outlen)
{
    const char *found = NULL, *found_end = NULL;
    if (!v)
        return -1;
    for (const char *s = strchr(v, '<'); s; s = strchr(s + 1, '<')) {
        const char *e = strchr(s, '>');
        if (!e)
            break;
        if (memchr(s, '@', (size_t)(e - s)) && !memchr(s, ' ', (size_t)(e - s))) {
            found = s;
            found_end = e;
            if (!last)
                break;
        }
    }
    if (!found)
        return -1;
    cls_copy_str(out, outlen, found, (size_t)(found_end - found + 1));
    return 0;
}
