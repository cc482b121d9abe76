/* sequence: loading and validating sequence files.
 *
 * It owns the rules of the sequence language (keys, types, defaults, the
 * checks `relance lint` reports), the model that `apply` stores, its
 * canonical JSON and content hash, and the weighted choice of a variant.
 * It does not read files, look at the tz database (the caller's
 * zone_exists does), talk to the database, or render templates (template.c;
 * this module only asks it for syntax problems and maps their offsets back
 * to the file). Every check appends a diagnostic and carries on, so a file
 * shows all of its problems at once; the list is kept in file order. */
#include "sequence.h"

#include "buf.h"
#include "json.h"
#include "template.h"
#include "ytree.h"

#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const sequence_stop_names[4] = {"reply", "bounce", "unsubscribe", "company_reply"};
const char *const sequence_day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
const char *const sequence_severity_names[2] = {"error", "warning"};

#define MAX_NAME 64
#define MAX_SUBJECT_BYTES 500
#define MAX_BODY_BYTES 100000
#define MAX_DESCRIPTION_BYTES 2000
#define MAX_ZONE 64
#define MAX_WEIGHT 1000000

struct ctx {
    const char *src;
    size_t srclen;
    const struct sequence_options *opt;
    struct sequence_diags *d;
    size_t *lines;             /* byte offset of each line's start; built on demand */
    size_t n_lines;
    int lines_failed;
};

/* ---- diagnostics ---- */

static void diag_vadd(struct sequence_diags *d, int line, int col, enum sequence_severity sev, const char *fmt,
                      va_list ap) __attribute__((format(printf, 5, 0)));

static void diag_vadd(struct sequence_diags *d, int line, int col, enum sequence_severity sev, const char *fmt,
                      va_list ap)
{
    if (sev == SEQUENCE_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->n >= SEQUENCE_MAX_DIAGS)
        return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct sequence_diag *items = realloc(d->items, cap * sizeof *items);
        if (!items) {
            d->nomem = 1;
            return;
        }
        d->items = items;
        d->cap = cap;
    }
    if (line < 1)
        line = 1, col = 1;
    if (col < 1)
        col = 1;
    /* insert after every entry at or before (line, col): file order, and
     * the order of discovery among equals */
    size_t at = d->n;
    while (at > 0 && (d->items[at - 1].line > line || (d->items[at - 1].line == line && d->items[at - 1].col > col)))
        at--;
    memmove(d->items + at + 1, d->items + at, (d->n - at) * sizeof *d->items);
    struct sequence_diag *g = &d->items[at];
    g->line = line;
    g->col = col;
    g->severity = sev;
    vsnprintf(g->message, sizeof g->message, fmt, ap);
    d->n++;
}

void sequence_diags_add(struct sequence_diags *d, int line, int col, enum sequence_severity sev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, line, col, sev, fmt, ap);
    va_end(ap);
}

