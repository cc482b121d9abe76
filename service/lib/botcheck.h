/* botcheck: is an open or click hit machine traffic, and why.
 *
 * Security gateways (Microsoft Safe Links and Defender, Proofpoint,
 * Mimecast, Barracuda) fetch every link of a message on its way in, and
 * Apple Mail Privacy Protection fetches every image of it, so a raw count
 * of hits says little. The hit is always recorded; this module only says
 * whether it is suspected, with a short reason for the event and the
 * stats. Mailbox providers' image proxies (Gmail's, Yahoo's) are a case
 * apart: they fetch the image when a person opens the message, so such
 * an open counts as human, but it is flagged proxy: whoever opened it,
 * where and on what is unknown, and a second open of a cached image never
 * arrives. Pure: the caller gathers the facts. No open or click ever
 * drives sequence logic; this only sorts them. */
#ifndef RELANCE_BOTCHECK_H
#define RELANCE_BOTCHECK_H

#include <stdint.h>

/* The default bot_window: a hit this soon after delivery is a scanner's,
 * since no person opens a message, let alone clicks, that fast. */
#define BOTCHECK_WINDOW_DEFAULT 30
/* A click burst: distinct links of one message clicked within this many
 * seconds of each other. */
#define BOTCHECK_BURST_SECONDS 5

enum botcheck_kind {
    BOTCHECK_OPEN,  /* the open image was fetched */
    BOTCHECK_CLICK, /* a tracked link was followed */
};

struct botcheck_hit {
    enum botcheck_kind kind;
    const char *method;     /* the HTTP method, as received ("GET", "HEAD") */
    const char *user_agent; /* the User-Agent header; NULL when absent */
    /* Seconds from the message's delivery (its SMTP acceptance) to the
     * hit; negative when unknown. */
    int64_t since_delivery;
    /* The bot_window in seconds (BOTCHECK_WINDOW_DEFAULT unless
     * configured); 0 turns the rule off. */
    int64_t bot_window;
    /* Clicks only: the distinct tracked links of the message followed in
     * the last BOTCHECK_BURST_SECONDS, this one included, and how many
     * tracked links the message has (0 when unknown). */
    int links_clicked_recently;
    int links_total;
};

struct botcheck_verdict {
    int bot_suspected; /* 1: machine traffic, counted apart from humans */
    int proxy;         /* 1: a mailbox provider's image proxy fetched it */
    /* Why, as a static string ("HEAD request", "Proofpoint URL Defense",
     * ...) for bot_suspected or proxy; NULL when neither. When both, the
     * reason is the one that made it a bot. */
    const char *reason;
};

/* Judges hit into *v. Never fails; a NULL or empty user agent is itself
 * a sign of a machine. */
void botcheck_judge(const struct botcheck_hit *hit, struct botcheck_verdict *v);

#endif
