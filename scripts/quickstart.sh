#!/usr/bin/env bash
# Sets up what is missing, builds ingest, and indexes the shipped fixtures with the embedded
# default (no servers). The fixtures include deliberately bad files, which are reported as
# failed with their reasons (exit code 2 means "finished, some files failed").
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --release --locked
status=0
./target/release/ingest fixtures/ "$@" || status=$?
if [[ $status -ne 0 && $status -ne 2 ]]; then exit $status; fi
echo
echo "try: ./target/release/ingest search \"how do honeybees communicate\""