static void err_at(struct ctx *c, const struct ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warn_at(struct ctx *c, const struct ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void err_at(struct ctx *c, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(c->d, n ? n->line : 1, n ? n->col : 1, SEQUENCE_ERROR, fmt, ap);
    va_end(ap);
}

static void warn_at(struct ctx *c, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(c->d, n ? n->line : 1, n ? n->col : 1, SEQUENCE_WARNING, fmt, ap);
    va_end(ap);
}

void sequence_diag_format(const struct sequence_diags *d, size_t i, char *buf, size_t len)
{
    const struct sequence_diag *g = &d->items[i];
    snprintf(buf, len, "%s:%d:%d: %s%s", d->file ? d->file : "-", g->line, g->col,
             g->severity == SEQUENCE_WARNING ? "warning: " : "", g->message);
}

void sequence_diags_free(struct sequence_diags *d)
{
    if (!d)
        return;
    free(d->file);
    free(d->items);
    memset(d, 0, sizeof *d);
}

/* User text shown in a message: at most 40 characters, control
 * characters as '?', cut on a character boundary, "..." when cut. */
static const char *clip(const char *s, char *buf, size_t len)
{
    size_t n = 0, chars = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t k = 1;
        while (p[k] && (p[k] & 0xc0) == 0x80 && k < 4)
            k++;
        if (chars == 40 || n + k + 4 > len)
            break;
        for (size_t j = 0; j < k; j++)
            buf[n++] = p[j] < 0x20 || p[j] == 0x7f ? '?' : (char)p[j];
        p += k;
        chars++;
    }
    if (*p && n + 4 <= len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- positions inside scalars ---- */

static int build_lines(struct ctx *c)
{
    if (c->lines)
        return 0;
    if (c->lines_failed)
        return -1;
    size_t n = 1;
    for (size_t i = 0; i < c->srclen; i++)
        n += c->src[i] == '\n';
    c->lines = malloc(n * sizeof *c->lines);
    if (!c->lines) {
        c->lines_failed = 1;
        return -1;
    }
    c->lines[0] = 0;
    c->n_lines = 1;
    for (size_t i = 0; i < c->srclen; i++)
        if (c->src[i] == '\n')
            c->lines[c->n_lines++] = i + 1;
    return 0;
}

/* Characters (code points) in s[0, n). */
static size_t chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

static size_t line_end(const struct ctx *c, size_t start)
{
    const char *nl = memchr(c->src + start, '\n', c->srclen - start);
    size_t e = nl ? (size_t)(nl - c->src) : c->srclen;
    if (e > start && c->src[e - 1] == '\r')
        e--;
    return e;
}

/* The file position of byte off of scalar n's value: exact for plain and
 * quoted scalars written verbatim on one line and for literal blocks (|),
 * else the scalar's own position. */
static void locate(struct ctx *c, const struct ynode *n, size_t off, int *line, int *col)
{
    *line = n->line;
    *col = n->col;
    if (build_lines(c) < 0 || n->line < 1 || (size_t)n->line > c->n_lines)
        return;
    size_t p = c->lines[n->line - 1], end = line_end(c, p);
    for (int k = 1; k < n->col && p < end; k++) {
        p++;
        while (p < end && ((unsigned char)c->src[p] & 0xc0) == 0x80)
            p++;
    }
    if (p >= end)
        return;
    const char *v = n->value;
    char ind = c->src[p];
    if (ind == '|') {
        for (size_t q = p + 1; q < end && c->src[q] != ' ' && c->src[q] != '#'; q++)
            if (c->src[q] >= '0' && c->src[q] <= '9')
                return; /* explicit indentation: keep the scalar's position */
        size_t vl = 0, lb = 0;
        for (size_t i = 0; i < off; i++)
            if (v[i] == '\n')
                vl++, lb = i + 1;
        size_t ve = lb;
        while (ve < n->len && v[ve] != '\n')
            ve++;
        /* indentation: that of the first non-blank content line */
        size_t indent = 0;
        int found = 0;
        for (size_t l = (size_t)n->line; l < c->n_lines && !found; l++) {
            size_t s = c->lines[l], e = line_end(c, s), k = 0;
            while (s + k < e && c->src[s + k] == ' ')
                k++;
            if (s + k < e) {
                indent = k;
                found = 1;
            }
        }
        size_t target = (size_t)n->line + vl; /* 0-based index of the source line */
        if (!found || target >= c->n_lines)
            return;
        size_t s = c->lines[target], e = line_end(c, s);
        if (e - s < indent + (ve - lb) || memcmp(c->src + s + indent, v + lb, ve - lb) != 0)
            return;
        *line = (int)target + 1;
        *col = (int)(indent + 1 + chars(v + lb, off - lb));
        return;
    }
    if (memchr(v, '\n', n->len))
        return;
    size_t q = p;
    int shift = 0;
    if (ind == '"' || ind == '\'') {
        q++;
        shift = 1;
    } else if (ind == '>') {
        return;
    }
    if (end - q < n->len || memcmp(c->src + q, v, n->len) != 0)
        return;
    *col = n->col + shift + (int)chars(v, off);
}

/* ---- key tables ---- */

static const char *const top_keys[] = {"name",    "description", "sender_pool", "schedule", "stop_on",
                                       "steps",   "unsubscribe", "language",    "track",    NULL};
enum { K_NAME, K_DESCRIPTION, K_SENDER_POOL, K_SCHEDULE, K_STOP_ON, K_STEPS, K_UNSUBSCRIBE, K_LANGUAGE, K_TRACK, K_TOP_N };
static const char *const unsubscribe_keys[] = {"header", "footer", NULL};
enum { K_U_HEADER, K_U_FOOTER, K_UNSUBSCRIBE_N };
static const char *const track_keys[] = {"clicks", "opens", "text_links", NULL};
enum { K_T_CLICKS, K_T_OPENS, K_T_TEXT_LINKS, K_TRACK_N };
static const char *const schedule_keys[] = {"timezone", "fallback_timezone", "window", "days", "jitter", NULL};
enum { K_TIMEZONE, K_FALLBACK, K_WINDOW, K_DAYS, K_JITTER, K_SCHEDULE_N };
static const char *const step_keys[] = {"id", "wait", "subject", "body", "html", "thread", "variants", NULL};
enum { K_ID, K_WAIT, K_SUBJECT, K_BODY, K_HTML, K_THREAD, K_VARIANTS, K_STEP_N };
static const char *const variant_keys[] = {"weight", "subject", "body", "html", NULL};
enum { K_V_WEIGHT, K_V_SUBJECT, K_V_BODY, K_V_HTML, K_VARIANT_N };

#define MAX_KEYS 9

/* The keys of one mapping: value and key nodes by table index, and which
 * missing keys an unknown key already pointed at ("did you mean"). */
struct keys {
    const struct ynode *val[MAX_KEYS], *key[MAX_KEYS];
    int hinted[MAX_KEYS];
};

static void list_keys(const char *const *known, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; known[i] && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", known[i]);
}

/* Reads a mapping's keys against known. where: "" at the top, else
 * " in schedule" and the like. */
static void read_keys(struct ctx *c, const struct ynode *map, const char *const *known, const char *where,
                      struct keys *k)
{
    memset(k, 0, sizeof *k);
    char b1[168], b2[168];
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct ynode *key = map->items[i];
        if (key->type != YNODE_SCALAR) {
            err_at(c, key, "keys must be plain names, not %s", ytree_type_name(key));
            continue;
        }
        size_t idx = 0;
        while (known[idx] && strcmp(known[idx], key->value) != 0)
            idx++;
        if (known[idx]) {
            if (k->key[idx]) {
                err_at(c, key, "duplicate key '%s'%s (first at line %d)", known[idx], where, k->key[idx]->line);
                continue;
            }
            k->key[idx] = key;
            k->val[idx] = map->items[i + 1];
            continue;
        }
        /* a key given twice and unknown both times is reported twice:
         * each is a separate mistake at its own line */
        const char *hint = ytree_suggest(key->value, known);
        if (hint) {
            for (size_t h = 0; known[h]; h++)
                if (known[h] == hint)
                    k->hinted[h] = 1;
            err_at(c, key, "unknown key '%s'%s (did you mean '%s'?)", clip(key->value, b1, sizeof b1), where,
                   hint);
        } else {
            char all[200];
            list_keys(known, all, sizeof all);
            err_at(c, key, "unknown key '%s'%s; expected one of: %s", clip(key->value, b2, sizeof b2), where,
                   all);
        }
    }
}

/* Reports a missing required key, unless an unknown key near it was
 * already reported with "did you mean". */
static void require(struct ctx *c, const struct keys *k, int idx, const char *const *known,
                    const struct ynode *where, const char *what)
{
    if (!k->val[idx] && !k->hinted[idx])
        err_at(c, where, "missing required key '%s'%s", known[idx], what);
}

/* ---- values ---- */

static int is_text(struct ctx *c, const char *key, const struct ynode *v)
{
    if (v->type != YNODE_SCALAR) {
        err_at(c, v, "'%s' must be text, not %s", key, ytree_type_name(v));
        return 0;
    }
    if (strlen(v->value) != v->len) {
        err_at(c, v, "'%s' contains a NUL character", key);
        return 0;
    }
    return 1;
}

/* The text of a required or optional string; NULL when absent, null or
 * wrong (a message is then given when required). */
static const char *text(struct ctx *c, const struct keys *k, int idx, const char *const *known, int required)
{
    const struct ynode *v = k->val[idx];
    if (!v)
        return NULL;
    if (v->type == YNODE_SCALAR && ytree_is_null(v)) {
        if (required)
            err_at(c, k->key[idx], "'%s' must not be empty", known[idx]);
        return NULL;
    }
    if (!is_text(c, known[idx], v))
        return NULL;
    if (required && v->len == 0) {
        err_at(c, v, "'%s' must not be empty", known[idx]);
        return NULL;
    }
    return v->value;
}

static char *dup(struct ctx *c, const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        c->d->nomem = 1;
    return p;
}

struct tcheck {
    struct ctx *c;
    const struct ynode *n;
    const char *what;
};

static void on_template_error(size_t offset, const char *message, void *arg)
{
    struct tcheck *t = arg;
    int line, col;
    locate(t->c, t->n, offset, &line, &col);
    sequence_diags_add(t->c->d, line, col, SEQUENCE_ERROR, "%s: %s", t->what, message);
}

static size_t count_ci(const char *s, const char *needle)
{
    size_t n = 0, l = strlen(needle);
    for (const char *p = s; *p; p++)
        if (strncasecmp(p, needle, l) == 0)
            n++;
    return n;
}

static int image_url(const char *s)
{
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", NULL};
    for (const char *p = s; *p; p++) {
        if (strncasecmp(p, "http://", 7) != 0 && strncasecmp(p, "https://", 8) != 0)
            continue;
        const char *e = p;
        while (*e && *e != ' ' && *e != '\n' && *e != '\t' && *e != '"' && *e != '\'' && *e != '>' && *e != ')' &&
               *e != '?' && *e != '#')
            e++;
        for (size_t i = 0; ext[i]; i++) {
            size_t l = strlen(ext[i]);
            if ((size_t)(e - p) > l && strncasecmp(e - l, ext[i], l) == 0)
                return 1;
        }
        p = e - 1;
    }
    return 0;
}

/* Checks a subject, body or html value (a scalar) and copies it. kind is
 * the key; owner says where ("step 'bump'", "variant 2 of step 'x'"). */
static char *content(struct ctx *c, const struct ynode *v, const char *kind, const char *owner)
{
    if (!v || (v->type == YNODE_SCALAR && ytree_is_null(v)))
        return NULL;
    if (!is_text(c, kind, v))
        return NULL;
    int subject = strcmp(kind, "subject") == 0;
    size_t max = subject ? MAX_SUBJECT_BYTES : MAX_BODY_BYTES;
    if (v->len > max) {
        err_at(c, v, "%s of %s is too long (%zu bytes; at most %zu)", kind, owner, v->len, max);
        return NULL;
    }
    if (v->len == 0) {
        err_at(c, v, "%s of %s is empty", kind, owner);
        return NULL;
    }
    char what[120];
    snprintf(what, sizeof what, "%s of %s", kind, owner);
    struct tcheck t = {c, v, what};
    size_t problems = template_check(v->value, v->len, on_template_error, &t);
    if (subject) {
        for (size_t i = 0; i < v->len; i++) {
            unsigned char ch = (unsigned char)v->value[i];
            if (ch < 0x20 || ch == 0x7f) {
                err_at(c, v, "subject of %s must be a single line of text", owner);
                problems++;
                break;
            }
        }
        size_t n = chars(v->value, v->len);
        if (n > SEQUENCE_SUBJECT_WARN)
            warn_at(c, v, "subject of %s is %zu characters long; over %d is often cut off", owner, n,
                    SEQUENCE_SUBJECT_WARN);
    } else {
        int html = strcmp(kind, "html") == 0;
        size_t links = html ? count_ci(v->value, "href=") + count_ci(v->value, "href =")
                            : count_ci(v->value, "http://") + count_ci(v->value, "https://");
        if (links > SEQUENCE_LINKS_WARN)
            warn_at(c, v, "%s of %s has %zu links; more than %d hurts deliverability of cold email", kind, owner,
                    links, SEQUENCE_LINKS_WARN);
        if (html ? count_ci(v->value, "<img") > 0 : image_url(v->value))
            warn_at(c, v, "%s of %s contains an image; images hurt deliverability of cold email", kind, owner);
    }
    if (problems)
        return NULL;
    return dup(c, v->value);
}

/* A sequence name is lower-case words joined by single '-' (the
 * database's CHECK agrees); a step id may also hold upper case and '_'. */
static int valid_name(const char *s, int allow_upper)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME)
        return 0;
    if (!allow_upper && (s[0] == '-' || s[n - 1] == '-' || strstr(s, "--")))
        return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                 (allow_upper && ((ch >= 'A' && ch <= 'Z') || ch == '_'));
        if (!ok)
            return 0;
    }
    return 1;
}

