/* log: formats events as text or JSON lines on stderr. It owns only the
 * output format (json.c escapes the strings) and the level filter; what
 * is worth logging, and keeping secrets out of it, is the caller's
 * business. */
#include "log.h"

#include "buf.h"
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

const char *const log_level_names[] = {"debug", "info", "warn", "error"};

static enum log_format log_fmt = LOG_FORMAT_TEXT;
static enum log_level log_min = LOG_INFO;

void log_setup(enum log_format format, enum log_level min_level)
{
    log_fmt = format;
    log_min = min_level;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (strcmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

/* A text value needs quotes when it holds a space, quote or control char. */
static void text_value(struct buf *b, const char *s)
{
    int plain = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=')
            plain = 0;
    if (plain)
        buf_adds(b, s);
    else
        json_add_string(b, s);
}

/* The JSON number rule of log.h: -?(0|[1-9][0-9]*)(\.[0-9]+)? with at
 * most 15 digits, so a reader's double holds it exactly. */
static int json_number_like(const char *s)
{
    const char *p = s + (*s == '-');
    size_t digits = 0;
    if (*p == '0' && p[1] >= '0' && p[1] <= '9')
        return 0; /* a leading zero: "007" is a code, not a number */
    if (!(*p >= '0' && *p <= '9'))
        return 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++, digits++;
    }
    return *p == '\0' && digits <= 15;
}

void log_event(enum log_level level, const char *module, const char *event, ...)
{
    if (level < log_min)
        return;
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);

    /* Build the line in memory so concurrent writers never interleave. */
    struct buf line = {0};
    va_list ap;
    va_start(ap, event);
    if (log_fmt == LOG_FORMAT_JSON) {
        buf_addf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":", stamp, log_level_names[level]);
        json_add_string(&line, module);
        buf_adds(&line, ",\"event\":");
        json_add_string(&line, event);
        for (;;) {
            const char *k = va_arg(ap, const char *);
            if (!k)
                break;
            const char *v = va_arg(ap, const char *);
            buf_addc(&line, ',');
            json_add_string(&line, k);
            buf_addc(&line, ':');
            if (v && json_number_like(v))
                buf_adds(&line, v);
            else
                json_add_string(&line, v ? v : "-");
        }
        buf_adds(&line, "}\n");
    } else {
        buf_addf(&line, "%s %s %s: %s", stamp, log_level_names[level], module, event);
        for (;;) {
            const char *k = va_arg(ap, const char *);
            if (!k)
                break;
            const char *v = va_arg(ap, const char *);
            buf_addf(&line, " %s=", k);
            text_value(&line, v ? v : "-");
        }
        buf_addc(&line, '\n');
    }
    va_end(ap);
    if (!line.oom) {
        fwrite(line.p, 1, line.len, stderr);
        fflush(stderr);
    }
    buf_free(&line);
}
