/* libFuzzer target: the JSON reader and writer on arbitrary bytes.
 *
 * The reader: a document that parses is written back through the writer
 * and the accessors, and that text must parse again and write back the
 * same (reading and writing agree); every value's offset lies inside the
 * input, and every accessor and path works on it. A document that does
 * not parse says where, inside the input. The writer: the bytes as one
 * string literal must parse back to themselves when they are valid
 * UTF-8, and to some string in any case. Any crash, leak, sanitizer
 * report, hang or abort() here is a bug. */
#include "json.h"
#include "utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes value i back as compact JSON; checks each value on the way. */
static void dump(struct buf *b, const struct json_doc *d, int i, size_t size)
{
    char path[JSON_PATH_MAX];
    size_t n;
    int64_t x;
    if (json_offset(d, i) >= size)
        abort();
    json_path(d, i, path, sizeof path);
    if (strlen(path) >= sizeof path)
        abort();
    enum json_type t = json_type(d, i);
    switch (t) {
    case JSON_NULL:
    case JSON_FALSE:
    case JSON_TRUE:
        buf_adds(b, json_type_names[t]);
        return;
    case JSON_NUMBER:
        (void)json_int64(d, i, &x);
        buf_adds(b, json_text(d, i, NULL));
        return;
    case JSON_STRING: {
        const char *s = json_text(d, i, &n);
        json_add_stringn(b, s, n);
        return;
    }
    case JSON_ARRAY:
    case JSON_OBJECT:
        break;
    }
    int object = t == JSON_OBJECT;
    size_t count = 0;
    buf_addc(b, object ? '{' : '[');
    for (int v = json_first(d, i); v >= 0; v = json_next(d, v), count++) {
        if (count)
            buf_addc(b, ',');
        if (object) {
            const char *k = json_key(d, v, &n);
            if (!k)
                abort();
            json_add_stringn(b, k, n);
            buf_addc(b, ':');
            /* a name with a NUL cannot be asked for by a C string */
            if (strlen(k) == n && json_get(d, i, k) < 0)
                abort();
        } else if (json_at(d, i, count) != v) {
            abort();
        }
        dump(b, d, v, size);
    }
    if (count != json_count(d, i))
        abort();
    buf_addc(b, object ? '}' : ']');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct json_doc *d;
    struct json_error err;
    int rc = json_parse(in, size, &d, &err);
    if (rc == 0) {
        struct buf once = {0}, twice = {0};
        dump(&once, d, 0, size);
        json_free(d);
        if (once.oom || json_parse(once.p, once.len, &d, &err) != 0)
            abort();
        dump(&twice, d, 0, once.len);
        json_free(d);
        if (twice.oom || once.len != twice.len || memcmp(once.p, twice.p, once.len) != 0)
            abort();
        buf_free(&once);
        buf_free(&twice);
    } else if (rc == -EINVAL) {
        if (d || err.offset > size || !err.what || strlen(err.path) >= sizeof err.path)
            abort();
        char text[128];
        json_error_text(&err, text, sizeof text);
    }

    struct buf lit = {0};
    json_add_stringn(&lit, in, size);
    if (lit.oom || json_parse(lit.p, lit.len, &d, &err) != 0 || json_type(d, 0) != JSON_STRING)
        abort();
    size_t n;
    const char *s = json_text(d, 0, &n);
    if (utf8_valid(in, size) && (n != size || memcmp(s, in, size) != 0))
        abort();
    json_free(d);
    buf_free(&lit);
    return 0;
}
