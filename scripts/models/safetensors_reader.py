"""Reads a safetensors file into numpy arrays, without torch or the safetensors package.

In: the path of a `.safetensors` file (an 8-byte little-endian header length, a JSON
header naming each tensor's dtype, shape and byte range, then the raw data).
Out: a dict from tensor name to a numpy array of that shape; BF16 tensors become float32.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    """Returns every tensor of the file at `path` as {name: numpy array}."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    data_start = 8 + header_len
    data = np.memmap(path, dtype=np.uint8, mode="r")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[data_start + start : data_start + end].tobytes()
        dtype = entry["dtype"]
        if dtype == "BF16":
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dtype in _DTYPES:
            array = np.frombuffer(raw, dtype=_DTYPES[dtype])
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}, which this reader does not know")
        tensors[name] = array.reshape(entry["shape"]).copy()
    return tensors
