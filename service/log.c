/* log: formats events as text or JSON lines on stderr. It owns only the
 * output format and the level filter; what is worth logging, and keeping
 * secrets out of it, is the caller's business. */
#include "log.h"

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

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* A text value needs quotes when it holds a space, quote or control char. */
static void text_value(FILE *f, const char *s)
{
    int plain = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=')
            plain = 0;
    if (plain)
        fputs(s, f);
    else
        json_string(f, s);
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
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return;
    va_list ap;
    va_start(ap, event);
    if (log_fmt == LOG_FORMAT_JSON) {
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":", stamp, log_level_names[level]);
        json_string(f, module);
        fputs(",\"event\":", f);
        json_string(f, event);
        for (;;) {
            const char *k = va_arg(ap, const char *);
            if (!k)
                break;
            const char *v = va_arg(ap, const char *);
            fputc(',', f);
            json_string(f, k);
            fputc(':', f);
            json_string(f, v ? v : "-");
        }
        fputs("}\n", f);
    } else {
        fprintf(f, "%s %s %s: %s", stamp, log_level_names[level], module, event);
        for (;;) {
            const char *k = va_arg(ap, const char *);
            if (!k)
                break;
            const char *v = va_arg(ap, const char *);
            fprintf(f, " %s=", k);
            text_value(f, v ? v : "-");
        }
        fputc('\n', f);
    }
    va_end(ap);
    fclose(f);
    fwrite(buf, 1, len, stderr);
    fflush(stderr);
    free(buf);
}
