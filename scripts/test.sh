#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the model runtime if missing,
# makes sure PostgreSQL is up, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every installed model is checked against its reference implementation: the default, and
# one that needs query and passage prefixes. INGEST_MODELS=all checks every model setup.sh knows.
# OCR with two languages, so that the tests read scans and see a change of languages; where
# it cannot be installed, the OCR tests say that they did not run.
INGEST_MODELS="${INGEST_MODELS:-all-MiniLM-L6-v2-int8 multilingual-e5-small}" ./scripts/setup.sh
./scripts/setup.sh --ocr --ocr-languages eng+deu ||
    echo "test: the OCR programs could not be installed; the OCR tests will say they did not run"
./scripts/ensure_postgres.sh

# pyarrow, to prove the parquet copy reads outside this project; fastembed, the reference
# implementation the models are checked against; onnx, which builds the model of another
# width the generations tests switch to (scripts/models/narrow_model.py).
pyenv="${INGEST_HOME:-$HOME/.local/share/ingest}/pyenv"
if ! "$pyenv/bin/python" -c "import pyarrow, fastembed, onnx" 2>/dev/null; then
    echo "test: installing pyarrow, fastembed and onnx into $pyenv"
    [[ -x "$pyenv/bin/python" ]] || python3 -m venv "$pyenv"
    "$pyenv/bin/pip" install --quiet --disable-pip-version-check pyarrow fastembed==0.9.1 onnx==1.23.2
fi
export INGEST_TEST_PYTHON="$pyenv/bin/python"

# Debian's Chromium, for the test of the search page in a real headless browser; without it,
# that test says it did not run.
install_chromium() {
    "$@" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
        { "$@" apt-get update >/dev/null 2>&1 && "$@" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }
}
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    echo "test: installing Debian's chromium for the search page's browser test"
    if [[ $(id -u) -eq 0 ]]; then
        install_chromium || echo "test: chromium could not be installed; the browser test will say it did not run"
    elif command -v sudo >/dev/null; then
        install_chromium sudo -n || echo "test: chromium could not be installed; the browser test will say it did not run"
    fi
fi

export DATABASE_URL_TEST="${DATABASE_URL_TEST:-postgres://postgres@127.0.0.1:5432/postgres}"

# A real Qdrant, one node and a three-peer cluster on loopback, for the tests of the server
# path, from ../shared/qdrant when this machine has it; without it, those tests run on the
# gRPC test server where it can stand in, and say that they did not run where it cannot.
qdrant_kit="$(cd .. && pwd)/shared/qdrant/start.sh"
if [[ -z "${INGEST_TEST_QDRANT_CLUSTER:-}" && -x "$qdrant_kit" ]]; then
    qdrant_dir="$(mktemp -d)"
    trap 'kill $(cat "$qdrant_dir"/*/pids 2>/dev/null) 2>/dev/null || true; rm -rf "$qdrant_dir"' EXIT
    "$qdrant_kit" single "$qdrant_dir/single" 17450 17451
    "$qdrant_kit" cluster "$qdrant_dir/cluster" 17400
    export INGEST_TEST_QDRANT_SINGLE="http://127.0.0.1:17451"
    export INGEST_TEST_QDRANT_CLUSTER="http://127.0.0.1:17410"
    export INGEST_TEST_QDRANT_CLUSTER_PIDS="$qdrant_dir/cluster/pids"
elif [[ -z "${INGEST_TEST_QDRANT_CLUSTER:-}" ]]; then
    echo "test: no real Qdrant in ../shared/qdrant; the tests of the server path run on the test server where it can stand in"
fi

# The release profile, as the quickstart builds: every dependency it compiled is reused, and a
# cold build of both takes one build's time. `fault-injection` arms the extractor processes'
# test faults (tests/integration/extractor_pool.rs); only this crate is built again for it.
if [[ -x target/release/ingest ]]; then
    echo "test: building the tests on the quickstart's build (about 3 minutes), then running them (about 5)"
else
    echo "test: building ingest and its tests (about 15 minutes the first time on two cores), then running them (about 5)"
fi
cargo test --release --locked --features fault-injection --lib --bins --tests "$@"
