#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the model runtime if missing,
# makes sure PostgreSQL is up, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/ensure_postgres.sh

export DATABASE_URL_TEST="${DATABASE_URL_TEST:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo test --locked --lib --bins --tests "$@"
