/* classify_reason: why a bounce happened, the taxonomy of DESIGN
 * semantic 6. It owns the reason names and what makes a reason hard or
 * a block, enhanced status codes (finding one in a text, what its class
 * and detail say), the bounce wording of MTAs and providers in the order
 * that settles ambiguous texts, and the corrections the SMTP stage
 * brings: a refusal after DATA or at MAIL FROM says nothing about the
 * recipient's address. It does not find bounces or their recipients
 * (classify_bounce.c does). Pure: no I/O, no logging. */
#include "classify.h"
#include "classify_int.h"

#include "mta_words.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *const classify_reason_names[CLASSIFY_REASON_COUNT] = {
    [CLASSIFY_REASON_NONE] = "none",
    [CLASSIFY_REASON_USER_UNKNOWN] = "user_unknown",
    [CLASSIFY_REASON_HOST_UNKNOWN] = "host_unknown",
    [CLASSIFY_REASON_HAS_MOVED] = "has_moved",
    [CLASSIFY_REASON_NOT_ACCEPT] = "not_accept",
    [CLASSIFY_REASON_MAILBOX_FULL] = "mailbox_full",
    [CLASSIFY_REASON_TOO_BIG] = "too_big",
    [CLASSIFY_REASON_SUSPENDED] = "suspended",
    [CLASSIFY_REASON_FILTERED] = "filtered",
    [CLASSIFY_REASON_EXPIRED] = "expired",
    [CLASSIFY_REASON_NETWORK] = "network",
    [CLASSIFY_REASON_SYSTEM] = "system",
    [CLASSIFY_REASON_BLOCKED] = "blocked",
    [CLASSIFY_REASON_SPAM] = "spam",
    [CLASSIFY_REASON_POLICY] = "policy",
    [CLASSIFY_REASON_SENDER] = "sender",
    [CLASSIFY_REASON_UNKNOWN] = "unknown",
};

int classify_reason_is_hard(enum classify_reason r)
{
    return r == CLASSIFY_REASON_USER_UNKNOWN || r == CLASSIFY_REASON_HOST_UNKNOWN ||
           r == CLASSIFY_REASON_HAS_MOVED || r == CLASSIFY_REASON_NOT_ACCEPT;
}

int classify_reason_is_block(enum classify_reason r)
{
    return r == CLASSIFY_REASON_BLOCKED || r == CLASSIFY_REASON_SPAM ||
           r == CLASSIFY_REASON_POLICY || r == CLASSIFY_REASON_SENDER;
}

/* An enhanced status code "c.s.d" at s (class 2, 4 or 5). Returns its
 * length or 0. */
size_t cls_status_at(const char *base, const char *s)
{
    if (s > base && (isdigit((unsigned char)s[-1]) || s[-1] == '.'))
        return 0;
    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return 0;
    if (s[1] != '.')
        return 0;
    size_t i = 2, d = 0;
    while (isdigit((unsigned char)s[i]) && d < 3) {
        i++;
        d++;
    }
    if (d == 0 || s[i] != '.')
        return 0;
    i++;
    d = 0;
    while (isdigit((unsigned char)s[i]) && d < 3) {
        i++;
        d++;
    }
    if (d == 0 || isdigit((unsigned char)s[i]))
        return 0;
    if (s[i] == '.' && isdigit((unsigned char)s[i + 1]))
        return 0;
    if (isalpha((unsigned char)s[i]) || s[i] == '@' || s[i] == '-')
        return 0;
    return i;
}

/* True when an SMTP reply code ("550 ", "550-", "550-'") ends just
 * before s. */
static int after_reply_code(const char *base, const char *s)
{
    const char *p = s;
    for (int k = 0; k < 2 && p > base && (p[-1] == '\'' || p[-1] == '"' || p[-1] == '#'); k++)
        p--;
    if (p - base < 4 || (p[-1] != ' ' && p[-1] != '-'))
        return 0;
    return isdigit((unsigned char)p[-2]) && isdigit((unsigned char)p[-3]) &&
           (p[-4] == '4' || p[-4] == '5') && (p - base == 4 || !isdigit((unsigned char)p[-5]));
}

