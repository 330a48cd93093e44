#!/usr/bin/env bash
# Makes sure a PostgreSQL server accepts connections on 127.0.0.1:5432, starting the
# machine's cluster if it is installed but stopped.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ready; then exit 0; fi
if ! command -v pg_ctlcluster >/dev/null; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "ensure_postgres: PostgreSQL is not installed; install it (apt-get install postgresql) and re-run." >&2
        exit 1
    fi
    echo "ensure_postgres: installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q postgresql; }
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    # The tests connect as postgres over TCP without a password.
    sed -i -E 's/^(host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1\/32[[:space:]]+)[a-z0-9-]+/\1trust/' \
        "/etc/postgresql/$version/main/pg_hba.conf"
fi
version="$(ls /etc/postgresql | sort -V | tail -1)"
echo "ensure_postgres: starting PostgreSQL $version"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do
    if ready; then exit 0; fi
    sleep 1
done
echo "ensure_postgres: PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
