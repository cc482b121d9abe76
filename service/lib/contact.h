/* contact: the rules a contact's fields obey before they reach the
 * database — email normalisation and syntax, company domains and the
 * free-mail list. Pure: no I/O, no DNS, no logging. */
#ifndef RELANCE_CONTACT_H
#define RELANCE_CONTACT_H

#include <stddef.h>

#define CONTACT_EMAIL_MAX 254  /* bytes, RFC 5321's path limit less the <> */
#define CONTACT_DOMAIN_MAX 253 /* bytes, in ASCII form (A-labels for IDNs) */

/* Normalises an email address into out, the one spelling relance stores
 * and compares: surrounding white space (ASCII and U+00A0, U+200B, U+FEFF)
 * trimmed; the domain in ASCII form, lower case, an internationalised one
 * mapped (UTS #46 non-transitional) to A-labels (idn.h), so
 * "USER@BÜCHER.example" gives "USER@xn--bcher-kva.example"; the local part
 * kept as given (its case too: SQL compares lower(email)). Syntax only: a
 * dot-atom local part of at most 64 bytes, of ASCII atext or UTF-8 letters
 * (RFC 6531: such an address needs a server offering SMTPUTF8; quoted
 * local parts are refused), one '@', a domain of at least two
 * dot-separated LDH labels once mapped, not ending in a number. Returns 0,
 * or -EINVAL with a sentence in err such as "invalid email address 'x@':
 * no domain after '@'". */
int contact_email_normalize(const char *in, char out[CONTACT_EMAIL_MAX + 1], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The spelling contacts are stored under for an address given on a
 * command line (contact_email_normalize's), or s itself when it is not
 * one: SQL then reports an unknown contact. Returns norm or s. */
const char *contact_email_key(const char *s, char norm[CONTACT_EMAIL_MAX + 1]);

/* Normalises a bare domain (for `suppress add @domain`): trimmed, then
 * mapped and checked like an email's domain (ASCII form, lower case).
 * Returns 0, or -EINVAL with "invalid domain 'x': <why>" in err. */
int contact_domain_normalize(const char *in, char out[CONTACT_DOMAIN_MAX + 1], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Normalises a suppression pattern (`suppress add`, POST
 * /v1/suppressions): "@domain" (white space before the '@' allowed) as
 * contact_domain_normalize gives it, behind its '@'; anything else as an
 * address (contact_email_normalize). Returns 0, or -EINVAL with the
 * reason in err (for a domain, with how one is written). */
int contact_pattern_normalize(const char *in, char out[CONTACT_EMAIL_MAX + 1], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Normalises a company domain given by hand or by a CRM: like
 * contact_domain_normalize, after dropping an "http(s)://" prefix, a
 * leading "www.", a trailing dot and any port or path. Only white space
 * gives 0 with out = "". Returns 0, or -EINVAL with "invalid company
 * domain 'x': <why>" in err. */
int contact_company_domain_normalize(const char *in, char out[CONTACT_DOMAIN_MAX + 1], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* True when domain (lower-case) belongs to a free or consumer mail
 * provider (gmail.com, yahoo.co.uk, gmx.de, orange.fr, qq.com, ...): its
 * users are not a company. */
int contact_domain_is_freemail(const char *domain);

/* The company domain of a normalised email: a pointer to its domain
 * inside email, or NULL for a free-mail domain (or no '@'). */
const char *contact_email_company_domain(const char *email);

/* Sorts a list of time zone names (PostgreSQL's pg_timezone_names) for
 * contact_zone_find. */
void contact_zones_sort(const char **names, size_t n);
/* The canonical spelling of zone name in sorted names ("America/New_York"
 * for "america/new_york"), or NULL when it is not one of them. */
const char *contact_zone_find(const char *const *names, size_t n, const char *name);

#endif
