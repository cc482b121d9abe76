/* webhooks: delivering the event outbox to the CRM's endpoints, signed
 * by the Standard Webhooks scheme, from the loop.
 *
 * Each event is owed to every enabled endpoint that wants its type (a
 * delivery row, written in the event's own transaction:
 * sql/functions/webhooks.sql). Replicas share the deliveries through the
 * database: one round trip records the outcomes of the requests that
 * ended and claims what is due (FOR UPDATE SKIP LOCKED), at most
 * webhook_max_in_flight per endpoint and replica; the requests run on
 * this part's own libcurl multi handle on the loop (curl_uv: HTTP's done
 * phase never waits for the server). At least once: a request whose
 * outcome was not recorded (a crash, a lost connection) is sent again
 * once its claim lapses; consumers dedupe on webhook-id, the event's id.
 *
 * Outcomes: 2xx delivered; 410 disables the endpoint at once (nothing
 * more is sent to it, from this replica or any other); anything else
 * (another status, a timeout, a refused connection, a private address
 * the URL's name resolved to) is retried at 5 s, 5 min, 30 min, 2 h, 5 h,
 * 10 h and 10 h (relance's clock), then failed. */
#ifndef RELANCE_WEBHOOKS_H
#define RELANCE_WEBHOOKS_H

#include "config.h"
#include "ready.h"

#include <uv.h>

struct webhooks;

/* Reads the secrets of the configuration's endpoints. Returns NULL with
 * err when one cannot be read (preflight says so first). */
struct webhooks *webhooks_new(uv_loop_t *loop, const struct config *cfg, const struct ready *ready, char *err,
                              size_t errlen);

/* Counts the requests by endpoint and outcome, and their durations, in
 * m's families (relance_webhook_requests_total,
 * relance_webhook_request_duration_seconds). */
struct metrics;
void webhooks_set_metrics(struct webhooks *wh, struct metrics *m);

/* The database is (again) usable: the configuration's endpoints are
 * synced, LISTEN relance_webhooks is (re)issued on the main connection,
 * and delivering starts. */
void webhooks_db_up(struct webhooks *wh);

/* Something may be due: a NOTIFY relance_webhooks came. */
void webhooks_wake(struct webhooks *wh);

/* The outcome of one request sent by webhooks_send: the HTTP status (0
 * when none came), why not 2xx (NULL when it was), and how long it took. */
typedef void (*webhooks_sent_cb)(void *arg, int status, const char *error, double seconds);

/* Sends one signed request now, outside the outbox: `POST
 * /v1/webhooks/{id}/test`. secret NULL with name set: a configuration
 * endpoint's own; previous (or NULL) signs too, as during a rotation.
 * Returns 0 (done fires once, later) or -1 with why (bad URL, no secret,
 * closing). */
int webhooks_send(struct webhooks *wh, const char *url, const char *name, const char *secret, const char *previous,
                  const char *id,
                  const char *body, webhooks_sent_cb done, void *arg, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* Stops claiming; requests in flight are ended, and the outcomes known
 * recorded (the claims of the others given back) when the database
 * allows; on_closed fires then, and wh is freed. */
void webhooks_close(struct webhooks *wh, void (*on_closed)(void *arg), void *arg);

#endif
