/* imap_parse: the pure half of IMAP — a reader that reassembles the
 * server's responses (literals included) from the pieces libcurl hands
 * over, and parsers for the responses the client reads (STATUS, EXAMINE,
 * SEARCH, FETCH, LIST, CAPABILITY, tagged answers). No I/O, no logging:
 * the client in service/imap.c feeds it, the fuzz target and unit tests
 * drive it directly. */
#ifndef RELANCE_IMAP_PARSE_H
#define RELANCE_IMAP_PARSE_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

/* Special-use attributes (RFC 6154) and the LIST flags that matter. */
enum {
    IMAP_LIST_SENT = 1 << 0,
    IMAP_LIST_JUNK = 1 << 1,
    IMAP_LIST_DRAFTS = 1 << 2,
    IMAP_LIST_TRASH = 1 << 3,
    IMAP_LIST_ARCHIVE = 1 << 4,
    IMAP_LIST_ALL = 1 << 5,
    IMAP_LIST_NOSELECT = 1 << 6, /* \Noselect or \NonExistent */
};

/* Bounds of one fetch: the header's first bytes and the body's. */
#define IMAP_FETCH_HEADER_MAX 65536
#define IMAP_FETCH_BODY_MAX 65536

/* UIDs in one fetch: one round trip for many messages (one at a time
 * read about 200 a second). */
#define IMAP_FETCH_BATCH 50
/* libcurl 7.88.1 (as Debian ships it) fails a command with "Too large
 * response headers" (-E2BIG here) once what it charges for the answer's
 * lines passes 300 KiB, and every IMAP response counts: measured against
 * Dovecot, each response is charged about what is left of the read behind
 * it, so an answer of k responses weighing W bytes costs about W * k / 2
 * (10 messages of 1.4 KB pass, 20 fail; 100 sizes pass, 200 fail; one
 * 64 KiB message passes). imap_fetch_plan keeps that under
 * IMAP_FETCH_CHARGE_MAX, a third below libcurl's limit. */
#define IMAP_FETCH_CHARGE_MAX (200 * 1024)
/* UIDs in one imap_fetch_sizes (about 45 bytes of answer each: 64 of
 * them are charged about 90 KiB). */
#define IMAP_SIZES_MAX 64


/* Splits the server's byte stream (as libcurl hands it to the header
 * callback, in pieces of any size) into responses: one line, or a line
 * with literals ({N} then N bytes) and what follows them up to the CRLF
 * that ends it. Stored bytes of one response are capped at max; a longer
 * one is delivered cut, with truncated set. */
struct imap_reader {
    struct buf resp;       /* the response being read */
    size_t max;
    uint64_t literal_left; /* literal bytes still to come */
    char tail[24];         /* the last bytes of the current line, for {N} */
    size_t tail_len;
    int truncated;
    int failed;            /* out of memory */
};

typedef void (*imap_response_cb)(void *arg, const char *resp, size_t len, int truncated);

void imap_reader_init(struct imap_reader *r, size_t max);
/* Feeds p[0..n); on_response fires for each response completed. Returns
 * 0, or -ENOMEM (the reader then drops what it cannot hold). */
int imap_reader_feed(struct imap_reader *r, const char *p, size_t n, imap_response_cb on_response, void *arg)
    __attribute__((warn_unused_result));
/* True when the stream ended in the middle of a response (a literal or a
 * line not finished): what was read cannot be trusted. */
int imap_reader_pending(const struct imap_reader *r);
void imap_reader_reset(struct imap_reader *r);
void imap_reader_free(struct imap_reader *r);

/* The parsers take one whole response (as the reader delivers it) and
 * return 0 when it is of their kind and readable, else -1. */

/* "* STATUS mailbox (UIDNEXT n UIDVALIDITY m ...)". mailbox gets the
 * name (quoted, literal or atom), cut to mailbox_size - 1. A missing item
 * is left 0. */
