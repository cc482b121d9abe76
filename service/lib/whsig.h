/* whsig: Standard Webhooks signatures (standardwebhooks.com), what a CRM
 * checks every webhook request with, using the library of its language.
 *
 * A secret is "whsec_" and the base64 of 24 to 64 random bytes; the
 * signature of a request is "v1," and the base64 of HMAC-SHA256, keyed
 * with those bytes, over "<webhook-id>.<webhook-timestamp>.<body>".
 * During a rotation a request carries two, space-separated. Pure: the
 * caller draws the random bytes. */
#ifndef RELANCE_WHSIG_H
#define RELANCE_WHSIG_H

#include <stddef.h>

/* The longest secret and signature, with their NUL. */
#define WHSIG_SECRET_MAX 96
#define WHSIG_SIGNATURE_MAX 48

/* The secret of the n (24..64) bytes key into out. Returns 0, or -1 when n
 * is out of range or out is too small. */
int whsig_secret_format(const unsigned char *key, size_t n, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* 1 when s is a well-formed secret, else 0. */
int whsig_secret_valid(const char *s);

/* "v1,<base64>" for body signed under secret with id and timestamp (the
 * headers' values, as sent), into out (WHSIG_SIGNATURE_MAX). Returns 0,
 * or -1 for a malformed secret. */
int whsig_sign(const char *secret, const char *id, const char *timestamp, const char *body, size_t body_len,
               char *out, size_t outlen) __attribute__((warn_unused_result));

#endif
