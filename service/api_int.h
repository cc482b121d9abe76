/* api_int.h: what api.c (the requests' way in: routing, keys, scopes,
 * rate limits, bodies, idempotency, problems) shares with the files of
 * the resources it routes to (api_contacts.c, ...). Not for other files. */
#ifndef RELANCE_API_INT_H
#define RELANCE_API_INT_H

#include "buf.h"
#include "db.h"
#include "http.h"
#include "json.h"

#include <stddef.h>

struct api;
struct api_call;
struct api_errors;

#define API_ARGS_MAX 8

struct api_route {
    const char *method;
    const char *pattern;     /* "/v1/contacts/{}": {} matches one path segment (api_call.param) */
    unsigned scope;          /* SCOPE_* the key needs; 0: no key needed */
    int json_body;           /* the body must be JSON (an object) */
    const char *const *args; /* the query arguments it reads (NULL-terminated); others are refused */
    void (*run)(struct api_call *c);
    int zones;               /* it checks time zones: it runs once their names are known (api_with_zones) */
};

/* One request, from its arrival to its answer. Everything the handler
 * reads of the request is copied here first: the connection may be gone
 * before the answer. */
struct api_call {
    struct api *api;
    struct http_request *req;
    const struct api_route *route;
    char request_id[33];
    char key_id[13];
    char *param;                  /* the path's {} segment, decoded */
    char *args[API_ARGS_MAX];     /* route->args' values, NULL when absent */
    char *body;                   /* the request body (NUL-terminated copy), or NULL */
    size_t body_len;
    struct json_doc *doc;         /* body parsed, for json_body routes */
    char *idem_key;               /* Idempotency-Key, or NULL */
    char *unknown_arg;            /* a query argument the route does not read, or NULL */
    int json_type;                /* Content-Type is application/json */
    int bad_arg;                  /* a query argument holds a NUL */
    char *content_type;           /* Content-Type as sent, or NULL (a route with a body of another type) */
    unsigned char req_hash[32];   /* SHA-256 of method, path and body, for the idempotency record */
    int idem_recorded;            /* this request holds the idempotency record */
    void *data;                   /* the handler's own */
    void (*data_free)(void *data);
};

/* The query argument name (one of route->args), or NULL. api.c has
 * checked every argument and the path's {} segment are UTF-8. */
const char *api_arg(const struct api_call *c, const char *name);
/* ?limit= (1 to API_LIMIT_MAX, API_LIMIT_DEFAULT when absent) as text
 * into out: 0, or -1 when it is not one (400 answered). */
#define API_LIMIT_MAX 500
#define API_LIMIT_DEFAULT 100
int api_limit(struct api_call *c, char out[16]);
/* 400 bad-request with detail. */
void api_bad_request(struct api_call *c, const char *detail);
/* Runs sql (params as db_query takes them), which returns one (status,
 * body) row of a relance_api_* function, and answers with it (503 when
 * the database cannot take it). */
void api_ask(struct api_call *c, const char *sql, int n, const char *const *params);
/* The db_result_cb that answers such a row (api_reply_row); arg is the call. */
void api_on_row(struct db *db, const PGresult *res, void *arg);
/* Now for SQL parameters: clock.c's instant (RELANCE_TEST_CLOCK moves it). */
void api_now(char *buf, size_t len);
/* A string value fit for a text column — no U+0000, min to max bytes — or
 * NULL with an error added to e ("must be a string", "or null" when
 * nullable: the caller took null as a value). */
const char *api_text(const struct json_doc *d, int v, const char *ptr, size_t min, size_t max, int nullable,
                     struct api_errors *e);

/* The database for the API's statements, or NULL (the caller answers 503
 * with api_unavailable). */
struct db *api_db(const struct api_call *c);
/* The configuration serve runs with (its accounts and pools): the
 * server's, for its whole life. */
const struct config *api_config(const struct api_call *c);
/* Time zone names (sorted for contact_zone_find), or NULL before they
 * were read from PostgreSQL. */
const char *const *api_zones(const struct api_call *c, size_t *n);
/* The capture transport's Maildir, or NULL. */
const char *api_capture_dir(const struct api_call *c);
/* The webhook deliveries (webhooks.h), or NULL. */
struct webhooks *api_webhooks(const struct api_call *c);
/* Runs work(c) on libuv's thread pool (it must touch nothing of the
 * loop's), then done(c) on the loop; the API is not freed meanwhile. */
void api_off_loop(struct api_call *c, void (*work)(struct api_call *c), void (*done)(struct api_call *c));
/* Runs then(c) once the time zone names are known (at once when they
 * are); 503 when they cannot be read. */
void api_with_zones(struct api_call *c, void (*then)(struct api_call *c));