/* The failure status (4.x.x or 5.x.x) in text[0..len): the first one
 * that follows an SMTP reply code, else the first one. */
int cls_find_status(const char *text, size_t len, char *out, size_t outlen)
{
    const char *first = NULL;
    size_t first_n = 0;
    for (size_t i = 0; i < len && text[i]; i++) {
        if (text[i] != '4' && text[i] != '5')
            continue;
        size_t n = cls_status_at(text, text + i);
        if (!n)
            continue;
        if (after_reply_code(text, text + i)) {
            cls_copy_str(out, outlen, text + i, n);
            return 0;
        }
        if (!first) {
            first = text + i;
            first_n = n;
        }
    }
    if (!first)
        return -1;
    cls_copy_str(out, outlen, first, first_n);
    return 0;
}

/* A status with a zero subject ("5.0.0") says less than one in text. */
int cls_status_is_generic(const char *st)
{
    return st[0] == '\0' || (strlen(st) == 5 && strcmp(st + 1, ".0.0") == 0);
}

struct rule {
    const char *pat;
    enum classify_reason reason;
};

/* First match wins: the specific soft reasons come before "user
 * unknown" because MTAs write 5.1.1 for full or disabled mailboxes too;
 * transient and generic wording comes last. */
static const struct rule reason_rules[] = {
    /* mailbox full */
    {"mailbox full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox*is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mail box full", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox has exceeded", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox exceeds", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox size limit", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailfolder is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"over quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"overquota", CLASSIFY_REASON_MAILBOX_FULL},
    {"over the quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"over its quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"quota exceeded", CLASSIFY_REASON_MAILBOX_FULL},
    {"quota exceed", CLASSIFY_REASON_MAILBOX_FULL},
    {"exceeded*quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"exceed*quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"quota full", CLASSIFY_REASON_MAILBOX_FULL},
    {"disk quota", CLASSIFY_REASON_MAILBOX_FULL},
    {"exceeded storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"insufficient storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"not enough storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"out of storage", CLASSIFY_REASON_MAILBOX_FULL},
    {"storage limit", CLASSIFY_REASON_MAILBOX_FULL},
    {"inbox is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"account is full", CLASSIFY_REASON_MAILBOX_FULL},
    {"user is over", CLASSIFY_REASON_MAILBOX_FULL},
    {"mailbox is over", CLASSIFY_REASON_MAILBOX_FULL},
    {"full mailbox", CLASSIFY_REASON_MAILBOX_FULL},
    {"boîte pleine", CLASSIFY_REASON_MAILBOX_FULL},
    {"boite pleine", CLASSIFY_REASON_MAILBOX_FULL},
    {"postfach voll", CLASSIFY_REASON_MAILBOX_FULL},
    {"buzón lleno", CLASSIFY_REASON_MAILBOX_FULL},
    /* too big */
    {"message too large", CLASSIFY_REASON_TOO_BIG},
    {"message too big", CLASSIFY_REASON_TOO_BIG},
    {"message is too large", CLASSIFY_REASON_TOO_BIG},
    {"message is too big", CLASSIFY_REASON_TOO_BIG},
    {"message size exceeds", CLASSIFY_REASON_TOO_BIG},
    {"message length exceeds", CLASSIFY_REASON_TOO_BIG},
    {"size exceeds", CLASSIFY_REASON_TOO_BIG},
    {"exceeds size limit", CLASSIFY_REASON_TOO_BIG},
    {"exceeds the size limit", CLASSIFY_REASON_TOO_BIG},
    {"exceeds the maximum size", CLASSIFY_REASON_TOO_BIG},
    {"exceeds maximum", CLASSIFY_REASON_TOO_BIG},
    {"message exceeds", CLASSIFY_REASON_TOO_BIG},
    {"message size", CLASSIFY_REASON_TOO_BIG},
    {"too large", CLASSIFY_REASON_TOO_BIG},
    {"size limit", CLASSIFY_REASON_TOO_BIG},
    /* our sender refused: before "does not exist", which these quote */
    {"sender address rejected", CLASSIFY_REASON_SENDER},
    {"domain of sender", CLASSIFY_REASON_SENDER},
    {"sender verify failed", CLASSIFY_REASON_SENDER},
    {"my name was rejected", CLASSIFY_REASON_BLOCKED},
    /* Microsoft 365 directory-based edge blocking: no such recipient */
    {"recipient address rejected: access denied", CLASSIFY_REASON_USER_UNKNOWN},
    /* addresses that read like disabled ones but are gone */
    {"inactive email address", CLASSIFY_REASON_USER_UNKNOWN},
    {"inactive address", CLASSIFY_REASON_USER_UNKNOWN},
    {"not an active address", CLASSIFY_REASON_USER_UNKNOWN},
    /* disabled mailbox */
    {"account disabled", CLASSIFY_REASON_SUSPENDED},
    {"account is disabled", CLASSIFY_REASON_SUSPENDED},
    {"account has been disabled", CLASSIFY_REASON_SUSPENDED},
    {"mailbox disabled", CLASSIFY_REASON_SUSPENDED},
    {"mailbox is disabled", CLASSIFY_REASON_SUSPENDED},
    {"mailbox has been disabled", CLASSIFY_REASON_SUSPENDED},
    {"suspended", CLASSIFY_REASON_SUSPENDED},
    {"inactive", CLASSIFY_REASON_SUSPENDED},
    {"deactivated", CLASSIFY_REASON_SUSPENDED},
    {"not active", CLASSIFY_REASON_SUSPENDED},
    {"account is locked", CLASSIFY_REASON_SUSPENDED},
    {"account has been locked", CLASSIFY_REASON_SUSPENDED},
    {"temporarily disabled", CLASSIFY_REASON_SUSPENDED},
    {"frozen", CLASSIFY_REASON_SUSPENDED},
    /* moved */
    {"has moved", CLASSIFY_REASON_HAS_MOVED},
    {"address has changed", CLASSIFY_REASON_HAS_MOVED},
    {"user has moved", CLASSIFY_REASON_HAS_MOVED},
    /* relaying: our side's configuration, a policy block */
    {"relay access denied", CLASSIFY_REASON_POLICY},
    {"relaying denied", CLASSIFY_REASON_POLICY},
    {"relay denied", CLASSIFY_REASON_POLICY},
    {"relay not permitted", CLASSIFY_REASON_POLICY},
    {"not permitted to relay", CLASSIFY_REASON_POLICY},
    {"unable to relay", CLASSIFY_REASON_POLICY},
    {"relaying not allowed", CLASSIFY_REASON_POLICY},
    {"relaying to", CLASSIFY_REASON_POLICY},
    {"we do not relay", CLASSIFY_REASON_POLICY},
    {"no relaying", CLASSIFY_REASON_POLICY},
    {"not allowed to relay", CLASSIFY_REASON_POLICY},
    /* authentication of the sender */
    {"~spf~", CLASSIFY_REASON_POLICY},
    {"~dkim~", CLASSIFY_REASON_POLICY},
    {"~dmarc~", CLASSIFY_REASON_POLICY},
    {"sender policy framework", CLASSIFY_REASON_POLICY},
    {"unauthenticated", CLASSIFY_REASON_POLICY},
    {"authentication required", CLASSIFY_REASON_POLICY},
    {"not authorized to send", CLASSIFY_REASON_POLICY},
    {"authentication check", CLASSIFY_REASON_POLICY},
    {"authentication fail", CLASSIFY_REASON_POLICY},
    {"permission to post", CLASSIFY_REASON_POLICY},
    /* the recipient's own choice */
    {"recipient preferences", CLASSIFY_REASON_FILTERED},
    {"refuses to accept", CLASSIFY_REASON_FILTERED},
    {"recipient's filter", CLASSIFY_REASON_FILTERED},
    {"user refuses", CLASSIFY_REASON_FILTERED},
    /* user unknown */
    {"user unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown user", CLASSIFY_REASON_USER_UNKNOWN},
    {"user not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such user", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such address", CLASSIFY_REASON_USER_UNKNOWN},
    {"no such account", CLASSIFY_REASON_USER_UNKNOWN},
    {"no mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox doesn't exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox is not", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"not a valid mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"recipient is invalid", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown address", CLASSIFY_REASON_USER_UNKNOWN},
    {"address unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"addressee unknown", CLASSIFY_REASON_USER_UNKNOWN},
    {"address not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"address does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"account does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"user does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"user doesn't exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"does not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"doesn't exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"not exist", CLASSIFY_REASON_USER_UNKNOWN},
    {"doesn't have a", CLASSIFY_REASON_USER_UNKNOWN},
    {"does not have an account", CLASSIFY_REASON_USER_UNKNOWN},
    {"no account", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown local part", CLASSIFY_REASON_USER_UNKNOWN},
    {"unknown or illegal alias", CLASSIFY_REASON_USER_UNKNOWN},
    {"unrouteable address", CLASSIFY_REASON_USER_UNKNOWN},
    {"bad destination mailbox", CLASSIFY_REASON_USER_UNKNOWN},
    {"couldn't be found", CLASSIFY_REASON_USER_UNKNOWN},
    {"could not be found", CLASSIFY_REASON_USER_UNKNOWN},
    {"is not a known user", CLASSIFY_REASON_USER_UNKNOWN},
    {"not our customer", CLASSIFY_REASON_USER_UNKNOWN},
    {"no valid recipient", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid address", CLASSIFY_REASON_USER_UNKNOWN},
    {"mailbox unavailable", CLASSIFY_REASON_USER_UNKNOWN},
    {"mail-box not found", CLASSIFY_REASON_USER_UNKNOWN},
    {"no mail box", CLASSIFY_REASON_USER_UNKNOWN},
    {"not listed in", CLASSIFY_REASON_USER_UNKNOWN},
    {"invalid user", CLASSIFY_REASON_USER_UNKNOWN},
    {"name is not recognized", CLASSIFY_REASON_USER_UNKNOWN},
    {"destinataire inconnu", CLASSIFY_REASON_USER_UNKNOWN},
    {"adresse inconnue", CLASSIFY_REASON_USER_UNKNOWN},
    {"unbekannt", CLASSIFY_REASON_USER_UNKNOWN},
    {"existiert nicht", CLASSIFY_REASON_USER_UNKNOWN},
    {"no existe", CLASSIFY_REASON_USER_UNKNOWN},
    {"desconocido", CLASSIFY_REASON_USER_UNKNOWN},
    /* the recipient's own filter */
    {"recipient has blocked", CLASSIFY_REASON_FILTERED},
    {"blocked by the recipient", CLASSIFY_REASON_FILTERED},
    {"blocked by recipient", CLASSIFY_REASON_FILTERED},
    /* reverse DNS */
    {"reverse dns", CLASSIFY_REASON_BLOCKED},
    {"ptr record", CLASSIFY_REASON_BLOCKED},
    {"~ptr~", CLASSIFY_REASON_BLOCKED},
    {"reverse lookup", CLASSIFY_REASON_BLOCKED},
    {"cannot find your hostname", CLASSIFY_REASON_BLOCKED},
    {"cannot find your reverse", CLASSIFY_REASON_BLOCKED},
    {"~rdns~", CLASSIFY_REASON_BLOCKED},
    /* malformed message */
    {"rfc 5322", CLASSIFY_REASON_POLICY},
    {"rfc5322", CLASSIFY_REASON_POLICY},
    {"rfc 2822", CLASSIFY_REASON_POLICY},
    {"rfc2822", CLASSIFY_REASON_POLICY},
    {"not rfc compliant", CLASSIFY_REASON_POLICY},
    {"not compliant", CLASSIFY_REASON_POLICY},
    /* reputation and lists */
    {"blacklist", CLASSIFY_REASON_BLOCKED},
    {"blocklist", CLASSIFY_REASON_BLOCKED},
    {"black list", CLASSIFY_REASON_BLOCKED},
    {"block list", CLASSIFY_REASON_BLOCKED},
    {"spamhaus", CLASSIFY_REASON_BLOCKED},
    {"spamcop", CLASSIFY_REASON_BLOCKED},
    {"~rbl~", CLASSIFY_REASON_BLOCKED},
    {"dnsbl", CLASSIFY_REASON_BLOCKED},
    {"reputation", CLASSIFY_REASON_BLOCKED},
    {"listed at", CLASSIFY_REASON_BLOCKED},
    {"listed on", CLASSIFY_REASON_BLOCKED},
    /* our sender refused (the wordings that must come before "does not
     * exist" are at the top) */
    {"sender rejected", CLASSIFY_REASON_SENDER},
    {"sender domain", CLASSIFY_REASON_SENDER},
    {"sender verification", CLASSIFY_REASON_SENDER},
    {"invalid sender", CLASSIFY_REASON_SENDER},
    {"sender unknown", CLASSIFY_REASON_SENDER},
    {"unknown sender", CLASSIFY_REASON_SENDER},
    {"bad sender", CLASSIFY_REASON_SENDER},
    {"sender is not", CLASSIFY_REASON_SENDER},
    {"envelope sender", CLASSIFY_REASON_SENDER},
    /* unknown host or domain */
    {"host unknown", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unknown host", CLASSIFY_REASON_HOST_UNKNOWN},
    {"host not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"no such domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain does not exist", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unknown domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unrouteable domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"unrouteable mail domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"name or service not known", CLASSIFY_REASON_HOST_UNKNOWN},
    {"host or domain name not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain name not found", CLASSIFY_REASON_HOST_UNKNOWN},
    {"nxdomain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"no mx", CLASSIFY_REASON_HOST_UNKNOWN},
    {"invalid domain", CLASSIFY_REASON_HOST_UNKNOWN},
    {"domain is not reachable", CLASSIFY_REASON_HOST_UNKNOWN},
    {"no smtp service", CLASSIFY_REASON_NOT_ACCEPT},
    {"lookup failure", CLASSIFY_REASON_HOST_UNKNOWN},
    {"does not accept mail", CLASSIFY_REASON_NOT_ACCEPT},
    {"accepts no mail", CLASSIFY_REASON_NOT_ACCEPT},
    {"null mx", CLASSIFY_REASON_NOT_ACCEPT},
    /* spam and content */
    {"spam", CLASSIFY_REASON_SPAM},
    {"junk", CLASSIFY_REASON_SPAM},
    {"virus", CLASSIFY_REASON_SPAM},
    {"malware", CLASSIFY_REASON_SPAM},
    {"phish", CLASSIFY_REASON_SPAM},
    {"unsolicited", CLASSIFY_REASON_SPAM},
    {"content rejected", CLASSIFY_REASON_SPAM},
    {"message content", CLASSIFY_REASON_SPAM},
    {"content filter", CLASSIFY_REASON_SPAM},
    /* rate and connection limits */
    {"too many connections", CLASSIFY_REASON_BLOCKED},
    {"too many messages", CLASSIFY_REASON_BLOCKED},
    {"rate limit", CLASSIFY_REASON_BLOCKED},
    {"throttl", CLASSIFY_REASON_BLOCKED},
    {"too many recipients", CLASSIFY_REASON_BLOCKED},
    /* generic blocks */
    {"blocked", CLASSIFY_REASON_BLOCKED},
    {"access denied", CLASSIFY_REASON_BLOCKED},
    {"denied", CLASSIFY_REASON_POLICY},
    {"policy", CLASSIFY_REASON_POLICY},
    {"not allowed", CLASSIFY_REASON_POLICY},
    {"prohibited", CLASSIFY_REASON_POLICY},
    /* transient */
    {"retry timeout", CLASSIFY_REASON_EXPIRED},
    {"retry time", CLASSIFY_REASON_EXPIRED},
    {"message expired", CLASSIFY_REASON_EXPIRED},
    {"delivery time expired", CLASSIFY_REASON_EXPIRED},
    {"has been delayed", CLASSIFY_REASON_EXPIRED},
    {"not yet been delivered", CLASSIFY_REASON_EXPIRED},
    {"giving up", CLASSIFY_REASON_EXPIRED},
    {"gave up", CLASSIFY_REASON_EXPIRED},
    {"timed out", CLASSIFY_REASON_NETWORK},
    {"timeout", CLASSIFY_REASON_NETWORK},
    {"connection refused", CLASSIFY_REASON_NETWORK},
    {"no route to host", CLASSIFY_REASON_NETWORK},
    {"network is unreachable", CLASSIFY_REASON_NETWORK},
    {"host is unreachable", CLASSIFY_REASON_NETWORK},
    {"could not connect", CLASSIFY_REASON_NETWORK},
    {"unable to connect", CLASSIFY_REASON_NETWORK},
    {"lost connection", CLASSIFY_REASON_NETWORK},
    {"mail loop", CLASSIFY_REASON_NETWORK},
    {"loops back", CLASSIFY_REASON_NETWORK},
    {"too many hops", CLASSIFY_REASON_NETWORK},
    {"system error", CLASSIFY_REASON_SYSTEM},
    {"internal error", CLASSIFY_REASON_SYSTEM},
    {"local error", CLASSIFY_REASON_SYSTEM},
    {"temporary failure", CLASSIFY_REASON_SYSTEM},
    {"server error", CLASSIFY_REASON_SYSTEM},
};

static enum classify_reason reason_from_text(const char *ntext)
{
    if (!ntext || !*ntext)
        return CLASSIFY_REASON_NONE;
    for (size_t i = 0; i < sizeof reason_rules / sizeof reason_rules[0]; i++)
        if (cls_wfind(ntext, reason_rules[i].pat))
            return reason_rules[i].reason;
    /* The MTA wordings SMTP-time classification reads (mta_words), so a
     * reply refused at RCPT and the same reply in a DSN mean the same.
     * Ambiguous wording leaves the decision to the status code. */
    switch (mta_words_reason(ntext)) {
    case MTA_WORDS_USER_UNKNOWN:
        return CLASSIFY_REASON_USER_UNKNOWN;
    case MTA_WORDS_HOST_UNKNOWN:
        return CLASSIFY_REASON_HOST_UNKNOWN;
    case MTA_WORDS_MAILBOX_FULL:
        return CLASSIFY_REASON_MAILBOX_FULL;
    case MTA_WORDS_POLICY:
        return CLASSIFY_REASON_POLICY;
    case MTA_WORDS_AMBIGUOUS:
    case MTA_WORDS_NONE:
    case MTA_WORDS_REASON_COUNT:
        break;
    }
    return CLASSIFY_REASON_NONE;
}

static enum classify_reason reason_from_status(const char *st)
{
    if (!st || !*st)
        return CLASSIFY_REASON_NONE;
    int c = 0, s = 0, d = 0;
    if (sscanf(st, "%d.%d.%d", &c, &s, &d) != 3)
        return CLASSIFY_REASON_NONE;
    if (c == 5 && s == 1 && d == 1)
        return CLASSIFY_REASON_USER_UNKNOWN;
    if (c == 5 && s == 1 && d == 2)
        return CLASSIFY_REASON_HOST_UNKNOWN;
    if (c == 5 && s == 1 && d == 6)
        return CLASSIFY_REASON_HAS_MOVED;
    if (c == 5 && s == 1 && d == 10)
        return CLASSIFY_REASON_NOT_ACCEPT;
    if (s == 1 && (d == 7 || d == 8))
        return CLASSIFY_REASON_SENDER;
    if (s == 2 && d == 1)
        return CLASSIFY_REASON_SUSPENDED;
    if (s == 2 && d == 2)
        return CLASSIFY_REASON_MAILBOX_FULL;
    if ((s == 2 && d == 3) || (s == 3 && d == 4))
        return CLASSIFY_REASON_TOO_BIG;
    if (s == 4 && d == 7)
        return CLASSIFY_REASON_EXPIRED;
    if (c == 5 && s == 4 && d == 4)
        return CLASSIFY_REASON_HOST_UNKNOWN;
    if (s == 4)
        return CLASSIFY_REASON_NETWORK;
    if (s == 3)
        return CLASSIFY_REASON_SYSTEM;
    if (s == 7)
        return CLASSIFY_REASON_POLICY;
    return CLASSIFY_REASON_NONE;
}

/* Rejected after DATA: the address was accepted at RCPT, so whatever
 * the text says, it exists. */
static const char *const data_stage[] = {"end of data", "after data", "command data",
                                         "data command", NULL};

/* Where a relay's summary quotes the remote server's own reply
 * ("5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'"): the
 * start of that reply, or NULL when the text starts with it. */
static const char *quoted_reply(const char *s)
{
    const char *lead = s;
    while (*lead == ' ')
        lead++;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || !after_reply_code(s, p) || !cls_status_at(s, p))
            continue;
        const char *code = p;
        while (code > s && !(isdigit((unsigned char)code[-1]) && code - s >= 3 &&
                             isdigit((unsigned char)code[-2]) && isdigit((unsigned char)code[-3])))
            code--;
        code -= code - s >= 3 ? 3 : 0;
        /* only a short summary before it: a long text explains itself */
        return code > lead && code - s < 80 ? code : NULL;
    }
    return NULL;
}

/* A transcript that shows the reply to DATA, not to RCPT (Sendmail's
 * pipelined transcripts print ">>> DATA" too, then the RCPT replies, then
 * a 503 to DATA itself: no recipient was accepted). */
static int data_stage_reply(const char *t)
{
    return t && cls_wfind(t, ">>> data <<< 5") && !cls_wfind(t, "need rcpt") &&
           !cls_wfind(t, "no valid recipient") && !cls_wfind(t, "<<< 503");
}

/* The refusal came at MAIL FROM: it is about our sender address or
 * domain, whatever words it uses about "no such domain" (sisimai calls
 * this "rejected"; it never makes the recipient's address hard). */
static const char *const sender_stage[] = {"after mail from", "in reply to mail from",
                                           "sender address rejected", NULL};

static int sender_stage_reply(const char *ndiag, const char *nctx, const char *nwhole)
{
    return (ndiag && cls_any_match(ndiag, sender_stage)) ||
           (nctx && cls_any_match(nctx, sender_stage)) ||
           (nwhole && cls_wfind(nwhole, "after mail from"));
}

static const char *const weak_unknown[] = {"user unknown", "unknown user", "no such user",
                                           "invalid address", "recipient not found",
                                           "mailbox unavailable", NULL};
static const char *const strong_unknown_evidence[] = {
    "rcpt", "~5.1.1~", "~5.1.0~", "not listed", "not recognized", "does not exist",
    "doesn't exist", "not exist", "couldn't be found", "could not be found", "address not found",
    "no mailbox", "mailbox not found", "no such mailbox", "mail.local", "local recipient",
    "not an active", "inactive", "no longer", "mail-box not found", "no mail box", NULL};

/* A 5xx reply that echoes a path: "550 <a@b>: ...", "550: <a@b> ...",
 * "550-<a@b>...". A server echoes the recipient's path when it refuses
 * RCPT TO (RFC 5321 4.2: the reply is about that address); a refusal
 * after DATA is about the message and names none. So this is the sign
 * that RCPT was refused which bare "user unknown" wording lacks. */
static int reply_echoes_path(const char *t)
{
    for (const char *p = t ? strchr(t, '<') : NULL; p; p = strchr(p + 1, '<')) {
        const char *close = strchr(p, '>');
        const char *at = strchr(p, '@');
        if (!close || !at || at > close || close - p > 256)
            continue;
        /* up to four separators back to the code: "550 <", "550: <", "550 - <" */
        const char *q = p;
        for (int k = 0; k < 4 && q > t && (q[-1] == ' ' || q[-1] == ':' || q[-1] == '-'); k++)
            q--;
        if (q - t >= 3 && q[-3] == '5' && isdigit((unsigned char)q[-2]) && isdigit((unsigned char)q[-1]) &&
            (q - t == 3 || !isdigit((unsigned char)q[-4])))
            return 1;
    }
    return 0;
}

/* True when the user-unknown wording is backed by more than a bare
 * phrase, or is not one of the bare phrases at all. */
static int weak_user_unknown_ok(const char *a, const char *b, const char *c)
{
    const char *texts[3] = {a, b, c};
    int weak = 0;
    for (int i = 0; i < 3; i++) {
        if (!texts[i])
            continue;
        if (cls_any_match(texts[i], strong_unknown_evidence) || reply_echoes_path(texts[i]))
            return 1;
        if (cls_any_match(texts[i], weak_unknown))
            weak = 1;
    }
    return !weak;
}

/* Reason of one failed recipient: its own diagnostic (a server's reply
 * quoted inside a relay's summary first), then the lines about it in
 * the notification, then its status code; then what the SMTP stage and
 * the status class correct. */
enum classify_reason cls_decide_reason(const char *ndiag, const char *nctx, const char *status,
                                       const char *nwhole)
{
    enum classify_reason r = CLASSIFY_REASON_NONE;
    const char *q = ndiag ? quoted_reply(ndiag) : NULL;
    if (q)
        r = reason_from_text(q);
    if (r == CLASSIFY_REASON_NONE)
        r = reason_from_text(ndiag);
    if (r == CLASSIFY_REASON_NONE)
        r = reason_from_text(nctx);
    if (r == CLASSIFY_REASON_NONE)
        r = reason_from_status(status);
    if (r == CLASSIFY_REASON_NONE)
        r = CLASSIFY_REASON_UNKNOWN;
    /* RFC 3463 X.3.2 "system not accepting network messages" in the
     * permanent class (RFC 7504's 521): the host takes no mail at all */
    if (status && status[0] == '5' && strncmp(status + 1, ".3.2", 4) == 0 &&
        ((ndiag && cls_wfind(ndiag, "not accepting network messages")) ||
         (nctx && cls_wfind(nctx, "not accepting network messages"))))
        r = CLASSIFY_REASON_NOT_ACCEPT;
    if (sender_stage_reply(ndiag, nctx, nwhole) ||
        (status && status[0] && (strncmp(status + 1, ".1.7", 4) == 0 ||
                                 strncmp(status + 1, ".1.8", 4) == 0)))
        return CLASSIFY_REASON_SENDER;
    /* Bare "user unknown" wording without a 5.1.x code and without a
     * sign that RCPT was refused is how content and sender filters
     * answer too (after DATA, or behind a gateway). */
    if (r == CLASSIFY_REASON_USER_UNKNOWN && !(status && status[0] && strncmp(status + 1, ".1.", 3) == 0) &&
        !weak_user_unknown_ok(ndiag, nctx, nwhole))
        r = CLASSIFY_REASON_FILTERED;
    if (classify_reason_is_hard(r)) {
        if ((ndiag && cls_any_match(ndiag, data_stage)) ||
            (nctx && cls_any_match(nctx, data_stage)) ||
            (nwhole && cls_any_match(nwhole, data_stage)) || data_stage_reply(ndiag) ||
            data_stage_reply(nctx) || data_stage_reply(nwhole))
            r = CLASSIFY_REASON_FILTERED;
        /* a generic 4.0.0 says nothing about time; "no MX found" for
         * the domain does (sisimai: notaccept) */
        else if (status && status[0] == '4' &&
                 !(r == CLASSIFY_REASON_HOST_UNKNOWN && cls_status_is_generic(status) &&
                   ((ndiag && cls_wfind(ndiag, "no mx found")) ||
                    (nctx && cls_wfind(nctx, "no mx found")))))
            r = r == CLASSIFY_REASON_USER_UNKNOWN ? CLASSIFY_REASON_SYSTEM
                                                  : CLASSIFY_REASON_NETWORK;
    }
    return r;
}
