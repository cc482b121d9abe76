/* refusal: what the enhanced status code (RFC 3463) of a server's refusal
 * says about the sending account itself, as opposed to the recipient.
 * Mailbox providers now refuse unauthenticated senders outright: Gmail's
 * 5.7.25 (no PTR record for the sending IP), 5.7.26 (neither SPF nor DKIM
 * pass, or DMARC fails), 5.7.27 (SPF fails), 5.7.30 (not authenticated as
 * required), Outlook.com's 5.7.515 (the sending domain does not meet the
 * required authentication level). Every message from that account will
 * be refused the same way until its DNS or its server is fixed, so the
 * account pauses at the first one. The temporary 4.7.x forms are also
 * what providers say when they throttle or greylist: they are only
 * counted (the same code three times within an hour pauses; SQL counts).
 *
 * One table, read by SMTP-time classification (smtp.c) and by bounce
 * classification (classify_bounce.c), so a refusal at RCPT and the same
 * refusal in a DSN mean the same.
 *
 * Pure: no I/O, no logging, no allocation. */
#ifndef RELANCE_REFUSAL_H
#define RELANCE_REFUSAL_H

enum refusal_class {
    REFUSAL_NONE,            /* says nothing against the sending account (or not a refusal) */
    REFUSAL_UNAUTHENTICATED, /* 5.7.25, 5.7.26, 5.7.27, 5.7.30, 5.7.515: the account pauses at once */
    REFUSAL_TEMPORARY,       /* 4.7.x but greylisting: deferred, and counted per code against the account */
    REFUSAL_CLASS_COUNT
};

/* "none", "unauthenticated", "temporary". */
const char *refusal_class_name(enum refusal_class c);

/* What a refusal with enhanced status status ("5.7.26"; "" or NULL: none)
 * and the server's text (NULL allowed) says about the sending account.
 * Only the status decides, but a 4.7.x whose text says greylisting is
 * REFUSAL_NONE: a greylisting server refuses every new sender and
 * recipient pair once, a few minutes, whatever the account's standing. */
enum refusal_class refusal_classify(const char *status, const char *text);

#endif
