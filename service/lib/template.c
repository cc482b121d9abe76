/* template: syntax checking and rendering of message templates.
 *
 * It owns the template grammar (fields, fallbacks, spintax, escapes), the
 * deterministic spintax choice, the sanitising of contact values and
 * their escaping when the caller renders HTML (done as each value is
 * written, so the author's markup around it is never touched). It
 * does not know where values come from (the caller's lookup does), what
 * a sequence or step is, nor how headers are encoded (the MIME module
 * does RFC 2047). One scanner serves both template_check and
 * template_render, so what lint accepts is exactly what renders. */
#include "template.h"

#include "buf.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const template_status_names[4] = {"ok", "missing_field", "invalid", "out_of_memory"};

struct scan {
    const char *s;
    size_t len;
    void (*on_error)(size_t offset, const char *message, void *arg);
    void *arg;
    size_t errors;
};

static void report(struct scan *sc, size_t offset, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void report(struct scan *sc, size_t offset, const char *fmt, ...)
{
    sc->errors++;
    if (!sc->on_error)
        return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc->on_error(offset, msg, sc->arg);
}

static int is_escapable(char c)
{
    return c == '{' || c == '}' || c == '|' || c == '\\';
}

static int at(const struct scan *sc, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    return i + n <= sc->len && memcmp(sc->s + i, lit, n) == 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* i is at "{{". Finds the "}}" that closes the field: returns its offset,
 * or (size_t)-1 when the field is not closed on its line. */
static size_t field_close(const struct scan *sc, size_t i)
{
    for (size_t j = i + 2; j < sc->len; j++) {
        char c = sc->s[j];
        if (c == '\\' && j + 1 < sc->len && is_escapable(sc->s[j + 1]))
            j++;
        else if (c == '\n' || at(sc, j, "{{"))
            return (size_t)-1;
        else if (at(sc, j, "}}"))
            return j;
    }
    return (size_t)-1;
}

static int name_char(char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    return !first && ((c >= '0' && c <= '9') || c == '.' || c == '-');
}

/* The parts of a field "{{ name | fallback }}" between b and e (the text
 * between the braces): trimmed name and fallback bounds. */
struct field_parts {
    size_t nb, ne;     /* name */
    int has_fallback;
    size_t fb, fe;     /* fallback */
};

static void field_split(const struct scan *sc, size_t b, size_t e, struct field_parts *fp)
{
    size_t bar = e;
    for (size_t j = b; j < e; j++) {
        if (sc->s[j] == '\\' && j + 1 < e && is_escapable(sc->s[j + 1])) {
            j++;
        } else if (sc->s[j] == '|') {
            bar = j;
            break;
        }
    }
    fp->nb = b;
    fp->ne = bar;
    while (fp->nb < fp->ne && is_blank(sc->s[fp->nb]))
        fp->nb++;
    while (fp->ne > fp->nb && is_blank(sc->s[fp->ne - 1]))
        fp->ne--;
    fp->has_fallback = bar < e;
    fp->fb = fp->fe = e;
    if (fp->has_fallback) {
        fp->fb = bar + 1;
        while (fp->fb < fp->fe && is_blank(sc->s[fp->fb]))
            fp->fb++;
        while (fp->fe > fp->fb && is_blank(sc->s[fp->fe - 1]))
            fp->fe--;
    }
}

/* Checks the field at i ("{{"); returns the offset just past it. */
static size_t check_field(struct scan *sc, size_t i)
{
    size_t close = field_close(sc, i);
    if (close == (size_t)-1) {
        report(sc, i, "unclosed '{{' (a field is written {{name}} on one line)");
        /* go on at the next field or line, not inside the broken one */
        size_t j = i + 2;
        while (j < sc->len && sc->s[j] != '\n' && !at(sc, j, "{{"))
            j++;
        return j;
    }
    struct field_parts fp;
    field_split(sc, i + 2, close, &fp);
    size_t n = fp.ne - fp.nb;
    if (n == 0) {
        report(sc, i, "empty field name in '{{...}}'");
    } else if (n > TEMPLATE_MAX_FIELD) {
        report(sc, fp.nb, "field name longer than %d characters", TEMPLATE_MAX_FIELD);
    } else {
        for (size_t j = fp.nb; j < fp.ne; j++) {
            if (!name_char(sc->s[j], j == fp.nb)) {
                report(sc, fp.nb, "invalid field name '%.*s' (letters, digits, '_', '.', '-'; not starting "
                                  "with a digit)",
                       (int)n, sc->s + fp.nb);
                break;
            }
        }
    }
    return close + 2;
}

/* Skips a nested spintax group for error recovery: i is at its '{'. */
static size_t skip_group(const struct scan *sc, size_t i)
{
    int depth = 0;
    for (size_t j = i; j < sc->len; j++) {
        char c = sc->s[j];
        if (c == '\\' && j + 1 < sc->len && is_escapable(sc->s[j + 1]))
            j++;
        else if (c == '{')
            depth++;
        else if (c == '}' && --depth == 0)
            return j + 1;
    }
    return sc->len;
}

/* Scans the spintax group at i (a single '{'). Returns the number of
 * options, or -1 after reporting a problem; *end is where scanning goes
 * on. When want >= 0, *ob and *oe are the bounds of option number want. */
static long spin_scan(struct scan *sc, size_t i, long want, size_t *ob, size_t *oe, size_t *end)
{
    long opts = 0;
    size_t start = i + 1;
    int bad = 0;
    for (size_t j = i + 1; j < sc->len;) {
        char c = sc->s[j];
        if (c == '\\' && j + 1 < sc->len && is_escapable(sc->s[j + 1])) {
            j += 2;
        } else if (at(sc, j, "{{")) {
            size_t before = sc->errors;
            j = check_field(sc, j);
            if (sc->errors != before)
                bad = 1;
        } else if (c == '{') {
            report(sc, j, "spintax cannot be nested");
            *end = skip_group(sc, i);
            return -1;
        } else if (c == '|' || c == '}') {
            if (j == start) {
                report(sc, j, "empty spintax option");
                bad = 1;
            }
            if (opts == want) {
                *ob = start;
                *oe = j;
            }
            opts++;
            start = j + 1;
            j++;
            if (c == '}') {
                *end = j;
                if (bad)
                    return -1;
                if (opts == 1) {
                    size_t n = j - i - 2;
                    int ident = n > 0 && n <= TEMPLATE_MAX_FIELD;
                    for (size_t k = i + 1; ident && k < j - 1; k++)
                        ident = name_char(sc->s[k], k == i + 1);
                    if (ident)
                        report(sc, i, "'{%.*s}' is spintax with one option; did you mean '{{%.*s}}'?", (int)n,
                               sc->s + i + 1, (int)n, sc->s + i + 1);
                    else
                        report(sc, i, "spintax needs at least two options separated by '|' (write \\{ for a "
                                      "literal brace)");
                    return -1;
                }
                return opts;
            }
        } else {
            j++;
        }
    }
    if (bad) {
        /* the problem inside was reported; do not read the rest twice */
        *end = sc->len;
        return -1;
    }
    report(sc, i, "unclosed '{' (spintax is {a|b}; write \\{ for a literal brace)");
    *end = i + 1;
    return -1;
}

size_t template_check(const char *src, size_t len,
                      void (*on_error)(size_t offset, const char *message, void *arg), void *arg)
{
    struct scan sc = {src, len, on_error, arg, 0};
    for (size_t i = 0; i < len;) {
        char c = src[i];
        if (c == '\\' && i + 1 < len && is_escapable(src[i + 1])) {
            i += 2;
        } else if (at(&sc, i, "{{") && !at(&sc, i, "{{{")) {
            i = check_field(&sc, i);
        } else if (c == '{') {
            size_t end, ob, oe;
            (void)spin_scan(&sc, i, -1, &ob, &oe, &end);
            i = end;
        } else if (at(&sc, i, "}}")) {
            report(&sc, i, "unmatched '}}' (write \\} for a literal brace)");
            i += 2;
        } else if (c == '}') {
            report(&sc, i, "unmatched '}' (write \\} for a literal brace)");
            i++;
        } else {
            i++;
        }
    }
    return sc.errors;
}

/* ---- rendering ---- */

/* The entity for an HTML-special byte, or NULL. These five are enough
 * for text and for attribute values in either kind of quotes. */
static const char *html_entity(char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    default:
        return NULL;
    }
}

/* Appends value with control characters made spaces, invalid UTF-8 made
 * U+FFFD and surrounding blanks trimmed; with TEMPLATE_ESCAPE_HTML the
 * special characters become entities as they are copied (none of them is
 * a blank, so the trimming is the same in both modes). With lines, a
 * line break (LF, CRLF or CR) stays one: "\n" in text, "<br>\n" in
 * HTML; blank lines around the value are trimmed like blanks. */
static void put_clean(struct buf *b, const char *value, size_t n, enum template_escape escape, int lines)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t content = b->len, lead = 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            buf_add(b, "\xef\xbf\xbd", 3);
            i++;
            lead = 0;
            content = b->len;
            continue;
        }
        int brk = lines && (cp == '\n' || cp == '\r');
        int space = cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
        if (brk) {
            if (cp == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++; /* CRLF is one break */
            if (!lead)
                buf_adds(b, escape == TEMPLATE_ESCAPE_HTML ? "<br>\n" : "\n");
        } else if (space || cp == ' ') {
            if (!lead)
                buf_add(b, " ", 1);
        } else {
            const char *ent = escape == TEMPLATE_ESCAPE_HTML && k == 1 ? html_entity(value[i]) : NULL;
            if (ent)
                buf_adds(b, ent);
            else
                buf_add(b, value + i, k);
            lead = 0;
            content = b->len;
        }
        i += k;
    }
    if (!b->oom && b->len > content) { /* trailing blanks and breaks */
        b->len = content;
        b->p[content] = '\0';
    }
}

