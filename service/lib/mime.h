/* mime: a pure parser for received mail (RFC 5322, MIME, RFC 2047,
 * RFC 3464 delivery-status fields). It turns raw bytes (CRLF or LF, an
 * optional leading mbox "From " line) into a tree of parts whose leaf
 * bodies are transfer-decoded and, for text, converted to UTF-8.
 *
 * Built to read hostile input: nesting, part count, header count and
 * header length are bounded (MIME_MAX_*), work is linear in the input
 * times the nesting bound, and anything malformed is read as well as it
 * can be rather than refused. Pure: no I/O, no logging. */
#ifndef RELANCE_MIME_H
#define RELANCE_MIME_H

#include <stddef.h>

#define MIME_MAX_DEPTH 12          /* nesting of multiparts and messages */
#define MIME_MAX_PARTS 256         /* parts in one message, all levels */
#define MIME_MAX_HEADERS 512       /* fields in one header block */
#define MIME_MAX_HEADER_LEN 65536  /* bytes of one unfolded field value */
#define MIME_MAX_INPUT (32u << 20) /* bytes read of one message */

struct mime_header {
    char *name;   /* as written */
    char *value;  /* unfolded, trimmed, still encoded (see mime_words_decode) */
};

struct mime_headers {
    struct mime_header *items;
    size_t count;
};

enum mime_flag {
    MIME_TRUNCATED = 1 << 0,   /* a bound was hit somewhere below this part */
    MIME_NO_HEADERS = 1 << 1,  /* the part had no header block */
};

struct mime_part {
    struct mime_headers headers;
    char type[64];      /* lower case "type/subtype"; default text/plain */
    char charset[48];   /* lower case, as declared; "" when none */
    /* Leaves: the body, transfer-decoded, NUL-terminated; converted to
     * UTF-8 when the type is text, message or JSON.
     * Multiparts and embedded messages keep no body of their own. */
    char *body;
    size_t body_len;
    /* Children: a multipart's parts, or the one message embedded in a
     * message/rfc822 (headers and body) or text/rfc822-headers part
     * (headers only). */
    struct mime_part *parts;
    size_t part_count;
    unsigned depth;
    unsigned flags;
};

/* Parses raw[0..len) into *out (which the caller owns and frees with
 * mime_part_free, also after a failure). Returns 0, or -ENOMEM. Never
 * fails on malformed input. */
int mime_message_parse(const char *raw, size_t len, struct mime_part *out)
    __attribute__((warn_unused_result));

/* Frees what *part holds (not part itself) and zeroes it. */
void mime_part_free(struct mime_part *part);

/* Parses one header block at p[0..len): stops after the empty line that
 * ends it, or at a line that cannot be a field. *consumed is set to the
 * bytes read. Returns 0 or -ENOMEM; free with mime_headers_free. */
int mime_headers_parse(const char *p, size_t len, struct mime_headers *out,
                       size_t *consumed) __attribute__((warn_unused_result));
void mime_headers_free(struct mime_headers *h);

/* The first field called name (case-insensitive), or NULL. The _nth form
 * counts from 0 over fields of that name. */
const char *mime_headers_get(const struct mime_headers *h, const char *name);
const char *mime_headers_get_nth(const struct mime_headers *h, const char *name, size_t n);

/* A parameter of a structured field value ("text/plain; charset=utf-8"),
 * quotes removed, RFC 2231 "name*=charset''value" percent-decoded. Copies
 * at most len-1 bytes into buf. Returns 0, or -1 when absent. */
int mime_param_get(const char *value, const char *param, char *buf, size_t len);

/* Decodes RFC 2047 encoded words in a header value into a new UTF-8
 * string (malloc; NULL only when out of memory). Raw 8-bit bytes that
 * are not UTF-8 are read as Windows-1252. */
char *mime_words_decode(const char *value);

/* Converts in[0..len) from charset to UTF-8 into a new NUL-terminated
 * buffer (*out, *out_len). Unknown charsets and bad bytes never fail:
 * bad sequences become U+FFFD. Returns 0 or -ENOMEM. */
int mime_charset_to_utf8(const char *charset, const char *in, size_t len, char **out,
                         size_t *out_len) __attribute__((warn_unused_result));

/* Transfer decodings into a new NUL-terminated buffer. Broken input is
 * decoded as far as it makes sense. Return 0 or -ENOMEM. */
int mime_base64_decode(const char *in, size_t len, char **out, size_t *out_len)
    __attribute__((warn_unused_result));
int mime_qp_decode(const char *in, size_t len, char **out, size_t *out_len)
    __attribute__((warn_unused_result));

/* RFC 3464 fields: splits a message/delivery-status body into its blocks
 * (the per-message block first, then one per recipient). Returns 0 or
 * -ENOMEM; free with mime_dsn_free. */
struct mime_dsn {
    struct mime_headers *blocks;
    size_t count;
};
int mime_dsn_parse(const char *body, size_t len, struct mime_dsn *out)
    __attribute__((warn_unused_result));
void mime_dsn_free(struct mime_dsn *dsn);

/* The first part of the given type (e.g. "message/delivery-status"),
 * depth first, or NULL. */
const struct mime_part *mime_part_find(const struct mime_part *root, const char *type);

#endif
