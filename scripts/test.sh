#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the model runtime if missing,
# makes sure PostgreSQL is up, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/ensure_postgres.sh

# pyarrow, to prove the parquet copy reads outside this project.
pyenv="${INGEST_HOME:-$HOME/.local/share/ingest}/pyenv"
if ! "$pyenv/bin/python" -c "import pyarrow" 2>/dev/null; then
    echo "test: installing pyarrow into $pyenv"
    python3 -m venv "$pyenv"
    "$pyenv/bin/pip" install --quiet --disable-pip-version-check pyarrow
fi
export INGEST_TEST_PYTHON="$pyenv/bin/python"

export DATABASE_URL_TEST="${DATABASE_URL_TEST:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo test --locked --lib --bins --tests "$@"
