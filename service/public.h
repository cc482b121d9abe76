/* public: the routes prospects reach from the links in their mail, on
 * http.public_listen or, without it, beside the API on http.listen.
 *
 *   GET|HEAD /u/TOKEN   a small confirmation page with a button (changes
 *                       nothing: link scanners fetch every URL)
 *   POST /u/TOKEN       RFC 8058's one-click unsubscribe (List-Unsubscribe=
 *                       One-Click, form-encoded or multipart), and the
 *                       page's own button: the address is suppressed, the
 *                       contact's live enrollments end, 200 (again 200 the
 *                       next time)
 *   GET|HEAD /c/TOKEN   a tracked link: 302 to exactly the http(s)
 *                       destination signed into the token
 *   GET|HEAD /o/TOKEN.gif  the open image: a 1x1 transparent GIF, never
 *                       cached
 *
 * A click or an open is answered at once and then recorded (a hit in
 * tracking_hits and its event, flagged when botcheck suspects a machine);
 * it changes no state: no contact, enrollment or message is touched.
 *
 * Tokens are linktoken.h's; one that does not open, or of another kind
 * than its route, is 404 with no detail. No cookie, no authentication,
 * nothing about the contact in any answer. The route table has a row per
 * prefix and token kind. */
#ifndef RELANCE_PUBLIC_H
#define RELANCE_PUBLIC_H

#include "http.h"
#include "linktoken.h"
#include "ready.h"

/* A link's longest length, with its NUL: public_url (a configuration
 * value, checked against this by config.c) and the route and token. */
#define PUBLIC_URL_MAX 400
#define PUBLIC_LINK_MAX (PUBLIC_URL_MAX + 4 + LINKTOKEN_MAX)

struct public;

/* secret and previous (NULL: none) stay the caller's and must outlive the
 * struct; secret signs nothing here, it opens tokens. public_url (NULL:
 * none) is read for its path: with "https://host/links", both /links/u/T
 * (a proxy that passes the path on) and /u/T (one that strips it) are
 * routes. Returns NULL when out of memory. */
struct public *public_new(const struct ready *ready, const char *public_url, const char *secret,
                          const char *previous);

/* The bot_window of the hits' judgement, in seconds (botcheck.h; 0 for
 * off); BOTCHECK_WINDOW_DEFAULT until set. */
void public_set_bot_window(struct public *pub, long seconds);

/* Answers req when its path is a public route and returns 1; returns 0,
 * having done nothing, otherwise (the API's listener then routes it). */
int public_route(struct http_request *req, struct public *pub);

/* An http_handler for a listener of the public routes alone: anything
 * else is 404. arg is the struct public. */
void public_handle(struct http_request *req, void *arg);

/* Frees pub. Requests still waiting for the database keep what they need
 * and are answered when it answers or closes. */
void public_free(struct public *pub);

/* The link of kind (linktoken.h) for message_id (without <>) under
 * public_url, signed with secret, into out (size len): "PUBLIC/u/TOKEN".
 * Returns 0, or -EINVAL / -ENOSPC. */
int public_link(const char *public_url, const char *secret, char kind, const char *message_id, char *out,
                size_t len) __attribute__((warn_unused_result));

#endif
