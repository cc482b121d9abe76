/* contact: email normalisation and syntax, company-domain derivation and
 * the built-in free-mail list.
 *
 * It owns what a valid address looks like to relance (syntax only: no DNS,
 * so reserved names like example.com or .test pass) and which domains are
 * consumer mail rather than companies. Every address and domain that
 * enters relance (CSV import, enroll, suppress, contacts show) comes
 * through here, so one mailbox is one spelling: internationalised domains
 * are stored as A-labels (idn.c: user@Bücher.example is
 * user@xn--bcher-kva.example), lower case. A UTF-8 local part (RFC 6531) is
 * accepted and kept as given; such an address can only be sent to over
 * SMTPUTF8, which the sender checks per server (smtp.c). It does not read
 * CSV, talk to the database, check suppressions or time zones
 * (cmd/contacts.c and SQL do). */
#include "contact.h"

#include "idn.h"
#include "utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOCAL_MAX 64
#define LABEL_MAX 63

/* Consumer mail providers, matched exactly. Families with a domain per
 * country (yahoo.fr, hotmail.co.uk, gmx.de, ...) are in freemail_brands. */
static const char *const freemail_domains[] = {
    /* Google, Microsoft, Apple, Yahoo, AOL, Proton and other global ones */
    "gmail.com", "googlemail.com", "msn.com", "passport.com", "icloud.com", "me.com", "mac.com",
    "ymail.com", "rocketmail.com", "aim.com", "proton.me", "pm.me", "protonmail.com", "protonmail.ch",
    "tutanota.com", "tutanota.de", "tutamail.com", "tuta.io", "tuta.com", "fastmail.com", "fastmail.fm",
    "hey.com", "zoho.com", "zohomail.com", "zohomail.eu", "mail.com", "email.com", "usa.com", "inbox.com",
    "hushmail.com", "hush.com", "lycos.com", "excite.com", "duck.com", "mailfence.com", "runbox.com",
    "posteo.de", "posteo.net", "mailbox.org", "disroot.org", "riseup.net", "startmail.com", "skiff.com",
    /* North America */
    "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net",
    "earthlink.net", "optonline.net", "juno.com", "netzero.net", "frontier.com", "windstream.net",
    "centurylink.net", "roadrunner.com", "rr.com", "shaw.ca", "rogers.com", "sympatico.ca", "videotron.ca",
    "telus.net", "bell.net",
    /* United Kingdom, Ireland */
    "btinternet.com", "btopenworld.com", "sky.com", "virginmedia.com", "talktalk.net", "ntlworld.com",
    "blueyonder.co.uk", "tiscali.co.uk", "eircom.net",
    /* France, Belgium, Switzerland, Luxembourg */
    "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "neuf.fr", "club-internet.fr", "bbox.fr",
    "numericable.fr", "aliceadsl.fr", "noos.fr", "cegetel.net", "telenet.be", "skynet.be", "proximus.be",
    "bluewin.ch", "hispeed.ch", "sunrise.ch", "pt.lu",
    /* Germany, Austria, Netherlands, Nordics */
    "web.de", "t-online.de", "freenet.de", "arcor.de", "1und1.de", "online.de", "vodafone.de", "mail.de",
    "email.de", "kabelmail.de", "aon.at", "chello.at", "ziggo.nl", "kpnmail.nl", "planet.nl", "home.nl",
    "hetnet.nl", "xs4all.nl", "telia.com", "online.no", "jubii.dk", "mail.dk", "suomi24.fi",
    /* Southern and Eastern Europe */
    "libero.it", "virgilio.it", "tin.it", "alice.it", "tiscali.it", "fastwebnet.it", "sapo.pt",
    "telefonica.net", "terra.es", "seznam.cz", "centrum.cz", "atlas.cz", "email.cz", "wp.pl", "o2.pl",
    "onet.pl", "interia.pl", "op.pl", "tlen.pl", "gazeta.pl", "abv.bg", "freemail.hu", "citromail.hu",
    "ukr.net", "i.ua", "meta.ua",
    /* Russia */
    "mail.ru", "bk.ru", "inbox.ru", "list.ru", "internet.ru", "rambler.ru", "ya.ru", "narod.ru",
    /* Asia, Oceania, Latin America, Africa */
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com",
    "aliyun.com", "139.com", "naver.com", "hanmail.net", "daum.net", "nate.com", "rediffmail.com",
    "docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "nifty.com", "biglobe.ne.jp", "bigpond.com",
    "bigpond.net.au", "optusnet.com.au", "iinet.net.au", "xtra.co.nz", "terra.com.br", "uol.com.br",
    "bol.com.br", "ig.com.br", "prodigy.net.mx", "mweb.co.za", "webmail.co.za",
};

