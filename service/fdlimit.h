/* fdlimit: the descriptor budget of `relance serve`.
 *
 * At start the soft RLIMIT_NOFILE is raised to the hard limit (the
 * common soft 1024 is a leftover of select(); relance polls with epoll
 * and poll), a reserve is kept for SMTP, IMAP and PostgreSQL, and the HTTP
 * listener gets what is left, up to HTTP_MAX_CONNECTIONS: so that no
 * number of HTTP clients can take the descriptors a send needs. */
#ifndef RELANCE_FDLIMIT_H
#define RELANCE_FDLIMIT_H

#include "config.h"

/* Raises the soft limit, logs the figures once (info) and returns how
 * many HTTP connections to allow. Never fails: with a limit it cannot
 * raise, it budgets the limit it has (and says so). */
unsigned fdlimit_raise(const struct config *cfg) __attribute__((warn_unused_result));

#endif
