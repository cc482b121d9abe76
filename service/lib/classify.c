/* classify: reads one received message and says what it means for the
 * cadence. It owns the decision rules — delivery reports and the
 * non-standard bounce texts of MTAs and providers, the hard/soft/block
 * taxonomy of DESIGN semantic 6, auto-reply headers and out-of-office
 * wording in English, French, German and Spanish, removal requests, the
 * return date of an out-of-office — and the Message-ID it answers. It
 * does not parse MIME (mime does), fetch mail (mailbox does) or act on
 * the result (the scheduler and the suppression list do).
 *
 * The order of the checks matters: delivery reports first (bounces carry
 * Auto-Submitted too), then provider and MTA bounce texts, then
 * auto-reply headers and wording, then removal requests, then the rest.
 * Wording is matched on a normalised copy of the text (ASCII and Latin-1
 * letters lower-cased, runs of white space as one space) with patterns
 * in which '*' stands for up to 60 characters and '~' for a word edge.
 * Pure: no I/O, no logging. */
#include "classify.h"

#include "mime.h"
#include "mta_words.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const classify_kind_names[CLASSIFY_KIND_COUNT] = {
    [CLASSIFY_HUMAN_REPLY] = "human_reply",
    [CLASSIFY_AUTO_REPLY] = "auto_reply",
    [CLASSIFY_HARD_BOUNCE] = "hard_bounce",
    [CLASSIFY_SOFT_BOUNCE] = "soft_bounce",
    [CLASSIFY_UNSUBSCRIBE_REQUEST] = "unsubscribe_request",
    [CLASSIFY_OTHER] = "other",
};

const char *const classify_reason_names[CLASSIFY_REASON_COUNT] = {
    [CLASSIFY_REASON_NONE] = "none",
    [CLASSIFY_REASON_USER_UNKNOWN] = "user_unknown",
    [CLASSIFY_REASON_HOST_UNKNOWN] = "host_unknown",
    [CLASSIFY_REASON_HAS_MOVED] = "has_moved",
    [CLASSIFY_REASON_NOT_ACCEPT] = "not_accept",
    [CLASSIFY_REASON_MAILBOX_FULL] = "mailbox_full",
    [CLASSIFY_REASON_TOO_BIG] = "too_big",
    [CLASSIFY_REASON_SUSPENDED] = "suspended",
    [CLASSIFY_REASON_FILTERED] = "filtered",
    [CLASSIFY_REASON_EXPIRED] = "expired",
    [CLASSIFY_REASON_NETWORK] = "network",
    [CLASSIFY_REASON_SYSTEM] = "system",
    [CLASSIFY_REASON_BLOCKED] = "blocked",
    [CLASSIFY_REASON_SPAM] = "spam",
    [CLASSIFY_REASON_POLICY] = "policy",
    [CLASSIFY_REASON_SENDER] = "sender",
    [CLASSIFY_REASON_UNKNOWN] = "unknown",
};

int classify_reason_is_hard(enum classify_reason r)
{
    return r == CLASSIFY_REASON_USER_UNKNOWN || r == CLASSIFY_REASON_HOST_UNKNOWN ||
           r == CLASSIFY_REASON_HAS_MOVED || r == CLASSIFY_REASON_NOT_ACCEPT;
}

int classify_reason_is_block(enum classify_reason r)
{
    return r == CLASSIFY_REASON_BLOCKED || r == CLASSIFY_REASON_SPAM ||
           r == CLASSIFY_REASON_POLICY || r == CLASSIFY_REASON_SENDER;
}

/* ---- text helpers ---- */

#define TEXT_CAP (256u << 10) /* bytes of text any rule looks at */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->len + n > TEXT_CAP)
        n = TEXT_CAP > b->len ? TEXT_CAP - b->len : 0;
    if (n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static const char *sb_str(const struct sbuf *b)
{
    return b->p ? b->p : "";
}

/* Lower-cases ASCII and Latin-1 capitals (U+00C0..U+00DE) and folds
 * white space runs into one space; typographic apostrophes become '. */
static char *norm(const char *s, size_t len)
{
    if (len > TEXT_CAP)
        len = TEXT_CAP;
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

static int alnum_at(const char *base, const char *s)
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
            if (alnum_at(base, s - 1) && alnum_at(base, s))
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
static const char *wfind(const char *text, const char *pat)
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

static int any_match(const char *text, const char *const *pats)
{
    for (size_t i = 0; pats[i]; i++)
        if (wfind(text, pats[i]))
            return 1;
    return 0;
}

static int count_matches(const char *text, const char *const *pats)
{
    int n = 0;
    for (size_t i = 0; pats[i]; i++)
        if (wfind(text, pats[i]))
            n++;
    return n;
}

static void copy_str(char *dst, size_t len, const char *src, size_t n)
{
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- addresses, statuses, message ids ---- */

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
static const char *next_address(const char *s, size_t *pos, char *out, size_t outlen)
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
            copy_str(out, outlen, l, (size_t)(r - l));
            return l;
        }
        if (*pos <= (size_t)(at - s))
            *pos = (size_t)(at - s) + 1;
        at = strchr(s + *pos, '@');
    }
    return NULL;
}

/* The first address in a header-ish value ("Name <a@b>", "rfc822; a@b"). */
static int first_address(const char *v, char *out, size_t outlen)
{
    size_t pos = 0;
    if (!v)
        return -1;
    return next_address(v, &pos, out, outlen) ? 0 : -1;
}

/* An enhanced status code "c.s.d" at s (class 2, 4 or 5). Returns its
 * length or 0. */
static size_t status_at(const char *base, const char *s)
{
    if (s > base && (isdigit((unsigned char)s[-1]) || s[-1] == '.'))
        return 0;
    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return 0;
    if (s[1] != '.')
        return 0;
    size_t i = 2, d = 0;
    while (isdigit((unsigned char)s[i]) && d < 3) {
        i++;
        d++;
    }
    if (d == 0 || s[i] != '.')
        return 0;
    i++;
    d = 0;
    while (isdigit((unsigned char)s[i]) && d < 3) {
        i++;
        d++;
    }
    if (d == 0 || isdigit((unsigned char)s[i]))
        return 0;
    if (s[i] == '.' && isdigit((unsigned char)s[i + 1]))
        return 0;
    if (isalpha((unsigned char)s[i]) || s[i] == '@' || s[i] == '-')
        return 0;
    return i;
}

/* True when an SMTP reply code ("550 ", "550-", "550-'") ends just
 * before s. */
static int after_reply_code(const char *base, const char *s)
{
    const char *p = s;
    for (int k = 0; k < 2 && p > base && (p[-1] == '\'' || p[-1] == '"' || p[-1] == '#'); k++)
        p--;
    if (p - base < 4 || (p[-1] != ' ' && p[-1] != '-'))
        return 0;
    return isdigit((unsigned char)p[-2]) && isdigit((unsigned char)p[-3]) &&
           (p[-4] == '4' || p[-4] == '5') && (p - base == 4 || !isdigit((unsigned char)p[-5]));
}

/* The failure status (4.x.x or 5.x.x) in text[0..len): the first one
 * that follows an SMTP reply code, else the first one. */
static int find_status(const char *text, size_t len, char *out, size_t outlen)
{
    const char *first = NULL;
    size_t first_n = 0;
    for (size_t i = 0; i < len && text[i]; i++) {
        if (text[i] != '4' && text[i] != '5')
            continue;
        size_t n = status_at(text, text + i);
        if (!n)
            continue;
        if (after_reply_code(text, text + i)) {
            copy_str(out, outlen, text + i, n);
            return 0;
        }
        if (!first) {
            first = text + i;
            first_n = n;
        }
    }
    if (!first)
        return -1;
    copy_str(out, outlen, first, first_n);
    return 0;
}

/* A status with a zero subject ("5.0.0") says less than one in text. */
static int status_is_generic(const char *st)
{
    return st[0] == '\0' || (strlen(st) == 5 && strcmp(st + 1, ".0.0") == 0);
}

/* "<id@host>" from a Message-ID-ish value; the last one when last. */
static int extract_msgid(const char *v, int last, char *out, size_t outlen)
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
    copy_str(out, outlen, found, (size_t)(found_end - found + 1));
    return 0;
}

/* ---- dates ---- */

static const char *const month_abbr[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec"};

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* A bounded unsigned number at *s (at most maxd digits); -1 if none. */
static int take_num(const char **s, int maxd)
{
    int v = 0, n = 0;
    while (n < maxd && isdigit((unsigned char)**s)) {
        v = v * 10 + (**s - '0');
        (*s)++;
        n++;
    }
    if (n == 0 || isdigit((unsigned char)**s))
        return -1;
    return v;
}

/* RFC 5322 date ("Thu, 15 Jul 2010 14:33:27 +0200"), leniently; every
 * field is range-checked, 0 when unreadable. */
static time_t parse_rfc_date(const char *v)
{
    if (!v)
        return 0;
    const char *s = strchr(v, ',');
    s = s ? s + 1 : v;
    while (*s == ' ')
        s++;
    int day = take_num(&s, 2);
    while (*s == ' ')
        s++;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (strncasecmp(s, month_abbr[i], 3) == 0)
            mon = i + 1;
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    int year = take_num(&s, 4);
    if (day < 1 || day > 31 || mon < 0 || year < 0)
        return 0;
    if (year < 100)
        year += year < 50 ? 2000 : 1900;
    if (year < 1970 || year > 9999 || day > days_in_month(year, mon))
        return 0;
    while (*s == ' ')
        s++;
    int hh = take_num(&s, 2), mm = -1, ss = 0;
    if (hh >= 0 && *s == ':') {
        s++;
        mm = take_num(&s, 2);
        if (mm >= 0 && *s == ':') {
            s++;
            ss = take_num(&s, 2);
        }
    }
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
        hh = mm = ss = 0;
    int64_t t = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
    while (*s == ' ')
        s++;
    if (*s == '+' || *s == '-') {
        int sign = *s == '+' ? -1 : 1;
        s++;
        int off = take_num(&s, 4);
        if (off >= 0 && off / 100 <= 14 && off % 100 < 60)
            t += sign * ((off / 100) * 3600 + (off % 100) * 60);
    }
    return (time_t)t;
}

struct month_name {
    const char *name;
    int month;
};

static const struct month_name month_names[] = {
    {"january", 1},    {"february", 2},  {"march", 3},      {"april", 4},      {"may", 5},
    {"june", 6},       {"july", 7},      {"august", 8},     {"september", 9},  {"october", 10},
    {"november", 11},  {"december", 12}, {"janvier", 1},    {"février", 2},    {"fevrier", 2},
    {"mars", 3},       {"avril", 4},     {"mai", 5},        {"juin", 6},       {"juillet", 7},
    {"août", 8},       {"aout", 8},      {"septembre", 9},  {"octobre", 10},   {"novembre", 11},
    {"décembre", 12},  {"decembre", 12}, {"januar", 1},     {"jänner", 1},     {"februar", 2},
    {"märz", 3},       {"maerz", 3},     {"juni", 6},       {"juli", 7},       {"oktober", 10},
    {"dezember", 12},  {"enero", 1},     {"febrero", 2},    {"marzo", 3},      {"abril", 4},
    {"mayo", 5},       {"junio", 6},     {"julio", 7},      {"agosto", 8},     {"septiembre", 9},
    {"setiembre", 9},  {"octubre", 10},  {"noviembre", 11}, {"diciembre", 12}, {"sept", 9},
    {"jan", 1},        {"feb", 2},       {"mar", 3},        {"apr", 4},        {"jun", 6},
    {"jul", 7},        {"aug", 8},       {"sep", 9},        {"oct", 10},       {"nov", 11},
    {"dec", 12},       {"dez", 12},      {"okt", 10},       {"ene", 1},        {"dic", 12},
    {"janv", 1},       {"févr", 2},      {"déc", 12},
};

/* weekday 0 = Sunday */
static const struct month_name weekday_names[] = {
    {"sunday", 0},   {"monday", 1},    {"tuesday", 2},   {"wednesday", 3}, {"thursday", 4},
    {"friday", 5},   {"saturday", 6},  {"dimanche", 0},  {"lundi", 1},     {"mardi", 2},
    {"mercredi", 3}, {"jeudi", 4},     {"vendredi", 5},  {"samedi", 6},    {"sonntag", 0},
    {"montag", 1},   {"dienstag", 2},  {"mittwoch", 3},  {"donnerstag", 4}, {"freitag", 5},
    {"samstag", 6},  {"sonnabend", 6}, {"domingo", 0},   {"lunes", 1},     {"martes", 2},
    {"miércoles", 3}, {"miercoles", 3}, {"jueves", 4},   {"viernes", 5},   {"sábado", 6},
    {"sabado", 6},
};

/* A name from the table starting at s and ending at a word edge. */
static int name_at(const char *s, const struct month_name *tab, size_t n, size_t *len)
{
    size_t best = 0;
    int val = -1;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(tab[i].name);
        if (l > best && strncmp(s, tab[i].name, l) == 0 && !alnum_at(s, s + l)) {
            best = l;
            val = tab[i].month;
        }
    }
    if (val >= 0) {
        *len = best;
        if (s[best] == '.')
            (*len)++;
    }
    return val;
}

