/* idn: internationalised domain names to A-labels.
 *
 * It owns the one conversion every address entry point relies on, so that
 * user@bücher.example, USER@BÜCHER.example and user@xn--bcher-kva.example
 * are one mailbox: the UTS #46 mapping (case folding, NFC, the dot
 * variants) and the IDNA2008 validity rules, which are large Unicode
 * tables that libidn2 keeps current; none of it is written here. The
 * non-transitional mode keeps 'ß', 'ς' and the joiners as IDNA2008 says
 * (straße.de is xn--strae-oqa.de, not strasse.de), which is what
 * registries and current resolvers do. It does not check the domain's
 * shape (dots, label lengths, the top-level domain): contact.c does, on
 * the ASCII form this returns. Pure: no I/O, no logging. */
#include "idn.h"

#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INPUT_MAX 1024 /* bytes of UTF-8; far past any domain that could fit 253 bytes of A-labels */

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* True when in needs no Unicode processing: ASCII only, and no label that
 * claims to be an A-label. What else the ASCII must be is contact.c's. */
static int plain(const char *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80)
            return 0;
        if ((i == 0 || in[i - 1] == '.') && n - i >= 4 && strncasecmp(in + i, "xn--", 4) == 0)
            return 0;
    }
    return 1;
}

/* libidn2's reasons, in the words contact.c uses for the same faults. */
static void reason(int rc, char *why, size_t whylen)
{
    switch (rc) {
    case IDN2_ENCODING_ERROR:
        snprintf(why, whylen, "the domain is not valid UTF-8");
        break;
    case IDN2_TOO_BIG_DOMAIN:
        snprintf(why, whylen, "the domain is longer than 253 bytes");
        break;
    case IDN2_TOO_BIG_LABEL:
    case IDN2_PUNYCODE_BIG_OUTPUT:
        snprintf(why, whylen, "a domain label is longer than 63 bytes");
        break;
    case IDN2_HYPHEN_STARTEND:
        snprintf(why, whylen, "a domain label starts or ends with '-'");
        break;
    default:
        snprintf(why, whylen, "not a valid internationalised domain name (IDNA2008: %s)", idn2_strerror(rc));
        break;
    }
}

int idn_domain_to_ascii(const char *in, size_t n, char *out, size_t outlen, char *why, size_t whylen)
{
    if (outlen == 0)
        return -ENOSPC;
    out[0] = '\0';
    if (plain(in, n)) {
        if (n >= outlen) {
            snprintf(why, whylen, "the domain is longer than 253 bytes");
            return -ENOSPC;
        }
        for (size_t i = 0; i < n; i++)
            out[i] = (char)ascii_lower((unsigned char)in[i]);
        out[n] = '\0';
        return 0;
    }
    if (n > INPUT_MAX) {
        snprintf(why, whylen, "the domain is longer than 253 bytes");
        return -ENOSPC;
    }
    char z[INPUT_MAX + 1];
    memcpy(z, in, n);
    z[n] = '\0';
    if (memchr(z, '\0', n)) {
        snprintf(why, whylen, "the domain holds a NUL byte");
        return -EINVAL;
    }
    char *ascii = NULL;
    int rc = idn2_to_ascii_8z(z, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc == IDN2_MALLOC)
        return -ENOMEM;
    if (rc != IDN2_OK) {
        reason(rc, why, whylen);
        return -EINVAL;
    }
    size_t len = strlen(ascii);
    if (len >= outlen) {
        idn2_free(ascii);
        snprintf(why, whylen, "the domain is longer than 253 bytes");
        return -ENOSPC;
    }
    /* UTS #46 maps to lower case already; lowering again costs nothing and
     * keeps the promise whatever a libidn2 version does with ASCII labels */
    for (size_t i = 0; i < len; i++)
        out[i] = (char)ascii_lower((unsigned char)ascii[i]);
    out[len] = '\0';
    idn2_free(ascii);
    return 0;
}

int idn_ldh_name_ok(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.' || d[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        int ldh = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ldh && !(c == '.' && d[i + 1] != '.'))
            return 0;
    }
    return 1;
}
