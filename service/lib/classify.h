/* classify: what a message that lands in a sender's mailbox means for
 * the cadence — a person's reply, an auto-reply (with the date its
 * author is back when it says so), a hard or soft bounce (with status,
 * recipients and whether it is a block against the sending account), a
 * request to be removed, or something else.
 *
 * Pure: no I/O, no logging. The mailbox watcher and `relance classify`
 * call the same function. DESIGN semantic 6 is the bounce taxonomy:
 * hard = the address or its domain does not exist; soft = everything
 * else, including full mailboxes and 5.7.x policy blocks. */
#ifndef RELANCE_CLASSIFY_H
#define RELANCE_CLASSIFY_H

#include <stddef.h>
#include <time.h>

enum classify_kind {
    CLASSIFY_HUMAN_REPLY,
    CLASSIFY_AUTO_REPLY,
    CLASSIFY_HARD_BOUNCE,
    CLASSIFY_SOFT_BOUNCE,
    CLASSIFY_UNSUBSCRIBE_REQUEST,
    CLASSIFY_OTHER,
    CLASSIFY_KIND_COUNT
};
extern const char *const classify_kind_names[CLASSIFY_KIND_COUNT];

/* Why a bounce happened. The first four are hard (the address is gone);
 * the block group counts against the sending account, never the
 * address; the rest are recipient-side or transient soft bounces. */
enum classify_reason {
    CLASSIFY_REASON_NONE,           /* not a bounce */
    CLASSIFY_REASON_USER_UNKNOWN,   /* hard: no such mailbox */
    CLASSIFY_REASON_HOST_UNKNOWN,   /* hard: no such domain / no MX */
    CLASSIFY_REASON_HAS_MOVED,      /* hard: 5.1.6 */
    CLASSIFY_REASON_NOT_ACCEPT,     /* hard: the domain accepts no mail (null MX) */
    CLASSIFY_REASON_MAILBOX_FULL,   /* soft, recipient side */
    CLASSIFY_REASON_TOO_BIG,        /* soft, recipient side */
    CLASSIFY_REASON_SUSPENDED,      /* soft, recipient side: disabled mailbox */
    CLASSIFY_REASON_FILTERED,       /* soft, recipient side: the recipient's filter */
    CLASSIFY_REASON_EXPIRED,        /* soft, transient: gave up retrying */
    CLASSIFY_REASON_NETWORK,        /* soft, transient: network, DNS, loop */
    CLASSIFY_REASON_SYSTEM,         /* soft, transient: the remote system failed */
    CLASSIFY_REASON_BLOCKED,        /* block: IP/domain reputation, PTR, rate */
    CLASSIFY_REASON_SPAM,           /* block: content judged spam or virus */
    CLASSIFY_REASON_POLICY,         /* block: 5.7.x policy, SPF/DKIM/DMARC, relay */
    CLASSIFY_REASON_SENDER,         /* block: our sender address refused (5.1.8) */
    CLASSIFY_REASON_UNKNOWN,        /* soft, nothing more specific was readable */
    CLASSIFY_REASON_COUNT
};
extern const char *const classify_reason_names[CLASSIFY_REASON_COUNT];

/* True for reasons that mean the address does not exist. */
int classify_reason_is_hard(enum classify_reason r);
/* True for block / policy rejections (counted against the account). */
int classify_reason_is_block(enum classify_reason r);

#define CLASSIFY_MAX_RECIPIENTS 8

struct classify_recipient {
    char address[256];
    char status[16];              /* "5.1.1", or "" when none is written */
    enum classify_reason reason;
};

struct classify_result {
    enum classify_kind kind;
    /* Bounces: the failed recipients in report order, the overall reason
     * (the first recipient's) and whether any of them is a block. */
    struct classify_recipient recipients[CLASSIFY_MAX_RECIPIENTS];
    size_t recipient_count;
    enum classify_reason reason;
    int is_block;
    /* When a failed recipient's status says the receiver refuses the
     * sending account itself (refusal.h: 5.7.26, 5.7.515...): that status
     * and the server's words, as "550 5.7.515 Access denied, ..." (the
     * first such recipient's); "" otherwise. The account pauses on it. */
    char refusal[320];
    /* The Message-ID (with <>) of our message this one answers or
     * returns; "" when none is readable. */
    char message_id[512];
    /* Auto-replies: the date the author says they are back, as a
     * calendar date (UTC midnight in return_date), when readable. */
    int has_return_date;
    int return_year, return_month, return_day;
    time_t return_date;
    /* The message's own Date, 0 when unreadable. */
    time_t date;
};

/* Classifies raw[0..len) (RFC 5322, CRLF or LF) into *out. Hostile or
 * unreadable input gives CLASSIFY_OTHER. Returns 0, or -ENOMEM. */
int classify_message(const char *raw, size_t len, struct classify_result *out)
    __attribute__((warn_unused_result));

/* Reads a return date from an auto-reply's text: explicit dates in
 * English, French, German and Spanish, numeric forms and weekday names,
 * resolved against sent (the message's Date; a date without a year is
 * the next one on or after it). Returns 0 and fills y/m/d, or -1. */
int classify_return_date_parse(const char *text, time_t sent, int *year, int *month, int *day);

#endif