/* A zone name the tz database could hold: no "..", not absolute. */
static int zone_shape(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ZONE || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") || strstr(s, "//"))
        return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '/' ||
              ch == '_' || ch == '-' || ch == '+' || ch == '.'))
            return 0;
    }
    return 1;
}

static char *zone(struct ctx *c, const struct ynode *v, const char *key)
{
    char b[168];
    if (!zone_shape(v->value) || (c->opt && c->opt->zone_exists && !c->opt->zone_exists(v->value, c->opt->zone_arg))) {
        err_at(c, v, "%s: unknown time zone '%s' (use an IANA name such as Europe/Paris or America/New_York)", key,
               clip(v->value, b, sizeof b));
        return NULL;
    }
    return dup(c, v->value);
}

/* "HH:MM" (or "H:MM") to minutes; -1 when malformed or out of range. */
static int hhmm(const char *s, size_t n)
{
    while (n && *s == ' ')
        s++, n--;
    while (n && s[n - 1] == ' ')
        n--;
    if (n < 4 || n > 5 || s[n - 3] != ':')
        return -1;
    int h = 0;
    for (size_t i = 0; i < n - 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        h = h * 10 + (s[i] - '0');
    }
    if (s[n - 2] < '0' || s[n - 2] > '9' || s[n - 1] < '0' || s[n - 1] > '9')
        return -1;
    int m = (s[n - 2] - '0') * 10 + (s[n - 1] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0))
        return -1;
    return h * 60 + m;
}

static void read_window(struct ctx *c, const struct ynode *v, struct sequence_schedule *sc)
{
    char b[168];
    const char *s = v->value;
    const char *dash = strchr(s, '-');
    int start = dash ? hhmm(s, (size_t)(dash - s)) : -1;
    int end = dash ? hhmm(dash + 1, strlen(dash + 1)) : -1;
    if (start < 0 || end < 0) {
        err_at(c, v, "window '%s' must look like \"09:00-17:30\" (HH:MM-HH:MM, 00:00 to 24:00)",
               clip(s, b, sizeof b));
        return;
    }
    if (start == 24 * 60) {
        err_at(c, v, "window cannot start at 24:00 (24:00 is only an end)");
        return;
    }
    if (start >= end) {
        err_at(c, v, "window start %02d:%02d must be before its end %02d:%02d (a window cannot span midnight)",
               start / 60, start % 60, end / 60, end % 60);
        return;
    }
    sc->window_start = start;
    sc->window_end = end;
}

