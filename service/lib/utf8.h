/* utf8: decoding one UTF-8 sequence, strictly, and encoding one.
 *
 * Owns what counts as well-formed UTF-8 for relance (RFC 3629): no
 * overlong forms, no surrogates, nothing past U+10FFFF, no truncated
 * sequences. Does not own what a caller does with bad bytes (message
 * rejects them, template replaces them). Pure: no I/O, no logging. */
#ifndef RELANCE_UTF8_H
#define RELANCE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at s, reading at most n bytes. Returns its length
 * (1 to 4) and stores the code point in *cp when cp is not NULL, or
 * returns 0 and leaves *cp alone when the bytes are not well-formed
 * UTF-8 (or n is 0). */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* 1 when s[0..n) is well-formed UTF-8 throughout (NUL counts as one
 * character), else 0. */
int utf8_valid(const char *s, size_t n);

/* Writes cp (at most U+10FFFF, not a surrogate: the caller's to check)
 * as UTF-8 into out. Returns its length, 1 to 4. */
size_t utf8_encode(uint32_t cp, char out[4]);

#endif
