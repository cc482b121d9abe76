/* log: one line per event on stderr.
 *
 * Plain text ("2026-11-26T10:00:00Z info db: connected host=...") on a
 * terminal or by default, JSON lines with --log-format json. Callers pass
 * an event message and key=value fields; the logger never formats a
 * secret because callers never hand it one: config redacts passwords and
 * tokens before anything reaches here (see config_url_redact). */
#ifndef RELANCE_LOG_H
#define RELANCE_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

extern const char *const log_level_names[];

void log_setup(enum log_format format, enum log_level min_level);
/* Parses "text" or "json"; returns 0 or -1. */
int log_format_parse(const char *s, enum log_format *out) __attribute__((warn_unused_result));
/* Parses "debug", "info", "warn" or "error"; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out) __attribute__((warn_unused_result));

/* log_event(LOG_INFO, "db", "connected", "host", h, "port", p, NULL):
 * the module, a short event text, then NULL-terminated key/value pairs
 * (values may be NULL, printed as "-"). Values are text; in JSON lines a
 * value that is a plain decimal number is written as a JSON number, every
 * other value as a string. Plain means an optional '-', an integer part
 * without leading zeros ("0" itself is fine), an optional '.' and
 * fraction, no exponent, no spaces or '+', and at most 15 digits in all
 * (a double holds it exactly): "42", "-3", "0.25" are numbers; "007",
 * "1e3", "+1", "1.", "12345678901234567" stay strings. */
void log_event(enum log_level level, const char *module, const char *event, ...)
    __attribute__((sentinel));

#endif