/* Providers with a domain per country: the brand followed by one or two
 * short labels (yahoo.com, yahoo.fr, yahoo.co.uk, hotmail.com.br, ...). */
static const char *const freemail_brands[] = {
    "yahoo", "hotmail", "outlook", "live", "windowslive", "gmx", "aol", "yandex",
};

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Characters of an RFC 5322 atom besides letters and digits. */
static int is_atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+/=?^_`{|}~-", c));
}

/* The length of the white space (ASCII, or the UTF-8 of U+00A0, U+200B,
 * U+FEFF) starting at s, or 0. */
static size_t space_at(const unsigned char *s, size_t n)
{
    if (n >= 1 && (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')))
        return 1;
    if (n >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
        return 2;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && s[2] == 0x8B)
        return 3;
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        return 3;
    return 0;
}

/* The length of the white space ending at s + n, or 0. */
static size_t space_before(const unsigned char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        if (space_at(s + n - k, k) == k)
            return k;
    }
    return 0;
}

/* Trims s in place of [*start, *end). */
static void trim(const char *s, size_t *start, size_t *end)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t a = *start, b = *end, k;
    for (;;) {
        k = space_at(u + a, b - a);
        if (!k)
            break;
        a += k;
    }
    for (;;) {
        k = space_before(u + a, b - a);
        if (!k)
            break;
        b -= k;
    }
    *start = a;
    *end = b;
}

/* Code points that may appear in an internationalised label or a UTF-8
 * local part: not controls, spaces, invisible marks or separators, which
 * UTS #46 would silently drop or turn into spaces and which are never what
 * someone meant to type. The ideographic and full-width full stops are
 * allowed: UTS #46 maps them to '.'. */
static int visible(uint32_t cp)
{
    if (cp < 0xA1)
        return 0;
    if (cp == 0xAD || (cp >= 0x2000 && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF ||
        (cp >= 0xFFF0 && cp <= 0xFFFF))
        return 0;
    return 1;
}

/* Checks a domain as written, before any mapping, for what the mapping
 * would hide or mangle: NULL, or why not. */
static const char *domain_raw_check(const char *d, size_t n)
{
    const unsigned char *u = (const unsigned char *)d;
    if (n == 0)
        return "no domain";
    if (d[0] == '[')
        return "address literals ([1.2.3.4]) are not supported";
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x80)
            continue;
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (!k)
            return "the domain is not valid UTF-8";
        if (!visible(cp))
            return "the domain holds a space or an invisible character";
        i += k - 1;
    }
    return NULL;
}

/* Checks a domain in its ASCII form (A-labels, lower case) of n bytes:
 * NULL, or why not. */
static const char *domain_ascii_check(const char *d, size_t n)
{
    const unsigned char *u = (const unsigned char *)d;
    if (n == 0)
        return "no domain";
    if (n > CONTACT_DOMAIN_MAX)
        return "the domain is longer than 253 bytes";
    if (!memchr(d, '.', n))
        return "the domain needs a dot (like example.com)";
    size_t label = 0, last = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || d[i] == '.') {
            size_t len = i - label;
            if (len == 0)
                return i == 0 ? "the domain starts with a dot"
                              : i == n ? "the domain ends with a dot" : "the domain has an empty label (..)";
            if (len > LABEL_MAX)
                return "a domain label is longer than 63 bytes";
            if (d[label] == '-' || d[i - 1] == '-')
                return "a domain label starts or ends with '-'";
            last = label;
            label = i + 1;
            continue;
        }
        if (!is_alpha(u[i]) && !is_digit(u[i]) && u[i] != '-') {
            if (u[i] == ' ' || u[i] == '\t')
                return "the domain holds a space";
            return "the domain holds a character other than letters, digits, '-' and '.'";
        }
    }
    /* The top-level domain: letters, or an A-label. */
    size_t tld_len = n - last;
    const char *tld = d + last;
    if (!(tld_len > 4 && strncmp(tld, "xn--", 4) == 0)) {
        for (size_t i = 0; i < tld_len; i++)
            if (!is_alpha(u[last + i]))
                return "the top-level domain is not made of letters";
        if (tld_len < 2)
            return "the top-level domain is one letter";
    }
    return NULL;
}

/* The domain d (n bytes, as written) in its ASCII form into out:
 * checked, mapped and checked again. NULL, or why not (in whybuf when
 * the reason is libidn2's). */
static const char *domain_to_ascii(const char *d, size_t n, char out[CONTACT_DOMAIN_MAX + 1], char *whybuf,
                                   size_t whylen)
{
    const char *why = domain_raw_check(d, n);
    if (why)
        return why;
    int rc = idn_domain_to_ascii(d, n, out, CONTACT_DOMAIN_MAX + 1, whybuf, whylen);
    if (rc == -ENOMEM)
        return "out of memory";
    if (rc < 0)
        return whybuf;
    return domain_ascii_check(out, strlen(out));
}

/* Writes in[a..b) into shown for an error message, controls as '?'. */
static void show(char *shown, size_t size, const char *in, size_t a, size_t b)
{
    size_t k = 0;
    for (size_t i = a; i < b && k + 4 < size; i++)
        shown[k++] = (unsigned char)in[i] < 0x20 || in[i] == 0x7F ? '?' : in[i];
    if (k + 4 >= size) {
        memcpy(shown + k, "...", 3);
        k += 3;
    }
    shown[k] = '\0';
}

/* A dot-atom local part, its atoms made of RFC 5322 atext or (RFC 6531)
 * UTF-8 letters: NULL, or why not. */
static const char *local_check(const char *l, size_t n)
{
    const unsigned char *u = (const unsigned char *)l;
    if (n == 0)
        return "nothing before '@'";
    if (l[0] == '"')
        return "quoted local parts are not supported";
    if (n > LOCAL_MAX)
        return "the part before '@' is longer than 64 bytes";
    if (l[0] == '.' || l[n - 1] == '.')
        return "the part before '@' starts or ends with a dot";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c == '.') {
            if (l[i + 1] == '.')
                return "two dots in a row before '@'";
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t k = utf8_decode(u + i, n - i, &cp);
            if (!k)
                return "the part before '@' is not valid UTF-8";
            if (!visible(cp))
                return "the part before '@' holds a space or an invisible character";
            i += k - 1;
            continue;
        }
        if (c == ' ' || c == '\t')
            return "the address holds a space";
        if (c == '<' || c == '>')
            return "write the bare address, without a name or <>";
        if (!is_atext(c))
            return "a character not allowed before '@'";
    }
    return NULL;
}

int contact_email_normalize(const char *in, char out[CONTACT_EMAIL_MAX + 1], char *err, size_t errlen)
{
    size_t a = 0, b = strlen(in);
    trim(in, &a, &b);
    const char *s = in + a;
    size_t n = b - a;
    const char *why = NULL;
    char domain[CONTACT_DOMAIN_MAX + 1] = "", whybuf[200];
    out[0] = '\0';

    if (n == 0) {
        snprintf(err, errlen, "missing email address");
        return -EINVAL;
    }
    const char *at = memchr(s, '@', n);
    const char *at2 = at ? memchr(at + 1, '@', n - (size_t)(at - s) - 1) : NULL;
    size_t local = at ? (size_t)(at - s) : 0;
    if (memchr(s, '<', n) || memchr(s, '>', n))
        why = "write the bare address, without a name or <>";
    else if (!at)
        why = "no '@'";
    else if (at2 && s[0] != '"')
        why = "more than one '@'";
    else if (n > 4 * CONTACT_EMAIL_MAX) /* whatever the domain maps to, too long */
        why = "longer than 254 bytes";
    if (!why)
        why = local_check(s, local);
    if (!why) {
        size_t dn = n - local - 1;
        why = dn == 0 ? "no domain after '@'" : domain_to_ascii(at + 1, dn, domain, whybuf, sizeof whybuf);
    }
    if (!why && local + 1 + strlen(domain) > CONTACT_EMAIL_MAX)
        why = "longer than 254 bytes";
    if (why) {
        char shown[120];
        show(shown, sizeof shown, in, a, b);
        snprintf(err, errlen, "invalid email address '%s': %s", shown, why);
        return -EINVAL;
    }
    memcpy(out, s, local);
    out[local] = '@';
    memcpy(out + local + 1, domain, strlen(domain) + 1);
    return 0;
}

static int domain_finish(const char *in, size_t a, size_t b, const char *s, size_t n, const char *what,
                         char out[CONTACT_DOMAIN_MAX + 1], char *err, size_t errlen)
{
    char whybuf[200];
    const char *why = n == 0 ? "no domain" : domain_to_ascii(s, n, out, whybuf, sizeof whybuf);
    if (why) {
        char shown[120];
        show(shown, sizeof shown, in, a, b);
        snprintf(err, errlen, "invalid %s '%s': %s", what, shown, why);
        out[0] = '\0';
        return -EINVAL;
    }
    return 0;
}

int contact_domain_normalize(const char *in, char out[CONTACT_DOMAIN_MAX + 1], char *err, size_t errlen)
{
    size_t a = 0, b = strlen(in);
    trim(in, &a, &b);
    out[0] = '\0';
    return domain_finish(in, a, b, in + a, b - a, "domain", out, err, errlen);
}

int contact_pattern_normalize(const char *in, char out[CONTACT_EMAIL_MAX + 1], char *err, size_t errlen)
{
    size_t lead = strspn(in, " \t");
    if (in[lead] != '@')
        return contact_email_normalize(in, out, err, errlen);
    char d[CONTACT_DOMAIN_MAX + 1];
    if (contact_domain_normalize(in + lead + 1, d, err, errlen) < 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (a domain is written @example.com)");
        return -EINVAL;
    }
    snprintf(out, CONTACT_EMAIL_MAX + 1, "@%s", d);
    return 0;
}

int contact_company_domain_normalize(const char *in, char out[CONTACT_DOMAIN_MAX + 1], char *err, size_t errlen)
{
    size_t a = 0, b = strlen(in);
    trim(in, &a, &b);
    const char *s = in + a;
    size_t n = b - a;
    out[0] = '\0';
    if (n == 0)
        return 0;
    if (n >= 8 && strncasecmp(s, "https://", 8) == 0) {
        s += 8;
        n -= 8;
    } else if (n >= 7 && strncasecmp(s, "http://", 7) == 0) {
        s += 7;
        n -= 7;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' || s[i] == '?' || s[i] == '#' || s[i] == ':') {
            n = i;
            break;
        }
    }
    if (n >= 4 && strncasecmp(s, "www.", 4) == 0) {
        s += 4;
        n -= 4;
    }
    if (n && s[n - 1] == '.')
        n--;
    return domain_finish(in, a, b, s, n, "company domain", out, err, errlen);
}

/* True when rest is one or two labels of two or three ASCII letters
 * (com, fr, co.uk, com.br): a country or generic suffix. */
static int short_suffix(const char *rest)
{
    int labels = 0;
    const char *p = rest;
    for (;;) {
        size_t len = 0;
        while (is_alpha((unsigned char)p[len]))
            len++;
        if (len < 2 || len > 3)
            return 0;
        labels++;
        p += len;
        if (*p == '\0')
            return labels <= 2;
        if (*p != '.')
            return 0;
        p++;
    }
}

int contact_domain_is_freemail(const char *domain)
{
    /* the first byte first: a bulk upsert asks this of every address, and
     * a call of strcmp per listed domain was a tenth of its time */
    for (size_t i = 0; i < sizeof freemail_domains / sizeof freemail_domains[0]; i++) {
        if (domain[0] == freemail_domains[i][0] && strcmp(domain, freemail_domains[i]) == 0)
            return 1;
    }
    for (size_t i = 0; i < sizeof freemail_brands / sizeof freemail_brands[0]; i++) {
        size_t n = strlen(freemail_brands[i]);
        if (strncmp(domain, freemail_brands[i], n) == 0 && domain[n] == '.' && short_suffix(domain + n + 1))
            return 1;
    }
    return 0;
}

const char *contact_email_company_domain(const char *email)
{
    const char *at = strrchr(email, '@');
    if (!at || !at[1] || contact_domain_is_freemail(at + 1))
        return NULL;
    return at + 1;
}

const char *contact_email_key(const char *s, char norm[CONTACT_EMAIL_MAX + 1])
{
    char err[300];
    return contact_email_normalize(s, norm, err, sizeof err) == 0 ? norm : s;
}

static int zone_cmp(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

void contact_zones_sort(const char **names, size_t n)
{
    qsort(names, n, sizeof *names, zone_cmp);
}

const char *contact_zone_find(const char *const *names, size_t n, const char *name)
{
    const char *const *hit = bsearch(&name, names, n, sizeof *names, zone_cmp);
    return hit ? *hit : NULL;
}
