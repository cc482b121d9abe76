/* server: the `relance serve` process — one libuv loop that owns the
 * database connection, the HTTP listener, the OAuth2 token store, the
 * sender (SMTP or capture), the mailbox watcher and the scheduler. It
 * creates them as siblings and hands each its collaborators; none of
 * them includes this header. */
#ifndef RELANCE_SERVER_H
#define RELANCE_SERVER_H

#include "config.h"

#include <stddef.h>

/* Runs the service in the foreground until SIGINT or SIGTERM, then stops
 * everything in order (see server.c). An account whose secret cannot be
 * read is marked in cfg (config_account.unavailable) and paused, not a
 * reason to refuse to start. Returns 0 after a clean stop, or
 * -1 with a reason in err when it could not start or left handles open
 * (the reason is also logged). */
int server_run(struct config *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
