/* classify_int.h: what the parts of classify share (classify.c,
 * classify_text.c, classify_reason.c, classify_bounce.c,
 * classify_dates.c). Nothing else includes it: the public face is
 * classify.h. The cls_ prefix marks a name shared between these files
 * only, as curl's Curl_ marks its internal functions; what one file
 * alone uses stays static there. Pure: no I/O, no logging. */
#ifndef RELANCE_CLASSIFY_INT_H
#define RELANCE_CLASSIFY_INT_H

#include "buf.h"
#include "classify.h"
#include "mime.h"

#include <stddef.h>
#include <time.h>

/* ---- classify_text.c: text buffer, normalised text, patterns ---- */

#define CLS_TEXT_CAP (256u << 10) /* bytes of text any rule looks at */

/* buf_add and buf_adds (buf.h) that stop at CLS_TEXT_CAP bytes in all:
 * hostile input cannot make the copies grow past what the rules read. */
void cls_text_add(struct buf *b, const char *s, size_t n);
void cls_text_adds(struct buf *b, const char *s);
/* b's text, "" before anything was added. */
const char *cls_text_str(const struct buf *b);

/* A malloc'd normalised copy of s[0..len) (at most CLS_TEXT_CAP), or NULL. */
char *cls_norm(const char *s, size_t len);
/* True when s (inside the text that starts at base) is a letter or digit. */
int cls_alnum_at(const char *base, const char *s);
/* Where pattern pat first matches in text, or NULL. */
const char *cls_wfind(const char *text, const char *pat);
/* Whether any pattern of the NULL-ended pats matches; how many do. */
int cls_any_match(const char *text, const char *const *pats);
int cls_count_matches(const char *text, const char *const *pats);
/* src[0..n) into dst[len], truncated and NUL-terminated. */
void cls_copy_str(char *dst, size_t len, const char *src, size_t n);

/* ---- classify_text.c: addresses and message ids ---- */

/* The next address in s at or after *pos, copied into out; returns
 * where it starts in s (and moves *pos past it), or NULL. */
const char *cls_next_address(const char *s, size_t *pos, char *out, size_t outlen);
/* The first address in a header-ish value ("Name <a@b>", "rfc822; a@b"):
 * 0, or -1 when v is NULL or holds none. */
int cls_first_address(const char *v, char *out, size_t outlen);
/* "<id@host>" from a Message-ID-ish value, the last one when last: 0,
 * or -1 when there is none. */
int cls_extract_msgid(const char *v, int last, char *out, size_t outlen);

/* ---- classify.c: the facts read once from the message ---- */

struct cls_msg {
    const struct mime_part *root;
    const struct mime_headers *h;
    char *subject;        /* normalised */
    char *from;           /* normalised, display name and address */
    char from_addr[256];
    char to_addr[256];
    time_t date;
    struct buf text;       /* the notification / reply text, outside embedded mail */
    char *ntext;           /* normalised text */
    const struct mime_part *returned; /* embedded original message or headers */
};

/* ---- classify_dates.c ---- */

/* An RFC 5322 Date value as a time, 0 when unreadable. */
time_t cls_parse_rfc_date(const char *v);
/* Fills out's return date from an auto-reply's subject and text (the
 * part its author wrote), when one is readable. */
void cls_set_return_date(const struct cls_msg *m, const char *text, struct classify_result *out);

/* ---- classify_reason.c ---- */

/* The length of an enhanced status code "c.s.d" at s, or 0. */
size_t cls_status_at(const char *base, const char *s);
/* The failure status in text[0..len) into out: 0, or -1 when none. */
int cls_find_status(const char *text, size_t len, char *out, size_t outlen);
/* True for "" and X.0.0, which say less than the text around them. */
int cls_status_is_generic(const char *st);
/* The reason of one failed recipient from its own diagnostic (ndiag),
 * the lines about it in the notification (nctx), its status code and
 * the whole notification (nwhole); texts normalised, any may be NULL.
 * Never CLASSIFY_REASON_NONE. */
enum classify_reason cls_decide_reason(const char *ndiag, const char *nctx, const char *status,
                                       const char *nwhole);

/* ---- classify_bounce.c ---- */

/* Reads m as a bounce (a delivery report, an SES notification or an
 * MTA's free text) into out. Returns 1 when that decided the message (a
 * report of delivery, or an SES notification other than a bounce, gives
 * CLASSIFY_OTHER), 0 when m is none of these, or -ENOMEM. */
int cls_bounce_read(const struct cls_msg *m, struct classify_result *out);

#endif
