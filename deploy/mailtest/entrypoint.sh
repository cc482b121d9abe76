#!/bin/sh
# mailtest postfix | dovecot: one of the two servers in the foreground.
# DOVECOT_LMTP (host:port, default dovecot:24) is where Postfix delivers.
set -eu
case "${1:-postfix}" in
    postfix)
        postconf -e "transport_maps = static:lmtp:inet:${DOVECOT_LMTP:-dovecot:24}"
        # Postfix's chroot needs the resolver's files of the container
        for f in /etc/resolv.conf /etc/hosts /etc/services; do
            mkdir -p /var/spool/postfix/etc
            cp "$f" /var/spool/postfix/etc/ 2>/dev/null || true
        done
        exec postfix start-fg ;;
    dovecot)
        exec dovecot -F ;;
    *)
        exec "$@" ;;
esac
