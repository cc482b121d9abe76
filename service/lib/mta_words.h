/* mta_words: what the common MTAs' free-text replies say about a
 * recipient when no enhanced status code (RFC 3463) says it for them —
 * Exim's "Unrouteable address", Postfix's "User unknown in local
 * recipient table", qmail's "no mailbox here by that name", Exchange's
 * "RESOLVER.ADR.RecipNotFound"... One table, read by SMTP-time
 * classification (smtp) and by bounce classification (classify), so the
 * two cannot disagree about the same words.
 *
 * Pure: no I/O, no logging, no allocation. */
#ifndef RELANCE_MTA_WORDS_H
#define RELANCE_MTA_WORDS_H

enum mta_words_reason {
    MTA_WORDS_NONE,         /* nothing readable, or words about our own sender */
    MTA_WORDS_USER_UNKNOWN, /* unambiguous: the mailbox does not exist */
    MTA_WORDS_HOST_UNKNOWN, /* unambiguous: the domain does not exist or is not routable */
    MTA_WORDS_MAILBOX_FULL, /* the mailbox exists and is full */
    MTA_WORDS_POLICY,       /* a block: spam, reputation, lists, policy */
    MTA_WORDS_AMBIGUOUS,    /* reads like "no such user" but some MTAs say it for routing-rule
                               refusals too (OpenSMTPD's "Invalid recipient") */
    MTA_WORDS_REASON_COUNT
};

/* "none", "user_unknown", "host_unknown", "mailbox_full", "policy",
 * "ambiguous". */
const char *mta_words_reason_name(enum mta_words_reason r);

/* What text (a reply or a bounce's diagnostic, any case, NULL allowed)
 * says. Words about the sender ("Sender address rejected: ...") never
 * make the recipient unknown; a full mailbox wins over "user" wording;
 * an unknown domain wins over an unknown address. */
enum mta_words_reason mta_words_reason(const char *text);

#endif
