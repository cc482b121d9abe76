/* fdlimit: raises RLIMIT_NOFILE's soft limit to the hard one at the start
 * of `relance serve` and divides the limit between the HTTP listener and
 * the rest. It owns only that arithmetic and its log line; http.c
 * enforces the HTTP share; an account holds at most one SMTP connection
 * (smtp.c: a channel, one message at a time) and watcher.c caps its own
 * (imap_max_connections). */
#include "fdlimit.h"

#include "http.h"
#include "log.h"
#include "sender.h"
#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* The reserve, in descriptors, for everything but HTTP:
 * - FIXED: stdin/stdout/stderr, the loop's own (epoll, signal pipe,
 *   async), libmicrohttpd's epoll and its inter-thread eventfd, the
 *   listening socket and its spare, each libcurl multi's wake-up pair,
 *   the PostgreSQL connection (two while it reconnects), a DKIM key or a
 *   captured message being read or written;
 * - PER_CONNECTION for each SMTP connection (one per account, and an
 *   OAuth2 token request beside them) and each
 *   IMAP connection (imap_max_connections when mailboxes are watched): the
 *   socket, plus, while it is set up, libcurl's resolver socket pair or
 *   the CA file;
 * - HTTP_EVICT_SLACK: HTTP connections being closed to make room;
 * - MARGIN for what is not foreseen (getaddrinfo's files, a library's
 *   internals). */
#define FIXED 32
#define PER_CONNECTION 3
#define MARGIN 32
#define HTTP_MIN 16 /* below this the listener is useless: the limit is what is wrong */

static unsigned long smtp_connections(const struct config *cfg)
{
    unsigned long n = 0;
    for (size_t i = 0; i < cfg->n_pools; i++)
        n += cfg->pools[i].n_accounts;
    n += n ? 1 : 0; /* a token request beside them */
    return n;
}

unsigned fdlimit_raise(const struct config *cfg)
{
    struct rlimit rl;
    char was[24], soft[24], hard[24], reserve_s[24], http_s[24];
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_event(LOG_WARN, "serve", "cannot read the file descriptor limit", "error", strerror(errno), NULL);
        return HTTP_MIN;
    }
    rlim_t before = rl.rlim_cur;
    const char *failed = NULL;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = rl.rlim_max;
        else
            failed = strerror(errno);
    }
    unsigned long imap = watcher_wanted(cfg) ? (unsigned long)cfg->imap_max_connections : 0;
    unsigned long reserve = FIXED + PER_CONNECTION * (smtp_connections(cfg) + imap) + HTTP_EVICT_SLACK + MARGIN;
    unsigned long limit = rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
    unsigned long http = limit > reserve ? limit - reserve : 0;
    if (http > HTTP_MAX_CONNECTIONS)
        http = HTTP_MAX_CONNECTIONS;
    int too_low = http < HTTP_MIN;
    if (too_low)
        http = HTTP_MIN;

    snprintf(was, sizeof was, "%llu", (unsigned long long)before);
    snprintf(soft, sizeof soft, "%llu", (unsigned long long)rl.rlim_cur);
    snprintf(hard, sizeof hard, "%llu", (unsigned long long)rl.rlim_max);
    snprintf(reserve_s, sizeof reserve_s, "%lu", reserve);
    snprintf(http_s, sizeof http_s, "%lu", http);
    if (failed)
        log_event(LOG_WARN, "serve", "file descriptors: cannot raise the soft limit to the hard one", "limit", soft,
                  "hard", hard, "error", failed, NULL);
    if (too_low)
        log_event(LOG_WARN, "serve",
                  "file descriptors: the limit is too low for the accounts and mailboxes configured; raise the hard "
                  "limit (ulimit -Hn, systemd LimitNOFILE=)",
                  "limit", soft, "reserved", reserve_s, "http_connections", http_s, NULL);
    log_event(LOG_INFO, "serve", "file descriptors", "limit", soft, "was", was, "hard", hard, "reserved", reserve_s,
              "http_connections", http_s, NULL);
    return (unsigned)http;
}
