/* metrics: the process's Prometheus figures and GET /metrics (README
 * "Metrics" lists them).
 *
 * A part that knows a figure registers a family once (metrics_family_add:
 * a counter, a gauge or a histogram, with its label names) and updates it
 * where the thing happens (metrics_count, metrics_gauge_set/_add,
 * metrics_observe), with the label values of that event. The server
 * creates the one struct metrics and hands it to each part; a part
 * without one (the command-line tools) holds NULL families, and every
 * update of a NULL family does nothing. A few figures are read from
 * PostgreSQL when scraped (sql/functions/metrics.sql), on the loop and
 * cached for METRICS_SQL_CACHE_MS, so a tight scrape loop cannot load
 * the database.
 *
 * Updates happen on the loop's thread only (asserted): the outcomes of
 * work done on threads (SMTP, IMAP) reach the loop before they are
 * counted, so the hot path is a hash lookup and an add, no lock.
 *
 * Registration point for the parts still to come (webhook deliveries by
 * endpoint and outcome, the outbox lag): metrics_family_add with their
 * names, then the update calls below. */
#ifndef RELANCE_METRICS_H
#define RELANCE_METRICS_H

#include "http.h"

#include <stddef.h>
#include <uv.h>

#define METRICS_SQL_CACHE_MS 5000 /* the database's figures are read at most this often */
#define METRICS_MAX_LABELS 4

struct metrics;
struct metrics_family;
struct ready;

enum metrics_kind {
    METRICS_COUNTER,   /* only goes up; its name ends in _total */
    METRICS_GAUGE,     /* goes up and down */
    METRICS_HISTOGRAM, /* observations in buckets; in base units (_seconds) */
};

/* ready (read before each scrape's statement) is borrowed and outlives
 * it. token: when not NULL, a scrape must carry Authorization: Bearer
 * token (copied). Returns NULL when out of memory. Must be created and
 * updated on the loop's thread. */
struct metrics *metrics_new(uv_loop_t *loop, const struct ready *ready, const char *token);

/* Registers a family: name and help are static strings; labels a
 * NULL-terminated list of at most METRICS_MAX_LABELS static names (NULL
 * for none); buckets, for a histogram only, its n ascending upper bounds
 * (copied; +Inf is implied), NULL for METRICS_SECONDS_BUCKETS. Returns
 * NULL when m is NULL or out of memory: every update then does nothing.
 * A family without labels shows 0 until updated. */
struct metrics_family *metrics_family_add(struct metrics *m, enum metrics_kind kind, const char *name,
                                          const char *help, const char *const *labels, const double *buckets,
                                          size_t n);

/* The label values of one update are given in the family's label order
 * (values copied when first seen; NULL for a family without labels). */
/* A counter goes up by by (>= 0). */
void metrics_count(struct metrics_family *f, const char *const *values, double by);
/* A gauge is set to v, or moved by delta. */
void metrics_gauge_set(struct metrics_family *f, const char *const *values, double v);
void metrics_gauge_add(struct metrics_family *f, const char *const *values, double delta);
/* A histogram observes v. */
void metrics_observe(struct metrics_family *f, const char *const *values, double v);

/* The http_handler of GET /metrics (arg: the struct metrics): on the
 * API's listener the server routes the path here; on a listener of its
 * own (http.metrics_listen) every path comes here and only /metrics is
 * answered. The answer comes later when the database's figures must be
 * read first. */
void metrics_handle(struct http_request *req, void *arg);

/* Frees m once the loop has ended (its last statement answered: the
 * database closed before). NULL is fine. */
void metrics_free(struct metrics *m);

/* Latencies from a millisecond to a minute. */
extern const double METRICS_SECONDS_BUCKETS[];
extern const size_t METRICS_SECONDS_BUCKETS_N;

#endif
