/* csv: the RFC 4180 reader (see csv.h for the dialect).
 *
 * It owns the byte-level state machine, line counting, the size limits,
 * the UTF-8 check of every field and the resynchronisation after a broken
 * record. It does no I/O, never logs and knows nothing of what the columns
 * mean: the contact import and `enroll --csv` give the fields a meaning.
 *
 * Resynchronisation: the reader keeps the raw bytes of the record being
 * read (bounded by max_record). When a record breaks after it crossed a
 * line break, the bytes after its first line are read again ("replayed")
 * before the rest of the input, so a stray opening quote costs one line,
 * not the rest of the file. Each replay starts strictly later in the
 * input than the one before, so the reader always ends. */
#include "csv.h"

#include "utf8.h"

#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum state {
    S_BOM,          /* at the very start: maybe a byte order mark */
    S_RECORD_START, /* between records (blank lines are skipped here) */
    S_FIELD_START,  /* after a delimiter */
    S_BARE,         /* inside an unquoted field */
    S_QUOTED,       /* inside a quoted field */
    S_QUOTE_SEEN,   /* a quote inside a quoted field: "" or the end */
    S_SKIP,         /* a broken record: skipping to the end of its line */
};

static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

struct csv_reader {
    struct csv_limits lim;
    char delim;
    enum state state;
    int finished, failed;
    unsigned bom_seen;

    const char *in; /* the caller's chunk */
    size_t in_len, in_pos;
    struct buf replay; /* read before the rest of `in` */
    size_t replay_pos;
    unsigned long long offset;

    unsigned long line; /* the line of the next byte */
    int after_cr;       /* the last byte counted was CR (a following LF is the same break) */

    /* The record being read. */
    unsigned long start_line, quote_line;
    struct buf raw;     /* its bytes as written */
    struct buf buf;     /* its fields, each NUL-terminated */
    size_t field_start; /* offset of the current field in buf */
    size_t *starts, *lens;
    char **ptrs;
    size_t n_fields, cap_fields;
    const char *error;
    unsigned long error_line;

    int ready;   /* a record is complete and waits to be returned */
    int yielded; /* the last call returned a record: clear it first */
};

struct csv_reader *csv_reader_new(const struct csv_limits *limits)
{
    struct csv_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (limits)
        r->lim = *limits;
    if (!r->lim.max_field)
        r->lim.max_field = CSV_MAX_FIELD_DEFAULT;
    if (!r->lim.max_record)
        r->lim.max_record = CSV_MAX_RECORD_DEFAULT;
    if (!r->lim.max_fields)
        r->lim.max_fields = CSV_MAX_FIELDS_DEFAULT;
    r->delim = ',';
    r->state = S_BOM;
    r->line = 1;
    return r;
}

int csv_reader_delimiter(struct csv_reader *r, char delimiter)
{
    if (delimiter == '\0' || !strchr(CSV_DELIMITERS, delimiter))
        return -EINVAL;
    r->delim = delimiter;
    return 0;
}

char csv_delimiter_detect(const char *data, size_t len)
{
    static const char cand[] = CSV_DELIMITERS;
    size_t count[sizeof cand - 1] = {0}, i = 0;
    int quoted = 0;
    if (len >= 3 && memcmp(data, bom_bytes, 3) == 0)
        i = 3;
    for (; i < len; i++) {
        char c = data[i];
        if (c == '"') {
            quoted = !quoted; /* "" inside quotes toggles twice: still quoted */
            continue;
        }
        if (quoted)
            continue;
        if (c == '\n' || c == '\r')
            break;
        const char *hit = strchr(cand, c);
        if (c != '\0' && hit)
            count[hit - cand]++;
    }
    size_t best = 0;
    for (size_t k = 1; k < sizeof count / sizeof count[0]; k++) {
        if (count[k] > count[best])
            best = k;
    }
    return cand[best];
}

int csv_delimiter_parse(const char *s)
{
    if (strcmp(s, "\\t") == 0 || strcasecmp(s, "tab") == 0)
        return '\t';
    if (s[0] != '\0' && s[1] == '\0' && strchr(CSV_DELIMITERS, s[0]))
        return (unsigned char)s[0];
    return -EINVAL;
}

void csv_reader_free(struct csv_reader *r)
{
    if (!r)
        return;
    free(r->replay.p);
    free(r->raw.p);
    free(r->buf.p);
    free(r->starts);
    free(r->lens);
    free(r->ptrs);
    free(r);
}

void csv_reader_feed(struct csv_reader *r, const char *data, size_t len)
{
    r->in = data;
    r->in_len = len;
    r->in_pos = 0;
}

void csv_reader_finish(struct csv_reader *r)
{
    r->finished = 1;
}

unsigned long long csv_reader_offset(const struct csv_reader *r)
{
    return r->offset;
}

