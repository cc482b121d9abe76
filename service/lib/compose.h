/* compose: one step of a sequence, for one contact, as the exact message
 * that goes out. Chooses the A/B variant, renders subject and bodies with
 * the contact's fields (HTML-escaped in the html body, as they are in
 * the subject and the text body), threads follow-ups (Re: subject,
 * In-Reply-To, References) and builds the RFC 5322 text. The dispatcher
 * and `relance preview` both call it, so a preview is what is sent.
 *
 * Fields are the contact's ({{first_name}}, {{company}}, custom fields),
 * except sender.NAME, which is the sending account's: {{sender.email}},
 * {{sender.name}} (its from_name), {{sender.first_name}} (configured, or
 * the first word of from_name) and {{sender.signature}} (configured, line
 * breaks kept). A contact field never shadows a sender field.
 *
 * Unsubscribing: {{unsubscribe_url}} is the message's one-click link (the
 * caller's unsubscribe_url), else a mailto: to the sender asking to be
 * removed; a sequence's unsubscribe footer is appended to every step (to
 * the text, and as a paragraph with a link to the html). Unless the
 * sequence says unsubscribe: {header: false}, the message carries
 * List-Unsubscribe (the link and the mailto:) and, with a link,
 * List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058).
 *
 * Tracking (the sequence's track: keys, given a base and the link
 * secret): the html's links, and with text_links the text's bare URLs,
 * become BASE/c/TOKEN, each token binding its destination and the number
 * of distinct tracked destinations of the message (one byte, then the
 * URL); the unsubscribe link never; with opens, a 1x1 image BASE/o/TOKEN.gif
 * closes the html (only an html part has one). Rewritten after the
 * footer, so the message's final body is what DKIM later signs.
 * Pure: no I/O. */
#ifndef RELANCE_COMPOSE_H
#define RELANCE_COMPOSE_H

#include "sequence.h"
#include "template.h"

#include <stddef.h>
#include <time.h>

/* The account a message goes out from, as its templates see it. */
struct compose_sender {
    const char *email, *name, *first_name, *signature; /* NULL: not configured */
};

struct compose_input {
    const struct sequence *seq;
    size_t position;                 /* the step's index in seq->steps */
    const char *to_addr;             /* the contact's address */
    const char *(*lookup)(const char *field, void *arg); /* the contact's fields */
    void *lookup_arg;
    const char *from_addr, *from_name;
    const struct compose_sender *sender; /* for sender.NAME fields; NULL: from_addr and from_name only */
    const char *message_id;          /* "<id@domain>" */
    time_t date;
    const char *const *thread_ids;   /* "<id@domain>" of earlier messages, oldest first */
    size_t n_thread;
    const char *first_subject;       /* the first step's subject as sent, or NULL to render it */
    const char *unsubscribe_url;     /* "https://PUBLIC/u/TOKEN" for this message, or NULL (no public_url) */
    /* Tracking: "https://TRACKING_DOMAIN" (or public_url) and the secret
     * that signs its tokens; either NULL: nothing is tracked, whatever
     * the sequence says. */
    const char *track_base, *link_secret;
};

struct compose_result {
    char *text;                      /* the message, CRLF; caller frees */
    size_t len;
    char *subject;                   /* the rendered subject; caller frees */
    int variant;                     /* index of the variant used, -1 without variants */
    int tracked_links, open_pixel;   /* links rewritten (html and text); 1 when the open image was added */
    char missing[TEMPLATE_MAX_FIELD + 1]; /* on COMPOSE_MISSING_FIELD */
};

enum { COMPOSE_OK = 0, COMPOSE_MISSING_FIELD = 1 };

/* Returns COMPOSE_OK (result filled), COMPOSE_MISSING_FIELD (result's
 * missing names the field; nothing to free), or -1 with a reason in err. */
int compose_message(const struct compose_input *in, struct compose_result *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void compose_result_free(struct compose_result *r);

/* The value of sender field name ("first_name" for {{sender.first_name}})
 * for account s, copied into buf (size len) where it is derived; NULL
 * when the account has none. */
const char *compose_sender_field(const struct compose_sender *s, const char *name, char *buf, size_t len);

/* Looks field up in a contact's packed fields, "key<US>value<RS>..." as
 * SQL's relance_contact_fields returns them (US = 0x1f, RS = 0x1e). The
 * value is copied into buf (truncated to len). NULL when absent. */
const char *compose_field_find(const char *packed, const char *field, char *buf, size_t len);

#endif
