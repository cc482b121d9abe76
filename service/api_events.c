/* api_events: the HTTP API's event feed (GET /v1/events). It owns the
 * checks of the feed's query arguments — limit in range, after fit to be
 * a cursor, types a comma-separated list of type names — and hands the
 * rest to api_events.sql, which decides the page: which types are in the
 * catalogue, and the commit order that lets a reader page while writers
 * commit without missing an event. It writes no event: the state changes
 * write their own, in their own transactions. */
#include "api_int.h"

#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TYPES_MAX 64   /* names in ?types= */
#define TYPE_MAX 64    /* bytes of one name */

/* Whether s is a list of 1 to TYPES_MAX names of [a-z_.], each 1 to
 * TYPE_MAX bytes, separated by single commas: the shape of catalogue
 * names, so SQL only has to say whether each is one. */
static int types_valid(const char *s)
{
    size_t names = 0;
    while (*s) {
        size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz_.");
        if (n == 0 || n > TYPE_MAX || ++names > TYPES_MAX)
            return 0;
        s += n;
        if (*s == ',' && s[1])
            s++;
        else if (*s)
            return 0;
    }
    return names > 0;
}

static void events_list(struct api_call *c)
{
    const char *types = api_arg(c, "types");
    char lim[16];
    if (api_limit(c, lim) < 0)
        return;
    if (types && !types_valid(types)) {
        api_bad_request(c, "types is a comma-separated list of event types: reply.received,message.bounced");
        return;
    }
    const char *p[3] = {lim, api_arg(c, "after"), types};
    api_ask(c, "SELECT status, body FROM relance_api_events_list($1::int, $2, $3)", 3, p);
}

static const char *const list_args[] = {"limit", "after", "types", NULL};

const struct api_route api_event_routes[] = {
    {"GET", "/v1/events", SCOPE_EVENTS_READ, 0, list_args, events_list, 0},
    {NULL, NULL, 0, 0, NULL, NULL, 0},
};
