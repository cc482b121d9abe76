/* json: the one JSON reader and writer (RFC 8259). Pure: no I/O, no
 * logging.
 *
 * Writer: string literals appended to a buf (json_add_string). The rest
 * of a document (braces, commas, keys' colons, numbers) is plain text the
 * caller adds with buf_addf; only strings need care. Escaping: '"' and
 * '\\' get a backslash; LF, CR and TAB are written \n, \r and \t; every
 * other control character and DEL is \u00xx (lower-case hex); valid
 * UTF-8 passes as it is. A byte that does not begin a well-formed UTF-8
 * sequence (utf8.h's rules) is written as U+FFFD, so the output is
 * always valid JSON text whatever the input. The output for a given
 * input never changes: sequence_hash hashes it.
 *
 * Reader: json_parse reads a whole document into a json_doc, a flat
 * array of values that the accessors below walk by index (the top-level
 * value is 0; -1 means "none"). It is strict RFC 8259: no comments, no
 * trailing commas, no leading zeros, no NaN; a string must be valid UTF-8
 * (refused otherwise: a reader cannot guess what was meant); \u escapes
 * must pair their surrogates; \u0000 is allowed and gives a string with a
 * NUL in it (json_text says the length). Containers nest at most
 * JSON_DEPTH_MAX deep. A member name repeated in one object is kept;
 * json_get returns the last one, as PostgreSQL's jsonb, JavaScript and
 * Python do, so relance and the database it passes a document to never
 * read two different values. An error says the byte where reading
 * stopped, what was expected there, and the JSON Pointer (RFC 6901) of
 * the value being read. */
#ifndef RELANCE_JSON_H
#define RELANCE_JSON_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

/* ---- writer ---- */

/* Appends s as a JSON string literal, or null when s is NULL. */
void json_add_string(struct buf *b, const char *s);
/* Appends s[0..n) (NUL bytes included, as \u0000) as a string literal. */
void json_add_stringn(struct buf *b, const char *s, size_t n);

/* ---- reader ---- */

/* The top-level value is at depth 0, the members of a container one
 * deeper than it; a container deeper than this is refused. */
#define JSON_DEPTH_MAX 32
#define JSON_PATH_MAX 256

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

extern const char *const json_type_names[]; /* "null", "false", ..., "object" */

struct json_doc;

struct json_error {
    size_t offset;            /* byte of the input where reading stopped */
    const char *what;         /* what was expected there (static text) */
    char path[JSON_PATH_MAX]; /* JSON Pointer of the value being read, "" for the top (cut to fit) */
};

/* Reads text[0..len), which must be exactly one JSON value with optional
 * whitespace around it. Returns 0 with *out set (free it with json_free),
 * or -EINVAL (*err filled) or -ENOMEM (err->what says so) with *out NULL. */
int json_parse(const char *text, size_t len, struct json_doc **out, struct json_error *err)
    __attribute__((warn_unused_result));
/* Frees the document, wiping its decoded strings first: a token endpoint's
 * answer holds secrets. NULL is fine. */
void json_free(struct json_doc *d);
/* "invalid JSON at byte N: what" into buf (size bytes, cut to fit). */
void json_error_text(const struct json_error *err, char *buf, size_t size);

/* The type of value i (i must be a valid index). */
enum json_type json_type(const struct json_doc *d, int i);
/* The byte of the input where value i begins (after any whitespace). */
size_t json_offset(const struct json_doc *d, int i);
/* A string's decoded text or a number's text as written, NUL-terminated;
 * *len (when len is not NULL) gets its length, which is more than strlen
 * when a string holds \u0000. NULL for other types. Valid until
 * json_free. */
const char *json_text(const struct json_doc *d, int i, size_t *len);
/* An integer number (no fraction, no exponent) in *out: 0, -EINVAL when
 * i is not one, -ERANGE when it does not fit. */
int json_int64(const struct json_doc *d, int i, int64_t *out) __attribute__((warn_unused_result));

/* Members of an object or elements of an array: how many. 0 otherwise. */
size_t json_count(const struct json_doc *d, int i);
/* The first member's value or element of container i, or -1. */
int json_first(const struct json_doc *d, int i);
/* The value after i in the same container, or -1 after the last. With
 * json_first: for (int v = json_first(d, c); v >= 0; v = json_next(d, v)). */
int json_next(const struct json_doc *d, int i);
/* The name of the object member whose value is i (decoded; *len as for
 * json_text), or NULL when i is not in an object. */
const char *json_key(const struct json_doc *d, int i, size_t *len);
/* The value of object obj's member named key (the last one when the name
 * is repeated), or -1 (also when obj is not an object). */
int json_get(const struct json_doc *d, int obj, const char *key);
/* Element n of array arr, or -1. */
int json_at(const struct json_doc *d, int arr, size_t n);
/* The JSON Pointer of value i ("/steps/2/wait", "" for the top) into
 * buf (size bytes, cut to fit): where a caller's own check of a value
 * failed, said the way a parse error says it. */
void json_path(const struct json_doc *d, int i, char *buf, size_t size);
/* Sets buf (size bytes, cut to fit) to the JSON Pointer base followed by
 * the reference token name[0..n) ("~" and "/" escaped as RFC 6901 says):
 * the pointer of an object member's value, for a caller's own checks. */
void json_pointer_join(char *buf, size_t size, const char *base, const char *name, size_t n);

#endif
