/* log_capture: what the logger says during a stretch of an engine unit
 * test, read back, so that a test can check the state changes a module
 * logs at debug level ("smtp: channel IDLE -> ENVELOPE account=a@x").
 * Between log_capture_begin and log_capture_end, stderr (descriptor 2)
 * goes to a temporary file and the logger shows debug lines; end puts
 * both back. Assert only after the end: cmocka reports on stderr. */
#ifndef RELANCE_TEST_LOG_CAPTURE_H
#define RELANCE_TEST_LOG_CAPTURE_H

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct log_capture {
    FILE *f;
    int saved; /* the real stderr */
};

static inline int log_capture_begin(struct log_capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    c->saved = c->f ? dup(2) : -1;
    if (c->saved < 0 || dup2(fileno(c->f), 2) < 0)
        return -1;
    log_setup(LOG_FORMAT_TEXT, LOG_DEBUG);
    return 0;
}

/* The lines logged by module about object ("smtp", "channel"), from what
 * follows "module: " on each: "channel IDLE -> ENVELOPE account=a@x". Only
 * state changes (lines with " -> "), one per line, '\n'-separated, in
 * order; malloc'd, "" when none. */
static inline char *log_capture_end(struct log_capture *c, const char *module, const char *object)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    log_setup(LOG_FORMAT_TEXT, LOG_INFO);
    char prefix[64];
    snprintf(prefix, sizeof prefix, " %s: %s ", module, object);
    size_t cap = 1, len = 0;
    char *out = calloc(1, cap), line[1024];
    rewind(c->f);
    while (out && fgets(line, sizeof line, c->f)) {
        const char *p = strstr(line, prefix);
        if (!p || !strstr(p, " -> "))
            continue;
        p += strlen(module) + 3; /* " module: " */
        size_t n = strlen(p);
        char *more = realloc(out, cap + n);
        if (!more) {
            free(out);
            out = NULL;
            break;
        }
        out = more;
        cap += n;
        memcpy(out + len, p, n + 1);
        len += n;
    }
    fclose(c->f);
    return out;
}

#endif
