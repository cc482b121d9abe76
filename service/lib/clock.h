/* clock: the service's idea of "now".
 *
 * Normally the system's real time. For tests only, RELANCE_TEST_CLOCK
 * moves it without LD_PRELOAD tricks (which break under AddressSanitizer):
 *   RELANCE_TEST_CLOCK=2026-03-02T08:00:00Z        starts the clock there
 *   RELANCE_TEST_CLOCK=2026-03-02T08:00:00Z*3600   ... running 3600x faster
 * Every time relance passes to SQL (claims, send times, caps) comes from
 * here, so the whole scheduler moves with it. Never set it in production. */
#ifndef RELANCE_CLOCK_H
#define RELANCE_CLOCK_H

/* Reads RELANCE_TEST_CLOCK. Returns 0, or -1 with a reason in err. */
int clock_setup(char *err, unsigned long errlen) __attribute__((warn_unused_result));
/* Seconds since the epoch, with fractions. */
double clock_now(void);
/* How fast the clock runs (1 unless a test says otherwise). */
double clock_speed(void);
/* True when RELANCE_TEST_CLOCK is in force. */
int clock_is_test(void);
/* now as "YYYY-MM-DDTHH:MM:SS.uuuuuuZ", for SQL parameters. */
void clock_format(double t, char *buf, unsigned long len);
/* Parses an RFC 3339 time "YYYY-MM-DDTHH:MM[:SS[.fff]](Z|+HH:MM|-HH:MM)"
 * (a space for the T too; the minutes and seconds are RFC 3339's only
 * optional part here) into seconds since the epoch: a day the month has,
 * a year from 1, an offset up to 15:59 (what PostgreSQL takes). Returns
 * 0 or -1. */
int clock_parse_iso(const char *s, double *out) __attribute__((warn_unused_result));

#endif
