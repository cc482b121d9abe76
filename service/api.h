/* api: the HTTP API (README "HTTP API"; its contract is api/openapi.json).
 * It decides what each request means and answers with JSON; http.c
 * carries the bytes, db.c runs the statements, sql/functions/api.sql
 * decides and writes. */
#ifndef RELANCE_API_H
#define RELANCE_API_H

#include "http.h"

#include <uv.h>

struct api;
struct config;
struct ready;

/* ready (the process's, read before each statement) and cfg (rate
 * limits) are borrowed and outlive it. NULL when out of memory. */
struct api *api_new(uv_loop_t *loop, const struct ready *ready, const struct config *cfg);
/* The capture transport's Maildir (copied), where an erasure removes the
 * person's messages too; none without it. */
void api_set_capture_dir(struct api *api, const char *dir);
/* The webhook deliveries, which send POST /v1/webhooks/{id}/test (NULL:
 * none yet, or no more: the test answers 503). */
struct webhooks;
void api_set_webhooks(struct api *api, struct webhooks *wh);
/* The http_handler for serve's listener; arg is the struct api. */
void api_handle(struct http_request *req, void *arg);
/* Closes its timers; on_closed fires once its statements in flight are back. */
void api_close(struct api *api, void (*on_closed)(void *arg), void *arg);

#endif
