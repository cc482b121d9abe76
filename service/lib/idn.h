/* idn: an internationalised domain name in the form it has on the wire and
 * in the database — A-labels ("xn--..."), lower case — by libidn2
 * (IDNA2008 with the UTS #46 non-transitional mapping). Pure: no I/O, no
 * logging. What a domain must otherwise look like (dots, label lengths,
 * the top-level domain) is contact.c's to check, on this function's
 * output. */
#ifndef RELANCE_IDN_H
#define RELANCE_IDN_H

#include <stddef.h>

/* Writes the ASCII form of the n bytes at in (UTF-8, no NUL needed) into
 * out, outlen bytes with the NUL. An all-ASCII domain without an "xn--"
 * label only has its letters lower-cased, so plain domains cost no
 * Unicode work and are never refused here (contact.c checks them). Any
 * other goes through UTS #46 non-transitional processing: mapped (case
 * folded, NFC, full-width and ideographic full stops as '.', 'ß' kept as
 * 'ß'), checked against IDNA2008, each U-label written as its A-label and
 * each A-label verified. Returns 0; -EINVAL with a short reason in why
 * ("a domain label starts or ends with '-'", "not a valid internationalised
 * domain name (IDNA2008: ...)"); -ENOSPC when the result does not fit in
 * out (with why "the domain is longer than 253 bytes"); -ENOMEM. */
int idn_domain_to_ascii(const char *in, size_t n, char *out, size_t outlen, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* 1 when d is a dot-separated list of LDH labels (letters, digits,
 * hyphens; no empty label, none starting or ending with a hyphen, at most
 * 253 characters): an A-label domain, a DKIM selector. Else 0. */
int idn_ldh_name_ok(const char *d);

#endif