/* A list of names from table into a bit set; *out stays as is on error. */
static void read_names(struct ctx *c, const struct ynode *v, const char *key, const char *const *table, size_t n,
                       unsigned *out)
{
    char b[168], all[120];
    if (v->type != YNODE_SEQ) {
        err_at(c, v, "'%s' must be a list like [%s, %s], not %s", key, table[0], table[1], ytree_type_name(v));
        return;
    }
    const char *names[8];
    for (size_t i = 0; i < n; i++)
        names[i] = table[i];
    names[n] = NULL;
    list_keys(names, all, sizeof all);
    unsigned bits = 0;
    int bad = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct ynode *it = v->items[i];
        if (it->type != YNODE_SCALAR) {
            err_at(c, it, "'%s' entries must be names, not %s", key, ytree_type_name(it));
            bad = 1;
            continue;
        }
        size_t idx = 0;
        while (idx < n && strcmp(table[idx], it->value) != 0)
            idx++;
        if (idx == n) {
            const char *hint = ytree_suggest(it->value, names);
            if (hint)
                err_at(c, it, "unknown %s entry '%s' (did you mean '%s'?)", key, clip(it->value, b, sizeof b), hint);
            else
                err_at(c, it, "unknown %s entry '%s'; expected any of: %s", key, clip(it->value, b, sizeof b), all);
            bad = 1;
        } else if (bits & (1u << idx)) {
            err_at(c, it, "'%s' lists '%s' twice", key, table[idx]);
            bad = 1;
        } else {
            bits |= 1u << idx;
        }
    }
    if (!bad && !strcmp(key, "days") && bits == 0) {
        err_at(c, v, "'days' must name at least one day");
        return;
    }
    if (!bad)
        *out = bits;
}

static void read_schedule(struct ctx *c, const struct ynode *key, const struct ynode *v, struct sequence_schedule *sc)
{
    sc->contact_zone = 1;
    sc->days = SEQUENCE_DAYS_WEEKDAYS;
    sc->jitter = 600;
    if (v->type != YNODE_MAP) {
        err_at(c, v, "'schedule' must be a mapping (timezone, fallback_timezone, window, days, jitter), not %s",
               ytree_type_name(v));
        return;
    }
    struct keys k;
    read_keys(c, v, schedule_keys, " in schedule", &k);
    require(c, &k, K_WINDOW, schedule_keys, key, " in schedule");

    const char *tz = text(c, &k, K_TIMEZONE, schedule_keys, 0);
    if (tz && strcmp(tz, "contact") != 0) {
        sc->contact_zone = 0;
        sc->timezone = zone(c, k.val[K_TIMEZONE], "timezone");
    }
    const char *fb = text(c, &k, K_FALLBACK, schedule_keys, 0);
    if (fb)
        sc->fallback_timezone = zone(c, k.val[K_FALLBACK], "fallback_timezone");
    else if (sc->contact_zone && !k.val[K_FALLBACK] && !k.hinted[K_FALLBACK])
        err_at(c, k.key[K_TIMEZONE] ? k.key[K_TIMEZONE] : key,
               "missing 'fallback_timezone' in schedule: it is required with timezone: contact%s, for contacts "
               "without a zone",
               k.key[K_TIMEZONE] ? "" : " (the default)");
    else if (sc->contact_zone && k.val[K_FALLBACK])
        err_at(c, k.key[K_FALLBACK], "'fallback_timezone' must not be empty with timezone: contact");

    const char *w = text(c, &k, K_WINDOW, schedule_keys, 1);
    if (w)
        read_window(c, k.val[K_WINDOW], sc);

    if (k.val[K_DAYS] && !ytree_is_null(k.val[K_DAYS]))
        read_names(c, k.val[K_DAYS], "days", sequence_day_names, 7, &sc->days);

    const char *j = text(c, &k, K_JITTER, schedule_keys, 0);
    if (j) {
        struct duration d;
        char why[200];
        if (duration_parse(j, &d, why, sizeof why) < 0)
            err_at(c, k.val[K_JITTER], "jitter: %s", why);
        else if (!duration_is_elapsed(&d))
            err_at(c, k.val[K_JITTER], "jitter must be in seconds, minutes or hours, not days");
        else if (d.seconds > 12 * 3600)
            err_at(c, k.val[K_JITTER], "jitter must be at most 12h");
        else
            sc->jitter = d.seconds;
    }
}

static int read_bool(struct ctx *c, const struct ynode *v, const char *key, int *out)
{
    if (v->type == YNODE_SCALAR && (!strcasecmp(v->value, "true") || !strcasecmp(v->value, "yes"))) {
        *out = 1;
        return 0;
    }
    if (v->type == YNODE_SCALAR && (!strcasecmp(v->value, "false") || !strcasecmp(v->value, "no"))) {
        *out = 0;
        return 0;
    }
    char b[168];
    if (v->type == YNODE_SCALAR)
        err_at(c, v, "'%s' must be true or false, not '%s'", key, clip(v->value, b, sizeof b));
    else
        err_at(c, v, "'%s' must be true or false, not %s", key, ytree_type_name(v));
    return -1;
}

static void read_variant(struct ctx *c, const struct ynode *v, size_t i, const char *step_name,
                         struct sequence_variant *var)
{
    char owner[160];
    snprintf(owner, sizeof owner, "variant %zu of %s", i + 1, step_name);
    var->line = v->line;
    if (v->type != YNODE_MAP) {
        err_at(c, v, "%s must be a mapping (weight, subject, body, html), not %s", owner, ytree_type_name(v));
        return;
    }
    char where[180];
    snprintf(where, sizeof where, " in %s", owner);
    struct keys k;
    read_keys(c, v, variant_keys, where, &k);
    require(c, &k, K_V_WEIGHT, variant_keys, v, where);
    const struct ynode *w = k.val[K_V_WEIGHT];
    if (w) {
        char b[168];
        int ok = w->type == YNODE_SCALAR && w->len > 0 && w->len <= 7;
        long n = 0;
        for (size_t j = 0; ok && j < w->len; j++) {
            ok = w->value[j] >= '0' && w->value[j] <= '9';
            n = n * 10 + (w->value[j] - '0');
        }
        if (!ok || n < 1 || n > MAX_WEIGHT) {
            if (w->type == YNODE_SCALAR)
                err_at(c, w, "weight must be a whole number from 1 to %d, not '%s'", MAX_WEIGHT,
                       clip(w->value, b, sizeof b));
            else
                err_at(c, w, "weight must be a whole number from 1 to %d, not %s", MAX_WEIGHT,
                       ytree_type_name(w));
        } else {
            var->weight = (int)n;
        }
    }
    var->subject = content(c, k.val[K_V_SUBJECT], "subject", owner);
    var->body = content(c, k.val[K_V_BODY], "body", owner);
    var->html = content(c, k.val[K_V_HTML], "html", owner);
}

