"""Catalog entries: ONNX export (E82x)."""

from __future__ import annotations

import json
import struct

from resdsl.diagnostics.codes.entry import Entry
from resdsl.diagnostics.codes.values import net

SMALL = net("conv1 = conv(8, k=3, p=1)\nrelu")


def safetensors(tensors: dict[str, list[int]], metadata: dict[str, str] | None = None) -> bytes:
    """A .safetensors file of float32 zeros: 8-byte header length, JSON header, data."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape in tensors.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + bytes(offset)


WEIGHTS = (
    ("wrong.safetensors", safetensors({"conv1.bias": [8]})),
    ("right.safetensors", safetensors({"conv1.weight": [8, 3, 3, 3]})),
)

ENTRIES = [
    Entry(
        "E820",
        "the `onnx` package is not installed (`pip install 'resdsl[onnx]'`)",
        "resdsl export builds the ONNX graph with the onnx package, an optional dependency: install "
        "the onnx extra. Nothing else in resdsl needs it.",
        SMALL,
        SMALL,
        argv=("export", "example.arch"),
        runs=False,
        why="it needs an installation without the onnx package",
    ),
    Entry(
        "E821",
        "a weights file for `resdsl export` cannot be read: missing, a broken `.safetensors` file, a torch "
        "checkpoint without torch installed (a torch checkpoint that torch cannot read is E701-E703, as for "
        "`build_model`)",
        "--weights takes a .safetensors file (read without torch) or a torch checkpoint (any other "
        "name), which is read as build_model reads it: safely, nested state_dicts and DDP's prefix allowed.",
        SMALL,
        SMALL,
        files=(("w.safetensors", b"not safetensors"),),
        argv=("export", "example.arch", "--weights", "w.safetensors"),
        fix_argv=("export", "example.arch"),
    ),
    Entry(
        "E822",
        "the weights do not fit the network: missing keys, tensors of the wrong shape, keys the network "
        "has no place for (each listed); keys and shapes are `build_model(spec).state_dict()`'s",
        "Every parameter and buffer of the network needs a tensor of its shape under its "
        "state_dict key, and every tensor of the file needs a place; the message lists each "
        "mismatch. In the example, wrong.safetensors holds conv1.bias (8), which the conv does not have "
        "(no bias=true), and lacks conv1.weight (8 x 3 x 3 x 3), which right.safetensors holds.",
        SMALL,
        SMALL,
        files=WEIGHTS,
        argv=("export", "example.arch", "--weights", "wrong.safetensors"),
        fix_argv=("export", "example.arch", "--weights", "right.safetensors"),
    ),
    Entry(
        "E823",
        "`--batch` is neither `dynamic` nor a positive whole number",
        "The exported model's batch dimension is either symbolic (dynamic, the default) or a fixed positive size.",
        SMALL,
        SMALL,
        argv=("export", "example.arch", "--batch", "0"),
        fix_argv=("export", "example.arch", "--batch", "1"),
    ),
    Entry(
        "E824",
        "`resdsl export` refuses to overwrite a file it did not write (not an ONNX model from resdsl); "
        "`--force` overrides",
        "export replaces ONNX models it wrote itself; any other file at the output path is kept.",
        SMALL,
        SMALL,
        files=(("model.onnx", "my notes\n"),),
        argv=("export", "example.arch", "-o", "model.onnx"),
        fix_argv=("export", "example.arch", "-o", "n.onnx"),
    ),
    Entry(
        "E825",
        "the weights exceed the 2 GiB one ONNX file (one protobuf message) can hold",
        "An ONNX model is one protobuf message, which cannot exceed 2 GiB; a network with more "
        "than about 500 million float32 parameters does not fit.",
        net("a = conv(30000, k=3, p=1)\nb = conv(30000, k=1)"),
        SMALL,
        argv=("export", "example.arch"),
        runs=False,
        why="it needs more than 2 GiB of weights",
    ),
    Entry(
        "E826",
        "a layer has no ONNX form: its op has no `onnx` hook in the op table, or a case ONNX cannot express "
        "(a ceil-mode `avgpool` counting its padding whose last window torch drops on one axis but not the "
        "other)",
        "The exporter maps each op of the op table to ONNX nodes; a case ONNX's operators cannot "
        "reproduce exactly is refused rather than exported with different numbers.",
        "network t() {\n    input 2 x 1 x 2\n    p = avgpool(k=4, s=3, p=2, ceil=true)\n}\n",
        "network t() {\n    input 2 x 1 x 2\n    p = avgpool(k=4, s=3, p=2)\n}\n",
        argv=("export", "example.arch"),
    ),
]