/* Whether the sender claims per account (transport smtp, or capture with
 * accounts): relance_enrollments_show's p_by_account. */
int api_by_account(const struct api_call *c);

/* Checks the contact object at value obj of d (its members' pointers
 * prefixed by ptr) as POST /v1/contacts does, adding one error each to e,
 * and writes its normalised members, comma-led, into out: what
 * relance_api_contacts_upsert takes for an item (api_contacts.c). */
void api_contact_input(const struct api_call *c, const struct json_doc *d, int obj, const char *ptr,
                       struct buf *out, struct api_errors *e);

/* Answers and ends the call (c is freed): body is sent as is, the
 * content type is application/problem+json from 400 on. */
void api_reply(struct api_call *c, int status, const char *body, size_t len);
/* Answers with a problem (RFC 9457): detail may be NULL; errors_json is
 * NULL or a JSON array of {pointer, message}. */
void api_problem(struct api_call *c, int status, const char *slug, const char *title, const char *detail,
                 const char *errors_json);
/* The same with extra members (extra: JSON members, no leading comma, or
 * NULL), as a 409's contact_ids. */
void api_problem_extra(struct api_call *c, int status, const char *slug, const char *title, const char *detail,
                       const char *errors_json, const char *extra);
/* Appends "contact_ids":["1","2"] from a PostgreSQL array {1,2}: the two
 * contacts a conflict names. */
void api_contact_ids(struct buf *out, const char *pgarray);
/* Answers a problem built by SQL (relance_api_problem: no request_id),
 * or any other JSON answer, as it came. */
void api_reply_sql(struct api_call *c, int status, const char *body);
/* 503: the database cannot be reached. */
void api_unavailable(struct api_call *c);
/* Answers a (status, body) row of a relance_api_* function, or 503
 * when res failed. */
void api_reply_row(struct api_call *c, const PGresult *res);

/* A validation error (422) being gathered: one {pointer, message} each. */
struct api_errors {
    struct buf json; /* "[{...},{...}" while open */
    size_t n;
};
void api_error_add(struct api_errors *e, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The errors as a JSON array (valid until api_errors_free). */
const char *api_errors_json(struct api_errors *e);
void api_errors_free(struct api_errors *e);

/* A batch of items — a bulk POST's array, or a POST's one item — checked
 * one by one: the valid ones go to SQL as one JSON array [{"index": i,
 * ...}] in one statement, the invalid ones are answered in their place.
 * What differs from one resource to another: */
struct api_batch_kind {
    const char *member; /* the bulk body's array, "contacts": pointers /contacts/i */
    const char *title;  /* of a single item's 422 */
    /* writes an item's normalised members, each led by a comma, into
     * out; its errors (pointers under ptr) into e */
    void (*check)(const struct api_call *c, const struct json_doc *d, int v, const char *ptr, struct buf *out,
                  struct api_errors *e);
    /* a valid item's result in a bulk answer, from its row (-1: SQL gave
     * none): the members after "index", and the closing brace */
    void (*write)(struct buf *out, const PGresult *res, int row, size_t i);
    /* the answer to a single item, from the statement's one row */
    void (*single)(struct api_call *c, const PGresult *res);
};
/* A bulk body, {"<member>": [1 to API_BATCH_MAX items]}: the array's
 * value, or -1 answered (422). */
#define API_BATCH_MAX 1000
int api_batch_items(struct api_call *c, const char *member);
/* Checks the items — the body itself when single, else the array at
 * value items — and keeps the batch in c->data. Returns 1 with the valid
 * ones in sql: the caller sends its statement with api_batch_answer as
 * the callback. Returns 0 when the call was answered (no valid item, a
 * single invalid one: 422, or out of memory). */
int api_batch_check(struct api_call *c, const struct api_batch_kind *kind, int items, int single, struct buf *sql);
/* The db_result_cb of a batch's statement (arg: the call): 503 when it
 * failed; kind->single's answer for one item; else {"results": [{"index":
 * i, ...}]} in input order (rows by index in column 0). */
void api_batch_answer(struct db *db, const PGresult *res, void *arg);
/* An item SQL refused, in a bulk answer: one error at pointer. */
void api_batch_invalid(struct buf *out, const char *pointer, const char *message);

/* The resources' routes, each {NULL}-terminated. */
extern const struct api_route api_contact_routes[];    /* api_contacts.c */
extern const struct api_route api_enrollment_routes[]; /* api_enrollments.c */
extern const struct api_route api_sequence_routes[];   /* api_sequences.c */
extern const struct api_route api_admin_routes[];      /* api_admin.c */
extern const struct api_route api_event_routes[];      /* api_events.c */
extern const struct api_route api_webhook_routes[];    /* api_webhooks.c */

#endif