/* Appends c to b: 0, or -ENOMEM. */
static int put(struct buf *b, char c)
{
    buf_addc(b, c);
    return b->oom ? -ENOMEM : 0;
}

/* Puts p[0..n) in front of the bytes still to be replayed. */
static int replay_prepend(struct csv_reader *r, const char *p, size_t n)
{
    size_t rest = r->replay.len - r->replay_pos;
    struct buf nb = {0};
    buf_add(&nb, p, n);
    if (rest)
        buf_add(&nb, r->replay.p + r->replay_pos, rest);
    if (nb.oom) {
        buf_free(&nb);
        return -ENOMEM;
    }
    buf_free(&r->replay);
    r->replay = nb;
    r->replay_pos = 0;
    return 0;
}

static void record_reset(struct csv_reader *r)
{
    buf_clear(&r->raw);
    buf_clear(&r->buf);
    r->field_start = 0;
    r->n_fields = 0;
    r->error = NULL;
    r->error_line = 0;
}

static int field_begin(struct csv_reader *r)
{
    if (r->n_fields >= r->lim.max_fields)
        return 1;
    r->field_start = r->buf.len;
    return 0;
}

/* Closes the current field: 0, or -ENOMEM. */
static int field_end(struct csv_reader *r)
{
    if (r->n_fields == r->cap_fields) {
        size_t cap = r->cap_fields ? 2 * r->cap_fields : 16;
        size_t *s = realloc(r->starts, cap * sizeof *s);
        if (!s)
            return -ENOMEM;
        r->starts = s;
        size_t *l = realloc(r->lens, cap * sizeof *l);
        if (!l)
            return -ENOMEM;
        r->lens = l;
        char **p = realloc(r->ptrs, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        r->ptrs = p;
        r->cap_fields = cap;
    }
    r->starts[r->n_fields] = r->field_start;
    r->lens[r->n_fields] = r->buf.len - r->field_start;
    r->n_fields++;
    return put(&r->buf, '\0');
}

static int field_put(struct csv_reader *r, char c)
{
    if (r->buf.len - r->field_start >= r->lim.max_field)
        return 1;
    return put(&r->buf, c);
}

/* Strict UTF-8 (utf8.c) and no NUL: fields are C strings. */
static int field_ok(const char *s, size_t n)
{
    return !memchr(s, '\0', n) && utf8_valid(s, n);
}

/* The current record is complete: check its text and mark it ready. */
static void record_done(struct csv_reader *r)
{
    r->state = S_RECORD_START;
    r->ready = 1;
    if (r->error)
        return;
    for (size_t i = 0; i < r->n_fields; i++) {
        if (!field_ok(r->buf.p + r->starts[i], r->lens[i])) {
            r->error = memchr(r->buf.p + r->starts[i], '\0', r->lens[i]) ? "NUL byte in a field"
                                                                          : "invalid UTF-8 (the file must be UTF-8)";
            r->error_line = r->start_line;
            return;
        }
    }
}

/* The record is broken at a byte seen on line `at`. If the record still
 * lies on its first line, skip to the end of that line; otherwise yield
 * the error now and read again everything after the record's first line.
 * `b` is the byte that broke it (already in raw), or -1 at end of input. */
static int record_fail(struct csv_reader *r, const char *why, unsigned long at, int b)
{
    r->error = why;
    r->error_line = at;
    if (at == r->start_line && b != -1) {
        r->state = S_SKIP;
        if (b == '\n' || b == '\r')
            record_done(r);
        return 0;
    }
    size_t i = 0;
    while (i < r->raw.len && r->raw.p[i] != '\n' && r->raw.p[i] != '\r')
        i++;
    if (i < r->raw.len) {
        r->after_cr = r->raw.p[i] == '\r';
        r->line = r->start_line + 1;
        i++;
        if (replay_prepend(r, r->raw.p + i, r->raw.len - i) < 0)
            return -ENOMEM;
    }
    record_done(r);
    return 0;
}

static int step(struct csv_reader *r, unsigned char b)
{
    if (r->state == S_BOM) {
        if (b == bom_bytes[r->bom_seen]) {
            r->bom_seen++;
            if (r->bom_seen == 3)
                r->state = S_RECORD_START;
            return 0;
        }
        /* Not a BOM: read the bytes taken so far (and b) as text. */
        char back[4];
        memcpy(back, bom_bytes, r->bom_seen);
        back[r->bom_seen] = (char)b;
        r->state = S_RECORD_START;
        return replay_prepend(r, back, r->bom_seen + 1);
    }

    unsigned long at = r->line;
    if (b == '\n') {
        if (!r->after_cr)
            r->line++;
        r->after_cr = 0;
    } else if (b == '\r') {
        r->line++;
        r->after_cr = 1;
    } else {
        r->after_cr = 0;
    }
    int eol = b == '\n' || b == '\r';

    if (r->state == S_SKIP) {
        if (eol)
            record_done(r);
        return 0;
    }
    if (r->state == S_RECORD_START) {
        if (eol)
            return 0; /* a blank line, or the LF of a CRLF */
        record_reset(r);
        r->start_line = at;
        r->state = S_FIELD_START;
        if (field_begin(r) != 0)
            return record_fail(r, "too many fields", at, b);
    }
    if (put(&r->raw, (char)b) < 0)
        return -ENOMEM;
    if (r->raw.len > r->lim.max_record && !(eol && r->state != S_QUOTED)) /* a closing break is free */
        return record_fail(r, "record too long", at, b);

    int rc = 0;
    switch (r->state) {
    case S_FIELD_START:
        if (b == '"') {
            r->state = S_QUOTED;
            r->quote_line = at;
            return 0;
        }
        r->state = S_BARE;
        /* fall through */
    case S_BARE:
        if (b == '"')
            return record_fail(r, "quote inside an unquoted field", at, b);
        if (b != (unsigned char)r->delim && !eol)
            rc = field_put(r, (char)b);
        break;
    case S_QUOTED:
        if (b == '"')
            r->state = S_QUOTE_SEEN;
        else
            rc = field_put(r, (char)b);
        return rc > 0 ? record_fail(r, "field too long", at, b) : rc;
    case S_QUOTE_SEEN:
        if (b == '"') {
            r->state = S_QUOTED;
            rc = field_put(r, '"');
            return rc > 0 ? record_fail(r, "field too long", at, b) : rc;
        }
        if (b != (unsigned char)r->delim && !eol)
            return record_fail(r, "text after a closing quote", at, b);
        break;
    default:
        return 0;
    }
    /* S_BARE or the end of a quoted field: a delimiter or a line break closes it. */
    if (rc < 0)
        return rc;
    if (rc > 0)
        return record_fail(r, "field too long", at, b);
    if (b == (unsigned char)r->delim) {
        if (field_end(r) < 0)
            return -ENOMEM;
        r->state = S_FIELD_START;
        if (field_begin(r) != 0)
            return record_fail(r, "too many fields", at, b);
    } else if (eol) {
        if (field_end(r) < 0)
            return -ENOMEM;
        record_done(r);
    } else {
        r->state = S_BARE;
    }
    return 0;
}

/* The end of the input, with no byte left: closes or fails the record. */
static int at_end(struct csv_reader *r)
{
    switch (r->state) {
    case S_BOM:
        r->state = S_RECORD_START;
        if (r->bom_seen)
            return replay_prepend(r, (const char *)bom_bytes, r->bom_seen);
        return 0;
    case S_FIELD_START:
    case S_BARE:
    case S_QUOTE_SEEN:
        if (field_end(r) < 0)
            return -ENOMEM;
        record_done(r);
        return 0;
    case S_QUOTED:
        return record_fail(r, "unterminated quoted field", r->quote_line, -1);
    case S_SKIP:
        record_done(r);
        return 0;
    default:
        return 0;
    }
}

int csv_reader_next(struct csv_reader *r, struct csv_record *rec)
{
    if (r->failed)
        return -ENOMEM;
    if (r->yielded) {
        r->yielded = 0;
        record_reset(r);
    }
    while (!r->ready) {
        int rc;
        if (r->replay_pos < r->replay.len) {
            rc = step(r, (unsigned char)r->replay.p[r->replay_pos++]);
        } else if (r->in_pos < r->in_len) {
            r->offset++;
            rc = step(r, (unsigned char)r->in[r->in_pos++]);
        } else if (r->finished && r->state != S_RECORD_START) {
            rc = at_end(r);
        } else {
            return 0;
        }
        if (rc < 0) {
            r->failed = 1;
            return rc;
        }
    }
    r->ready = 0;
    r->yielded = 1;
    memset(rec, 0, sizeof *rec);
    rec->line = r->start_line;
    if (r->error) {
        rec->error = r->error;
        rec->error_line = r->error_line;
        rec->fields = r->ptrs;
        return 1;
    }
    for (size_t i = 0; i < r->n_fields; i++)
        r->ptrs[i] = r->buf.p + r->starts[i];
    rec->n_fields = r->n_fields;
    rec->fields = r->ptrs;
    rec->lengths = r->lens;
    return 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int csv_record_find(const struct csv_record *rec, const char *name)
{
    size_t want = strlen(name);
    for (size_t i = 0; i < rec->n_fields; i++) {
        const char *f = rec->fields[i];
        size_t n = rec->lengths[i];
        while (n && is_blank(*f)) {
            f++;
            n--;
        }
        while (n && is_blank(f[n - 1]))
            n--;
        if (n == want && strncasecmp(f, name, n) == 0)
            return (int)i;
    }
    return -1;
}
