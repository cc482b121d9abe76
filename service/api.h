/* api: the HTTP API's routes. It decides what each request means and
 * answers with JSON; http.c carries the bytes, db.c runs the queries. */
#ifndef RELANCE_API_H
#define RELANCE_API_H

#include "http.h"

/* The http_handler for serve's listener; arg is the process's struct
 * ready (ready.h), which the probes report. */
void api_handle(struct http_request *req, void *arg);

#endif
