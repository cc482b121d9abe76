/* progress: a progress bar on stderr for the long commands (`contacts
 * import`, `enroll`), drawn only when stderr is a terminal, so tests and
 * logs never see it. */
#ifndef RELANCE_PROGRESS_H
#define RELANCE_PROGRESS_H

/* What one bar is measuring. Start it with progress_start; all fields are
 * the module's. */
struct progress {
    char label[64];
    int on;                  /* stderr is a terminal and the job is long */
    int unit_rows;           /* total counts rows (else bytes, and the rows are counted apart) */
    unsigned long long total, rows, done;
    double started, drawn_at; /* monotonic seconds */
    const char *phase;       /* shown after the figures ("saving"), or NULL */
};

enum progress_unit { PROGRESS_ROWS, PROGRESS_BYTES };

/* Starts a bar labelled label (copied, cut to fit) for a job of total
 * units; it is drawn only when stderr is a terminal and total >= min, else
 * every other call does nothing. */
void progress_start(struct progress *p, const char *label, enum progress_unit unit, unsigned long long total,
                    unsigned long long min);
/* rows handled so far, and how far through total the job is (for
 * PROGRESS_ROWS, done is rows). Redraws at most ten times a second. */
void progress_update(struct progress *p, unsigned long long rows, unsigned long long done);
/* Names what the job is doing now that the rows are read ("saving"),
 * redrawn at once: the bar then says why it stands still. NULL clears it. */
void progress_phase(struct progress *p, const char *phase);
/* Erases the bar, so that lines printed next (on stdout, which may be the
 * same terminal) do not land on it; the next update draws it again. */
void progress_clear(struct progress *p);
/* Draws the final state (100% when ok, else as far as it got) and ends
 * the line; the bar is off afterwards. */
void progress_finish(struct progress *p, int ok);

#endif
