/* mta_words: the wordings of "no such user", "no such domain", "mailbox
 * full" and "blocked" in the replies of the common MTAs, for replies
 * that carry no enhanced status code (or only the uninformative 5.0.0).
 * It owns the words and their precedence; it does not read reply codes
 * or status codes (smtp and classify do, and a precise status always
 * wins over words there), and it does not decide retries.
 *
 * The taxonomy follows sisimai's reasons (userunknown, hostunknown,
 * mailboxfull, blocked/policy); the wordings were collected from the
 * MTAs' own replies:
 *   Exim      "Unrouteable address", "Unknown user", "No Such User Here",
 *             "Unknown local part"
 *   Postfix   "User unknown in local recipient table" (also "virtual
 *             mailbox table", "relay recipient table"), "Recipient
 *             address rejected: User unknown"
 *   Sendmail  "<x@y>... User unknown"
 *   qmail     "sorry, no mailbox here by that name"
 *   Exchange  "Recipient not found", "RESOLVER.ADR.RecipNotFound",
 *             "RESOLVER.ADR.RecipientNotFound"
 *   Gmail     "The email account that you tried to reach does not exist"
 *   Courier   "User unknown.", "No such user"
 *   OpenSMTPD "Invalid recipient" (ambiguous, see below)
 *
 * Ambiguity. OpenSMTPD answers "550 Invalid recipient" both when the
 * user does not exist and when its routing rules refuse the recipient
 * (a "reject" or missing "match" rule: a configuration matter, often
 * temporary); the bare RFC 5321 text "mailbox unavailable" is used by
 * many servers for refusals of every kind. Taking such a reply as a hard
 * bounce suppresses the prospect for good, and suppressing a deliverable
 * prospect is the worse error: a wrong soft verdict costs two retries
 * over half an hour, a wrong hard one loses the contact. So these words
 * are MTA_WORDS_AMBIGUOUS: SMTP-time classification makes them
 * rejected_other (retried, hard after the third refusal), and bounce
 * classification leaves the decision to the status code. Only wordings
 * that no MTA uses for anything but a missing mailbox are hard at once.
 *
 * Pure: no I/O, no logging. Matching is a case-insensitive substring
 * search, so it works on raw replies and on classify's normalised text. */
#include "mta_words.h"

#include <stddef.h>
#include <string.h>

static const char *const reason_names[MTA_WORDS_REASON_COUNT] = {
    [MTA_WORDS_NONE] = "none",
    [MTA_WORDS_USER_UNKNOWN] = "user_unknown",
    [MTA_WORDS_HOST_UNKNOWN] = "host_unknown",
    [MTA_WORDS_MAILBOX_FULL] = "mailbox_full",
    [MTA_WORDS_POLICY] = "policy",
    [MTA_WORDS_AMBIGUOUS] = "ambiguous",
};

/* Our own envelope sender refused: the recipient may well exist. */
static const char *const sender_words[] = {"sender", NULL};

/* Before "user unknown": "mailbox full" replies often name the user. */
static const char *const full_words[] = {
    "mailbox full", "mailbox is full", "over quota", "quota exceeded", "mailbox size limit", "insufficient storage",
    NULL,
};

/* Before "user unknown": Exim's "Unrouteable mail domain" vs "Unrouteable
 * address", Postfix's "Recipient address rejected: Domain not found". */
static const char *const host_words[] = {
    "unrouteable mail domain", "unrouteable domain", "host unknown", "unknown host", "domain not found",
    "no such domain", "unknown domain", "domain does not exist", "host or domain name not found", NULL,
};

static const char *const user_words[] = {
    "unrouteable address",          /* Exim */
    "unknown user", "no such user", /* Exim, Courier, cPanel's "No Such User Here" */
    "unknown local part",           /* Exim */
    "user unknown",                 /* Postfix (any of its lookup tables), Sendmail, Courier */
    "no mailbox here by that name", /* qmail */
    "recipient not found", "recipnotfound", "recipientnotfound", /* Exchange, its RESOLVER.ADR codes */
    "does not exist", "doesn't exist", /* Gmail, Yahoo, many others */
    "user not found", "no such recipient", "unknown recipient", "recipient unknown", "mailbox not found",
    "no such mailbox", "address not found", "unknown or illegal alias", NULL,
};

/* Said by some MTAs for a missing user and for other refusals alike. */
static const char *const ambiguous_words[] = {
    "invalid recipient",   /* OpenSMTPD: unknown user, or a routing rule */
    "mailbox unavailable", /* RFC 5321's generic 550 text */
    NULL,
};

static const char *const policy_words[] = {
    "spam", "blocked", "blacklist", "blocklist", "block list", "reputation", "policy", "dnsbl", "spamhaus",
    "denied", NULL,
};

static int has_any(const char *text, const char *const *words)
{
    for (; *words; words++) {
        if (strcasestr(text, *words))
            return 1;
    }
    return 0;
}

const char *mta_words_reason_name(enum mta_words_reason r)
{
    if ((unsigned)r >= MTA_WORDS_REASON_COUNT)
        return "?";
    return reason_names[r];
}

enum mta_words_reason mta_words_reason(const char *text)
{
    if (!text || !*text)
        return MTA_WORDS_NONE;
    if (!has_any(text, sender_words)) {
        if (has_any(text, full_words))
            return MTA_WORDS_MAILBOX_FULL;
        if (has_any(text, host_words))
            return MTA_WORDS_HOST_UNKNOWN;
        if (has_any(text, user_words))
            return MTA_WORDS_USER_UNKNOWN;
        if (has_any(text, ambiguous_words))
            return MTA_WORDS_AMBIGUOUS;
    }
    if (has_any(text, policy_words))
        return MTA_WORDS_POLICY;
    return MTA_WORDS_NONE;
}
