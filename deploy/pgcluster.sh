# Sourced by deploy/up: a private PostgreSQL cluster for relance, created on
# first use with initdb and run with pg_ctl (no system service). When run as
# root, the server runs as the unprivileged 'postgres' user, so its
# directory must be reachable by that user; when the state directory is not
# (a home directory closed to others) or its socket path would not fit 108
# bytes, the cluster lives in a short directory under the system temp dir.
# Sets PGCLUSTER_URL.

pgcluster_bindir() {
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    echo "relance: PostgreSQL server binaries not found" >&2
    return 1
}

# Runs a command as the cluster's owner.
pgcluster_as() {
    if [ -n "$PGCLUSTER_USER" ]; then
        runuser -u "$PGCLUSTER_USER" -- "$@"
    else
        "$@"
    fi
}

pgcluster_up() {
    state=$1
    PGCLUSTER_BIN=$(pgcluster_bindir)
    PGCLUSTER_USER=""
    [ "$(id -u)" -eq 0 ] && PGCLUSTER_USER=postgres
    dir="$state/pg"
    mkdir -p "$dir" 2>/dev/null || true
    if [ -n "$PGCLUSTER_USER" ]; then
        chown "$PGCLUSTER_USER" "$dir" 2>/dev/null || true
    fi
    if ! pgcluster_as test -w "$dir" 2>/dev/null || [ ${#dir} -gt 80 ]; then
        key=$(printf '%s' "$state" | cksum | cut -d' ' -f1)
        dir="${TMPDIR:-/tmp}/relance-pg-$(id -u)-$key"
        mkdir -p "$dir"
        [ -n "$PGCLUSTER_USER" ] && chown "$PGCLUSTER_USER" "$dir"
        chmod 700 "$dir"
        echo "relance: the PostgreSQL cluster lives in $dir (the state directory is not reachable by" \
             "${PGCLUSTER_USER:-the server} or its path is too long for a socket)" >&2
    fi
    PGCLUSTER_DIR=$dir
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        echo "relance: creating a private PostgreSQL cluster in $dir" >&2
        pgcluster_as "$PGCLUSTER_BIN/initdb" -D "$dir/data" -U relance -A trust -E UTF8 --locale C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
        pgcluster_as sh -c "cat >> '$dir/data/postgresql.conf'" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
CONF
    fi
    if ! pgcluster_as "$PGCLUSTER_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        pgcluster_as "$PGCLUSTER_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
            { tail -n 20 "$dir/server.log" >&2; return 1; }
    fi
    if ! pgcluster_as "$PGCLUSTER_BIN/psql" -X -h "$dir" -U relance -d postgres -Atc \
            "SELECT 1 FROM pg_database WHERE datname = 'relance'" | grep -q 1; then
        pgcluster_as "$PGCLUSTER_BIN/psql" -X -q -h "$dir" -U relance -d postgres -c "CREATE DATABASE relance"
    fi
    PGCLUSTER_URL="postgresql:///relance?host=$dir&user=relance"
}

pgcluster_down() {
    pgcluster_as "$PGCLUSTER_BIN/pg_ctl" -D "$PGCLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}