static void read_step(struct ctx *c, const struct ynode *v, size_t idx, struct sequence *seq, struct keys *k)
{
    struct sequence_step *st = &seq->steps[idx];
    char name[100], b[64];
    st->line = v->line;
    snprintf(name, sizeof name, "step %zu", idx + 1);
    if (v->type != YNODE_MAP) {
        err_at(c, v, "each step must be a mapping (id, wait, subject, body, ...), not %s", ytree_type_name(v));
        memset(k, 0, sizeof *k);
        return;
    }
    /* name the step by its id in messages about its keys, when it has one */
    const struct ynode *idn = ytree_get(v, "id");
    if (idn && idn->type == YNODE_SCALAR && valid_name(idn->value, 1))
        snprintf(name, sizeof name, "step '%s'", idn->value);
    char where[110];
    snprintf(where, sizeof where, " in %s", name);
    read_keys(c, v, step_keys, where, k);
    require(c, k, K_ID, step_keys, v, " in step");
    const char *id = text(c, k, K_ID, step_keys, 1);
    if (id) {
        if (!valid_name(id, 1)) {
            err_at(c, k->val[K_ID], "step id '%s' may only hold letters, digits, '-' and '_' (at most %d)",
                   clip(id, b, sizeof b), MAX_NAME);
        } else {
            snprintf(name, sizeof name, "step '%s'", id);
            for (size_t j = 0; j < idx; j++) {
                if (seq->steps[j].id && strcmp(seq->steps[j].id, id) == 0) {
                    err_at(c, k->val[K_ID], "duplicate step id '%s' (first at line %d)", id, seq->steps[j].line);
                    break;
                }
            }
            st->id = dup(c, id);
        }
    }

    const struct ynode *wait = k->val[K_WAIT];
    if (idx == 0 && wait) {
        err_at(c, k->key[K_WAIT], "the first step takes no 'wait': it goes out at enrollment, inside the window");
    } else if (idx > 0 && !wait && !k->hinted[K_WAIT]) {
        err_at(c, v, "%s needs a 'wait' (how long after the previous step)", name);
    } else if (idx > 0 && wait) {
        const char *w = text(c, k, K_WAIT, step_keys, 1);
        char why[200];
        if (w && duration_parse(w, &st->wait, why, sizeof why) < 0)
            err_at(c, wait, "wait: %s", why);
    }

    st->subject = content(c, k->val[K_SUBJECT], "subject", name);
    st->body = content(c, k->val[K_BODY], "body", name);
    st->html = content(c, k->val[K_HTML], "html", name);

    st->thread = idx > 0;
    if (k->val[K_THREAD] && read_bool(c, k->val[K_THREAD], "thread", &st->thread) == 0 && idx == 0 && st->thread)
        err_at(c, k->val[K_THREAD], "the first step starts the thread; 'thread: true' is for follow-ups");
    if (idx == 0)
        st->thread = 0;

    const struct ynode *vs = k->val[K_VARIANTS];
    if (!vs || (vs->type == YNODE_SCALAR && ytree_is_null(vs)))
        return;
    if (vs->type != YNODE_SEQ) {
        err_at(c, vs, "'variants' must be a list of {weight, subject, body}, not %s", ytree_type_name(vs));
        return;
    }
    if (vs->n == 0) {
        err_at(c, vs, "'variants' must list at least one variant");
        return;
    }
    if (vs->n > SEQUENCE_MAX_VARIANTS) {
        err_at(c, vs, "too many variants (%zu; at most %d)", vs->n, SEQUENCE_MAX_VARIANTS);
        return;
    }
    st->variants = calloc(vs->n, sizeof *st->variants);
    if (!st->variants) {
        c->d->nomem = 1;
        return;
    }
    st->n_variants = vs->n;
    for (size_t i = 0; i < vs->n; i++)
        read_variant(c, vs->items[i], i, name, &st->variants[i]);
}

/* The rules that look at a step and its variants together, after both
 * are read: a body somewhere, the first subject, threading. Variants get
 * their resolved content here. */
static void finish_step(struct ctx *c, const struct ynode *v, size_t idx, struct sequence_step *st,
                        const struct keys *k)
{
    if (v->type != YNODE_MAP)
        return;
    char name[100];
    if (st->id)
        snprintf(name, sizeof name, "step '%s'", st->id);
    else
        snprintf(name, sizeof name, "step %zu", idx + 1);
    int body_given = k->val[K_BODY] && !ytree_is_null(k->val[K_BODY]);
    int subject_given = k->val[K_SUBJECT] && !ytree_is_null(k->val[K_SUBJECT]);
    const struct ynode *vs = k->val[K_VARIANTS];

    if (!st->n_variants) {
        if (!body_given && !k->hinted[K_BODY] && !k->val[K_BODY])
            err_at(c, v, "%s needs a 'body' (or 'variants' that each have one)", name);
        else if (!body_given && k->val[K_BODY])
            err_at(c, k->key[K_BODY], "'body' of %s must not be empty", name);
        if (idx == 0 && !subject_given && !k->hinted[K_SUBJECT])
            err_at(c, v, "the first step needs a 'subject'");
    } else {
        for (size_t i = 0; i < st->n_variants && vs && i < vs->n; i++) {
            const struct ynode *vn = vs->items[i];
            struct sequence_variant *var = &st->variants[i];
            if (vn->type != YNODE_MAP)
                continue;
            const struct ynode *vb = ytree_get(vn, "body"), *vsub = ytree_get(vn, "subject");
            const struct ynode *vh = ytree_get(vn, "html");
            int vbody = vb && !ytree_is_null(vb), vsubject = vsub && !ytree_is_null(vsub);
            if (!vbody && !body_given)
                err_at(c, vn, "variant %zu of %s needs a 'body' (the step has none)", i + 1, name);
            if (idx == 0 && !vsubject && !subject_given)
                err_at(c, vn, "variant %zu of the first step needs a 'subject' (the step has none)", i + 1);
            if (!var->subject && !vsubject)
                var->subject = dup(c, st->subject);
            if (!var->body && !vbody) {
                var->body = dup(c, st->body);
                if (!var->html && !(vh && !ytree_is_null(vh)))
                    var->html = dup(c, st->html);
            }
            if (idx > 0 && !st->thread && !vsubject && !subject_given)
                err_at(c, vn, "variant %zu of %s has no 'subject' but %s has thread: false; a new thread needs a "
                              "subject",
                       i + 1, name, name);
        }
    }
    if (idx > 0 && !st->thread && !st->n_variants && !subject_given && k->val[K_THREAD])
        err_at(c, k->val[K_THREAD], "%s has thread: false but no 'subject'; a new thread needs a subject", name);
}

