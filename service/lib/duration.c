/* duration: parsing and formatting of wait and interval lengths. */
#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum unit { U_SEC, U_MIN, U_HOUR, U_DAY, U_BDAY, U_WEEK };

static const struct {
    const char *name;
    enum unit unit;
} units[] = {
    {"s", U_SEC},     {"sec", U_SEC},       {"secs", U_SEC},     {"second", U_SEC},  {"seconds", U_SEC},
    {"m", U_MIN},     {"min", U_MIN},       {"mins", U_MIN},     {"minute", U_MIN},  {"minutes", U_MIN},
    {"h", U_HOUR},    {"hr", U_HOUR},       {"hrs", U_HOUR},     {"hour", U_HOUR},   {"hours", U_HOUR},
    {"d", U_DAY},     {"day", U_DAY},       {"days", U_DAY},     {"w", U_WEEK},      {"week", U_WEEK},
    {"weeks", U_WEEK}, {"business day", U_BDAY}, {"business days", U_BDAY},
};

int duration_parse(const char *s, struct duration *out, char *err, size_t errlen)
{
    struct duration d = {0, 0, 0};
    const char *p = s;
    int parts = 0;
    unsigned seen = 0;

    while (isspace((unsigned char)*p))
        p++;
    if (strcmp(p, "0") == 0) {
        *out = d;
        return 0;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p)) {
            snprintf(err, errlen, "expected a number in duration '%s'", s);
            return -1;
        }
        errno = 0;
        char *end;
        long long n = strtoll(p, &end, 10);
        if (errno || n > 100000000LL) {
            snprintf(err, errlen, "number too large in duration '%s'", s);
            return -1;
        }
        p = end;
        /* "0.5s" would otherwise read as "0" with no unit; there is no
         * unit below the second, so say what is wrong instead */
        if (*p == '.' && isdigit((unsigned char)p[1])) {
            snprintf(err, errlen, "fractions are not supported in duration '%s' (write whole numbers of a smaller "
                     "unit: 90s, not 1.5m)", s);
            return -1;
        }
        while (*p == ' ')
            p++;
        const char *u = p;
        while (isalpha((unsigned char)*p))
            p++;
        /* "business day(s)" is two words */
        if ((size_t)(p - u) == 8 && strncmp(u, "business", 8) == 0 && *p == ' ') {
            p++;
            while (isalpha((unsigned char)*p))
                p++;
        }
        size_t ulen = (size_t)(p - u);
        if (ulen == 0) {
            snprintf(err, errlen, "missing unit in duration '%s' (use s, m, h, days or business days)", s);
            return -1;
        }
        int found = -1;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strlen(units[i].name) == ulen && strncmp(units[i].name, u, ulen) == 0)
                found = (int)units[i].unit;
        if (found < 0) {
            snprintf(err, errlen, "unknown unit '%.*s' in duration '%s' (use s, m, h, days or business days)",
                     (int)ulen, u, s);
            return -1;
        }
        if (seen & (1u << found)) {
            snprintf(err, errlen, "unit '%.*s' given twice in duration '%s'", (int)ulen, u, s);
            return -1;
        }
        seen |= 1u << found;
        switch ((enum unit)found) {
        case U_SEC: d.seconds += n; break;
        case U_MIN: d.seconds += n * 60; break;
        case U_HOUR: d.seconds += n * 3600; break;
        case U_DAY: d.days += (int32_t)n; break;
        case U_WEEK: d.days += (int32_t)(n * 7); break;
        case U_BDAY: d.business_days += (int32_t)n; break;
        }
        parts++;
        while (*p == ' ' || *p == ',')
            p++;
    }
    if (parts == 0) {
        snprintf(err, errlen, "empty duration");
        return -1;
    }
    if (d.days && d.business_days) {
        snprintf(err, errlen, "duration '%s' mixes days and business days", s);
        return -1;
    }
    *out = d;
    return 0;
}

void duration_format(const struct duration *d, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    if (d->days)
        n += (size_t)snprintf(buf + n, len - n, "%d day%s", d->days, d->days == 1 ? "" : "s");
    if (d->business_days && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%d business day%s", d->business_days,
                              d->business_days == 1 ? "" : "s");
    int64_t s = d->seconds;
    if (s && n < len) {
        int64_t h = s / 3600, m = s % 3600 / 60, sec = s % 60;
        if (h && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%lldh", n ? " " : "", (long long)h);
        if (m && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%lldm", n ? " " : "", (long long)m);
        if (sec && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%llds", n ? " " : "", (long long)sec);
    }
    if (n == 0)
        snprintf(buf, len, "0");
}

int duration_is_elapsed(const struct duration *d)
{
    return d->days == 0 && d->business_days == 0;
}
