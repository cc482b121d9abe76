/* Unit tests for netaddr: which addresses a webhook may reach unlisted,
 * as a table of addresses and the verdict each must get. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct row {
    const char *addr;
    int verdict; /* 1 public, 0 not, -1 not an address */
};

static const struct row rows[] = {
    {"93.184.215.14", 1},
    {"8.8.8.8", 1},
    {"1.1.1.1", 1},
    {"127.0.0.1", 0},
    {"127.255.255.254", 0},
    {"0.0.0.0", 0},
    {"10.1.2.3", 0},
    {"172.16.0.1", 0},
    {"172.31.255.255", 0},
    {"172.32.0.1", 1},
    {"172.15.255.255", 1},
    {"192.168.1.1", 0},
    {"169.254.169.254", 0}, /* cloud metadata */
    {"100.64.0.1", 0},
    {"100.127.255.255", 0},
    {"100.128.0.1", 1},
    {"192.0.2.10", 0},
    {"198.18.0.1", 0},
    {"198.19.255.255", 0},
    {"198.20.0.1", 1},
    {"224.0.0.1", 0},
    {"239.255.255.250", 0},
    {"255.255.255.255", 0},
    {"2606:4700:4700::1111", 1},
    {"2a00:1450:4007:80c::200e", 1},
    {"::1", 0},
    {"::", 0},
    {"fe80::1", 0},
    {"fd12:3456:789a::1", 0},
    {"fc00::1", 0},
    {"ff02::1", 0},
    {"2001:db8::1", 0},
    {"::ffff:127.0.0.1", 0},
    {"::ffff:10.0.0.1", 0},
    {"::ffff:8.8.8.8", 1},
    {"64:ff9b::a9fe:a9fe", 0}, /* NAT64 of 169.254.169.254 */
    {"64:ff9b::808:808", 1},
    {"2002:7f00:1::1", 0},     /* 6to4 of 127.0.0.1 */
    {"2002:808:808::1", 1},
    {"::127.0.0.1", 0},
    {"localhost", -1},
    {"crm.internal", -1},
    {"", -1},
    {"1.2.3", -1},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int got = netaddr_text_is_public(rows[i].addr);
        if (got != rows[i].verdict)
            fail_msg("%s: got %d, want %d", rows[i].addr, got, rows[i].verdict);
    }
}

/* The sockaddr form gives the same verdicts: it is what libcurl hands over
 * once a name is resolved. */
static void test_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &in.sin_addr), 1);
    assert_int_equal(netaddr_is_public((struct sockaddr *)&in), 0);
    assert_int_equal(inet_pton(AF_INET, "8.8.4.4", &in.sin_addr), 1);
    assert_int_equal(netaddr_is_public((struct sockaddr *)&in), 1);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.168.0.1", &in6.sin6_addr), 1);
    assert_int_equal(netaddr_is_public((struct sockaddr *)&in6), 0);
    assert_int_equal(inet_pton(AF_INET6, "2606:4700::1", &in6.sin6_addr), 1);
    assert_int_equal(netaddr_is_public((struct sockaddr *)&in6), 1);
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(netaddr_is_public(&un), 0);
    assert_int_equal(netaddr_is_public(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_sockaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
