/* classify_dates: the dates classify reads. It owns the message's own
 * Date (RFC 5322, read leniently, every field range-checked) and the
 * return date of an out-of-office: explicit dates in English, French,
 * German and Spanish, numeric forms (ISO, d.m.y, d/m or m/d by the
 * wording around them) and bare weekdays, each weighed by a cue before
 * it ("until", "back", "jusqu'au", "bis", "hasta") and resolved against
 * the day the reply was sent. It does not decide that a message is an
 * auto-reply (classify.c does). Pure: no I/O, no logging. */
#include "classify.h"
#include "classify_int.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* An unsigned number of 1 to maxdigits digits at s, not followed by
 * another digit: 0 with its value and length, or -1. */
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

/* read_int at *s, moving *s past the number: its value, or -1 (and *s
 * unmoved). */
static int take_num(const char **s, int maxd)
{
    int v;
    size_t len;
    if (read_int(*s, maxd, &v, &len) < 0)
        return -1;
    *s += len;
    return v;
}

/* RFC 5322 date ("Thu, 15 Jul 2010 14:33:27 +0200"), leniently; every
 * field is range-checked, 0 when unreadable. */
time_t cls_parse_rfc_date(const char *v)
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
        if (l > best && strncmp(s, tab[i].name, l) == 0 && !cls_alnum_at(s, s + l)) {
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
    if (cls_alnum_at(text, s - 1))
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
    char *t = cls_norm(text, strlen(text));
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

void cls_set_return_date(const struct cls_msg *m, const char *text, struct classify_result *out)
{
    struct buf all = {0};
    cls_text_adds(&all, m->subject);
    cls_text_adds(&all, "\n");
    cls_text_adds(&all, text);
    int y, mo, d;
    if (!all.oom && classify_return_date_parse(cls_text_str(&all), m->date, &y, &mo, &d) == 0) {
        out->has_return_date = 1;
        out->return_year = y;
        out->return_month = mo;
        out->return_day = d;
        out->return_date = (time_t)(days_from_civil(y, mo, d) * 86400);
    }
    buf_free(&all);
}
