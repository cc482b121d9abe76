/* inbound: the facts of one fetched message that relance_inbound records
 * (see inbound.c). */
#ifndef RELANCE_INBOUND_H
#define RELANCE_INBOUND_H

#include "classify.h"

#include <stddef.h>
#include <time.h>

/* What relance_inbound needs from one message besides classify's result. */
struct inbound {
    char message_id[512]; /* its own Message-ID without <>; "" when none */
    char from[320];       /* its From address, lower-case; "" when none */
    char *refs;           /* PostgreSQL text[] literal: classify's id, In-Reply-To, References newest first */
    char *recipients;     /* text[] literal: a bounce's failed recipients, lower-case */
    char return_date[16]; /* "YYYY-MM-DD", "" when none */
    time_t received;      /* when it reached the mailbox: the date of its topmost Received field
                           * (the last hop's, the delivery's); 0 when none can be read */
};

/* Reads raw[0..len) (the fetched header and body prefix) and c (its
 * classification) into out (free with inbound_free). Returns 0
 * or -ENOMEM. */
int inbound_read(const char *raw, size_t len, const struct classify_result *c, struct inbound *out)
    __attribute__((warn_unused_result));
void inbound_free(struct inbound *in);

#endif