/* Appends template text between b and e with escapes resolved. */
static void put_text(struct buf *out, const char *s, size_t b, size_t e)
{
    size_t run = b;
    for (size_t j = b; j < e; j++) {
        if (s[j] == '\\' && j + 1 < e && is_escapable(s[j + 1])) {
            buf_add(out, s + run, j - run);
            run = j + 1;
            j++;
        }
    }
    buf_add(out, s + run, e - run);
}

struct render {
    struct scan sc;
    const char *(*lookup)(const char *field, void *arg);
    void *arg;
    uint64_t seed;
    enum template_escape escape; /* of values and fallbacks, never of the author's text */
    const char *const *lines;    /* fields whose values keep their line breaks */
    unsigned long spin;    /* index of the next spintax group */
    struct buf out;
    struct template_out *result;
    int missing;
};

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void render_field(struct render *r, size_t i, size_t close)
{
    struct field_parts fp;
    char name[TEMPLATE_MAX_FIELD + 1];
    field_split(&r->sc, i + 2, close, &fp);
    size_t n = fp.ne - fp.nb;
    memcpy(name, r->sc.s + fp.nb, n);
    name[n] = '\0';
    const char *v = r->lookup ? r->lookup(name, r->arg) : NULL;
    size_t before = r->out.len;
    int lines = 0;
    for (size_t k = 0; r->lines && r->lines[k] && !lines; k++)
        lines = strcmp(r->lines[k], name) == 0;
    if (v)
        put_clean(&r->out, v, strlen(v), r->escape, lines);
    if (r->out.len != before || r->out.oom)
        return;
    if (fp.has_fallback) {
        /* a fallback stands for a value: the same text must read the
         * same in the text part and in the html part, so it is escaped */
        struct buf fb = {0};
        put_text(&fb, r->sc.s, fp.fb, fp.fe);
        if (fb.oom)
            r->out.oom = 1;
        else if (fb.len)
            put_clean(&r->out, fb.p, fb.len, r->escape, 0);
        buf_free(&fb);
    } else if (!r->missing) {
        r->missing = 1;
        memcpy(r->result->missing, name, n + 1);
    }
}

