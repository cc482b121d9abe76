/* pgarray: PostgreSQL array literals built in a buf. Owns the quoting of
 * one element (double quotes, with " and \ escaped) and the braces; what
 * the elements mean is the caller's. */
#include "pgarray.h"

#include <ctype.h>
#include <string.h>

void pgarray_addn(struct buf *b, const char *s, size_t n, int lower)
{
    buf_addc(b, b->len ? ',' : '{');
    buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        char ch = lower ? (char)tolower((unsigned char)s[i]) : s[i];
        if (ch == '"' || ch == '\\')
            buf_addc(b, '\\');
        buf_addc(b, ch);
    }
    buf_addc(b, '"');
}

void pgarray_add(struct buf *b, const char *v)
{
    if (!v) {
        buf_addc(b, b->len ? ',' : '{');
        buf_adds(b, "NULL");
        return;
    }
    pgarray_addn(b, v, strlen(v), 0);
}

const char *pgarray_end(struct buf *b)
{
    buf_adds(b, b->len ? "}" : "{}");
    return b->oom ? NULL : b->p;
}
