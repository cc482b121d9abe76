/* pgarray: PostgreSQL array literals ('{"a","b",NULL}') built in a buf,
 * for passing many values as one text[] parameter: one statement for a
 * whole batch instead of one round trip per row. Pure: no I/O, no
 * logging. */
#ifndef RELANCE_PGARRAY_H
#define RELANCE_PGARRAY_H

#include "buf.h"

#include <stddef.h>

/* Appends v as one quoted element, or SQL NULL for NULL. Start from a
 * buf {0}. */
void pgarray_add(struct buf *b, const char *v);
/* Appends s[0..n) as one quoted element, lower-cased when lower (ASCII). */
void pgarray_addn(struct buf *b, const char *s, size_t n, int lower);
/* Closes the literal ("{}" when nothing was added) and returns its text,
 * or NULL when memory ran out. The buf is freed with buf_free either way. */
const char *pgarray_end(struct buf *b);

#endif