/* Renders s[b, e): text, fields and (when spin) spintax groups. */
static void render_range(struct render *r, size_t b, size_t e, int spin)
{
    const char *s = r->sc.s;
    size_t run = b;
    for (size_t i = b; i < e && !r->out.oom;) {
        if (s[i] == '\\' && i + 1 < e && is_escapable(s[i + 1])) {
            buf_add(&r->out, s + run, i - run);
            run = i + 1;
            i += 2;
        } else if (at(&r->sc, i, "{{") && !(spin && at(&r->sc, i, "{{{"))) {
            buf_add(&r->out, s + run, i - run);
            size_t close = field_close(&r->sc, i);
            render_field(r, i, close);
            i = run = close + 2;
        } else if (spin && s[i] == '{') {
            buf_add(&r->out, s + run, i - run);
            size_t end, ob = i, oe = i;
            long n = spin_scan(&r->sc, i, -1, &ob, &oe, &end);
            long pick = (long)(mix64(r->seed ^ mix64(r->spin++)) % (uint64_t)n);
            (void)spin_scan(&r->sc, i, pick, &ob, &oe, &end);
            render_range(r, ob, oe, 0);
            i = run = end;
        } else {
            i++;
        }
    }
    buf_add(&r->out, s + run, (run < e ? e - run : 0));
}

