#!/usr/bin/env python3
"""Exports a BERT, MPNet or XLM-RoBERTa encoder to ONNX, without torch.

In: a Hugging Face model directory with `config.json` and `model.safetensors` (or, from
Python, a config dict and the weights as numpy arrays under their Hugging Face names).
Out: an ONNX file, opset 17, float32, the encoder's forward pass as transformers runs it:
  inputs  input_ids, attention_mask (and token_type_ids for BERT): int64 [batch, sequence]
  output  last_hidden_state: float32 [batch, sequence, hidden]
Pooling and normalisation are left to the caller, as fastembed does them.

The output is deterministic: the same weights give the same bytes.

Usage: export_onnx.py MODEL_DIR OUT.onnx
"""
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from safetensors_reader import load_safetensors

ARCHITECTURES = ("bert", "mpnet", "xlm-roberta")


class GraphBuilder:
    """Collects nodes and initializers; names every value `<prefix>_<n>` in creation order."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.count = 0

    def fresh_name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, name=None):
        name = name or self.fresh_name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def int64(self, value):
        return self.const(np.array(value, dtype=np.int64))

    def float32(self, value):
        return self.const(np.array(value, np.float32))

    def op(self, op_type, inputs, **attributes):
        output = self.fresh_name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        return output


def mpnet_bucket(relative_position, num_buckets=32, max_distance=128):
    """MPNet's relative-position bucket of each `memory - context` offset, computed as
    transformers' MPNetEncoder.relative_position_bucket does (float32 logarithms)."""
    bucket = np.zeros_like(relative_position)
    n = -relative_position
    num_buckets //= 2
    bucket += (n < 0).astype(np.int64) * num_buckets
    n = np.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    with np.errstate(divide="ignore"):
        scaled = (
            np.log(n.astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(max_distance / max_exact))
            * np.float32(num_buckets - max_exact)
        )
    if_large = np.where(np.isfinite(scaled), scaled, -1).astype(np.int64) + max_exact
    if_large = np.minimum(if_large, num_buckets - 1)
    return bucket + np.where(is_small, n, if_large)


