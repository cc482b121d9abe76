/* classify_int.h: what the parts of classify share (classify.c,
 * classify_text.c, classify_reason.c, classify_bounce.c,
 * classify_dates.c). Nothing else includes it: the public face is
 * classify.h. Pure: no I/O, no logging. */
#ifndef RELANCE_CLASSIFY_INT_H
#define RELANCE_CLASSIFY_INT_H

#include "classify.h"
#include "mime.h"

#include <stddef.h>
#include <time.h>

/* ---- classify_text.c: text buffer, normalised text, patterns ---- */

#define TEXT_CAP (256u << 10) /* bytes of text any rule looks at */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

void sb_add(struct sbuf *b, const char *s, size_t n);
void sb_adds(struct sbuf *b, const char *s);
const char *sb_str(const struct sbuf *b);

/* A malloc'd normalised copy of s[0..len) (at most TEXT_CAP), or NULL. */
char *norm(const char *s, size_t len);
/* True when s (inside the text that starts at base) is a letter or digit. */
int alnum_at(const char *base, const char *s);
/* Where pattern pat first matches in text, or NULL. */
const char *wfind(const char *text, const char *pat);
/* Whether any pattern of the NULL-ended pats matches; how many do. */
int any_match(const char *text, const char *const *pats);
int count_matches(const char *text, const char *const *pats);
/* src[0..n) into dst[len], truncated and NUL-terminated. */
void copy_str(char *dst, size_t len, const char *src, size_t n);

/* ---- classify_text.c: addresses and message ids ---- */

const char *next_address(const char *s, size_t *pos, char *out, size_t outlen);
int first_address(const char *v, char *out, size_t outlen);
int extract_msgid(const char *v, int last, char *out, size_t outlen);

/* ---- classify.c: the facts read once from the message ---- */

struct msg {
    const struct mime_part *root;
    const struct mime_headers *h;
    char *subject;        /* normalised */
    char *from;           /* normalised, display name and address */
    char from_addr[256];
    char to_addr[256];
    time_t date;
    struct sbuf text;      /* the notification / reply text, outside embedded mail */
    char *ntext;           /* normalised text */
    const struct mime_part *returned; /* embedded original message or headers */
};

/* ---- classify_dates.c ---- */

time_t parse_rfc_date(const char *v);
void set_return_date(const struct msg *m, const char *text, struct classify_result *out);

/* ---- classify_reason.c ---- */

size_t status_at(const char *base, const char *s);
int find_status(const char *text, size_t len, char *out, size_t outlen);
int status_is_generic(const char *st);
enum classify_reason decide_reason(const char *ndiag, const char *nctx, const char *status,
                                   const char *nwhole);

/* ---- classify_bounce.c: each returns 1 when it decided the message,
 * 0 when it is not its kind, or -ENOMEM ---- */

int classify_dsn(const struct msg *m, const struct mime_part *ds, struct classify_result *out);
int classify_text_bounce(const struct msg *m, struct classify_result *out);
int classify_ses_json(const struct msg *m, struct classify_result *out);

#endif
