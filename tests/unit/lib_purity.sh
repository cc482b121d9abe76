#!/bin/sh
# unit.lib_purity: service/lib/ is pure. $1 is librelance_lib.a, $2 a
# program linked with the whole of it and nothing but its own libraries
# (it exists only because that link succeeded). Fails naming every
# undefined symbol of the library that belongs to libuv, libpq, libcurl,
# libmicrohttpd or relance's logger.
set -eu
lib=$1
whole=$2
"$whole"
bad=$(nm -u "$lib" | awk '{print $NF}' | grep -E '^(uv_|PQ|pg_|curl_|Curl_|MHD_|log_)' | sort -u || true)
if [ -n "$bad" ]; then
    echo "FAIL service/lib uses what the pure layer must not:"
    echo "$bad" | sed 's/^/  /'
    exit 1
fi
n=$(nm -u "$lib" | awk 'NF{print $NF}' | grep -vc ':$' || true)
echo "ok   service/lib: $n undefined symbols, none from libuv, libpq, libcurl, libmicrohttpd or the logger"
