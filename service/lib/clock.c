/* clock: real time, or a test clock started at a chosen instant and
 * running at a chosen speed (see clock.h). */
#include "clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int test_clock;
static double base_fake, base_real, speed = 1.0;

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n digits at s, as a number into *v; 0, or -1 when they are not all digits. */
static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* Strict by hand, not sscanf (which takes signs, spaces and one-digit
 * fields): every time a client sends is parsed here before it is handed
 * to PostgreSQL, so what this takes PostgreSQL must take too, or a bad
 * request would become a failed statement (a 5xx). */
int clock_parse_iso(const char *s, double *out)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm = {0};
    int year, mon, mday, hour, min;
    if (digits(s, 4, &year) < 0 || s[4] != '-' || digits(s + 5, 2, &mon) < 0 || s[7] != '-' ||
        digits(s + 8, 2, &mday) < 0 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &hour) < 0 || s[13] != ':' || digits(s + 14, 2, &min) < 0)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || mon < 1 || mon > 12 || mday < 1 || mday > days[mon - 1] || (mon == 2 && mday == 29 && !leap) ||
        hour > 23 || min > 59)
        return -1;
    s += 16;
    double frac = 0;
    int sec = 0;
    if (*s == ':') {
        if (digits(s + 1, 2, &sec) < 0 || sec > 60) /* 60: a leap second, read as the next one */
            return -1;
        s += 3;
        if (*s == '.') {
            size_t n = strspn(s + 1, "0123456789");
            if (n == 0)
                return -1;
            frac = strtod(s, NULL);
            s += 1 + n;
        }
    }
    long offset = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh, om;
        /* +-15:59 at most: no zone is further, and PostgreSQL refuses more */
        if (digits(s + 1, 2, &oh) < 0 || s[3] != ':' || digits(s + 4, 2, &om) < 0 || oh > 15 || om > 59)
            return -1;
        offset = (oh * 60L + om) * 60L * (*s == '-' ? -1 : 1);
        s += 6;
    } else {
        return -1;
    }
    if (*s)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = mday;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = (double)t - (double)offset + frac;
    return 0;
}

int clock_setup(char *err, unsigned long errlen)
{
    const char *spec = getenv("RELANCE_TEST_CLOCK");
    if (!spec || !*spec)
        return 0;
    char when[64];
    const char *star = strchr(spec, '*');
    size_t n = star ? (size_t)(star - spec) : strlen(spec);
    if (n >= sizeof when) {
        snprintf(err, errlen, "RELANCE_TEST_CLOCK: bad time '%s'", spec);
        return -1;
    }
    memcpy(when, spec, n);
    when[n] = '\0';
    if (clock_parse_iso(when, &base_fake) < 0) {
        snprintf(err, errlen, "RELANCE_TEST_CLOCK: bad time '%s' (want 2026-03-02T08:00:00Z[*SPEED])", when);
        return -1;
    }
    if (star) {
        char *end;
        speed = strtod(star + 1, &end);
        if (*end || speed <= 0 || speed > 1e7) {
            snprintf(err, errlen, "RELANCE_TEST_CLOCK: bad speed '%s'", star + 1);
            return -1;
        }
    }
    base_real = real_now();
    test_clock = 1;
    return 0;
}

double clock_now(void)
{
    if (!test_clock)
        return real_now();
    return base_fake + (real_now() - base_real) * speed;
}

double clock_speed(void)
{
    return speed;
}

int clock_is_test(void)
{
    return test_clock;
}

void clock_format(double t, char *buf, unsigned long len)
{
    time_t s = (time_t)t;
    if ((double)s > t)
        s--;
    long us = (long)((t - (double)s) * 1e6);
    if (us > 999999)
        us = 999999;
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%06ldZ", base, us);
}