int template_render(const char *src, size_t len, uint64_t seed, enum template_escape escape,
                    const char *(*lookup)(const char *field, void *arg), void *arg, struct template_out *out)
{
    return template_render_lines(src, len, seed, escape, lookup, arg, NULL, out);
}

int template_render_lines(const char *src, size_t len, uint64_t seed, enum template_escape escape,
                          const char *(*lookup)(const char *field, void *arg), void *arg, const char *const *lines,
                          struct template_out *out)
{
    memset(out, 0, sizeof *out);
    if (template_check(src, len, NULL, NULL) != 0)
        return TEMPLATE_INVALID;
    struct render r = {.sc = {src, len, NULL, NULL, 0}, .lookup = lookup, .arg = arg, .seed = seed,
                       .escape = escape, .lines = lines, .result = out};
    buf_add(&r.out, "", 0);
    render_range(&r, 0, len, 1);
    if (r.out.oom) {
        buf_free(&r.out);
        return TEMPLATE_NOMEM;
    }
    if (r.missing) {
        buf_free(&r.out);
        return TEMPLATE_MISSING_FIELD;
    }
    out->text = r.out.p;
    out->len = r.out.len;
    return TEMPLATE_OK;
}

/* FNV-1a 64 over the lower-cased e-mail, a NUL, and the step id; then
 * mixed so that nearby inputs give unrelated seeds. */
uint64_t template_seed(const char *email, const char *step_id)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)(email ? email : ""); *p; p++) {
        unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
        h = (h ^ c) * 0x100000001b3ULL;
    }
    h = (h ^ 0) * 0x100000001b3ULL;
    for (const unsigned char *p = (const unsigned char *)(step_id ? step_id : ""); *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return mix64(h);
}

size_t template_value_clean(const char *value, char *buf, size_t len)
{
    if (len == 0)
        return 0;
    struct buf b = {0};
    put_clean(&b, value, strlen(value), TEMPLATE_ESCAPE_NONE, 0);
    size_t n = b.oom ? 0 : b.len;
    if (n >= len) {
        n = len - 1;
        while (n > 0 && ((unsigned char)b.p[n] & 0xc0) == 0x80)
            n--;
    }
    if (n)
        memcpy(buf, b.p, n);
    buf[n] = '\0';
    buf_free(&b);
    return n;
}
