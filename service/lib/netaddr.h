/* netaddr: which IP addresses a webhook may reach without being listed.
 *
 * A webhook URL is typed by whoever holds an API key; without a check,
 * relance would POST wherever it points — the metadata service of the
 * cloud it runs in, the database's port on localhost, a router's admin
 * page (server-side request forgery). Only public unicast addresses are
 * reachable by default; the operator lists the hosts allowed beyond
 * that (webhook_allow_insecure). Pure: no I/O. */
#ifndef RELANCE_NETADDR_H
#define RELANCE_NETADDR_H

#include <sys/socket.h>

/* 1 when sa (AF_INET or AF_INET6) is a public unicast address; 0 for
 * loopback, private (RFC 1918, unique local), carrier-grade NAT, link
 * local, multicast, unspecified, documentation, benchmarking and reserved
 * ranges, and for an IPv4 address in an IPv6 one (mapped, NAT64,
 * 6to4) that is one of those; 0 for another family. */
int netaddr_is_public(const struct sockaddr *sa);

/* The same for an address in text ("10.0.0.1", "::1"): 1 public, 0 not,
 * -1 not an IP address literal. */
int netaddr_text_is_public(const char *s);

#endif