int imap_parse_status(const char *resp, size_t len, char *mailbox, size_t mailbox_size, uint32_t *uidnext,
                      uint32_t *uidvalidity);

/* How many of the messages of sizes[0..n) (RFC822.SIZE; 0 for one known
 * gone) one imap_fetch should ask for: at most cap (<= IMAP_FETCH_BATCH),
 * at least 1, and no more than keeps libcurl's charge for the answer
 * under IMAP_FETCH_CHARGE_MAX (each message weighs its fetched prefixes,
 * at most IMAP_FETCH_HEADER_MAX + IMAP_FETCH_BODY_MAX, and its FETCH
 * line). */
size_t imap_fetch_plan(const uint32_t *sizes, size_t n, size_t cap);

/* What a SELECT or EXAMINE answer says of the folder. */
struct imap_select {
    uint32_t uidvalidity, uidnext, exists;
    int has_uidnext;
};
/* One untagged response of a SELECT or EXAMINE answer: "* OK [UIDNEXT n]",
 * "* OK [UIDVALIDITY n]" or "* n EXISTS" sets its field of sel (the
 * others are left as they are). */
int imap_parse_select(const char *resp, size_t len, struct imap_select *sel);

/* "* SEARCH n n ...": calls each(arg, n) for every number. */
int imap_parse_search(const char *resp, size_t len, void (*each)(void *arg, uint32_t n), void *arg);

struct imap_fetch_data {
    uint32_t seq, uid, size;
    int has_uid, has_size, has_flags, seen;
    const char *header; /* BODY[HEADER] (also BODY[HEADER]<0>); points into resp */
    size_t header_len;
    int has_header;
    const char *body;   /* BODY[TEXT] */
    size_t body_len;
    int has_body;
};
/* "* n FETCH (UID u RFC822.SIZE s FLAGS (...) BODY[HEADER]<0> {N}..." */
int imap_parse_fetch(const char *resp, size_t len, struct imap_fetch_data *out);

/* "* LIST (\flags) "/" name": the IMAP_LIST_* flags, the hierarchy
 * delimiter (0 for NIL) and the name. */
int imap_parse_list(const char *resp, size_t len, int *flags, char *delim, char *name, size_t name_size);

/* Capabilities (RFC 3501 CAPABILITY) that change what the client sends. */
enum {
    IMAP_CAP_SPECIAL_USE = 1 << 0,   /* RFC 6154 */
    IMAP_CAP_LIST_EXTENDED = 1 << 1, /* RFC 5258: LIST ... RETURN (...) */
    IMAP_CAP_IDLE = 1 << 2,
    IMAP_CAP_UNSELECT = 1 << 3,
};
/* "* CAPABILITY IMAP4rev1 IDLE ..." or "* OK [CAPABILITY ...] text": the
 * IMAP_CAP_* it lists (names case-insensitive; others ignored). */
int imap_parse_capability(const char *resp, size_t len, int *caps);

/* How much a folder's name (as LIST gives it: modified UTF-7, delim its
 * hierarchy delimiter, 0 for none) says "sent mail", for servers that
 * flag no folder \Sent: 0 is best ("Sent"), then "Sent Items", "Sent
 * Messages", "Sent Mail" and the usual localised names (compared in
 * UTF-8, case-insensitively); the same under "INBOX" + delim (Courier's
 * INBOX.Sent) ranks just after its top-level twin. -1: not such a name. */
int imap_sent_rank(const char *name, char delim);

/* "A003 OK text": 1 when resp is a tagged answer (copies "OK text" into
 * text), else 0. */
int imap_parse_tagged(const char *resp, size_t len, char *text, size_t text_size);

/* folder as an IMAP quoted string ("INBOX", "Sent Items"), into out.
 * Returns 0, or -1 when it does not fit or holds CR, LF or NUL. */
int imap_quote(const char *folder, char *out, size_t out_size);

#endif