int sequence_uses_unsubscribe_url(const char *src)
{
    static const char field[] = "unsubscribe_url";
    for (const char *p = src ? strstr(src, "{{") : NULL; p; p = strstr(p + 2, "{{")) {
        const char *f = p + 2;
        f += strspn(f, " \t");
        if (strncmp(f, field, sizeof field - 1) != 0)
            continue;
        f += sizeof field - 1;
        f += strspn(f, " \t");
        if (*f == '}' || *f == '|')
            return 1;
    }
    return 0;
}

/* unsubscribe: {header: true|false, footer: TEMPLATE} */
static void read_unsubscribe(struct ctx *c, const struct ynode *v, struct sequence *seq)
{
    if (v->type != YNODE_MAP) {
        err_at(c, v, "'unsubscribe' must be a mapping with 'header' and/or 'footer', not %s", ytree_type_name(v));
        return;
    }
    struct keys k;
    read_keys(c, v, unsubscribe_keys, " in unsubscribe", &k);
    if (k.val[K_U_HEADER])
        (void)read_bool(c, k.val[K_U_HEADER], "header", &seq->unsubscribe_header);
    const struct ynode *f = k.val[K_U_FOOTER];
    if (f && !(f->type == YNODE_SCALAR && ytree_is_null(f))) {
        seq->unsubscribe_footer = content(c, f, "footer", "unsubscribe");
        if (seq->unsubscribe_footer && !sequence_uses_unsubscribe_url(seq->unsubscribe_footer))
            warn_at(c, f, "the unsubscribe footer has no {{unsubscribe_url}}: the prospect sees no link to opt out");
    }
}

/* track: {clicks, opens, text_links}, each true or false (default all
 * off). What it turns on is only recorded: no stop, branch or score ever
 * reads an open or a click. */
static void read_track(struct ctx *c, const struct ynode *v, struct sequence *seq)
{
    if (v->type != YNODE_MAP) {
        err_at(c, v, "'track' must be a mapping with 'clicks' and/or 'opens', not %s", ytree_type_name(v));
        return;
    }
    struct keys k;
    read_keys(c, v, track_keys, " in track", &k);
    if (k.val[K_T_CLICKS])
        (void)read_bool(c, k.val[K_T_CLICKS], "clicks", &seq->track_clicks);
    if (k.val[K_T_OPENS])
        (void)read_bool(c, k.val[K_T_OPENS], "opens", &seq->track_opens);
    if (k.val[K_T_TEXT_LINKS] && read_bool(c, k.val[K_T_TEXT_LINKS], "text_links", &seq->track_text_links) == 0 &&
        seq->track_text_links && !seq->track_clicks)
        warn_at(c, k.val[K_T_TEXT_LINKS], "text_links does nothing without clicks: true");
}

/* language: a BCP 47 tag's shape ("fr", "en-GB"); the confirmation page
 * of a one-click unsubscribe speaks it where relance has it. */
