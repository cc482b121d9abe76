/* json: the one JSON reader and writer (see json.h for the rules).
 *
 * It owns string escaping for every JSON relance writes (log lines, the
 * sequence model and its hash, the accounts document, contacts' custom
 * fields, HTTP answers) and the one reader (the OAuth2 token endpoint's
 * answer, the watcher's inbound results, the HTTP API's request bodies).
 * The reader is a recursive descent bounded by JSON_DEPTH_MAX, so the C
 * stack it uses is bounded whatever the input; every loop moves forward
 * through the input, so the cost is linear in its length. It does not
 * own what a document means: callers look values up and check them.
 * Pure: no I/O, no logging. */
#include "json.h"

#include "utf8.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const json_type_names[] = {"null", "false", "true", "number", "string", "array", "object"};

/* ---- writer ---- */

void json_add_stringn(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* the first byte not yet copied */
    buf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        if (c >= 0x80) {
            size_t k = utf8_decode(u + i, n - i, NULL);
            if (k) {
                i += k;
                continue;
            }
            memcpy(esc, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte that starts nothing valid */
            esc_len = 3;
        } else if (c == '"' || c == '\\') {
            esc[1] = (char)c;
        } else if (c == '\n') {
            esc[1] = 'n';
        } else if (c == '\r') {
            esc[1] = 'r';
        } else if (c == '\t') {
            esc[1] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        } else {
            i++;
            continue;
        }
        buf_add(b, s + run, i - run);
        buf_add(b, esc, esc_len);
        run = ++i;
    }
    if (n > run)
        buf_add(b, s + run, n - run);
    buf_addc(b, '"');
}

void json_add_string(struct buf *b, const char *s)
{
    if (!s) {
        buf_adds(b, "null");
        return;
    }
    json_add_stringn(b, s, strlen(s));
}

/* ---- the document ---- */

/* One value, or one member name: a name is stored just before its
 * member's value, so the value i of an object has its name at i - 1. */
struct value {
    enum json_type type;
    int parent;     /* the container, or -1 for the top */
    int end;        /* the index after this value and all it holds */
    size_t count;   /* members or elements */
    size_t offset;  /* where it begins in the input */
    size_t text;    /* strings, numbers, names: where in doc->text */
    size_t len;     /* and how long (without the NUL after it) */
};

struct json_doc {
    struct value *v;
    size_t n, cap;
    struct buf text; /* decoded strings and numbers, each NUL-terminated */
};

/* A container being read, for the path of an error. */
struct frame {
    int container;
    int name;     /* object: the current member's name, or -1 between members */
    size_t index; /* array: the current element's position */
    int in_value; /* array: an element is being read */
};

struct reader {
    const char *start, *p, *end;
    struct json_doc *d;
    struct json_error *err;
    int depth; /* containers open */
    struct frame open[JSON_DEPTH_MAX + 1];
};

/* Appends one reference token of a JSON Pointer to buf[*pos..size). */
static void path_add(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    char tmp[24];
    if (!s) { /* an array index, passed in n */
        n = (size_t)snprintf(tmp, sizeof tmp, "%zu", n);
        s = tmp;
    }
    if (*pos + 1 < size)
        buf[(*pos)++] = '/';
    for (size_t i = 0; i < n && *pos + 1 < size; i++) {
        if (s[i] == '~' || s[i] == '/') {
            if (*pos + 2 >= size)
                break;
            buf[(*pos)++] = '~';
            buf[(*pos)++] = s[i] == '~' ? '0' : '1';
        } else {
            buf[(*pos)++] = s[i];
        }
    }
    buf[*pos] = '\0';
}

static int fail(struct reader *r, const char *what)
{
    struct json_error *e = r->err;
    e->offset = (size_t)(r->p - r->start);
    e->what = what;
    e->path[0] = '\0';
    size_t pos = 0;
    for (int k = 0; k < r->depth; k++) {
        const struct frame *f = &r->open[k];
        if (f->name >= 0) {
            const struct value *name = &r->d->v[f->name];
            path_add(e->path, sizeof e->path, &pos, r->d->text.p + name->text, name->len);
        } else if (f->in_value) {
            path_add(e->path, sizeof e->path, &pos, NULL, f->index);
        } else {
            break; /* between members: the error is the container's own */
        }
    }
    return -EINVAL;
}

static int out_of_memory(struct reader *r)
{
    fail(r, "out of memory");
    return -ENOMEM;
}

/* A new value at the current position: its index, or -ENOMEM. */
static int add(struct reader *r, enum json_type type, int parent)
{
    struct json_doc *d = r->d;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct value *grown = realloc(d->v, cap * sizeof *grown);
        if (!grown)
            return out_of_memory(r);
        d->v = grown;
        d->cap = cap;
    }
    int i = (int)d->n++;
    d->v[i] = (struct value){
        .type = type, .parent = parent, .end = i + 1, .offset = (size_t)(r->p - r->start)};
    return i;
}