static int read_int(const char *s, int maxdigits, int *v, size_t *len)
{
    int n = 0, x = 0;
    while (n < maxdigits && isdigit((unsigned char)s[n])) {
        x = x * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || isdigit((unsigned char)s[n]))
        return -1;
    *v = x;
    *len = (size_t)n;
    return 0;
}

/* Day suffixes: 1st 2nd 3rd 4th, 1er, 4., "de", "of". */
static const char *skip_day_suffix(const char *s)
{
    if (strncmp(s, "st", 2) == 0 || strncmp(s, "nd", 2) == 0 || strncmp(s, "rd", 2) == 0 ||
        strncmp(s, "th", 2) == 0 || strncmp(s, "er", 2) == 0)
        s += 2;
    if (*s == '.')
        s++;
    if (*s == ' ')
        s++;
    if (strncmp(s, "of ", 3) == 0)
        s += 3;
    else if (strncmp(s, "de ", 3) == 0)
        s += 3;
    return s;
}

/* A year after a date (", 2024", " 2024", " de 2024"). 0 when none. */
static int read_year(const char *s)
{
    if (*s == ',')
        s++;
    if (*s == ' ')
        s++;
    if (strncmp(s, "de ", 3) == 0)
        s += 3;
    int y;
    size_t l;
    if (read_int(s, 4, &y, &l) == 0 && l == 4 && y >= 1970 && y < 2200)
        return y;
    return 0;
}

struct date_hit {
    int y, m, d; /* y == 0: no year written */
    int weekday; /* >= 0 when only a weekday was written */
    size_t pos;
};

/* Reads a date expression at text[i]; fills *h and returns its length. */
static size_t date_at(const char *text, size_t i, int month_first_numeric, struct date_hit *h)
{
    const char *s = text + i;
    size_t l1, l2;
    int a, b, c;
    memset(h, 0, sizeof *h);
    h->weekday = -1;
    h->pos = i;
    if (alnum_at(text, s - 1))
        return 0;
    if (isdigit((unsigned char)*s)) {
        if (read_int(s, 4, &a, &l1) < 0)
            return 0;
        const char *t = s + l1;
        /* ISO 2024-12-03 */
        if (l1 == 4 && *t == '-' && read_int(t + 1, 2, &b, &l2) == 0 && t[1 + l2] == '-' &&
            read_int(t + 2 + l2, 2, &c, &l1) == 0) {
            h->y = a;
            h->m = b;
            h->d = c;
            return (size_t)(t + 2 + l2 + l1 - s);
        }
        /* numeric d.m. / d.m.y / d/m / m/d */
        if (l1 <= 2 && (*t == '.' || *t == '/') && read_int(t + 1, 2, &b, &l2) == 0) {
            char sep = *t;
            const char *u = t + 1 + l2;
            int y = 0;
            size_t l3 = 0;
            if (*u == sep && read_int(u + 1, 4, &c, &l3) == 0 && (l3 == 2 || l3 == 4)) {
                y = l3 == 2 ? 2000 + c : c;
                u += 1 + l3;
            } else if (sep == '.' && *u == '.') {
                u++;
            } else if (sep == '.') {
                return 0; /* "14.30" is a time, not a date */
            }
            int d = a, m = b;
            if (sep == '/' && month_first_numeric && a <= 12)
                d = b, m = a;
            if (sep == '/' && a > 12)
                d = a, m = b;
            else if (sep == '/' && b > 12)
                d = b, m = a;
            h->y = y;
            h->m = m;
            h->d = d;
            return (size_t)(u - s);
        }
        /* day then month name */
        if (l1 <= 2) {
            const char *u = skip_day_suffix(t);
            size_t ml;
            int m = name_at(u, month_names, sizeof month_names / sizeof month_names[0], &ml);
            if (m > 0) {
                h->d = a;
                h->m = m;
                h->y = read_year(u + ml);
                return (size_t)(u + ml - s);
            }
        }
        return 0;
    }
    size_t ml;
    int m = name_at(s, month_names, sizeof month_names / sizeof month_names[0], &ml);
    if (m > 0) {
        const char *u = s + ml;
        if (*u == ' ')
            u++;
        if (read_int(u, 2, &a, &l1) == 0) {
            const char *v = u + l1;
            if (strncmp(v, "st", 2) == 0 || strncmp(v, "nd", 2) == 0 ||
                strncmp(v, "rd", 2) == 0 || strncmp(v, "th", 2) == 0)
                v += 2;
            h->m = m;
            h->d = a;
            h->y = read_year(v);
            return (size_t)(v - s);
        }
        return 0;
    }
    int wd = name_at(s, weekday_names, sizeof weekday_names / sizeof weekday_names[0], &ml);
    if (wd >= 0) {
        /* "Monday, December 3" or "lundi 2 décembre": the date wins */
        const char *u = s + ml;
        if (*u == ',')
            u++;
        if (*u == ' ')
            u++;
        if (strncmp(u, "the ", 4) == 0)
            u += 4;
        struct date_hit inner;
        size_t k = date_at(text, (size_t)(u - text), month_first_numeric, &inner);
        if (k && inner.weekday < 0) {
            *h = inner;
            h->pos = i;
            return (size_t)(u - s) + k;
        }
        h->weekday = wd;
        return ml;
    }
    return 0;
}

/* Words after which a date is the return date. */
static const char *const return_cues[] = {
    "until", "till", "'til", "through", "thru", "back", "return", "returning", "resume",
    "reachable", "available", "jusqu", "retour", "rentre", "reviens", "reprendrai", "reprise",
    "à partir", "a partir", "bis", "zurück", "zuruck", "wieder", "ab dem", "ab ", "hasta",
    "regreso", "regresaré", "volveré", "vuelta", "de vuelta", "reincorpor", NULL};