static void read_language(struct ctx *c, const struct ynode *v, struct sequence *seq)
{
    char b[168];
    if (!is_text(c, "language", v))
        return;
    const char *s = v->value;
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    int ok = n >= 2 && n <= 3;
    for (const char *p = s + n; ok && *p;) {
        size_t m = *p == '-' ? strspn(p + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") : 0;
        ok = m >= 1 && m <= 8;
        p += 1 + m;
    }
    if (!ok) {
        err_at(c, v, "language '%s' must be a language tag such as en, fr or en-GB", clip(s, b, sizeof b));
        return;
    }
    seq->language = dup(c, s);
}

const char *sequence_step_without_opt_out(const struct sequence *seq)
{
    if (seq->unsubscribe_footer)
        return NULL;
    for (size_t i = 0; i < seq->n_steps; i++) {
        const struct sequence_step *st = &seq->steps[i];
        int has = sequence_uses_unsubscribe_url(st->body) || sequence_uses_unsubscribe_url(st->html);
        for (size_t j = 0; j < st->n_variants; j++)
            has = has && (sequence_uses_unsubscribe_url(st->variants[j].body) ||
                          sequence_uses_unsubscribe_url(st->variants[j].html));
        if (!has)
            return st->id ? st->id : "?";
    }
    return NULL;
}

static void read_top(struct ctx *c, const struct ynode *root, struct sequence *seq)
{
    struct keys k;
    char b[168];
    read_keys(c, root, top_keys, "", &k);
    for (int i = 0; i < K_TOP_N; i++)
        if (i == K_NAME || i == K_SENDER_POOL || i == K_SCHEDULE || i == K_STEPS)
            require(c, &k, i, top_keys, root, "");

    seq->stop_on = SEQUENCE_STOP_DEFAULT;
    seq->unsubscribe_header = 1;
    seq->schedule.contact_zone = 1;
    seq->schedule.days = SEQUENCE_DAYS_WEEKDAYS;
    seq->schedule.jitter = 600;

    const char *name = text(c, &k, K_NAME, top_keys, 1);
    if (name) {
        if (!valid_name(name, 0))
            err_at(c, k.val[K_NAME], "name '%s' must be lower-case letters and digits, words joined by '-' (at most %d)",
                   clip(name, b, sizeof b), MAX_NAME);
        else
            seq->name = dup(c, name);
        seq->name_line = k.val[K_NAME]->line;
        seq->name_col = k.val[K_NAME]->col;
    }
    const char *desc = text(c, &k, K_DESCRIPTION, top_keys, 0);
    if (desc && strlen(desc) > MAX_DESCRIPTION_BYTES)
        err_at(c, k.val[K_DESCRIPTION], "description is too long (at most %d bytes)", MAX_DESCRIPTION_BYTES);
    else
        seq->description = dup(c, desc);

    const char *pool = text(c, &k, K_SENDER_POOL, top_keys, 1);
    if (pool) {
        seq->sender_pool = dup(c, pool);
        seq->pool_line = k.val[K_SENDER_POOL]->line;
        seq->pool_col = k.val[K_SENDER_POOL]->col;
        const char *const *pools = c->opt ? c->opt->pools : NULL;
        if (pools) {
            int known = 0;
            for (size_t i = 0; pools[i] && !known; i++)
                known = strcmp(pools[i], pool) == 0;
            if (!known) {
                const char *hint = ytree_suggest(pool, (const char *const *)pools);
                if (hint)
                    warn_at(c, k.val[K_SENDER_POOL],
                            "sender_pool '%s' is not a pool in the configuration (did you mean '%s'?)",
                            clip(pool, b, sizeof b), hint);
                else
                    warn_at(c, k.val[K_SENDER_POOL], "sender_pool '%s' is not a pool in the configuration",
                            clip(pool, b, sizeof b));
            }
        }
    }

    if (k.val[K_SCHEDULE])
        read_schedule(c, k.key[K_SCHEDULE], k.val[K_SCHEDULE], &seq->schedule);

    const struct ynode *so = k.val[K_STOP_ON];
    if (so && !ytree_is_null(so))
        read_names(c, so, "stop_on", sequence_stop_names, 4, &seq->stop_on);
    if (k.val[K_UNSUBSCRIBE] && !ytree_is_null(k.val[K_UNSUBSCRIBE]))
        read_unsubscribe(c, k.val[K_UNSUBSCRIBE], seq);
    if (k.val[K_LANGUAGE] && !ytree_is_null(k.val[K_LANGUAGE]))
        read_language(c, k.val[K_LANGUAGE], seq);
    if (k.val[K_TRACK] && !ytree_is_null(k.val[K_TRACK])) {
        seq->track_line = k.val[K_TRACK]->line;
        seq->track_col = k.val[K_TRACK]->col;
        read_track(c, k.val[K_TRACK], seq);
    }

    const struct ynode *steps = k.val[K_STEPS];
    if (!steps)
        return;
    if (steps->type != YNODE_SEQ || steps->n == 0) {
        if (steps->type == YNODE_SEQ || ytree_is_null(steps))
            err_at(c, steps->type == YNODE_SEQ ? steps : k.key[K_STEPS], "'steps' must list at least one step");
        else
            err_at(c, steps, "'steps' must be a list of steps, not %s", ytree_type_name(steps));
        return;
    }
    if (steps->n > SEQUENCE_MAX_STEPS) {
        err_at(c, steps, "too many steps (%zu; at most %d)", steps->n, SEQUENCE_MAX_STEPS);
        return;
    }
    seq->steps = calloc(steps->n, sizeof *seq->steps);
    struct keys *sk = calloc(steps->n, sizeof *sk);
    if (!seq->steps || !sk) {
        free(sk);
        c->d->nomem = 1;
        return;
    }
    seq->n_steps = steps->n;
    for (size_t i = 0; i < steps->n; i++)
        read_step(c, steps->items[i], i, seq, &sk[i]);
    for (size_t i = 0; i < steps->n; i++)
        finish_step(c, steps->items[i], i, &seq->steps[i], &sk[i]);
    free(sk);
}

int sequence_parse(const char *file, const char *buf, size_t len, const struct sequence_options *opt,
                   struct sequence **out, struct sequence_diags *diags)
{
    struct ctx c = {buf, len, opt, diags, NULL, 0, 0};
    struct ynode *root = NULL;
    struct sequence *seq = NULL;
    struct yerror yerr;

    *out = NULL;
    memset(diags, 0, sizeof *diags);
    diags->file = strdup(file ? file : "-");
    if (!diags->file)
        diags->nomem = 1;
    if (len > SEQUENCE_MAX_BYTES) {
        sequence_diags_add(diags, 1, 1, SEQUENCE_ERROR, "file too large (%zu bytes; a sequence file is at most %d)",
                           len, SEQUENCE_MAX_BYTES);
        goto fail;
    }
    if (ytree_parse(buf, len, &root, &yerr) < 0) {
        sequence_diags_add(diags, yerr.line, yerr.col, SEQUENCE_ERROR, "%s", yerr.msg);
        goto fail;
    }
    if (!root) {
        sequence_diags_add(diags, 1, 1, SEQUENCE_ERROR,
                           "the file is empty; a sequence needs name, sender_pool, schedule and steps");
        goto fail;
    }
    if (root->type != YNODE_MAP) {
        err_at(&c, root, "a sequence file must be a mapping of keys (name, sender_pool, schedule, steps), not %s",
               ytree_type_name(root));
        goto fail;
    }
    seq = calloc(1, sizeof *seq);
    if (!seq) {
        diags->nomem = 1;
        goto fail;
    }
    read_top(&c, root, seq);
fail:
    if (diags->errors + diags->warnings > diags->n && diags->n > 0) {
        /* the list is full: say so once, after the last shown problem */
        struct sequence_diag *last = &diags->items[diags->n - 1];
        snprintf(last->message, sizeof last->message, "too many problems (%zu); fix these first",
                 diags->errors + diags->warnings);
        last->severity = SEQUENCE_ERROR;
    }
    if (diags->nomem && diags->n == 0)
        sequence_diags_add(diags, 1, 1, SEQUENCE_ERROR, "out of memory");
    ytree_free(root);
    free(c.lines);
    if (diags->errors || diags->nomem) {
        sequence_free(seq);
        return -1;
    }
    *out = seq;
    return 0;
}

static void free_step(struct sequence_step *st)
{
    free(st->id);
    free(st->subject);
    free(st->body);
    free(st->html);
    for (size_t j = 0; j < st->n_variants; j++) {
        free(st->variants[j].subject);
        free(st->variants[j].body);
        free(st->variants[j].html);
    }
    free(st->variants);
}

void sequence_free(struct sequence *seq)
{
    if (!seq)
        return;
    for (size_t i = 0; i < seq->n_steps; i++)
        free_step(&seq->steps[i]);
    free(seq->steps);
    free(seq->name);
    free(seq->description);
    free(seq->sender_pool);
    free(seq->schedule.timezone);
    free(seq->schedule.fallback_timezone);
    free(seq->unsubscribe_footer);
    free(seq->language);
    free(seq);
}

/* ---- canonical JSON (json.c escapes the strings; its output for a
 * given input never changes, since sequence_hash hashes this text) ---- */

static void jkey(struct buf *b, const char *key, int first)
{
    if (!first)
        buf_add(b, ",", 1);
    json_add_string(b, key);
    buf_add(b, ":", 1);
}

static void jbits(struct buf *b, unsigned bits, const char *const *names, size_t n)
{
    buf_add(b, "[", 1);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!(bits & (1u << i)))
            continue;
        if (!first)
            buf_add(b, ",", 1);
        json_add_string(b, names[i]);
        first = 0;
    }
    buf_add(b, "]", 1);
}

