#!/usr/bin/env bash
# Makes sure a PostgreSQL server accepts connections on 127.0.0.1:5432, starting the
# machine's cluster if it is installed but stopped.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ready; then exit 0; fi
if ! command -v pg_ctlcluster >/dev/null; then
    echo "ensure_postgres: PostgreSQL is not installed; install it (apt-get install postgresql) and re-run." >&2
    exit 1
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
