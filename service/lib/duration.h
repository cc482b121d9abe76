/* duration: "90s", "45m", "2h", "3 days", "3 business days", "1 day 4h".
 *
 * Seconds, minutes and hours are elapsed time; days and business days are
 * calendar steps in a time zone that keep the wall-clock time (the SQL
 * scheduler applies them; see sql/). A combination holds both parts, and
 * the calendar part applies first. Pure: no I/O, no logging. */
#ifndef RELANCE_DURATION_H
#define RELANCE_DURATION_H

#include <stddef.h>
#include <stdint.h>

struct duration {
    int64_t seconds;      /* elapsed part */
    int32_t days;         /* calendar days */
    int32_t business_days;
};

/* Parses s into *out. On error returns -1 and writes a reason into err
 * (e.g. "unknown unit 'dais' in duration '3 dais'"). "0" is a zero
 * duration. Business days and plain days cannot be combined. */
int duration_parse(const char *s, struct duration *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Formats d canonically ("1 day 4h", "3 business days", "90s", "0"). */
void duration_format(const struct duration *d, char *buf, size_t len);

/* True when d has only an elapsed part. */
int duration_is_elapsed(const struct duration *d);

#endif