def export(model_dir, out_path):
    """Exports the safetensors model in `model_dir` to `out_path`."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    weights = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    export_weights(config, weights, out_path)


def export_weights(config, weights, out_path):
    """Writes the encoder that `config` (a Hugging Face config dict) describes, with
    `weights` ({Hugging Face name: numpy array}), to `out_path`."""
    arch = config["model_type"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"model_type {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    # Weights saved from a model with a head carry their encoder under a prefix.
    for prefix in ("bert.", "roberta.", "mpnet."):
        if any(name.startswith(prefix + "embeddings.") for name in weights):
            weights = {name[len(prefix) :]: w for name, w in weights.items() if name.startswith(prefix)}

    def weight(name):
        return weights[name].astype(np.float32)

    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = GraphBuilder()

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if arch == "bert":
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
    ids = "input_ids"
    seq_len = g.op("Gather", [g.op("Shape", [ids]), g.int64(1)], axis=0)

    def layer_norm(x, name):
        return g.op(
            "LayerNormalization",
            [x, g.const(weight(name + ".weight")), g.const(weight(name + ".bias"))],
            axis=-1,
            epsilon=eps,
        )

    def linear(x, name):
        w = g.const(np.ascontiguousarray(weight(name + ".weight").T), name + ".weight_T")
        return g.op("Add", [g.op("MatMul", [x, w]), g.const(weight(name + ".bias"), name + ".bias")])

    # Embeddings. BERT counts positions 0..S-1; MPNet and XLM-R count non-pad tokens from pad+1.
    x = g.op("Gather", [g.const(weight("embeddings.word_embeddings.weight"), "word_embeddings"), ids], axis=0)
    if arch == "bert":
        positions = g.op("Range", [g.int64(0), seq_len, g.int64(1)])
    else:
        pad = int(config.get("pad_token_id", 1))
        not_pad = g.op("Cast", [g.op("Not", [g.op("Equal", [ids, g.int64(pad)])])], to=TensorProto.INT64)
        positions = g.op("Add", [g.op("Mul", [g.op("CumSum", [not_pad, g.int64(1)]), not_pad]), g.int64(pad)])
    position_table = g.const(weight("embeddings.position_embeddings.weight"), "position_embeddings")
    x = g.op("Add", [x, g.op("Gather", [position_table, positions], axis=0)])
    if arch == "bert":
        type_table = g.const(weight("embeddings.token_type_embeddings.weight"), "token_type_embeddings")
        x = g.op("Add", [x, g.op("Gather", [type_table, "token_type_ids"], axis=0)])
    elif arch == "xlm-roberta":
        x = g.op("Add", [x, g.const(weight("embeddings.token_type_embeddings.weight")[0])])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive attention mask [B,1,1,S]: 0 where attended, float32 min where masked.
    mask = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.int64([1, 2])])], to=TensorProto.FLOAT)
    attention_bias = g.op(
        "Mul", [g.op("Sub", [g.float32(1.0), mask]), g.float32(np.finfo(np.float32).min)]
    )
    if arch == "mpnet":
        # MPNet adds a learned bias per head and relative position, shared by all layers:
        # a table over every offset that can occur, gathered to [1, heads, S, S].
        max_positions = config["max_position_embeddings"]
        offsets = np.arange(-(max_positions - 1), max_positions)
        buckets = mpnet_bucket(offsets, config.get("relative_attention_num_buckets", 32))
        bias_per_offset = weight("encoder.relative_attention_bias.weight")[buckets]  # [offsets, heads]
        steps = g.op("Range", [g.int64(0), seq_len, g.int64(1)])
        relative = g.op(
            "Sub", [g.op("Unsqueeze", [steps, g.int64([0])]), g.op("Unsqueeze", [steps, g.int64([1])])]
        )
        table = g.const(bias_per_offset, "relative_position_bias_table")
        relative = g.op("Add", [relative, g.int64(max_positions - 1)])  # offset -> table row
        position_bias = g.op("Gather", [table, relative], axis=0)  # [S, S, heads]
        position_bias = g.op("Unsqueeze", [g.op("Transpose", [position_bias], perm=[2, 0, 1]), g.int64([0])])
        attention_bias = g.op("Add", [attention_bias, position_bias])

    scale = g.float32(math.sqrt(head_dim))
    split_heads = g.int64([0, 0, heads, head_dim])
    merge_heads = g.int64([0, 0, hidden])
    half = g.float32(0.5)
    sqrt2 = g.float32(math.sqrt(2.0))
    one = g.float32(1.0)
    for i in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{i}."
        if arch == "mpnet":
            q_name, k_name, v_name, out_name = (layer + "attention.attn." + n for n in "qkvo")
            attention_norm = layer + "attention.LayerNorm"
        else:
            q_name, k_name, v_name = (layer + "attention.self." + n for n in ("query", "key", "value"))
            out_name = layer + "attention.output.dense"
            attention_norm = layer + "attention.output.LayerNorm"
        q = g.op("Transpose", [g.op("Reshape", [linear(x, q_name), split_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [linear(x, k_name), split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [linear(x, v_name), split_heads])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), scale]), attention_bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        x = layer_norm(g.op("Add", [linear(context, out_name), x]), attention_norm)
        h = linear(x, layer + "intermediate.dense")
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt 2)).
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [g.op("Erf", [g.op("Div", [h, sqrt2])]), one])])
        x = layer_norm(g.op("Add", [linear(h, layer + "output.dense"), x]), layer + "output.LayerNorm")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])
    graph = helper.make_graph(g.nodes, "encoder", inputs, [output], g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="torch-free-safetensors-export"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=False)
    onnx.save(model, out_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: export_onnx.py MODEL_DIR OUT.onnx")
    export(sys.argv[1], sys.argv[2])