/* Ends the text of value i, which began at at in doc->text. */
static int text_end(struct reader *r, int i, size_t at)
{
    struct buf *t = &r->d->text;
    buf_addc(t, '\0');
    if (t->oom)
        return out_of_memory(r);
    r->d->v[i].text = at;
    r->d->v[i].len = t->len - 1 - at;
    return 0;
}

static void skip_ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p[i], digit;
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (c >= 'a' && c <= 'f')
            digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            digit = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + (unsigned)digit;
    }
    *out = v;
    return 0;
}

/* A string (a value or a member name) at r->p, on its opening quote:
 * its index, or a negative error. */
static int read_string(struct reader *r, int parent)
{
    int i = add(r, JSON_STRING, parent);
    if (i < 0)
        return i;
    struct buf *t = &r->d->text;
    size_t at = t->len;
    r->p++;
    for (;;) {
        if (r->p >= r->end)
            return fail(r, "unterminated string");
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            return text_end(r, i, at) < 0 ? -ENOMEM : i;
        }
        if (c < 0x20)
            return fail(r, "control character in a string");
        if (c >= 0x80) {
            size_t k = utf8_decode((const unsigned char *)r->p, (size_t)(r->end - r->p), NULL);
            if (!k)
                return fail(r, "invalid UTF-8 in a string");
            buf_add(t, r->p, k);
            r->p += k;
            continue;
        }
        if (c != '\\') {
            buf_addc(t, (char)c);
            r->p++;
            continue;
        }
        if (r->end - r->p < 2)
            return fail(r, "unterminated escape");
        char e = r->p[1];
        r->p += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            buf_addc(t, "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]);
            continue;
        }
        if (e != 'u')
            return fail(r, "unknown escape");
        unsigned cp, lo;
        if (r->end - r->p < 4 || hex4(r->p, &cp) < 0)
            return fail(r, "bad \\u escape");
        r->p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(r, "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) < 0 || lo < 0xDC00 ||
                lo > 0xDFFF)
                return fail(r, "lone high surrogate");
            r->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        char u[4];
        buf_add(t, u, utf8_encode(cp, u));
    }
}

static int is_digit(const struct reader *r)
{
    return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* A number per RFC 8259's grammar, kept as written. */
static int read_number(struct reader *r, int parent)
{
    int i = add(r, JSON_NUMBER, parent);
    if (i < 0)
        return i;
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (!is_digit(r))
        return fail(r, "expected a digit");
    if (*r->p == '0')
        r->p++;
    else
        while (is_digit(r))
            r->p++;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!is_digit(r))
            return fail(r, "expected a digit after '.'");
        while (is_digit(r))
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!is_digit(r))
            return fail(r, "expected a digit in the exponent");
        while (is_digit(r))
            r->p++;
    }
    size_t at = r->d->text.len;
    buf_add(&r->d->text, s, (size_t)(r->p - s));
    return text_end(r, i, at);
}

static int read_literal(struct reader *r, int parent, const char *word, enum json_type type)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return fail(r, "unexpected character");
    int i = add(r, type, parent);
    if (i < 0)
        return i;
    r->p += n;
    return 0;
}

static int read_value(struct reader *r, int parent);

