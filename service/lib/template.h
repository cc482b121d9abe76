/* template: the message template language of sequence files.
 *
 *   {{field}}             a value the caller looks up (compose.c: a contact
 *                         field, or sender.NAME for the sending account's)
 *   {{field | fallback}}  the fallback text when the field has no value
 *   {a|b|c}               spintax: one option, chosen from a seed
 *   \{  \}  \|  \\        a literal brace, bar or backslash
 *
 * A backslash before any other character is an ordinary backslash. Field
 * names are [A-Za-z_][A-Za-z0-9_.-]* (at most TEMPLATE_MAX_FIELD bytes).
 * Spintax options may hold fields but not other spintax; an option may
 * not be empty; a group needs at least two options. Outside spintax a
 * bare '|' is ordinary text. Three opening braces "{{{a}}|b}" are a
 * spintax group whose first option starts with a field.
 *
 * Values never break a message: in a rendered value (and fallback) CR, LF,
 * TAB and every other control character (C0, DEL, C1, U+2028/9) becomes a
 * space, invalid UTF-8 becomes U+FFFD, and surrounding blanks are trimmed.
 * A value that is empty after that counts as missing.
 *
 * Where the output is HTML (a step's html part) the caller renders with
 * TEMPLATE_ESCAPE_HTML: every value, and every fallback, is written as
 * text, with & < > " ' as entities, so data can neither add markup nor
 * leave a quoted attribute. What the author wrote (markup, entities,
 * spintax options) is output as written. Subjects and text parts use
 * TEMPLATE_ESCAPE_NONE and get values as they are.
 *
 * Spintax choices come from a 64-bit seed (template_seed: the contact's
 * e-mail and the step id), so a preview renders exactly what is sent.
 * Pure: no I/O, no logging. */
#ifndef RELANCE_TEMPLATE_H
#define RELANCE_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#define TEMPLATE_MAX_FIELD 64

enum template_status {
    TEMPLATE_OK = 0,
    TEMPLATE_MISSING_FIELD = -1, /* a field without value nor fallback */
    TEMPLATE_INVALID = -2,       /* the template does not pass template_check */
    TEMPLATE_NOMEM = -3,
};
/* Indexed by -status: "ok", "missing_field", "invalid", "out_of_memory". */
extern const char *const template_status_names[4];

/* Checks the syntax of src (len bytes) and calls on_error once for each
 * problem, in order, with the byte offset in src where it starts and a
 * message ("unclosed '{{'", "empty spintax option", ...). on_error may be
 * NULL. Returns the number of problems (0: valid). */
size_t template_check(const char *src, size_t len,
                      void (*on_error)(size_t offset, const char *message, void *arg), void *arg);

/* How values (and fallbacks) are written into the output. */
enum template_escape {
    TEMPLATE_ESCAPE_NONE = 0, /* plain text: subjects, text parts */
    TEMPLATE_ESCAPE_HTML = 1, /* HTML text or a quoted attribute value */
};

struct template_out {
    char *text;                            /* malloc'd, NUL-terminated; caller frees */
    size_t len;
    char missing[TEMPLATE_MAX_FIELD + 1];  /* the field, on TEMPLATE_MISSING_FIELD */
};

/* Renders src for one contact, values escaped as escape says (the
 * caller knows what the output is; the template does not). On TEMPLATE_OK out->text holds the result
 * (the caller frees it); otherwise out->text is NULL and, for
 * TEMPLATE_MISSING_FIELD, out->missing names the first field that has no
 * value and no fallback (the scheduler records missing_field:<name>).
 * lookup(field, arg) returns the contact's value or NULL when it has none;
 * it is called synchronously, only for fields in the chosen text, and its
 * result must stay valid until the next call. */
int template_render(const char *src, size_t len, uint64_t seed, enum template_escape escape,
                    const char *(*lookup)(const char *field, void *arg), void *arg,
                    struct template_out *out) __attribute__((warn_unused_result));

/* template_render, but the values of the fields named in lines (a
 * NULL-terminated list; NULL for none) keep their line breaks: "\n" in
 * text, "<br>\n" with TEMPLATE_ESCAPE_HTML. For values that are
 * paragraphs by nature, such as a sender's signature; every other rule of
 * values holds. */
int template_render_lines(const char *src, size_t len, uint64_t seed, enum template_escape escape,
                          const char *(*lookup)(const char *field, void *arg), void *arg, const char *const *lines,
                          struct template_out *out) __attribute__((warn_unused_result));

/* The seed for one contact and step: a hash of the e-mail address
 * (case-insensitive) and the step id. Stable across versions and hosts. */
uint64_t template_seed(const char *email, const char *step_id);

/* Copies value into buf (size len, NUL-terminated, truncated on a UTF-8
 * boundary) the way rendering sanitises values. Returns the length. */
size_t template_value_clean(const char *value, char *buf, size_t len);

#endif
