/* sequence: a sequence file (YAML) to a validated model.
 *
 * The language is documented in sequences/README.md. sequence_parse reads
 * one file and reports every problem at once, each at its file:line:column,
 * in file order; a file with any error yields no model. The model is what
 * `relance apply` stores: sequence_to_json gives its canonical JSON text
 * (stable key order, defaults made explicit, no source positions) and
 * sequence_hash a SHA-256 of that text, so an unchanged file is a no-op.
 * Pure: no I/O and no logging; time zones are checked through a callback
 * the caller supplies. */
#ifndef RELANCE_SEQUENCE_H
#define RELANCE_SEQUENCE_H

#include "duration.h"

#include <stddef.h>
#include <stdint.h>

#define SEQUENCE_MAX_BYTES (1024 * 1024)  /* a larger file is refused */
#define SEQUENCE_MAX_STEPS 50
#define SEQUENCE_MAX_VARIANTS 26
#define SEQUENCE_MAX_DIAGS 500            /* then one "too many problems" line */
#define SEQUENCE_SUBJECT_WARN 80          /* characters */
#define SEQUENCE_LINKS_WARN 3

/* stop_on events, as bits; sequence_stop_names[i] names bit 1 << i. */
enum sequence_stop {
    SEQUENCE_STOP_REPLY = 1 << 0,
    SEQUENCE_STOP_BOUNCE = 1 << 1,
    SEQUENCE_STOP_UNSUBSCRIBE = 1 << 2,
    SEQUENCE_STOP_COMPANY_REPLY = 1 << 3,
};
#define SEQUENCE_STOP_DEFAULT (SEQUENCE_STOP_REPLY | SEQUENCE_STOP_BOUNCE | SEQUENCE_STOP_UNSUBSCRIBE)
extern const char *const sequence_stop_names[4];

/* Weekdays as bits: bit 0 is Monday ... bit 6 Sunday (ISO order, so
 * PostgreSQL's isodow - 1 is the bit). */
#define SEQUENCE_DAYS_WEEKDAYS 0x1fu
extern const char *const sequence_day_names[7];   /* "mon" ... "sun" */

struct sequence_schedule {
    int contact_zone;          /* timezone: contact */
    char *timezone;            /* the zone when !contact_zone, else NULL */
    char *fallback_timezone;   /* required with contact_zone; else NULL or a zone */
    int window_start;          /* minutes after midnight, inclusive */
    int window_end;            /* minutes after midnight, exclusive; 1440 = 24:00 */
    unsigned days;             /* weekday bits; default Monday-Friday */
    int64_t jitter;            /* seconds; default 600, 0 disables */
};

/* One A/B variant with its content resolved: a field the variant does not
 * set comes from its step (and a variant that sets body does not inherit
 * the step's html). subject is NULL only on follow-ups sent as "Re:". */
struct sequence_variant {
    int weight;                /* > 0 */
    char *subject, *body, *html;
    int line;                  /* source line, for messages */
};

struct sequence_step {
    char *id;
    struct duration wait;      /* zero on the first step */
    char *subject;             /* NULL: "Re: <subject of the first step>" */
    char *body;                /* NULL only when every variant has one */
    char *html;                /* optional */
    int thread;                /* reply in the first step's thread; 0 on the first step */
    struct sequence_variant *variants;
    size_t n_variants;         /* 0: no A/B test */
    int line;
};