int classify_return_date_parse(const char *text, time_t sent, int *year, int *month, int *day)
{
    char *t = norm(text, strlen(text));
    if (!t)
        return -1;
    int64_t sent_day = sent > 0 ? (int64_t)(sent / 86400) : 0;
    int sy = 1970, sm = 1, sd = 1;
    civil_from_days(sent_day, &sy, &sm, &sd);
    int sent_wday = (int)((sent_day % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
    int month_first = strstr(t, "until") || strstr(t, "back on") || strstr(t, "return") ||
                      strstr(t, "office");
    if (strstr(t, "jusqu") || strstr(t, " bis ") || strstr(t, "hasta") || strstr(t, "retour"))
        month_first = 0;
    int best_score = -1;
    int64_t best_day = 0;
    size_t len = strlen(t);
    for (size_t i = 0; i < len;) {
        struct date_hit h;
        size_t k = date_at(t, i, month_first, &h);
        if (k == 0) {
            i++;
            continue;
        }
        int64_t dn;
        if (h.weekday >= 0) {
            int delta = (h.weekday - sent_wday + 7) % 7;
            if (delta == 0)
                delta = 7;
            dn = sent_day + delta;
        } else {
            if (h.m < 1 || h.m > 12 || h.d < 1)
                goto next;
            int y = h.y ? h.y : sy;
            if (h.d > days_in_month(y, h.m))
                goto next;
            dn = days_from_civil(y, h.m, h.d);
            if (!h.y && dn < sent_day - 14)
                dn = days_from_civil(y + 1, h.m, h.d);
            if (!h.y && h.d > days_in_month(y + 1, h.m))
                goto next;
        }
        if (dn < sent_day - 14 || dn > sent_day + 400)
            goto next;
        {
            /* a cue shortly before the date makes it the return date */
            int score = 1;
            size_t from = i > 40 ? i - 40 : 0;
            for (size_t c = 0; return_cues[c]; c++) {
                const char *p = strstr(t + from, return_cues[c]);
                if (p && (size_t)(p - t) < i) {
                    score = 3;
                    break;
                }
            }
            if (h.weekday >= 0)
                score--; /* a bare weekday only counts with a cue */
            if (h.weekday >= 0 && score < 2)
                goto next;
            if (score > best_score || (score == best_score && dn > best_day)) {
                best_score = score;
                best_day = dn;
            }
        }
    next:
        i += k;
    }
    free(t);
    if (best_score < 0)
        return -1;
    civil_from_days(best_day, year, month, day);
    return 0;
}

/* ---- message-level facts ---- */

struct msg {
    const struct mime_part *root;
    const struct mime_headers *h;
    char *subject;        /* normalised */
    char *from;           /* normalised, display name and address */
    char from_addr[256];
    char to_addr[256];
    time_t date;
    struct sbuf text;      /* the notification / reply text, outside embedded mail */
    char *ntext;           /* normalised text */
    const struct mime_part *returned; /* embedded original message or headers */
};

static int is_attachment(const struct mime_part *p)
{
    const char *cd = mime_headers_get(&p->headers, "Content-Disposition");
    return cd && strncasecmp(cd, "attachment", 10) == 0;
}

/* Crude HTML to text: tags dropped, block ends as line breaks, a few
 * entities; quoted history (blockquote, Gmail/Outlook markers) cut. */
static void add_html(struct sbuf *b, const char *s, size_t len)
{
    static const char *const cuts[] = {"<blockquote", "gmail_quote", "divrplyfwdmsg",
                                       "appendonsend", "moz-cite-prefix", "yahoo_quoted",
                                       "<hr", NULL};
    size_t end = len;
    for (size_t i = 0; i < len && i < TEXT_CAP; i++) {
        if (s[i] != '<' && s[i] != 'g' && s[i] != 'd' && s[i] != 'a' && s[i] != 'm' &&
            s[i] != 'y')
            continue;
        for (size_t c = 0; cuts[c]; c++) {
            size_t cl = strlen(cuts[c]);
            if (i + cl <= len && strncasecmp(s + i, cuts[c], cl) == 0) {
                end = i;
                break;
            }
        }
        if (end != len)
            break;
    }
    int in_tag = 0, in_style = 0;
    for (size_t i = 0; i < end; i++) {
        char c = s[i];
        if (in_tag) {
            if (c == '>')
                in_tag = 0;
            continue;
        }
        if (c == '<') {
            if (strncasecmp(s + i, "<style", 6) == 0 || strncasecmp(s + i, "<script", 7) == 0)
                in_style = 1;
            else if (strncasecmp(s + i, "</style", 7) == 0 || strncasecmp(s + i, "</script", 8) == 0)
                in_style = 0;
            if (strncasecmp(s + i, "<br", 3) == 0 || strncasecmp(s + i, "</p", 3) == 0 ||
                strncasecmp(s + i, "</div", 5) == 0 || strncasecmp(s + i, "<tr", 3) == 0)
                sb_adds(b, "\n");
            in_tag = 1;
            continue;
        }
        if (in_style)
            continue;
        if (c == '&') {
            static const struct {
                const char *ent, *txt;
            } ents[] = {{"&nbsp;", " "}, {"&amp;", "&"},  {"&lt;", "<"},
                        {"&gt;", ">"},   {"&quot;", "\""}, {"&#39;", "'"},
                        {"&apos;", "'"}, {"&rsquo;", "'"}, {"&eacute;", "\xC3\xA9"},
                        {"&egrave;", "\xC3\xA8"}, {"&agrave;", "\xC3\xA0"}, {"&uuml;", "\xC3\xBC"}};
            size_t k;
            for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
                size_t el = strlen(ents[k].ent);
                if (i + el <= end && strncasecmp(s + i, ents[k].ent, el) == 0) {
                    sb_adds(b, ents[k].txt);
                    i += el - 1;
                    break;
                }
            }
            if (k < sizeof ents / sizeof ents[0])
                continue;
        }
        sb_add(b, &c, 1);
    }
    sb_adds(b, "\n");
}

/* Text leaves outside embedded messages; html only when no plain. */
static void collect_text(const struct mime_part *p, struct sbuf *plain, struct sbuf *html,
                         int top)
{
    if (p->part_count > 0) {
        if (strcmp(p->type, "message/rfc822") == 0 || strcmp(p->type, "message/global") == 0)
            return;
        for (size_t i = 0; i < p->part_count; i++)
            collect_text(&p->parts[i], plain, html, 0);
        return;
    }
    if (!p->body || (!top && is_attachment(p) && strcmp(p->type, "text/plain") != 0))
        return;
    if (strcmp(p->type, "text/plain") == 0 || strcmp(p->type, "text/enriched") == 0) {
        sb_add(plain, p->body, p->body_len);
        sb_adds(plain, "\n");
    } else if (strcmp(p->type, "text/html") == 0) {
        add_html(html, p->body, p->body_len);
    }
}

static const struct mime_part *find_returned(const struct mime_part *p)
{
    if (strcmp(p->type, "message/rfc822") == 0 || strcmp(p->type, "message/global") == 0 ||
        strcmp(p->type, "text/rfc822-headers") == 0 ||
        strcmp(p->type, "message/global-headers") == 0 ||
        strcmp(p->type, "message/rfc822-headers") == 0) {
        if (p->part_count > 0)
            return &p->parts[0];
        return NULL;
    }
    for (size_t i = 0; i < p->part_count; i++) {
        const struct mime_part *r = find_returned(&p->parts[i]);
        if (r)
            return r;
    }
    return NULL;
}

static char *decoded_norm(const char *v)
{
    char *d = mime_words_decode(v ? v : "");
    if (!d)
        return NULL;
    char *n = norm(d, strlen(d));
    free(d);
    return n;
}

static void msg_free(struct msg *m)
{
    free(m->subject);
    free(m->from);
    free(m->text.p);
    free(m->ntext);
}

static int msg_load(struct msg *m, const struct mime_part *root)
{
    memset(m, 0, sizeof *m);
    m->root = root;
    m->h = &root->headers;
    m->subject = decoded_norm(mime_headers_get(m->h, "Subject"));
    m->from = decoded_norm(mime_headers_get(m->h, "From"));
    if (!m->subject || !m->from)
        return -ENOMEM;
    if (first_address(mime_headers_get(m->h, "From"), m->from_addr, sizeof m->from_addr) < 0)
        m->from_addr[0] = '\0';
    if (first_address(mime_headers_get(m->h, "To"), m->to_addr, sizeof m->to_addr) < 0)
        m->to_addr[0] = '\0';
    m->date = parse_rfc_date(mime_headers_get(m->h, "Date"));
    struct sbuf html = {0};
    collect_text(root, &m->text, &html, 1);
    if (m->text.len == 0 && html.len)
        sb_add(&m->text, html.p, html.len);
    int oom = html.oom || m->text.oom;
    free(html.p);
    if (oom)
        return -ENOMEM;
    m->ntext = norm(sb_str(&m->text), m->text.len);
    if (!m->ntext)
        return -ENOMEM;
    m->returned = find_returned(root);
    return 0;
}

/* ---- bounces ---- */

struct rule {
    const char *pat;
    enum classify_reason reason;
};

/* First match wins: the specific soft reasons come before "user
 * unknown" because MTAs write 5.1.1 for full or disabled mailboxes too;
 * transient and generic wording comes last. */
static const struct rule reason_rules[] = {
    /* mailbox full */
    {"mailbox full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox*is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mail box full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox has exceeded", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox exceeds", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox size limit", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailfolder is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"over quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"overquota", CLASSIFY_REASON_MAILBOX_FULL},
    {"over the quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"over its quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"quota exceeded", CLASSIFY_REASON_MAILBOX_FULL},
    {"quota exceed", CLASSIFY_REASON_MAILBOX_FULL},
    {"exceeded*quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"exceed*quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"quota full", CLASSIFY_REASON_MAILBOX_FULL},
    {"disk quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"exceeded storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"insufficient storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"not enough storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"out of storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"storage limit", CLASSIFY_REASON_MAILBOX_FULL},
    {"inbox is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"account is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"user is over", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox is over", CLASSIFY_REASON_MAILBOX_FULL},
    {"full mailbox", CLASSIFY_REASON_MAILBOX_FULL},
    {"boîte pleine", CLASSIFY_REASON_MAILBOX_FULL},
    {"boite pleine", CLASSIFY_REASON_MAILBOX_FULL},
    {"postfach voll", CLASSIFY_REASON_MAILBOX_FULL},
    {"buzón lleno", CLASSIFY_REASON_MAILBOX_FULL},
    /* too big */
    {"message too large", CLASSIFY_REASON_TOO_BIG},
    {"message too big", CLASSIFY_REASON_TOO_BIG},
    {"message is too large", CLASSIFY_REASON_TOO_BIG},
    {"message is too big", CLASSIFY_REASON_TOO_BIG},
    {"message size exceeds", CLASSIFY_REASON_TOO_BIG},
    {"message length exceeds", CLASSIFY_REASON_TOO_BIG},
    {"size exceeds", CLASSIFY_REASON_TOO_BIG},
    {"exceeds size limit", CLASSIFY_REASON_TOO_BIG},
    {"exceeds the size limit", CLASSIFY_REASON_TOO_BIG},
    {"exceeds the maximum size", CLASSIFY_REASON_TOO_BIG},
    {"exceeds maximum", CLASSIFY_REASON_TOO_BIG},
    {"message exceeds", CLASSIFY_REASON_TOO_BIG},
    {"message size", CLASSIFY_REASON_TOO_BIG},
    {"too large", CLASSIFY_REASON_TOO_BIG},
    {"size limit", CLASSIFY_REASON_TOO_BIG},
    /* our sender refused: before "does not exist", which these quote */
    {"sender address rejected", CLASSIFY_REASON_SENDER},
    {"domain of sender", CLASSIFY_REASON_SENDER},
    {"sender verify failed", CLASSIFY_REASON_SENDER},
    {"my name was rejected", CLASSIFY_REASON_BLOCKED},
    /* Microsoft 365 directory-based edge blocking: no such recipient */
    {"recipient address rejected: access denied", CLASSIFY_REASON_USER_UNKNOWN},
    /* addresses that read like disabled ones but are gone */
    {"inactive email address", CLASSIFY_REASON_USER_UNKNOWN},
    {"inactive address", CLASSIFY_REASON_USER_UNKNOWN},
    {"not an active address", CLASSIFY_REASON_USER_UNKNOWN},
    /* disabled mailbox */
    {"account disabled", CLASSIFY_REASON_SUSPENDED},
    {"account is disabled", CLASSIFY_REASON_SUSPENDED},
    {"account has been disabled", CLASSIFY_REASON_SUSPENDED},
    {"mailbox disabled", CLASSIFY_REASON_SUSPENDED},
    {"mailbox is disabled", CLASSIFY_REASON_SUSPENDED},
    {"mailbox has been disabled", CLASSIFY_REASON_SUSPENDED},
    {"suspended", CLASSIFY_REASON_SUSPENDED},
    {"inactive", CLASSIFY_REASON_SUSPENDED},
    {"deactivated", CLASSIFY_REASON_SUSPENDED},
    {"not active", CLASSIFY_REASON_SUSPENDED},
    {"account is locked", CLASSIFY_REASON_SUSPENDED},
    {"account has been locked", CLASSIFY_REASON_SUSPENDED},
    {"temporarily disabled", CLASSIFY_REASON_SUSPENDED},
    {"frozen", CLASSIFY_REASON_SUSPENDED},
    /* moved */
    {"has moved", CLASSIFY_REASON_HAS_MOVED},
    {"address has changed", CLASSIFY_REASON_HAS_MOVED},
    {"user has moved", CLASSIFY_REASON_HAS_MOVED},
    /* relaying: our side's configuration, a policy block */
    {"relay access denied", CLASSIFY_REASON_POLICY},
    {"relaying denied", CLASSIFY_REASON_POLICY},
    {"relay denied", CLASSIFY_REASON_POLICY},
    {"relay not permitted", CLASSIFY_REASON_POLICY},
    {"not permitted to relay", CLASSIFY_REASON_POLICY},
    {"unable to relay", CLASSIFY_REASON_POLICY},
    {"relaying not allowed", CLASSIFY_REASON_POLICY},
    {"relaying to", CLASSIFY_REASON_POLICY},
    {"we do not relay", CLASSIFY_REASON_POLICY},
    {"no relaying", CLASSIFY_REASON_POLICY},
    {"not allowed to relay", CLASSIFY_REASON_POLICY},
    /* authentication of the sender */
    {"~spf~", CLASSIFY_REASON_POLICY},
    {"~dkim~", CLASSIFY_REASON_POLICY},
    {"~dmarc~", CLASSIFY_REASON_POLICY},
    {"sender policy framework", CLASSIFY_REASON_POLICY},
    {"unauthenticated", CLASSIFY_REASON_POLICY},
    {"authentication required", CLASSIFY_REASON_POLICY},
    {"not authorized to send", CLASSIFY_REASON_POLICY},
    {"authentication check", CLASSIFY_REASON_POLICY},
    {"authentication fail", CLASSIFY_REASON_POLICY},
    {"permission to post", CLASSIFY_REASON_POLICY},
    /* the recipient's own choice */
    {"recipient preferences", CLASSIFY_REASON_FILTERED},
    {"refuses to accept", CLASSIFY_REASON_FILTERED},
    {"recipient's filter", CLASSIFY_REASON_FILTERED},
    {"user refuses", CLASSIFY_REASON_FILTERED},
    /* user unknown */
    {"user unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown user", CLASSIFY_REASON_USER_UNKNOWN},
    {"user not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such user", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such address", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such account", CLASSIFY_REASON_USER_UNKNOWN},
    {"no mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox doesn't exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox is not", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"not a valid mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient is invalid", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown address", CLASSIFY_REASON_USER_UNKNOWN},
    {"address unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"addressee unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"address not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"address does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"account does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"user does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"user doesn't exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"doesn't exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"doesn't have a", CLASSIFY_REASON_USER_UNKNOWN},
    {"does not have an account", CLASSIFY_REASON_USER_UNKNOWN},
    {"no account", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown local part", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown or illegal alias", CLASSIFY_REASON_USER_UNKNOWN},
    {"unrouteable address", CLASSIFY_REASON_USER_UNKNOWN},
    {"bad destination mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"couldn't be found", CLASSIFY_REASON_USER_UNKNOWN},
    {"could not be found", CLASSIFY_REASON_USER_UNKNOWN},
    {"is not a known user", CLASSIFY_REASON_USER_UNKNOWN},
    {"not our customer", CLASSIFY_REASON_USER_UNKNOWN},
    {"no valid recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid address", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox unavailable", CLASSIFY_REASON_USER_UNKNOWN},
    {"mail-box not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"no mail box", CLASSIFY_REASON_USER_UNKNOWN},
    {"not listed in", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid user", CLASSIFY_REASON_USER_UNKNOWN},
    {"name is not recognized", CLASSIFY_REASON_USER_UNKNOWN},
    {"destinataire inconnu", CLASSIFY_REASON_USER_UNKNOWN},
    {"adresse inconnue", CLASSIFY_REASON_USER_UNKNOWN},
    {"unbekannt", CLASSIFY_REASON_USER_UNKNOWN},
    {"existiert nicht", CLASSIFY_REASON_USER_UNKNOWN},
    {"no existe", CLASSIFY_REASON_USER_UNKNOWN},
    {"desconocido", CLASSIFY_REASON_USER_UNKNOWN},
    /* the recipient's own filter */
    {"recipient has blocked", CLASSIFY_REASON_FILTERED},
    {"blocked by the recipient", CLASSIFY_REASON_FILTERED},
    {"blocked by recipient", CLASSIFY_REASON_FILTERED},
    /* reverse DNS */
    {"reverse dns", CLASSIFY_REASON_BLOCKED},
    {"ptr record", CLASSIFY_REASON_BLOCKED},
    {"~ptr~", CLASSIFY_REASON_BLOCKED},
    {"reverse lookup", CLASSIFY_REASON_BLOCKED},
    {"cannot find your hostname", CLASSIFY_REASON_BLOCKED},
    {"cannot find your reverse", CLASSIFY_REASON_BLOCKED},
    {"~rdns~", CLASSIFY_REASON_BLOCKED},
    /* malformed message */
    {"rfc 5322", CLASSIFY_REASON_POLICY},
    {"rfc5322", CLASSIFY_REASON_POLICY},
    {"rfc 2822", CLASSIFY_REASON_POLICY},
    {"rfc2822", CLASSIFY_REASON_POLICY},
    {"not rfc compliant", CLASSIFY_REASON_POLICY},
    {"not compliant", CLASSIFY_REASON_POLICY},
    /* reputation and lists */
    {"blacklist", CLASSIFY_REASON_BLOCKED},
    {"blocklist", CLASSIFY_REASON_BLOCKED},
    {"black list", CLASSIFY_REASON_BLOCKED},
    {"block list", CLASSIFY_REASON_BLOCKED},
    {"spamhaus", CLASSIFY_REASON_BLOCKED},
    {"spamcop", CLASSIFY_REASON_BLOCKED},
    {"~rbl~", CLASSIFY_REASON_BLOCKED},
    {"dnsbl", CLASSIFY_REASON_BLOCKED},
    {"reputation", CLASSIFY_REASON_BLOCKED},
    {"listed at", CLASSIFY_REASON_BLOCKED},
    {"listed on", CLASSIFY_REASON_BLOCKED},
    /* our sender refused */
    {"sender address rejected", CLASSIFY_REASON_SENDER},
    {"sender rejected", CLASSIFY_REASON_SENDER},
    {"sender domain", CLASSIFY_REASON_SENDER},
    {"domain of sender", CLASSIFY_REASON_SENDER},
    {"sender verify failed", CLASSIFY_REASON_SENDER},
    {"sender verification", CLASSIFY_REASON_SENDER},
    {"invalid sender", CLASSIFY_REASON_SENDER},
    {"sender unknown", CLASSIFY_REASON_SENDER},
    {"unknown sender", CLASSIFY_REASON_SENDER},
    {"bad sender", CLASSIFY_REASON_SENDER},
    {"sender is not", CLASSIFY_REASON_SENDER},
    {"envelope sender", CLASSIFY_REASON_SENDER},
    /* unknown host or domain */
    {"host unknown", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unknown host", CLASSIFY_REASON_HOST_UNKNOWN},
    {"host not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"no such domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain does not exist", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unknown domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unrouteable domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unrouteable mail domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"name or service not known", CLASSIFY_REASON_HOST_UNKNOWN},
    {"host or domain name not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain name not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"nxdomain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"no mx", CLASSIFY_REASON_HOST_UNKNOWN},
    {"invalid domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain is not reachable", CLASSIFY_REASON_HOST_UNKNOWN},
    {"no smtp service", CLASSIFY_REASON_NOT_ACCEPT},
    {"lookup failure", CLASSIFY_REASON_HOST_UNKNOWN},
    {"does not accept mail", CLASSIFY_REASON_NOT_ACCEPT},
    {"accepts no mail", CLASSIFY_REASON_NOT_ACCEPT},
    {"null mx", CLASSIFY_REASON_NOT_ACCEPT},
    /* spam and content */
    {"spam", CLASSIFY_REASON_SPAM},
    {"junk", CLASSIFY_REASON_SPAM},
    {"virus", CLASSIFY_REASON_SPAM},
    {"malware", CLASSIFY_REASON_SPAM},
    {"phish", CLASSIFY_REASON_SPAM},
    {"unsolicited", CLASSIFY_REASON_SPAM},
    {"content rejected", CLASSIFY_REASON_SPAM},
    {"message content", CLASSIFY_REASON_SPAM},
    {"content filter", CLASSIFY_REASON_SPAM},
    /* rate and connection limits */
    {"too many connections", CLASSIFY_REASON_BLOCKED},
    {"too many messages", CLASSIFY_REASON_BLOCKED},
    {"rate limit", CLASSIFY_REASON_BLOCKED},
    {"throttl", CLASSIFY_REASON_BLOCKED},
    {"too many recipients", CLASSIFY_REASON_BLOCKED},
    /* generic blocks */
    {"blocked", CLASSIFY_REASON_BLOCKED},
    {"access denied", CLASSIFY_REASON_BLOCKED},
    {"denied", CLASSIFY_REASON_POLICY},
    {"policy", CLASSIFY_REASON_POLICY},
    {"not allowed", CLASSIFY_REASON_POLICY},
    {"prohibited", CLASSIFY_REASON_POLICY},
    /* transient */
    {"retry timeout", CLASSIFY_REASON_EXPIRED},
    {"retry time", CLASSIFY_REASON_EXPIRED},
    {"message expired", CLASSIFY_REASON_EXPIRED},
    {"delivery time expired", CLASSIFY_REASON_EXPIRED},
    {"has been delayed", CLASSIFY_REASON_EXPIRED},
    {"not yet been delivered", CLASSIFY_REASON_EXPIRED},
    {"giving up", CLASSIFY_REASON_EXPIRED},
    {"gave up", CLASSIFY_REASON_EXPIRED},
    {"timed out", CLASSIFY_REASON_NETWORK},
    {"timeout", CLASSIFY_REASON_NETWORK},
    {"connection refused", CLASSIFY_REASON_NETWORK},
    {"no route to host", CLASSIFY_REASON_NETWORK},
    {"network is unreachable", CLASSIFY_REASON_NETWORK},
    {"host is unreachable", CLASSIFY_REASON_NETWORK},
    {"could not connect", CLASSIFY_REASON_NETWORK},
    {"unable to connect", CLASSIFY_REASON_NETWORK},
    {"lost connection", CLASSIFY_REASON_NETWORK},
    {"mail loop", CLASSIFY_REASON_NETWORK},
    {"loops back", CLASSIFY_REASON_NETWORK},
    {"too many hops", CLASSIFY_REASON_NETWORK},
    {"system error", CLASSIFY_REASON_SYSTEM},
    {"internal error", CLASSIFY_REASON_SYSTEM},
    {"local error", CLASSIFY_REASON_SYSTEM},
    {"temporary failure", CLASSIFY_REASON_SYSTEM},
    {"server error", CLASSIFY_REASON_SYSTEM},
};

static enum classify_reason reason_from_text(const char *ntext)
{
    if (!ntext || !*ntext)
        return CLASSIFY_REASON_NONE;
    for (size_t i = 0; i < sizeof reason_rules / sizeof reason_rules[0]; i++)
        if (wfind(ntext, reason_rules[i].pat))
            return reason_rules[i].reason;
    /* The MTA wordings SMTP-time classification reads (mta_words), so a
     * reply refused at RCPT and the same reply in a DSN mean the same.
     * Ambiguous wording leaves the decision to the status code. */
    switch (mta_words_reason(ntext)) {
    case MTA_WORDS_USER_UNKNOWN:
        return CLASSIFY_REASON_USER_UNKNOWN;
    case MTA_WORDS_HOST_UNKNOWN:
        return CLASSIFY_REASON_HOST_UNKNOWN;
    case MTA_WORDS_MAILBOX_FULL:
        return CLASSIFY_REASON_MAILBOX_FULL;
    case MTA_WORDS_POLICY:
        return CLASSIFY_REASON_POLICY;
    case MTA_WORDS_AMBIGUOUS:
    case MTA_WORDS_NONE:
    case MTA_WORDS_REASON_COUNT:
        break;
    }
    return CLASSIFY_REASON_NONE;
}

static enum classify_reason reason_from_status(const char *st)
{
    if (!st || !*st)
        return CLASSIFY_REASON_NONE;
    int c = 0, s = 0, d = 0;
    if (sscanf(st, "%d.%d.%d", &c, &s, &d) != 3)
        return CLASSIFY_REASON_NONE;
    if (c == 5 && s == 1 && (d == 1 || d == 0 + 1))
        return CLASSIFY_REASON_USER_UNKNOWN;
    if (c == 5 && s == 1 && d == 2)
        return CLASSIFY_REASON_HOST_UNKNOWN;
    if (c == 5 && s == 1 && d == 6)
        return CLASSIFY_REASON_HAS_MOVED;
    if (c == 5 && s == 1 && d == 10)
        return CLASSIFY_REASON_NOT_ACCEPT;
    if (s == 1 && (d == 7 || d == 8))
        return CLASSIFY_REASON_SENDER;
    if (s == 2 && d == 1)
        return CLASSIFY_REASON_SUSPENDED;
    if (s == 2 && d == 2)
        return CLASSIFY_REASON_MAILBOX_FULL;
    if ((s == 2 && d == 3) || (s == 3 && d == 4))
        return CLASSIFY_REASON_TOO_BIG;
    if (s == 4 && d == 7)
        return CLASSIFY_REASON_EXPIRED;
    if (c == 5 && s == 4 && d == 4)
        return CLASSIFY_REASON_HOST_UNKNOWN;
    if (s == 4)
        return CLASSIFY_REASON_NETWORK;
    if (s == 3)
        return CLASSIFY_REASON_SYSTEM;
    if (s == 7)
        return CLASSIFY_REASON_POLICY;
    return CLASSIFY_REASON_NONE;
}

/* Rejected after DATA: the address was accepted at RCPT, so whatever
 * the text says, it exists. */
static const char *const data_stage[] = {"end of data", "after data", "command data",
                                         "data command", NULL};

/* Reason of one failed recipient: its own diagnostic, then the lines
 * about it in the notification, then its status code. */
/* Where a relay's summary quotes the remote server's own reply
 * ("5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'"): the
 * start of that reply, or NULL when the text starts with it. */
static const char *quoted_reply(const char *s)
{
    const char *lead = s;
    while (*lead == ' ')
        lead++;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || !after_reply_code(s, p) || !status_at(s, p))
            continue;
        const char *code = p;
        while (code > s && !(isdigit((unsigned char)code[-1]) && code - s >= 3 &&
                             isdigit((unsigned char)code[-2]) && isdigit((unsigned char)code[-3])))
            code--;
        code -= code - s >= 3 ? 3 : 0;
        /* only a short summary before it: a long text explains itself */
        return code > lead && code - s < 80 ? code : NULL;
    }
    return NULL;
}

/* A transcript that shows the reply to DATA, not to RCPT (Sendmail's
 * pipelined transcripts print ">>> DATA" too, then the RCPT replies, then
 * a 503 to DATA itself: no recipient was accepted). */
static int data_stage_reply(const char *t)
{
    return t && wfind(t, ">>> data <<< 5") && !wfind(t, "need rcpt") &&
           !wfind(t, "no valid recipient") && !wfind(t, "<<< 503");
}

/* The refusal came at MAIL FROM: it is about our sender address or
 * domain, whatever words it uses about "no such domain" (sisimai calls
 * this "rejected"; it never makes the recipient's address hard). */
static const char *const sender_stage[] = {"after mail from", "in reply to mail from",
                                           "sender address rejected", NULL};

static int sender_stage_reply(const char *ndiag, const char *nctx, const char *nwhole)
{
    return (ndiag && any_match(ndiag, sender_stage)) || (nctx && any_match(nctx, sender_stage)) ||
           (nwhole && wfind(nwhole, "after mail from"));
}

static const char *const weak_unknown[] = {"user unknown", "unknown user", "no such user",
                                           "invalid address", "recipient not found",
                                           "mailbox unavailable", NULL};
static const char *const strong_unknown_evidence[] = {
    "rcpt", "~5.1.1~", "~5.1.0~", "not listed", "not recognized", "does not exist",
    "doesn't exist", "not exist", "couldn't be found", "could not be found", "address not found",
    "no mailbox", "mailbox not found", "no such mailbox", "mail.local", "local recipient",
    "not an active", "inactive", "no longer", "mail-box not found", "no mail box", NULL};

/* A 5xx reply that echoes a path: "550 <a@b>: ...", "550: <a@b> ...",
 * "550-<a@b>...". A server echoes the recipient's path when it refuses
 * RCPT TO (RFC 5321 4.2: the reply is about that address); a refusal
 * after DATA is about the message and names none. So this is the sign
 * that RCPT was refused which bare "user unknown" wording lacks. */
static int reply_echoes_path(const char *t)
{
    for (const char *p = t ? strchr(t, '<') : NULL; p; p = strchr(p + 1, '<')) {
        const char *close = strchr(p, '>');
        const char *at = strchr(p, '@');
        if (!close || !at || at > close || close - p > 256)
            continue;
        /* up to four separators back to the code: "550 <", "550: <", "550 - <" */
        const char *q = p;
        for (int k = 0; k < 4 && q > t && (q[-1] == ' ' || q[-1] == ':' || q[-1] == '-'); k++)
            q--;
        if (q - t >= 3 && q[-3] == '5' && isdigit((unsigned char)q[-2]) && isdigit((unsigned char)q[-1]) &&
            (q - t == 3 || !isdigit((unsigned char)q[-4])))
            return 1;
    }
    return 0;
}

/* True when the user-unknown wording is backed by more than a bare
 * phrase, or is not one of the bare phrases at all. */
static int weak_user_unknown_ok(const char *a, const char *b, const char *c)
{
    const char *texts[3] = {a, b, c};
    int weak = 0;
    for (int i = 0; i < 3; i++) {
        if (!texts[i])
            continue;
        if (any_match(texts[i], strong_unknown_evidence) || reply_echoes_path(texts[i]))
            return 1;
        if (any_match(texts[i], weak_unknown))
            weak = 1;
    }
    return !weak;
}

static enum classify_reason decide_reason(const char *ndiag, const char *nctx, const char *status,
                                          const char *nwhole)
{
    enum classify_reason r = CLASSIFY_REASON_NONE;
    const char *q = ndiag ? quoted_reply(ndiag) : NULL;
    if (q)
        r = reason_from_text(q);
    if (r == CLASSIFY_REASON_NONE)
        r = reason_from_text(ndiag);
    if (r == CLASSIFY_REASON_NONE)
        r = reason_from_text(nctx);
    if (r == CLASSIFY_REASON_NONE)
        r = reason_from_status(status);
    if (r == CLASSIFY_REASON_NONE)
        r = CLASSIFY_REASON_UNKNOWN;
    /* RFC 3463 X.3.2 "system not accepting network messages" in the
     * permanent class (RFC 7504's 521): the host takes no mail at all */
    if (status && status[0] == '5' && strncmp(status + 1, ".3.2", 4) == 0 &&
        ((ndiag && wfind(ndiag, "not accepting network messages")) ||
         (nctx && wfind(nctx, "not accepting network messages"))))
        r = CLASSIFY_REASON_NOT_ACCEPT;
    if (sender_stage_reply(ndiag, nctx, nwhole) ||
        (status && status[0] && (strncmp(status + 1, ".1.7", 4) == 0 ||
                                 strncmp(status + 1, ".1.8", 4) == 0)))
        return CLASSIFY_REASON_SENDER;
    /* Bare "user unknown" wording without a 5.1.x code and without a
     * sign that RCPT was refused is how content and sender filters
     * answer too (after DATA, or behind a gateway). */
    if (r == CLASSIFY_REASON_USER_UNKNOWN && !(status && status[0] && strncmp(status + 1, ".1.", 3) == 0) &&
        !weak_user_unknown_ok(ndiag, nctx, nwhole))
        r = CLASSIFY_REASON_FILTERED;
    if (classify_reason_is_hard(r)) {
        if ((ndiag && any_match(ndiag, data_stage)) || (nctx && any_match(nctx, data_stage)) ||
            (nwhole && any_match(nwhole, data_stage)) || data_stage_reply(ndiag) ||
            data_stage_reply(nctx) || data_stage_reply(nwhole))
            r = CLASSIFY_REASON_FILTERED;
        /* a generic 4.0.0 says nothing about time; "no MX found" for
         * the domain does (sisimai: notaccept) */
        else if (status && status[0] == '4' &&
                 !(r == CLASSIFY_REASON_HOST_UNKNOWN && status_is_generic(status) &&
                   ((ndiag && wfind(ndiag, "no mx found")) || (nctx && wfind(nctx, "no mx found")))))
            r = r == CLASSIFY_REASON_USER_UNKNOWN ? CLASSIFY_REASON_SYSTEM
                                                  : CLASSIFY_REASON_NETWORK;
    }
    return r;
}

/* The lines about addr in the notification text: the line that names
 * it and those after it up to a blank line (at most 8 lines), plus the
 * line before. Normalised; NULL when addr is absent or out of memory. */
static char *recipient_context(const char *text, const char *addr)
{
    if (!addr[0])
        return NULL;
    const char *p = strcasestr(text, addr);
    if (!p)
        return NULL;
    const char *s = p;
    while (s > text && s[-1] != '\n')
        s--;
    if (s > text) { /* the line before, unless blank */
        const char *q = s - 1;
        while (q > text && q[-1] != '\n')
            q--;
        size_t k = 0;
        while (q + k < s && isspace((unsigned char)q[k]))
            k++;
        if (q + k < s)
            s = q;
    }
    const char *e = p;
    for (int lines = 0; *e && lines < 8; lines++) {
        const char *nl = strchr(e, '\n');
        if (!nl) {
            e += strlen(e);
            break;
        }
        e = nl + 1;
        size_t k = 0;
        while (e[k] == ' ' || e[k] == '\t' || e[k] == '\r')
            k++;
        if (e[k] == '\n' || e[k] == '\0')
            break;
    }
    if (e - s > 1200)
        e = s + 1200;
    return norm(s, (size_t)(e - s));
}

static int skip_address(const struct msg *m, const char *a)
{
    static const char *const locals[] = {"mailer-daemon@", "mailer_daemon@",
                                         "double-bounce@", "mail-daemon@", NULL};
    for (size_t i = 0; locals[i]; i++)
        if (strncasecmp(a, locals[i], strlen(locals[i])) == 0)
            return 1;
    if (m->from_addr[0] && strcasecmp(a, m->from_addr) == 0)
        return 1;
    if (m->to_addr[0] && strcasecmp(a, m->to_addr) == 0)
        return 1;
    return 0;
}

static int add_recipient(struct classify_result *out, const char *addr, const char *status,
                         enum classify_reason reason)
{
    for (size_t i = 0; i < out->recipient_count; i++)
        if (strcasecmp(out->recipients[i].address, addr) == 0)
            return 0;
    if (out->recipient_count >= CLASSIFY_MAX_RECIPIENTS)
        return 0;
    struct classify_recipient *r = &out->recipients[out->recipient_count++];
    snprintf(r->address, sizeof r->address, "%s", addr);
    snprintf(r->status, sizeof r->status, "%s", status ? status : "");
    r->reason = reason;
    return 1;
}

/* NTT docomo answers "550 Unknown user" when the recipient's own
 * domain filter refuses the sender: the address exists. */
static enum classify_reason provider_adjust(const char *addr, enum classify_reason r)
{
    const char *at = strrchr(addr, '@');
    if (r == CLASSIFY_REASON_USER_UNKNOWN && at &&
        (strcasestr(at, ".docomo.") || strcasestr(at, "@docomo.")))
        return CLASSIFY_REASON_FILTERED;
    return r;
}

/* Settles kind, reason and block flag from the recipients. */
static void finish_bounce(struct classify_result *out, enum classify_reason fallback)
{
    /* One report can fail several recipients for different reasons; the
     * kind follows the worst (a gone address), each recipient keeps its
     * own reason for the suppression list. */
    int hard = 0;
    for (size_t i = 0; i < out->recipient_count; i++) {
        out->recipients[i].reason =
            provider_adjust(out->recipients[i].address, out->recipients[i].reason);
        if (classify_reason_is_hard(out->recipients[i].reason))
            hard = 1;
        if (classify_reason_is_block(out->recipients[i].reason))
            out->is_block = 1;
    }
    out->reason = out->recipient_count ? out->recipients[0].reason : fallback;
    if (out->recipient_count == 0) {
        hard = classify_reason_is_hard(fallback);
        out->is_block = classify_reason_is_block(fallback);
    }
    out->kind = hard ? CLASSIFY_HARD_BOUNCE : CLASSIFY_SOFT_BOUNCE;
}

static void returned_message_id(const struct msg *m, struct classify_result *out)
{
    if (m->returned &&
        extract_msgid(mime_headers_get(&m->returned->headers, "Message-ID"), 0, out->message_id,
                      sizeof out->message_id) == 0)
        return;
    /* inline returned headers in a plain-text bounce */
    const char *t = sb_str(&m->text);
    for (const char *p = strcasestr(t, "message-id:"); p; p = strcasestr(p + 1, "message-id:")) {
        if (p == t || p[-1] == '\n' || p[-1] == ' ') {
            char line[600];
            size_t n = strcspn(p, "\n");
            copy_str(line, sizeof line, p, n);
            if (extract_msgid(line + 11, 0, out->message_id, sizeof out->message_id) == 0)
                return;
        }
    }
}

static void strip_diag_type(const char *v, char *out, size_t outlen)
{
    const char *semi = v ? strchr(v, ';') : NULL;
    const char *s = v ? v : "";
    if (semi && semi - s < 12)
        s = semi + 1;
    while (*s == ' ')
        s++;
    snprintf(out, outlen, "%s", s);
}

/* RFC 3464 report. Returns 1 when it decided the message. */
static int classify_dsn(const struct msg *m, const struct mime_part *ds,
                        struct classify_result *out)
{
    struct mime_dsn dsn;
    if (mime_dsn_parse(ds->body ? ds->body : "", ds->body_len, &dsn) < 0)
        return -ENOMEM;
    int failed = 0, delivered = 0, rc = 0;
    for (size_t i = 0; i < dsn.count; i++) {
        const struct mime_headers *b = &dsn.blocks[i];
        const char *fr = mime_headers_get(b, "Final-Recipient");
        const char *or = mime_headers_get(b, "Original-Recipient");
        const char *action = mime_headers_get(b, "Action");
        const char *status = mime_headers_get(b, "Status");
        if (!fr && !or && !action)
            continue;
        char st[16] = "";
        if (status) {
            size_t k = 0;
            while (status[k] == ' ')
                k++;
            size_t n = status_at(status + k, status + k);
            if (n)
                copy_str(st, sizeof st, status + k, n);
        }
        int is_fail = 0;
        if (action) {
            if (strncasecmp(action, "failed", 6) == 0 || strncasecmp(action, "delayed", 7) == 0)
                is_fail = 1;
            else if (strncasecmp(action, "deliver", 7) == 0 ||
                     strncasecmp(action, "relayed", 7) == 0 ||
                     strncasecmp(action, "expanded", 8) == 0)
                delivered++;
            else if (st[0] == '4' || st[0] == '5')
                is_fail = 1;
        } else if (st[0] == '4' || st[0] == '5') {
            is_fail = 1;
        }
        if (!is_fail)
            continue;
        failed++;
        char addr[256] = "";
        if (first_address(fr, addr, sizeof addr) < 0 && first_address(or, addr, sizeof addr) < 0)
            addr[0] = '\0';
        char diag[1024];
        const char *dc = mime_headers_get(b, "Diagnostic-Code");
        strip_diag_type(dc, diag, sizeof diag);
        char *nd = norm(diag, strlen(diag));
        char *ctx = recipient_context(sb_str(&m->text), addr);
        if (!nd) {
            free(ctx);
            rc = -ENOMEM;
            goto done;
        }
        /* a bare 5.0.0 says less than the code the text quotes */
        char better[16] = "";
        if (status_is_generic(st) &&
            (find_status(diag, strlen(diag), better, sizeof better) == 0 ||
             (ctx && find_status(ctx, strlen(ctx), better, sizeof better) == 0)))
            snprintf(st, sizeof st, "%s", better);
        enum classify_reason r = decide_reason(nd, ctx, st, m->ntext);
        /* Action: failed is final (RFC 3464 2.3.3: the MTA abandoned
         * delivery). A transient-class code that says the mailbox or its
         * system does not exist (X.1.1 bad destination mailbox, X.1.2 bad
         * destination system: a server in soft-bounce mode, Postfix's
         * 450 4.1.1) then describes the address, not a moment: as hard as
         * its 5.x.x twin. */
        if (action && strncasecmp(action, "failed", 6) == 0 && st[0] == '4' &&
            (strncmp(st + 1, ".1.1", 4) == 0 || strncmp(st + 1, ".1.2", 4) == 0) &&
            (r == CLASSIFY_REASON_SYSTEM || r == CLASSIFY_REASON_NETWORK))
            r = st[4] == '1' ? CLASSIFY_REASON_USER_UNKNOWN : CLASSIFY_REASON_HOST_UNKNOWN;
        /* a local delivery program failed (procmail, maildrop): the
         * mailbox is there, the program around it is not */
        if (dc && strncasecmp(dc, "x-unix", 6) == 0 && classify_reason_is_hard(r))
            r = CLASSIFY_REASON_SYSTEM;
        free(nd);
        free(ctx);
        if (addr[0])
            add_recipient(out, addr, st, r);
        else if (out->recipient_count == 0 && i + 1 == dsn.count)
            finish_bounce(out, r);
        if (!addr[0] && out->reason == CLASSIFY_REASON_NONE)
            out->reason = r;
    }
    if (failed == 0) {
        if (delivered > 0) {
            out->kind = CLASSIFY_OTHER;
            rc = 1;
        }
        goto done;
    }
    finish_bounce(out, out->reason != CLASSIFY_REASON_NONE
                           ? out->reason
                           : decide_reason(m->ntext, NULL, "", m->ntext));
    returned_message_id(m, out);
    rc = 1;
done:
    mime_dsn_free(&dsn);
    return rc;
}

static const char *const bounce_subjects[] = {
    "undeliver", "undelivered", "delivery status notification", "delivery failure",
    "delivery failed", "failure notice", "returned mail", "mail delivery failed",
    "non-deliverable", "nondeliverable", "non deliverable", "could not be delivered",
    "returned to sender", "mail system error", "delivery problem", "delivery notification",
    "failed delivery", "delivery has failed", "not delivered", "message not delivered",
    "delivery error", "mail delivery error", "undeliverable", "rejected", "warning: could not",
    "delayed mail", "delivery delayed", "delivery is delayed", "mail could not be delivered",
    "unzustellbar", "nicht zustellbar", "non remis", "non distribuable",
    "échec de la remise", "echec de la remise", "no se puede entregar", "no entregado",
    "error de entrega", "mensaje devuelto", "bounce", "nondelivery", "non-delivery",
    "unable to deliver", "delivery report", "mail failure", "failed mail",
    "returned message", "mail returned", "could not send", "email undeliverable",
    "mail failed", "returning to sender", "error sending your mail", NULL};

static const char *const bounce_bodies[] = {
    "could not be delivered", "couldn't be delivered", "wasn't delivered",
    "was not delivered", "delivery has failed", "delivery failed", "permanent error",
    "permanent fatal error", "undeliverable", "following address failed",
    "following addresses failed", "following recipient", "this is the mail system at host",
    "wasn't able to deliver", "was not able to deliver", "unable to deliver",
    "could not deliver", "couldn't deliver", "not be delivered", "delivery to the following",
    "qmail-send program", "returned mail", "mail delivery failed", "delivery failure",
    "failed to deliver", "did not reach", "could not reach", "message could not be sent",
    "has not yet been delivered", "delivery attempts will continue", "transcript of session",
    "rejected your message", "message was rejected", "message has been rejected",
    "non remis", "unzustellbar", "no se ha podido entregar", "no pudo ser entregado",
    "error de entrega", "trouble delivering", "failed addresses follow",
    "requested action not taken", "invalid user address", NULL};

static int daemon_sender(const struct msg *m)
{
    static const char *const names[] = {"mailer-daemon", "mailer_daemon", "mail-daemon",
                                        "mailer daemon", "post_master",
                                        "maildaemon", "postmaster", "mail delivery",
                                        "mail administrator", "delivery subsystem",
                                        "mail delivery subsystem", "mailerdaemon",
                                        "mdaemon", "bounce", "mail system", "mailadmin",
                                        "ezweb", NULL};
    if (any_match(m->from, names))
        return 1;
    /* "From: <>" */
    return m->from_addr[0] == '\0' && strstr(m->from, "<>") != NULL;
}

/* Bounces without a machine-readable report: Exim, qmail, old Sendmail,
 * Exchange, Lotus, providers. Returns 1 when it decided the message. */
static int classify_text_bounce(const struct msg *m, struct classify_result *out)
{
    const char *xfr = mime_headers_get(m->h, "X-Failed-Recipients");
    const char *rp = mime_headers_get(m->h, "Return-Path");
    int null_sender = rp && (strstr(rp, "<>") != NULL || rp[0] == '\0');
    int subj = any_match(m->subject, bounce_subjects);
    const char *t = sb_str(&m->text);

    /* The notification ends where the returned message starts. */
    static const char *const cut_marks[] = {
        "------ this is a copy of the message", "--- below this line is a copy of the message",
        "original message follows", "unsent message follows", "message header follows",
        "original message headers", "- returned message", "the header of the original message",
        "------ original message", "----- original message", "headers of the original",
        "--- the header of the original", NULL};
    size_t cut = m->text.len;
    for (size_t i = 0; cut_marks[i]; i++) {
        const char *p = strcasestr(t, cut_marks[i]);
        if (p && (size_t)(p - t) < cut)
            cut = (size_t)(p - t);
    }
    for (const char *p = t; p && *p && (size_t)(p - t) < cut; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncasecmp(p, "received: from", 14) == 0 || strncasecmp(p, "return-path:", 12) == 0) {
            if ((size_t)(p - t) < cut)
                cut = (size_t)(p - t);
            break;
        }
    }
    char *head = norm(t, cut);
    if (!head)
        return -ENOMEM;
    int body = any_match(head, bounce_bodies);
    int daemon = daemon_sender(m);
    /* a list manager refusing our post (not a member, loop) */
    static const char *const list_admin[] = {"-admin@", "-owner@", "owner-", "-request@", NULL};
    int list_refusal = (mime_headers_get(m->h, "X-MLServer") || mime_headers_get(m->h, "X-ML-Server")) &&
                       any_match(m->from, list_admin);
    int is_bounce = xfr != NULL || (daemon && (subj || body)) || (null_sender && body) ||
                    list_refusal;
    if (!is_bounce) {
        free(head);
        return 0;
    }

    char status[16] = "";
    find_status(t, cut, status, sizeof status);
    if (xfr) {
        size_t pos = 0;
        char a[256];
        while (next_address(xfr, &pos, a, sizeof a))
            add_recipient(out, a, status, CLASSIFY_REASON_NONE);
    }
    /* Addresses in the notification, each with the text after it as its
     * own diagnostic. */
    size_t pos = 0;
    char a[256];
    const char *starts[CLASSIFY_MAX_RECIPIENTS + 1];
    size_t idx[CLASSIFY_MAX_RECIPIENTS];
    size_t n = 0;
    char *tcopy = strndup(t, cut);
    if (!tcopy) {
        free(head);
        return -ENOMEM;
    }
    const char *s;
    while (n < CLASSIFY_MAX_RECIPIENTS && (s = next_address(tcopy, &pos, a, sizeof a)) != NULL) {
        /* skip message ids and mailto links */
        if (s > tcopy && (s[-1] == '<') && strchr(a, '$'))
            continue;
        const char *ls = s;
        while (ls > tcopy && ls[-1] != '\n')
            ls--;
        while (*ls == ' ' || *ls == '\t')
            ls++;
        static const char *const not_rcpt[] = {"message-id", "from:", "to:", "cc:",
                                               "references", "in-reply-to", "mail from",
                                               "reply-to", "sender:", "return-path", NULL};
        int skip = 0;
        for (size_t k = 0; not_rcpt[k] && !skip; k++)
            skip = strncasecmp(ls, not_rcpt[k], strlen(not_rcpt[k])) == 0;
        if (skip || skip_address(m, a))
            continue;
        size_t before = out->recipient_count;
        if (add_recipient(out, a, "", CLASSIFY_REASON_NONE) && out->recipient_count > before) {
            idx[n] = out->recipient_count - 1;
            starts[n++] = s;
        }
    }
    starts[n] = tcopy + strlen(tcopy);
    for (size_t i = 0; i < n; i++) {
        /* one recipient: the whole notification is about it; several:
         * the text from each address to the next */
        size_t off = n == 1 ? 0 : (size_t)(starts[i] - tcopy);
        size_t end = n == 1 ? strlen(tcopy) : (size_t)(starts[i + 1] - tcopy);
        if (end - off > 2000)
            end = off + 2000;
        char st[16] = "";
        if (find_status(tcopy + off, end - off, st, sizeof st) < 0)
            snprintf(st, sizeof st, "%s", status);
        char *nd = norm(tcopy + off, end - off);
        if (!nd) {
            free(tcopy);
            free(head);
            return -ENOMEM;
        }
        struct classify_recipient *r = &out->recipients[idx[i]];
        snprintf(r->status, sizeof r->status, "%s", st);
        r->reason = decide_reason(nd, NULL, st, head);
        free(nd);
    }
    for (size_t i = 0; i < out->recipient_count; i++)
        if (out->recipients[i].reason == CLASSIFY_REASON_NONE)
            out->recipients[i].reason = decide_reason(head, NULL, status, head);
    if (out->recipient_count == 0 && m->returned) {
        char to[256];
        if (first_address(mime_headers_get(&m->returned->headers, "To"), to, sizeof to) == 0)
            add_recipient(out, to, status, decide_reason(head, NULL, status, head));
    }
    finish_bounce(out, decide_reason(head, NULL, status, head));
    free(tcopy);
    free(head);
    returned_message_id(m, out);
    return 1;
}

/* Amazon SES notifications delivered as mail: the JSON body t. */
static int ses_json_read(const char *t, struct classify_result *out)
{
    const char *nt = strstr(t, "\"notificationType\"");
    if (!nt)
        return 0;
    if (!strstr(nt, "\"Bounce\"")) {
        out->kind = CLASSIFY_OTHER;
        return 1;
    }
    const char *bt = strstr(t, "\"bounceType\"");
    int permanent = bt && strncmp(bt, "\"bounceType\":\"Permanent\"", 24) == 0;
    const char *recips = strstr(t, "\"bouncedRecipients\"");
    const char *p = recips;
    while (p && out->recipient_count < CLASSIFY_MAX_RECIPIENTS) {
        const char *ea = strstr(p, "\"emailAddress\"");
        if (!ea)
            break;
        char a[256];
        size_t pos = 0;
        const char *end = strchr(ea + 16, '"');
        if (!end)
            break;
        char tmp[300];
        copy_str(tmp, sizeof tmp, ea + 15, (size_t)(end - ea - 15));
        if (next_address(tmp, &pos, a, sizeof a)) {
            char st[16] = "";
            const char *sp = strstr(ea, "\"status\"");
            if (sp && sp - ea < 400)
                find_status(sp, 30, st, sizeof st);
            char diag[512] = "";
            const char *dp = strstr(ea, "\"diagnosticCode\"");
            if (dp && dp - ea < 600) {
                const char *q = strchr(dp + 16, '"');
                const char *qe = q ? strchr(q + 1, '"') : NULL;
                if (q && qe)
                    copy_str(diag, sizeof diag, q + 1, (size_t)(qe - q - 1));
            }
            char *nd = norm(diag, strlen(diag));
            if (!nd)
                return -ENOMEM;
            enum classify_reason r = decide_reason(nd, NULL, st, NULL);
            free(nd);
            if (r == CLASSIFY_REASON_UNKNOWN && permanent)
                r = CLASSIFY_REASON_USER_UNKNOWN;
            add_recipient(out, a, st, r);
        }
        p = end;
    }
    finish_bounce(out, permanent ? CLASSIFY_REASON_USER_UNKNOWN : CLASSIFY_REASON_UNKNOWN);
    return 1;
}

/* The SES notification as it comes: its own JSON body, or (through an
 * SNS topic subscribed by e-mail) a JSON string inside the SNS envelope's
 * "Message" field, quotes escaped as \" one level down. */
static int classify_ses_json(const struct msg *m, struct classify_result *out)
{
    const char *t = sb_str(&m->text);
    if (strstr(t, "\"notificationType\"") || !strstr(t, "\\\"notificationType\\\""))
        return ses_json_read(t, out);
    size_t n = strlen(t);
    char *u = malloc(n + 1);
    if (!u)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\\' && i + 1 < n && (t[i + 1] == '"' || t[i + 1] == '\\'))
            i++; /* one level of JSON string escaping */
        u[k++] = t[i];
    }
    u[k] = '\0';
    int rc = ses_json_read(u, out);
    free(u);
    return rc;
}

/* ---- replies ---- */

/* The part a person wrote: lines before the quoted original. */
static char *new_text(const char *t)
{
    struct sbuf b = {0};
    const char *line = t;
    size_t lines = 0;
    while (*line && lines < 400) {
        size_t n = strcspn(line, "\n");
        char l[256];
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t'))
            k++;
        copy_str(l, sizeof l, line + k, n - k);
        for (char *c = l; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        size_t ll = strlen(l);
        while (ll > 0 && (l[ll - 1] == '\r' || l[ll - 1] == ' '))
            l[--ll] = '\0';
        const char *next = line[n] ? line + n + 1 : line + n;
        if (strncmp(l, "-----", 5) == 0 && (strstr(l, "original") || strstr(l, "ursprüngliche") ||
                                            strstr(l, "origine") || strstr(l, "forward") ||
                                            strstr(l, "mensaje")))
            break;
        if (strncmp(l, "________________", 16) == 0 || strncmp(l, "begin forwarded", 15) == 0)
            break;
        /* the attribution line of a quoted original, in each language */
        if (ll > 6 && (strcmp(l + ll - 6, "wrote:") == 0 || strstr(l, "a écrit") ||
                       strstr(l, "schrieb") || strstr(l, "escribió:") ||
                       strstr(l, "ha scritto") || strstr(l, "escreveu:") ||
                       (strncmp(l, "op ", 3) == 0 && strstr(l, " schreef "))))
            break;
        if (strncmp(l, "on ", 3) == 0) {
            /* "On <date>, <name>" wrapped before "wrote:" */
            size_t n2 = strcspn(next, "\n");
            char l2[256];
            copy_str(l2, sizeof l2, next, n2);
            size_t l2l = strlen(l2);
            while (l2l > 0 && (l2[l2l - 1] == '\r' || l2[l2l - 1] == ' '))
                l2[--l2l] = '\0';
            if (l2l >= 6 && strcmp(l2 + l2l - 6, "wrote:") == 0)
                break;
        }
        /* an Outlook-style header block of the original: From / Sent in
         * the reader's language */
        if ((strncmp(l, "from:", 5) == 0 || strncmp(l, "de :", 4) == 0 ||
             strncmp(l, "de:", 3) == 0 || strncmp(l, "von:", 4) == 0 ||
             strncmp(l, "da:", 3) == 0 || strncmp(l, "van:", 4) == 0) &&
            (strcasestr(next, "sent:") || strcasestr(next, "date:") ||
             strcasestr(next, "envoyé") || strcasestr(next, "gesendet:") ||
             strcasestr(next, "enviado:") || strcasestr(next, "datum:") ||
             strcasestr(next, "inviato:") || strcasestr(next, "verzonden:") ||
             strcasestr(next, "data:") || strcasestr(next, "fecha:")) &&
            (size_t)(strcasestr(next, "\n") ? strcasestr(next, "\n") - next : 0) < 300)
            break;
        if (l[0] != '>') {
            sb_add(&b, line, n);
            sb_adds(&b, "\n");
        }
        line = next;
        lines++;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (!b.p)
        return strdup("");
    return b.p;
}

/* Subjects that vacation programs and mail clients put on their
 * out-of-office answers ("Away:", "Auto:", "Automatic reply:",
 * "Abwesenheitsnotiz:", "Réponse automatique :" ...), in the seven
 * languages the lexicons cover. A subject is evidence, not proof: a
 * person may answer "Re: absence policy". */
static const char *const auto_subjects[] = {
    /* en */
    "automatic reply", "automated reply", "auto reply", "autoreply", "auto-reply",
    "autoresponse", "auto-response", "auto response", "autorespons", "~auto:", "~away:",
    "out of office", "out of the office", "out-of-office", "~ooo~", "away until", "away from",
    "on vacation", "vacation reply", "on holiday", "on leave", "annual leave",
    /* de */
    "abwesenheit", "automatische antwort", "autoantwort", "abwesend", "urlaub",
    "nicht im büro",
    /* fr */
    "réponse automatique", "reponse automatique", "~absence", "~absent", "en congé",
    "hors du bureau", "auto-réponse",
    /* es */
    "respuesta automática", "respuesta automatica", "fuera de la oficina", "fuera de oficina",
    "~ausente", "~ausencia", "vacaciones",
    /* it */
    "risposta automatica", "fuori ufficio", "fuori sede", "~assente", "~in ferie",
    /* pt */
    "resposta automática", "resposta automatica", "fora do escritório", "~férias",
    "~ausência",
    /* nl */
    "automatisch antwoord", "~afwezig", "niet aanwezig", "~vakantie", "~autosvar", NULL};

/* Out-of-office wording: each match is one point of evidence. */
static const char *const ooo_phrases[] = {
    /* en */
    "out of the office", "out of office", "away from the office", "away from my desk",
    "currently away", "currently out", "i am away", "i'm away", "~will be away",
    "~away until", "on vacation", "on holiday", "on annual leave", "on leave", "on maternity",
    "on paternity", "on parental leave", "on sick leave", "limited access to",
    "upon my return", "on my return", "when i return", "after my return", "when i get back",
    "when i'm back", "i will be back", "i'll be back", "will return on", "returning on",
    "returning to the office", "back in the office", "back in office", "no longer with",
    "no longer in use", "no longer monitored", "not monitored", "no longer work",
    "thank you for your e-mail", "thank you for your email", "thank you for your message",
    "thanks for your email", "thanks for your message", "will endeavour to",
    "will reply as soon as", "will respond as soon as", "get back to you as soon",
    "respond to your email", "automatic reply", "automated response", "automatic response",
    "auto-reply", "this is an automat", "will read your mail", "will read your e-mail",
    "will read your message", "urgent matters", "for anything urgent",
    /* fr */
    "je suis absent", "je serai absent", "absent du bureau", "absente du bureau", "en congé",
    "en vacances", "de retour le", "de retour au bureau", "je serai de retour",
    "accès limité", "réponse automatique", "ne serai pas disponible", "hors du bureau",
    "à mon retour", "dès mon retour", "je prendrai connaissance", "en déplacement jusqu",
    "en cas d'urgence",
    /* de */
    "nicht im büro", "außer haus", "ausser haus", "abwesend", "im urlaub", "wieder im büro",
    "wieder erreichbar", "keinen zugriff", "automatische antwort", "eingeschränkt",
    "nach meiner rückkehr", "nicht weitergeleitet", "in dringenden fällen",
    "vielen dank für ihre nachricht", "bin ich wieder",
    /* es */
    "estoy fuera", "estaré fuera", "me encuentro fuera", "fuera de la oficina",
    "de vacaciones", "ausente", "regresaré", "volveré", "estaré de vuelta", "acceso limitado",
    "respuesta automática", "no estaré disponible", "a mi regreso", "a mi vuelta",
    "gracias por su mensaje", "asuntos urgentes", "en caso de urgencia",
    /* it */
    "fuori ufficio", "fuori sede", "in ferie", "sarò assente", "sono assente",
    "al mio rientro", "accesso limitato", "risposta automatica", "non sarò raggiungibile",
    "per urgenze", "grazie per la sua email", "grazie per il suo messaggio",
    /* pt */
    "fora do escritório", "de férias", "acesso limitado", "quando regressar",
    "assim que regressar", "no meu regresso", "quando voltar", "estarei fora",
    "estou fora", "resposta automática", "assuntos urgentes", "obrigado pela sua mensagem",
    /* nl */
    "~afwezig", "met vakantie", "op vakantie", "niet aanwezig", "beperkt toegang",
    "na terugkomst", "na mijn terugkomst", "weer aanwezig", "weer bereikbaar",
    "automatisch antwoord", "dringende zaken", "niet op kantoor", "bedankt voor uw bericht",
    NULL};

static const char *const interest_phrases[] = {
    "interested", "let's", "lets talk", "sounds good", "sounds great", "happy to",
    "schedule a", "book a", "set up a call", "send me more", "tell me more", "intéress",
    "interessiert", "interesa", "parlons", "gerne", "me gustaría", "possiamo sentirci",
    "podemos falar", "graag even", NULL};

/* A person asking to be taken off the list, in the seven languages. Read
 * only in what the person wrote (new_text): our own footer quoted below
 * a reply says "unsubscribe" too. */
static const char *const unsub_phrases[] = {
    /* en */
    "unsubscribe", "remove me", "take me off", "remove my email", "remove my address",
    "remove us from", "remove from your list", "remove from your mailing",
    "remove * from your * list", "take * off your * list", "off your mailing list",
    "off your distribution list", "delete * from your * list",
    "stop emailing", "stop sending", "stop contacting", "stop writing",
    "do not contact me", "don't contact me", "do not email me", "don't email me",
    "do not send me", "don't send me", "opt me out", "opt out", "no more emails",
    /* fr */
    "désinscri", "desinscri", "désabonn", "desabonn", "retirez-moi", "retirez moi",
    "supprimez-moi", "supprimez moi", "ne plus recevoir", "ne me contactez plus",
    "arrêtez de m'envoyer", "retirer de votre liste", "retirez mon adresse",
    "supprimer mon adresse", "supprimez mon adresse", "retirer mon adresse",
    "me retirer de", "de vos listes", "de votre liste de diffusion", "de votre fichier",
    "ne plus m'écrire", "ne plus me contacter", "ne plus m'envoyer",
    /* de */
    "abmelden", "austragen", "tragen sie mich", "entfernen sie mich", "löschen sie mich",
    "nehmen sie mich aus", "streichen sie mich", "aus ihrem verteiler",
    "aus dem verteiler", "aus ihrer liste", "aus ihrem e-mail-verteiler", "abbestellen",
    "keine weiteren e-mails", "keine e-mails mehr", "keine emails mehr",
    "keine weiteren nachrichten", "nicht mehr kontaktieren", "nicht mehr anschreiben",
    /* es */
    "darme de baja", "dar de baja", "dame de baja", "denme de baja", "elimíname",
    "eliminarme", "elimínenme", "elimíneme", "elimineme", "eliminen mi", "elimine mi",
    "bórrame", "borrarme", "bórrenme", "borren mi", "no me contacte", "no me contactes",
    "no me escriba", "no me escribas", "no me envíen", "no me envíe", "dejen de enviar",
    "deje de enviar", "no quiero recibir", "quitarme de", "sacarme de",
    "de su lista de correo", "de vuestra lista",
    /* it */
    "cancellarmi", "cancellami", "cancellatemi", "rimuovermi", "rimuovetemi",
    "rimuovere il mio indirizzo", "dalla vostra lista", "dalla vostra mailing list",
    "dalla sua lista", "non contattarmi", "non scrivermi", "non inviatemi", "disiscriv",
    "non voglio più ricevere",
    /* pt */
    "remover meu", "remover o meu", "removam o meu", "retirem o meu", "retire o meu",
    "retire meu", "da vossa lista", "da sua lista", "descadastr", "cancelar a subscrição",
    "não quero receber", "deixem de enviar", "parem de enviar", "não me enviem",
    "remova-me", "removam-me", "tirem-me",
    /* nl */
    "afmelden", "uitschrijven", "schrijf mij uit", "schrijf me uit", "van uw verzendlijst",
    "van uw mailinglijst", "uit uw mailinglijst", "van jullie lijst", "van uw lijst",
    "uit uw bestand", "mij verwijderen", "me verwijderen", "verwijder mij", "verwijder me",
    "haal mij", "haal me", "geen e-mails meer", "niet meer mailen", "niet meer benaderen",
    NULL};

static int subject_is_unsubscribe(const char *subj)
{
    const char *s = subj;
    for (;;) {
        while (*s == ' ')
            s++;
        if (strncmp(s, "re:", 3) == 0 || strncmp(s, "aw:", 3) == 0 || strncmp(s, "tr:", 3) == 0 ||
            strncmp(s, "sv:", 3) == 0 || strncmp(s, "ri:", 3) == 0)
            s += 3;
        else if (strncmp(s, "r:", 2) == 0)
            s += 2;
        else if (strncmp(s, "re :", 4) == 0)
            s += 4;
        else
            break;
    }
    static const char *const words[] = {"unsubscribe", "remove", "remove me", "stop",
                                        "désinscription", "desinscription", "désabonnement",
                                        "désinscrire", "abmelden", "austragen", "baja",
                                        "darse de baja", "opt out", "opt-out", "cancellami",
                                        "cancellazione", "disiscrivimi", "remover",
                                        "descadastrar", "afmelden", "uitschrijven", NULL};
    for (size_t i = 0; words[i]; i++) {
        size_t l = strlen(words[i]);
        if (strncmp(s, words[i], l) == 0) {
            const char *r = s + l;
            while (*r == ' ' || *r == '.' || *r == '!')
                r++;
            if (*r == '\0')
                return 1;
        }
    }
    return 0;
}

static int header_says_auto(const struct msg *m)
{
    const struct mime_headers *h = m->h;
    const char *as = mime_headers_get(h, "Auto-Submitted");
    if (as && strncasecmp(as, "no", 2) != 0)
        return 1;
    static const char *const flags[] = {"X-Autoreply", "X-Autorespond", "X-Autoresponder",
                                        "X-AutoReply-From", "X-Mail-Autoreply",
                                        "X-Autogenerated", "X-Vacation", "X-Auto-Reply",
                                        "X-Autoresponse", "X-Auto-Response", NULL};
    for (size_t i = 0; flags[i]; i++) {
        const char *v = mime_headers_get(h, flags[i]);
        if (v && strncasecmp(v, "no", 2) != 0 && strncasecmp(v, "false", 5) != 0)
            return 1;
    }
    const char *apple = mime_headers_get(h, "X-Apple-Action");
    if (apple && strcasestr(apple, "vacation"))
        return 1;
    const char *prec = mime_headers_get(h, "Precedence");
    /* vacation(1) and most list servers mark what no person wrote */
    if (prec && (strcasestr(prec, "auto_reply") || strcasestr(prec, "bulk") ||
                 strcasestr(prec, "junk") || strcasestr(prec, "list")))
        return 1;
    return 0;
}

/* ---- the entry point ---- */

static void reply_message_id(const struct msg *m, struct classify_result *out)
{
    if (extract_msgid(mime_headers_get(m->h, "In-Reply-To"), 0, out->message_id,
                      sizeof out->message_id) == 0)
        return;
    extract_msgid(mime_headers_get(m->h, "References"), 1, out->message_id,
                  sizeof out->message_id);
}

static void set_return_date(const struct msg *m, const char *text, struct classify_result *out)
{
    struct sbuf all = {0};
    sb_adds(&all, m->subject);
    sb_adds(&all, "\n");
    sb_adds(&all, text);
    int y, mo, d;
    if (!all.oom && classify_return_date_parse(sb_str(&all), m->date, &y, &mo, &d) == 0) {
        out->has_return_date = 1;
        out->return_year = y;
        out->return_month = mo;
        out->return_day = d;
        out->return_date = (time_t)(days_from_civil(y, mo, d) * 86400);
    }
    free(all.p);
}

static int is_machine_notice(const struct msg *m)
{
    static const char *const senders[] = {"no-reply", "noreply", "do-not-reply", "donotreply",
                                          "do_not_reply", "notifications@", "notification@",
                                          NULL};
    if (mime_headers_get(m->h, "In-Reply-To") || mime_headers_get(m->h, "References"))
        return 0;
    if (any_match(m->from, senders))
        return 1;
    if (mime_headers_get(m->h, "List-Id") || mime_headers_get(m->h, "List-Unsubscribe"))
        return 1;
    return 0;
}

int classify_message(const char *raw, size_t len, struct classify_result *out)
{
    struct mime_part root;
    struct msg m;
    int rc;
    char *fresh = NULL;
    memset(out, 0, sizeof *out);
    out->kind = CLASSIFY_OTHER;
    memset(&m, 0, sizeof m);
    rc = mime_message_parse(raw, len, &root);
    if (rc < 0)
        goto done;
    rc = msg_load(&m, &root);
    if (rc < 0)
        goto done;
    out->date = m.date;
    if (root.headers.count == 0) {
        rc = 0; /* no header block at all: nothing to read */
        goto done;
    }

    /* 1. machine reports */
    const char *ct = mime_headers_get(m.h, "Content-Type");
    char report_type[64] = "";
    mime_param_get(ct, "report-type", report_type, sizeof report_type);
    if (strcasecmp(report_type, "feedback-report") == 0 ||
        mime_part_find(&root, "message/feedback-report") ||
        strcasecmp(report_type, "disposition-notification") == 0) {
        out->kind = CLASSIFY_OTHER;
        rc = 0;
        goto done;
    }
    const struct mime_part *ds = mime_part_find(&root, "message/delivery-status");
    if (!ds)
        ds = mime_part_find(&root, "message/global-delivery-status");
    if (ds) {
        rc = classify_dsn(&m, ds, out);
        if (rc < 0)
            goto done;
        if (rc == 1) {
            rc = 0;
            goto done;
        }
    }
    rc = classify_ses_json(&m, out);
    if (rc < 0)
        goto done;
    if (rc == 1) {
        rc = 0;
        goto done;
    }
    rc = classify_text_bounce(&m, out);
    if (rc < 0)
        goto done;
    if (rc == 1) {
        rc = 0;
        goto done;
    }

    /* 2. auto-replies */
    reply_message_id(&m, out);
    fresh = new_text(sb_str(&m.text));
    if (!fresh) {
        rc = -ENOMEM;
        goto done;
    }
    char *nfresh = norm(fresh, strlen(fresh));
    if (!nfresh) {
        rc = -ENOMEM;
        goto done;
    }
    if (strlen(nfresh) > 4000)
        nfresh[4000] = '\0';
    int score = 0;
    if (header_says_auto(&m))
        score += 3;
    if (any_match(m.subject, auto_subjects))
        score += strncmp(m.subject, "re:", 3) == 0 ? 1 : 2;
    const char *xars = mime_headers_get(m.h, "X-Auto-Response-Suppress");
    if (xars && (mime_headers_get(m.h, "X-MS-Exchange-Inbox-Rules-Loop") ||
                 mime_headers_get(m.h, "X-MS-Exchange-Generated-Message-Source")))
        score += 2;
    else if (xars)
        score += 1;
    int ooo = count_matches(nfresh, ooo_phrases);
    score += ooo;
    if (score < 3)
        score -= count_matches(nfresh, interest_phrases);
    if (score >= 3 || (score >= 2 && ooo > 0 && xars)) {
        out->kind = CLASSIFY_AUTO_REPLY;
        set_return_date(&m, fresh, out);
        free(nfresh);
        rc = 0;
        goto done;
    }

    /* 3. removal requests, from a person (a newsletter's own footer
     * says "unsubscribe" too) */
    if (!is_machine_notice(&m) &&
        (subject_is_unsubscribe(m.subject) || any_match(nfresh, unsub_phrases))) {
        out->kind = CLASSIFY_UNSUBSCRIBE_REQUEST;
        free(nfresh);
        rc = 0;
        goto done;
    }
    free(nfresh);

    /* 4. a person, or a machine notice */
    out->kind = is_machine_notice(&m) ? CLASSIFY_OTHER : CLASSIFY_HUMAN_REPLY;
    rc = 0;
done:
    free(fresh);
    msg_free(&m);
    mime_part_free(&root);
    if (rc < 0)
        out->kind = CLASSIFY_OTHER;
    return rc;
}
