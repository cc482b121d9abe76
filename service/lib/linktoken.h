/* linktoken: the signed tokens of relance's public links — /u/TOKEN
 * (one-click unsubscribe), and /c/TOKEN and /o/TOKEN.gif for tracking.
 *
 * A token is opaque to its reader: the base64url (no padding) of
 *
 *   kind (1 byte) | n (1 byte) | Message-ID (n bytes) | data | tag (16 bytes)
 *
 * where kind says what the link does ('u', 'c', 'o'), the Message-ID is
 * the one of the message the link is in (messages.message_id, without
 * <>: it names the contact, enrollment and account), data is what the
 * kind binds in (a click's: one byte counting the message's distinct
 * tracked destinations, then the destination URL, compose.c; empty
 * otherwise), and tag is
 * HMAC-SHA256 over everything before it, keyed with the deployment's
 * link secret, truncated to 128 bits. No address is in it, and no byte
 * of it can be changed without the tag failing. A second, previous
 * secret keeps the links of mail already sent valid through a rotation.
 * Pure: no I/O. */
#ifndef RELANCE_LINKTOKEN_H
#define RELANCE_LINKTOKEN_H

#include <stddef.h>

enum linktoken_kind {
    LINKTOKEN_UNSUBSCRIBE = 'u',
    LINKTOKEN_CLICK = 'c', /* a tracked link: data is the links' count byte, then the destination */
    LINKTOKEN_OPEN = 'o',  /* the open image */
};

#define LINKTOKEN_TAG_LEN 16
#define LINKTOKEN_ID_MAX 255     /* bytes of a Message-ID */
#define LINKTOKEN_DATA_MAX 2048  /* bytes of data */
#define LINKTOKEN_SECRET_MIN 32  /* bytes of a secret: a short one could be guessed offline from one link */
/* The longest token, with its NUL. */
#define LINKTOKEN_MAX (((2 + LINKTOKEN_ID_MAX + LINKTOKEN_DATA_MAX + LINKTOKEN_TAG_LEN) * 4 + 2) / 3 + 1)

/* What a token carries, once its tag is checked. */
struct linktoken {
    char kind;
    char message_id[LINKTOKEN_ID_MAX + 1];
    unsigned char data[LINKTOKEN_DATA_MAX + 1]; /* NUL-terminated for convenience; may hold NULs */
    size_t data_len;
};

/* Writes the token of kind for message_id (printable ASCII, no '<' '>',
 * 1 to LINKTOKEN_ID_MAX bytes) and data (data_len bytes, at most
 * LINKTOKEN_DATA_MAX; NULL when 0) into out, signed with secret (at least
 * LINKTOKEN_SECRET_MIN bytes). Returns 0, or -EINVAL for a bad argument,
 * -ENOSPC when out is too small (LINKTOKEN_MAX is enough). */
int linktoken_make(const char *secret, char kind, const char *message_id, const void *data, size_t data_len,
                   char *out, size_t outlen) __attribute__((warn_unused_result));

/* Checks token (len characters) against secrets[0..n-1] (the current
 * secret first, then the previous one), in constant time for the tag,
 * and fills *out. Returns the index of the secret that signed it, or
 * -EINVAL when the token is malformed (not base64url, too short, lengths
 * that do not add up, an unknown kind) and -EACCES when no secret signed
 * it. *out is filled only on success. */
int linktoken_open(const char *const *secrets, size_t n, const char *token, size_t len, struct linktoken *out)
    __attribute__((warn_unused_result));

/* 1 when secret is long enough to sign with, else 0. */
int linktoken_secret_ok(const char *secret);

#endif
