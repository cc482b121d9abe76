/* buf: a growable byte buffer for building text in memory.
 *
 * Owns the growth policy (doubling from a small first block), the
 * NUL-termination invariant and the sticky oom flag, including refusing
 * sizes that would overflow size_t. It is the one growable byte buffer:
 * every module that builds bytes of unknown length (messages, MIME
 * decoding, CSV records, IMAP responses, JSON, COPY rows, files read
 * whole) builds them here. Does not own what the bytes mean. Pure: no
 * I/O, no logging. */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 256

/* Makes room for n more bytes plus the NUL. Returns 0, or -1 with oom
 * set (it may already have been). */
static int reserve(struct buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (n > SIZE_MAX - 1 - b->len) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : FIRST_CAP;
    while (cap < need) {
        /* stop well before cap *= 2 could wrap */
        if (cap > SIZE_MAX / 4) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void buf_add(struct buf *b, const void *data, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
    /* the common case, inline: csv and mime add most bytes one by one */
    if (!b->oom && b->cap - b->len >= 2) {
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
        return;
    }
    buf_add(b, &c, 1);
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_clear(struct buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}
