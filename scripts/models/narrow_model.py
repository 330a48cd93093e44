#!/usr/bin/env python3
"""Builds a copy of a model directory whose vectors have another width: its ONNX graph's
token vectors are projected by a fixed random matrix, so tests can use a model of a width
other than the default's without downloading one.

In: SOURCE_DIR, a model directory as src/model.rs reads it (sentence-transformers ONNX
export, token vectors out: float32 [batch, sequence, hidden]), and WIDTH (default 256).
Out: DEST_DIR, the same directory with
  model.onnx         the same graph, its token output (the one src/onnx_graph.rs reads) then
                     multiplied by a fixed [hidden, WIDTH] float32 matrix (numpy's
                     default_rng(7), standard normal, over sqrt(hidden)); the output keeps its
                     name, declares [batch, sequence, WIDTH] and is the graph's only output;
  ingest-model.json  where SOURCE_DIR has one: its fields, with name narrow-test-model-WIDTH
                     and a source saying what the model is.
Every other file is copied unchanged, so pooling and normalisation stay the source's;
model.onnx.sha256 is not copied, as it caches facts of the old weights.
The output is deterministic: the same source and width give the same bytes.

Usage: narrow_model.py SOURCE_DIR DEST_DIR [WIDTH]
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MANIFEST = "ingest-model.json"
DEFAULT_WIDTH = 256
SEED = 7
# Written anew, or (the sidecar of src/model.rs) left for the pipeline to recompute.
NOT_COPIED = ("model.onnx", "model.onnx.sha256")

# The outputs src/onnx_graph.rs reads the width from, in its order, after a sole output.
OUTPUT_PRECEDENCE = ("text_embeds", "last_hidden_state", "sentence_embedding")


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_output(graph):
    """The graph output the pipeline reads vectors from, as src/onnx_graph.rs chooses it."""
    outputs = list(graph.output)
    if len(outputs) == 1:
        return outputs[0]
    for name in OUTPUT_PRECEDENCE:
        for output in outputs:
            if output.name == name:
                return output
    raise SystemExit(f"narrow_model: no output to read vectors from among {[o.name for o in outputs]}")


def projection(hidden, width):
    """The fixed [hidden, width] matrix the token vectors are multiplied by."""
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((hidden, width)) / math.sqrt(hidden)).astype(np.float32)


def narrow(model, width):
    """Projects `model`'s token output to `width` in place; the output keeps its name."""
    graph = model.graph
    output = read_output(graph)
    name = output.name
    tensor = output.type.tensor_type
    dims = tensor.shape.dim
    if tensor.elem_type != TensorProto.FLOAT or len(dims) != 3 or not dims[2].HasField("dim_value"):
        raise SystemExit(f"narrow_model: output {name!r} is not float32 [batch, sequence, hidden]")
    hidden = dims[2].dim_value
    if any(i.name == name for i in graph.input):
        raise SystemExit(f"narrow_model: output {name!r} is also a graph input")

    taken = {i.name for i in graph.initializer} | {v for n in graph.node for v in [*n.input, *n.output]}
    unprojected, matrix = f"{name}_unprojected", "narrow_projection"
    if unprojected in taken or matrix in taken:
        raise SystemExit(f"narrow_model: the graph already has a value {unprojected!r} or {matrix!r}")
    for node in graph.node:
        node.input[:] = [unprojected if v == name else v for v in node.input]
        node.output[:] = [unprojected if v == name else v for v in node.output]
    for info in graph.value_info:
        if info.name == name:
            info.name = unprojected

    graph.initializer.append(numpy_helper.from_array(projection(hidden, width), matrix))
    graph.node.append(helper.make_node("MatMul", [unprojected, matrix], [name], name="narrow_projection"))
    dims[2].dim_value = width
    kept = onnx.ValueInfoProto()
    kept.CopyFrom(output)
    del graph.output[:]
    graph.output.append(kept)


def build(source_dir, dest_dir, width):
    model = onnx.load(os.path.join(source_dir, "model.onnx"))
    narrow(model, width)
    onnx.checker.check_model(model, full_check=True)
    shutil.copytree(source_dir, dest_dir, ignore=lambda d, names: NOT_COPIED if d == source_dir else ())
    onnx.save(model, os.path.join(dest_dir, "model.onnx"))
    manifest_path = os.path.join(source_dir, MANIFEST)
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        source_name = manifest.get("name") or os.path.basename(os.path.normpath(source_dir))
        manifest["name"] = f"narrow-test-model-{width}"
        manifest["source"] = (
            f"{source_name} with its token outputs projected to {width} dimensions by a fixed random "
            "matrix; for tests only"
        )
        write_json(os.path.join(dest_dir, MANIFEST), manifest)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and not sys.argv[3].isdigit()):
        sys.exit("usage: narrow_model.py SOURCE_DIR DEST_DIR [WIDTH]")
    chosen_width = int(sys.argv[3]) if len(sys.argv) == 4 else DEFAULT_WIDTH
    if chosen_width < 1:
        sys.exit("narrow_model: WIDTH must be at least 1")
    build(sys.argv[1], sys.argv[2], chosen_width)