static void jcontent(struct buf *b, const char *subject, const char *body, const char *html)
{
    jkey(b, "subject", 0);
    json_add_string(b, subject);
    jkey(b, "body", 0);
    json_add_string(b, body);
    jkey(b, "html", 0);
    json_add_string(b, html);
}

char *sequence_to_json(const struct sequence *seq)
{
    struct buf b = {0};
    const struct sequence_schedule *sc = &seq->schedule;
    char dur[96];

    buf_add(&b, "{", 1);
    jkey(&b, "format", 1);
    buf_adds(&b, "1");
    jkey(&b, "name", 0);
    json_add_string(&b, seq->name);
    jkey(&b, "description", 0);
    json_add_string(&b, seq->description);
    jkey(&b, "sender_pool", 0);
    json_add_string(&b, seq->sender_pool);
    jkey(&b, "schedule", 0);
    buf_add(&b, "{", 1);
    jkey(&b, "timezone", 1);
    json_add_string(&b, sc->contact_zone ? "contact" : sc->timezone);
    jkey(&b, "fallback_timezone", 0);
    json_add_string(&b, sc->fallback_timezone);
    jkey(&b, "window", 0);
    buf_addf(&b, "{\"start\":\"%02d:%02d\",\"end\":\"%02d:%02d\",\"start_minute\":%d,\"end_minute\":%d}",
             sc->window_start / 60, sc->window_start % 60, sc->window_end / 60, sc->window_end % 60,
             sc->window_start, sc->window_end);
    jkey(&b, "days", 0);
    jbits(&b, sc->days, sequence_day_names, 7);
    jkey(&b, "jitter_seconds", 0);
    buf_addf(&b, "%lld", (long long)sc->jitter);
    buf_add(&b, "}", 1);
    jkey(&b, "stop_on", 0);
    jbits(&b, seq->stop_on, sequence_stop_names, 4);
    /* only when set: the hash of a sequence without them stays as it was */
    if (!seq->unsubscribe_header || seq->unsubscribe_footer) {
        jkey(&b, "unsubscribe", 0);
        buf_addf(&b, "{\"header\":%s", seq->unsubscribe_header ? "true" : "false");
        jkey(&b, "footer", 0);
        json_add_string(&b, seq->unsubscribe_footer);
        buf_add(&b, "}", 1);
    }
    if (seq->language) {
        jkey(&b, "language", 0);
        json_add_string(&b, seq->language);
    }
    if (seq->track_clicks || seq->track_opens || seq->track_text_links) {
        jkey(&b, "track", 0);
        buf_addf(&b, "{\"clicks\":%s,\"opens\":%s,\"text_links\":%s}", seq->track_clicks ? "true" : "false",
                 seq->track_opens ? "true" : "false", seq->track_text_links ? "true" : "false");
    }
    jkey(&b, "steps", 0);
    buf_add(&b, "[", 1);
    for (size_t i = 0; i < seq->n_steps; i++) {
        const struct sequence_step *st = &seq->steps[i];
        if (i)
            buf_add(&b, ",", 1);
        buf_add(&b, "{", 1);
        jkey(&b, "id", 1);
        json_add_string(&b, st->id);
        jkey(&b, "wait", 0);
        duration_format(&st->wait, dur, sizeof dur);
        buf_add(&b, "{", 1);
        jkey(&b, "text", 1);
        json_add_string(&b, dur);
        buf_addf(&b, ",\"seconds\":%lld,\"days\":%d,\"business_days\":%d}", (long long)st->wait.seconds,
                 (int)st->wait.days, (int)st->wait.business_days);
        jcontent(&b, st->subject, st->body, st->html);
        jkey(&b, "thread", 0);
        buf_adds(&b, st->thread ? "true" : "false");
        jkey(&b, "variants", 0);
        buf_add(&b, "[", 1);
        for (size_t j = 0; j < st->n_variants; j++) {
            const struct sequence_variant *v = &st->variants[j];
            if (j)
                buf_add(&b, ",", 1);
            buf_addf(&b, "{\"weight\":%d", v->weight);
            jcontent(&b, v->subject, v->body, v->html);
            buf_add(&b, "}", 1);
        }
        buf_add(&b, "]}", 2);
    }
    buf_add(&b, "]}", 2);
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

int sequence_hash(const struct sequence *seq, char hex[65])
{
    char *json = sequence_to_json(seq);
    if (!json)
        return -1;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)json, strlen(json), md);
    free(json);
    for (size_t i = 0; i < sizeof md; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int sequence_variant_choose(const struct sequence_step *step, uint64_t seed)
{
    if (!step->n_variants)
        return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < step->n_variants; i++)
        total += (uint64_t)step->variants[i].weight;
    if (total == 0)
        return 0;
    /* a different mix than spintax's, so the two choices are unrelated */
    uint64_t x = seed ^ 0x5851f42d4c957f2dULL;
    x = (x ^ (x >> 33)) * 0xff51afd7ed558ccdULL;
    x = (x ^ (x >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    uint64_t r = x % total;
    for (size_t i = 0; i < step->n_variants; i++) {
        if (r < (uint64_t)step->variants[i].weight)
            return (int)i;
        r -= (uint64_t)step->variants[i].weight;
    }
    return (int)step->n_variants - 1;
}

const struct sequence_step *sequence_step_find(const struct sequence *seq, const char *id)
{
    for (size_t i = 0; i < seq->n_steps; i++)
        if (seq->steps[i].id && strcmp(seq->steps[i].id, id) == 0)
            return &seq->steps[i];
    return NULL;
}
