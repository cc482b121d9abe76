/* linkrewrite: the links of a message part swapped for tracked ones.
 *
 * In an HTML part, only the href of <a> and <area> tags is a link: text,
 * comments, <script>, <style>, <title> and <textarea> stay as they are,
 * and nothing is ever added (a hidden link is a spam signal). In a text
 * part, a bare http(s) URL is one, ending where the usual linkifiers end
 * it. Only absolute http:// and https:// URLs are offered for tracking:
 * mailto:, tel:, #fragments, relative, javascript: and data: links, the
 * unsubscribe URL, and a URL with a template leftover ({{ or }}) stay.
 * Malformed HTML (a tag or quote never closed) is copied from there on as
 * it is. Pure: no I/O, no logging; what the tracked URL is belongs to the
 * caller's callback. */
#ifndef RELANCE_LINKREWRITE_H
#define RELANCE_LINKREWRITE_H

#include <stddef.h>

#include "buf.h"

struct linkrewrite_opts {
    /* Called once per eligible link, in document order, with its URL as
     * a browser reads it (HTML entities decoded, NUL-terminated). Appends
     * the URL to put instead to tracked (raw: linkrewrite escapes it for
     * the HTML attribute) and returns 1; returns 0 to leave this link as
     * it is, or a negative code to stop the whole rewrite, which then
     * returns that code. tracked is empty on each call. */
    int (*track)(void *ctx, const char *url, struct buf *tracked);
    void *ctx;
    /* The message's unsubscribe URL, never rewritten (NULL: none). */
    const char *unsubscribe_url;
};

/* Appends html[0..len) to out with the href of each eligible <a> and
 * <area> replaced by the tracked URL (always double-quoted, escaped), and
 * sets *count to the number of links replaced. Returns 0; -ENOMEM when
 * out ran out of memory; or the callback's negative code. out belongs to
 * the caller, as it was plus what was appended, whatever the result. */
int linkrewrite_html(const char *html, size_t len, const struct linkrewrite_opts *o, struct buf *out,
                     int *count) __attribute__((warn_unused_result));

/* As linkrewrite_html for a text/plain part: each bare http:// or
 * https:// URL (starting after a non-alphanumeric byte, ending before
 * white space, a control byte, <, > or ", and without the trailing
 * . , ; : ! ? ' " * _ ~ or an unbalanced ) or ]) is replaced by the
 * tracked URL as is. The caller calls it only when the sequence asks for
 * text links to be tracked. */
int linkrewrite_text(const char *text, size_t len, const struct linkrewrite_opts *o, struct buf *out,
                     int *count) __attribute__((warn_unused_result));

#endif
