/* webhook_url: whether relance may POST to a webhook URL (the API checks
 * it when an endpoint is created or changed, the configuration at start,
 * the delivery loop again before each request).
 *
 * http: and https: only; https unless the host is on the operator's
 * allow-list (webhook_allow_insecure: the CRM on the same private
 * network); no user name or password in the URL (it would show in every
 * listing); an address literal must be public unless listed (netaddr.h).
 * A host name's addresses are judged when it is resolved, at connect
 * time (webhooks.c), so DNS cannot smuggle a private address past this. */
#ifndef RELANCE_WEBHOOK_URL_H
#define RELANCE_WEBHOOK_URL_H

#include <stddef.h>

/* Returns 0 when url may be used, with *listed (if not NULL) set to 1
 * when its host is on allow (a NULL-terminated list, or NULL), or -1 with
 * why. The host is compared without case and without a trailing dot. */
int webhook_url_check(const char *url, char *const *allow, int *listed, char *why, size_t len)
    __attribute__((warn_unused_result));

#endif