/* An object or an array at r->p, on its opening bracket. */
static int read_container(struct reader *r, int parent)
{
    int object = *r->p == '{';
    char close = object ? '}' : ']';
    if (r->depth > JSON_DEPTH_MAX)
        return fail(r, "nested too deeply");
    int self = add(r, object ? JSON_OBJECT : JSON_ARRAY, parent);
    if (self < 0)
        return self;
    struct frame *f = &r->open[r->depth++];
    *f = (struct frame){.container = self, .name = -1};
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
    } else {
        for (;;) {
            skip_ws(r);
            if (object) {
                if (r->p >= r->end || *r->p != '"')
                    return fail(r, "expected a member name");
                int name = read_string(r, self);
                if (name < 0)
                    return name;
                f->name = name;
                skip_ws(r);
                if (r->p >= r->end || *r->p != ':')
                    return fail(r, "expected ':'");
                r->p++;
            } else {
                f->in_value = 1;
            }
            int rc = read_value(r, self);
            if (rc < 0)
                return rc;
            r->d->v[self].count++;
            f->name = -1;
            f->in_value = 0;
            f->index++;
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (r->p < r->end && *r->p == close) {
                r->p++;
                break;
            }
            return fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    r->depth--;
    r->d->v[self].end = (int)r->d->n;
    return 0;
}

static int read_value(struct reader *r, int parent)
{
    skip_ws(r);
    if (r->p >= r->end)
        return fail(r, "expected a value");
    switch (*r->p) {
    case '"': {
        int i = read_string(r, parent);
        return i < 0 ? i : 0;
    }
    case '{':
    case '[':
        return read_container(r, parent);
    case 't':
        return read_literal(r, parent, "true", JSON_TRUE);
    case 'f':
        return read_literal(r, parent, "false", JSON_FALSE);
    case 'n':
        return read_literal(r, parent, "null", JSON_NULL);
    default:
        return read_number(r, parent);
    }
}

int json_parse(const char *text, size_t len, struct json_doc **out, struct json_error *err)
{
    *out = NULL;
    err->offset = 0;
    err->what = NULL;
    err->path[0] = '\0';
    if (!text)
        text = "";
    struct json_doc *d = calloc(1, sizeof *d);
    if (!d) {
        err->what = "out of memory";
        return -ENOMEM;
    }
    struct reader r = {.start = text, .p = text, .end = text + len, .d = d, .err = err};
    int rc;
    /* every value takes a byte at least: indices fit an int */
    if (len > INT_MAX / 2) {
        rc = fail(&r, "document too large");
    } else {
        rc = read_value(&r, -1);
        if (rc == 0) {
            skip_ws(&r);
            if (r.p != r.end)
                rc = fail(&r, "trailing data after the value");
        }
    }
    if (rc < 0) {
        json_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void json_free(struct json_doc *d)
{
    if (!d)
        return;
    if (d->text.p)
        explicit_bzero(d->text.p, d->text.cap);
    buf_free(&d->text);
    free(d->v);
    free(d);
}

void json_error_text(const struct json_error *err, char *buf, size_t size)
{
    snprintf(buf, size, "invalid JSON at byte %zu: %s", err->offset, err->what ? err->what : "no error");
}

/* ---- accessors ---- */

enum json_type json_type(const struct json_doc *d, int i)
{
    return d->v[i].type;
}

size_t json_offset(const struct json_doc *d, int i)
{
    return d->v[i].offset;
}

const char *json_text(const struct json_doc *d, int i, size_t *len)
{
    const struct value *v = &d->v[i];
    if (v->type != JSON_STRING && v->type != JSON_NUMBER)
        return NULL;
    if (len)
        *len = v->len;
    return d->text.p + v->text;
}

int json_int64(const struct json_doc *d, int i, int64_t *out)
{
    const char *s = json_text(d, i, NULL);
    if (!s || d->v[i].type != JSON_NUMBER || strpbrk(s, ".eE"))
        return -EINVAL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

size_t json_count(const struct json_doc *d, int i)
{
    return d->v[i].count;
}

int json_first(const struct json_doc *d, int i)
{
    const struct value *v = &d->v[i];
    if (!v->count)
        return -1;
    return v->type == JSON_OBJECT ? i + 2 : v->type == JSON_ARRAY ? i + 1 : -1;
}

int json_next(const struct json_doc *d, int i)
{
    int p = d->v[i].parent, next = d->v[i].end;
    if (p < 0 || next >= d->v[p].end)
        return -1;
    return d->v[p].type == JSON_OBJECT ? next + 1 : next; /* past the next member's name */
}

const char *json_key(const struct json_doc *d, int i, size_t *len)
{
    int p = d->v[i].parent;
    if (p < 0 || d->v[p].type != JSON_OBJECT)
        return NULL;
    return json_text(d, i - 1, len);
}

int json_get(const struct json_doc *d, int obj, const char *key)
{
    if (d->v[obj].type != JSON_OBJECT)
        return -1;
    size_t n = strlen(key);
    int found = -1;
    for (int v = json_first(d, obj); v >= 0; v = json_next(d, v)) {
        const struct value *name = &d->v[v - 1];
        if (name->len == n && memcmp(d->text.p + name->text, key, n) == 0)
            found = v; /* the last one wins */
    }
    return found;
}

int json_at(const struct json_doc *d, int arr, size_t n)
{
    if (d->v[arr].type != JSON_ARRAY)
        return -1;
    int v = json_first(d, arr);
    for (size_t k = 0; k < n && v >= 0; k++)
        v = json_next(d, v);
    return v;
}

void json_pointer_join(char *buf, size_t size, const char *base, const char *name, size_t n)
{
    if (!size)
        return;
    size_t pos = strlen(base);
    if (pos >= size)
        pos = size - 1;
    memmove(buf, base, pos);
    buf[pos] = '\0';
    path_add(buf, size, &pos, name, n);
}

void json_path(const struct json_doc *d, int i, char *buf, size_t size)
{
    int chain[JSON_DEPTH_MAX + 2];
    int n = 0;
    for (int v = i; d->v[v].parent >= 0 && n < (int)(sizeof chain / sizeof chain[0]); v = d->v[v].parent)
        chain[n++] = v;
    size_t pos = 0;
    if (size)
        buf[0] = '\0';
    if (!size)
        return;
    while (n-- > 0) {
        int v = chain[n], p = d->v[v].parent;
        if (d->v[p].type == JSON_OBJECT) {
            const struct value *name = &d->v[v - 1];
            path_add(buf, size, &pos, d->text.p + name->text, name->len);
        } else {
            size_t k = 0;
            for (int e = json_first(d, p); e >= 0 && e != v; e = json_next(d, e))
                k++;
            path_add(buf, size, &pos, NULL, k);
        }
    }
}
