/* netaddr: the public/non-public test of webhook addresses (see
 * netaddr.h). The ranges are IANA's special-purpose registries for IPv4
 * and IPv6, as tables of prefixes; an IPv6 address that embeds an IPv4
 * one is judged by the IPv4 one, so ::ffff:127.0.0.1 is loopback. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

struct prefix {
    uint8_t bytes[16];
    unsigned bits;
};

/* IPv4, not public */
static const struct prefix v4_special[] = {
    {{0}, 8},                      /* "this network" */
    {{10}, 8},                     /* private */
    {{100, 64}, 10},               /* carrier-grade NAT */
    {{127}, 8},                    /* loopback */
    {{169, 254}, 16},              /* link local (cloud metadata) */
    {{172, 16}, 12},               /* private */
    {{192, 0, 0}, 24},             /* IETF protocol assignments */
    {{192, 0, 2}, 24},             /* documentation */
    {{192, 88, 99}, 24},           /* 6to4 relay anycast */
    {{192, 168}, 16},              /* private */
    {{198, 18}, 15},               /* benchmarking */
    {{198, 51, 100}, 24},          /* documentation */
    {{203, 0, 113}, 24},           /* documentation */
    {{224}, 4},                    /* multicast */
    {{240}, 4},                    /* reserved, broadcast */
};

/* IPv6, not public (those embedding IPv4 are handled first) */
static const struct prefix v6_special[] = {
    {{0}, 127},                    /* :: and ::1 */
    {{0x01, 0x00}, 64},            /* discard only */
    {{0x20, 0x01, 0x00, 0x00}, 23},/* IETF protocol assignments (Teredo etc.) */
    {{0x20, 0x01, 0x0d, 0xb8}, 32},/* documentation */
    {{0xfc}, 7},                   /* unique local */
    {{0xfe, 0x80}, 10},            /* link local */
    {{0xfe, 0xc0}, 10},            /* site local (deprecated) */
    {{0xff}, 8},                   /* multicast */
};

static int in_prefix(const uint8_t *a, const struct prefix *p)
{
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (memcmp(a, p->bytes, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (p->bytes[full] & mask);
}

static int v4_public(const uint8_t a[4])
{
    for (size_t i = 0; i < sizeof v4_special / sizeof v4_special[0]; i++)
        if (in_prefix(a, &v4_special[i]))
            return 0;
    return 1;
}

static int v6_public(const uint8_t a[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const uint8_t compat[12] = {0};
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return v4_public(a + 12);
    /* ::a.b.c.d (deprecated IPv4-compatible), beyond :: and ::1 */
    if (memcmp(a, compat, 12) == 0 && (a[12] | a[13]) != 0)
        return v4_public(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:a.b.c.d::/48 */
        return v4_public(a + 2);
    for (size_t i = 0; i < sizeof v6_special / sizeof v6_special[0]; i++)
        if (in_prefix(a, &v6_special[i]))
            return 0;
    return 1;
}

int netaddr_is_public(const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        uint8_t a[4];
        memcpy(a, &in->sin_addr, 4);
        return v4_public(a);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        uint8_t a[16];
        memcpy(a, &in6->sin6_addr, 16);
        return v6_public(a);
    }
    return 0;
}

int netaddr_text_is_public(const char *s)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, s, a) == 1)
        return v4_public(a);
    if (inet_pton(AF_INET6, s, a) == 1)
        return v6_public(a);
    return -1;
}
