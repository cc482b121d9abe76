/* message: the RFC 5322 + MIME text of one outgoing email.
 *
 * Builds From, To, Subject, Date, Message-ID, threading headers,
 * List-Unsubscribe and the MIME structure (text/plain, or
 * multipart/alternative with text/html) as CRLF text ready for DKIM
 * signing and SMTP. Header values can never inject headers: control
 * characters become spaces and non-ASCII text is RFC 2047 encoded. Pure:
 * no I/O, no logging, no hidden randomness (the caller supplies random
 * bytes and the time). */
#ifndef RELANCE_MESSAGE_H
#define RELANCE_MESSAGE_H

#include <stddef.h>
#include <time.h>

/* An extra header the caller wants as is (e.g. List-Unsubscribe-Post).
 * The name must be printable ASCII without ':' and must not be one of the
 * headers message_build writes itself. */
struct message_header {
    const char *name;
    const char *value;   /* UTF-8; encoded like Subject when not ASCII */
};

/* All strings are borrowed, NUL-terminated UTF-8. */
struct message {
    /* Addresses: a dot-atom local part and a domain. A UTF-8 domain is
     * written as A-labels; a UTF-8 local part is written as is (RFC 6532),
     * so such a message may only travel over SMTPUTF8 (RFC 6531). */
    const char *from_addr;          /* required: "alice@acme.example" */
    const char *from_name;          /* display name, or NULL */
    const char *to_addr;            /* required */
    const char *to_name;            /* or NULL */
    const char *subject;            /* required (may be "") */
    time_t date;                    /* seconds since the epoch */
    int utc_offset_minutes;         /* Date's zone: 120 gives +0200; 0 gives +0000 */
    const char *message_id;         /* required: "<id@domain>" (message_id_make) */
    const char *in_reply_to;        /* "<id@domain>", or NULL */
    const char *const *references;  /* "<id@domain>" each, oldest first */
    size_t n_references;
    const char *list_unsubscribe;   /* the header value, e.g. "<mailto:a@b?subject=unsubscribe>", or NULL */
    const char *text;               /* plain-text body; NULL is empty */
    const char *html;               /* HTML alternative, or NULL for text/plain only */
    const char *boundary;           /* multipart boundary, or NULL to derive one from message_id */
    const struct message_header *extra;
    size_t n_extra;
};

/* Builds the whole message (headers, blank line, body; CRLF line ends, no
 * line over 998 octets) into a new malloc'd, NUL-terminated buffer that
 * the caller frees; *out_len excludes the NUL. Bare CR or LF in bodies
 * become CRLF. Returns 0, or -EINVAL / -EILSEQ (invalid UTF-8) / -ENOMEM
 * with a reason in err naming the field ("subject is not valid UTF-8"). */
int message_build(const struct message *m, char **out, size_t *out_len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Writes "<random@domain>" into out: rnd (8 to 64 bytes from the caller's
 * CSPRNG) in lowercase base32. Returns 0, or -EINVAL for a bad domain or
 * byte count, -ENOSPC when outlen is too small (80 + domain is enough). */
int message_id_make(const char *domain, const unsigned char *rnd, size_t nrnd, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* RFC 2047: text (UTF-8) as the value of an unstructured header whose
 * "Name: " prefix takes `used` columns. Control characters become spaces;
 * plain ASCII passes through, folded at spaces; otherwise the whole text
 * becomes UTF-8 encoded words (Q or B, whichever is shorter) of at most 75
 * characters on lines of at most 76, never splitting a character. *out is
 * malloc'd, folded with CRLF SP, without a final CRLF. Returns 0, -EILSEQ
 * or -ENOMEM. */
int message_header_encode(const char *text, size_t used, char **out) __attribute__((warn_unused_result));

/* RFC 2045 quoted-printable of len bytes: CRLF, CR or LF are hard line
 * breaks (written as CRLF); lines at most 76 characters with soft breaks
 * that never split an =XX escape or a UTF-8 character; trailing spaces
 * and tabs encoded. *out is malloc'd and NUL-terminated; *out_len
 * excludes the NUL. Returns 0 or -ENOMEM. */
int message_qp_encode(const char *in, size_t len, char **out, size_t *out_len) __attribute__((warn_unused_result));

#endif