struct sequence {
    char *name;                /* [a-z0-9-]+ */
    char *description;         /* may be NULL */
    char *sender_pool;
    struct sequence_schedule schedule;
    unsigned stop_on;          /* enum sequence_stop bits */
    /* unsubscribe: {header, footer}. header (default on): List-Unsubscribe
     * and List-Unsubscribe-Post go out; footer: a template appended to
     * every step, meant to hold {{unsubscribe_url}}; NULL: none. */
    int unsubscribe_header;
    char *unsubscribe_footer;
    char *language;            /* "fr", "en-GB"...: what the prospect reads; NULL: not said */
    /* track: {clicks, opens, text_links} (default all off): the html's
     * links go through /c/ (and the text's bare URLs with text_links),
     * an /o/ image ends the html. Recorded only: never read by a stop,
     * a branch or a score. */
    int track_clicks, track_opens, track_text_links;
    int track_line, track_col; /* where track's value is, for lint's warnings */
    struct sequence_step *steps;
    size_t n_steps;            /* >= 1 */
    int name_line, name_col;   /* where name's value is, for cross-file messages */
    int pool_line, pool_col;   /* where sender_pool's value is, likewise */
};

enum sequence_severity { SEQUENCE_ERROR, SEQUENCE_WARNING };
extern const char *const sequence_severity_names[2];   /* "error", "warning" */

struct sequence_diag {
    int line, col;             /* 1-based */
    enum sequence_severity severity;
    char message[400];
};

/* The problems of one file. errors counts the SEQUENCE_ERROR entries. */
struct sequence_diags {
    char *file;                /* the name given to sequence_parse */
    struct sequence_diag *items;
    size_t n, cap;
    size_t errors, warnings;
    int nomem;                 /* an allocation failed: treat as an error */
};

struct sequence_options {
    /* True when name is a time zone of the system's tz database; NULL:
     * zone names are only checked for shape. */
    int (*zone_exists)(const char *name, void *arg);
    void *zone_arg;
    /* NULL-terminated pool names from the configuration, or NULL: an
     * unknown sender_pool is then not reported. */
    const char *const *pools;
};

/* 1 when the template src uses the field {{unsubscribe_url}}. */
int sequence_uses_unsubscribe_url(const char *src);

/* The id of the first step that shows the prospect no link to opt out
 * (no unsubscribe footer, and a body, html or variant of it without
 * {{unsubscribe_url}}), or NULL when every step shows one. */
const char *sequence_step_without_opt_out(const struct sequence *seq);

/* Parses and validates one file (buf, len bytes; file names it in
 * messages). Fills diags (the caller frees it with sequence_diags_free,
 * whatever the result). Returns 0 and a model in *out (the caller frees
 * it with sequence_free) when there is no error (warnings allowed); else
 * -1 with *out NULL. zone_exists is called synchronously. */
int sequence_parse(const char *file, const char *buf, size_t len, const struct sequence_options *opt,
                   struct sequence **out, struct sequence_diags *diags) __attribute__((warn_unused_result));

void sequence_free(struct sequence *seq);
void sequence_diags_free(struct sequence_diags *diags);

/* Adds a problem (for checks across files, like duplicate names); keeps
 * the list in file order. */
void sequence_diags_add(struct sequence_diags *diags, int line, int col, enum sequence_severity severity,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "file:line:col: message" or "file:line:col: warning: message" for
 * diags->items[i], into buf (truncated to len). */
void sequence_diag_format(const struct sequence_diags *diags, size_t i, char *buf, size_t len);

/* The canonical JSON of a validated sequence: malloc'd, NUL-terminated,
 * the caller frees it; NULL when out of memory. Equal models give equal
 * texts byte for byte. */
char *sequence_to_json(const struct sequence *seq);

/* The SHA-256 of sequence_to_json(seq) as 64 lower-case hex digits in
 * hex[65]. Returns 0, or -1 when out of memory. */
int sequence_hash(const struct sequence *seq, char hex[65]) __attribute__((warn_unused_result));

/* The variant a contact gets, from a per-contact seed (template_seed of
 * the contact's e-mail and the step id), by weight. Returns an index into
 * step->variants, or -1 when the step has none. */
int sequence_variant_choose(const struct sequence_step *step, uint64_t seed);

/* The step with this id, or NULL. */
const struct sequence_step *sequence_step_find(const struct sequence *seq, const char *id);

#endif
