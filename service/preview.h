/* preview: the message a contact would get for one step, and the view of
 * it a person reads; shared by `relance preview` and the HTTP API's POST
 * /v1/sequences/{name}/preview, so that the two show the same message.
 * No I/O: the caller looks up the contact's fields and the account its
 * enrollment sends from (the command line synchronously, the API on the
 * loop) and prints or serialises the result. */
#ifndef RELANCE_PREVIEW_H
#define RELANCE_PREVIEW_H

#include "compose.h"
#include "config.h"
#include "sequence.h"

#include <stddef.h>
#include <time.h>

/* The account a preview is sent from, and in why the reason: wanted (an
 * account's email, named by chosen_by in why: "--account"), else enrolled
 * (the account the contact's enrollment sends from, for contact), else
 * the first of the sequence's pool. NULL when cfg has none to offer (the
 * preview then sends from a placeholder); *failed when wanted is not a
 * configured account. cfg may be NULL. */
const struct config_account *preview_account(const struct config *cfg, const struct sequence *seq, const char *wanted,
                                             const char *chosen_by, const char *enrolled, const char *contact,
                                             char *why, size_t len, int *failed);

struct preview_input {
    const struct sequence *seq;
    const struct sequence_step *step;  /* one of seq's */
    const char *const *var_keys;       /* field values given by hand: they win over the contact's */
    const char *const *var_values;
    size_t n_vars;
    const char *contact_fields;        /* relance_contact_fields' packed text, or NULL */
    const struct config_account *account; /* NULL: a placeholder sender */
    time_t date;
    /* public_url and tracking: the unsubscribe link, its headers and the
     * tracked links as the message will carry them, but signed with
     * PREVIEW_LINK_SECRET, a stand-in known to all (a preview's links
     * show their shape and do not work). NULL: none of them. */
    const struct config *cfg;
};

#define PREVIEW_LINK_SECRET "preview-links-are-signed-with-this-stand-in-key"


/* Composes the step's message with compose_message, the scheduler's own
 * (the same variant and spintax for the same address), with stand-in
 * Message-IDs. Returns COMPOSE_OK (the caller frees res),
 * COMPOSE_MISSING_FIELD (res->missing names it) or -1 (err says why). */
int preview_compose(const struct preview_input *in, struct compose_result *res, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The address a preview goes to: the email field, else a placeholder. */
#define PREVIEW_TO_DEFAULT "prospect@example.com"

enum { PREVIEW_HEADERS = 7 };
/* From, To, Subject, Date, Message-ID, In-Reply-To, References */
extern const char *const preview_header_names[PREVIEW_HEADERS];

/* A composed message as a person reads it: headers decoded (NULL when
 * absent), the text part decoded to UTF-8 with LF line ends, and the
 * HTML part's, when there is one. */
struct preview_view {
    char *headers[PREVIEW_HEADERS];
    char *text, *html;                 /* NULL when the message has no such part */
    size_t text_len, html_len;
};

/* Returns 0 (the caller frees out with preview_view_free, also after a
 * failure), or -1 when out of memory. */
int preview_view_parse(const char *msg, size_t len, struct preview_view *out) __attribute__((warn_unused_result));
void preview_view_free(struct preview_view *v);

#endif
