/* buf: a growable byte buffer for building text in memory.
 *
 * Owns growth, NUL-termination and the sticky allocation failure that
 * lets a caller append many pieces and check once at the end. Does not
 * own what goes in (escaping, folding and encoding stay with the modules
 * that build messages, headers and JSON). Pure: no I/O, no logging. */
#ifndef RELANCE_BUF_H
#define RELANCE_BUF_H

#include <stddef.h>

/* Start from {0}. p is NULL until the first append, then always
 * NUL-terminated at p[len]. oom is set by the first failure (out of
 * memory, size overflow or a format error); once set, every append is a
 * no-op and the contents stop at what was there before the failure. p
 * belongs to the buffer's holder: free it with buf_free, or take it
 * (it came from malloc) and stop using the buffer. */
struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

/* Appends n bytes of data (n may be 0, which still allocates p). */
void buf_add(struct buf *b, const void *data, size_t n);
/* Appends the string s, without its NUL. */
void buf_adds(struct buf *b, const char *s);
/* Appends one byte (cheap enough to call per byte of a large input). */
void buf_addc(struct buf *b, char c);
/* Appends printf-style formatted text, without its NUL. */
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties b for reuse, keeping its memory (p stays allocated, now "");
 * oom stays as it was: a failure is reported once, by whoever checks. */
void buf_clear(struct buf *b);
/* Frees p and leaves b empty, as from {0}. */
void buf_free(struct buf *b);

#endif
