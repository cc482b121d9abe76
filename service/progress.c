/* progress: the one progress bar of the commands, on stderr.
 *
 * It owns deciding whether to draw (stderr a terminal, the job long enough),
 * the redraw rate (at most ten times a second, so a fast loop does not
 * spend its time writing escapes) and the line's shape:
 *
 *   enrolling [##########--------------------]  33% 66000/200000 rows, 41250 rows/s
 *
 * A job measured in bytes (an import read from a file) shows its rows
 * without a total, which is unknown until the end. The line is redrawn in
 * place (carriage return, erase to the end of the line) and cut to the
 * terminal's width so it never wraps; progress_finish ends it with a
 * newline. It does not know what the rows are: the commands say. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30
#define REDRAW_EVERY 0.1 /* seconds */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void draw(struct progress *p)
{
    double elapsed = now_seconds() - p->started;
    int pct = p->total ? (int)(p->done >= p->total ? 100 : p->done * 100 / p->total) : 100;
    int fill = pct * BAR_WIDTH / 100;
    char line[512], counts[96], rate[48] = "";
    if (p->unit_rows)
        snprintf(counts, sizeof counts, "%llu/%llu rows", p->rows, p->total);
    else
        snprintf(counts, sizeof counts, "%llu rows", p->rows);
    if (elapsed >= 0.05)
        snprintf(rate, sizeof rate, ", %.0f rows/s", (double)p->rows / elapsed);
    int n = snprintf(line, sizeof line, "%s [%.*s%.*s] %3d%% %s%s%s%s", p->label, fill,
                     "##############################", BAR_WIDTH - fill, "------------------------------", pct,
                     counts, rate, p->phase ? ": " : "", p->phase ? p->phase : "");
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && len >= ws.ws_col)
        len = ws.ws_col - 1u; /* a wrapped line could not be redrawn in place */
    fprintf(stderr, "\r\033[K%.*s", (int)len, line);
    fflush(stderr);
    p->drawn_at = now_seconds();
}

void progress_start(struct progress *p, const char *label, enum progress_unit unit, unsigned long long total,
                    unsigned long long min)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->unit_rows = unit == PROGRESS_ROWS;
    p->total = total;
    p->on = total >= min && isatty(STDERR_FILENO);
    p->started = now_seconds();
    if (p->on)
        draw(p);
}

void progress_update(struct progress *p, unsigned long long rows, unsigned long long done)
{
    if (!p->on)
        return;
    p->rows = rows;
    p->done = p->unit_rows ? rows : done;
    if (now_seconds() - p->drawn_at >= REDRAW_EVERY)
        draw(p);
}

void progress_phase(struct progress *p, const char *phase)
{
    if (!p->on)
        return;
    p->phase = phase;
    draw(p);
}

void progress_clear(struct progress *p)
{
    if (!p->on)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn_at = 0;
}

void progress_finish(struct progress *p, int ok)
{
    if (!p->on)
        return;
    if (ok)
        p->done = p->total;
    p->phase = ok ? NULL : "stopped";
    draw(p);
    fputc('\n', stderr);
    p->on = 0;
}
