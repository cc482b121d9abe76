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

int clock_parse_iso(const char *s, double *out)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
        return -1;
    s += n;
    if (*s != 'T' && *s != ' ')
        return -1;
    s++;
    if (sscanf(s, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) != 2 || n != 5)
        return -1;
    s += n;
    double frac = 0;
    if (*s == ':') {
        char *end;
        double sec = strtod(s + 1, &end);
        if (end == s + 1 || sec < 0 || sec >= 61)
            return -1;
        tm.tm_sec = (int)sec;
        frac = sec - tm.tm_sec;
        s = end;
    }
    long offset = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh, om;
        if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
            return -1;
        offset = (oh * 60L + om) * 60L * (*s == '-' ? -1 : 1);
        s += 1 + n;
    } else {
        return -1;
    }
    if (*s)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
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
