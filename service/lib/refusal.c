/* refusal: the enhanced status codes that refuse the sending account
 * itself (refusal.h says which and why). It owns that list and the
 * greylisting exception; it does not read replies (smtp.c and classify
 * find the status) nor decide what a pause or a count does (SQL:
 * outcomes.sql and inbound.sql). Pure: no I/O, no logging. */
#include "refusal.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

static const char *const class_names[REFUSAL_CLASS_COUNT] = {
    [REFUSAL_NONE] = "none",
    [REFUSAL_UNAUTHENTICATED] = "unauthenticated",
    [REFUSAL_TEMPORARY] = "temporary",
};

/* The details of X.7.D that name the sender's authentication: Gmail's
 * 25 (PTR), 26 (SPF/DKIM/DMARC), 27 (SPF), 30 (authentication required)
 * and Outlook.com's 515 (domain authentication level). Other 5.7.x
 * (5.7.1 "rejected for policy reasons", spam, lists) stay the blocks
 * that count against max_policy_blocks. */
static const int unauthenticated_details[] = {25, 26, 27, 30, 515};

const char *refusal_class_name(enum refusal_class c)
{
    if ((unsigned)c >= REFUSAL_CLASS_COUNT)
        return "?";
    return class_names[c];
}

/* Reads "C.7.D" exactly (digits only, detail of 1 to 3 digits). Returns
 * D, or -1 when status is not a X.7.D code of class c. */
static int detail_of(const char *status, char c)
{
    if (!status || status[0] != c || strncmp(status + 1, ".7.", 3) != 0)
        return -1;
    const char *d = status + 4;
    size_t n = 0;
    int v = 0;
    while (isdigit((unsigned char)d[n]) && n < 3)
        v = v * 10 + (d[n++] - '0');
    if (n == 0 || d[n] != '\0')
        return -1;
    return v;
}

enum refusal_class refusal_classify(const char *status, const char *text)
{
    int d = detail_of(status, '5');
    if (d >= 0) {
        for (size_t i = 0; i < sizeof unauthenticated_details / sizeof unauthenticated_details[0]; i++)
            if (d == unauthenticated_details[i])
                return REFUSAL_UNAUTHENTICATED;
        return REFUSAL_NONE;
    }
    if (detail_of(status, '4') >= 0) {
        if (text && (strcasestr(text, "greylist") || strcasestr(text, "graylist") ||
                     strcasestr(text, "grey-list") || strcasestr(text, "gray-list")))
            return REFUSAL_NONE;
        return REFUSAL_TEMPORARY;
    }
    return REFUSAL_NONE;
}
