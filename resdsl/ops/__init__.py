"""The op table: every primitive op, each defined once.

Each :class:`OpDef` says what parameters the op takes (names, types, defaults), how it maps
an input shape to an output shape (raising :class:`ShapeError` with a stable code when it
cannot), how many parameters and multiply-accumulates it costs, its doc line, the module
that realises it (``torch.nn``'s or resdsl's own runtime class), how a merge combines its
operands, and its ONNX nodes. Elaboration binds arguments with it, the checker runs its shape
rule, the summary adds up its costs, both back ends build and write modules from it, and the
language reference's table and the editor's op list are generated from it. A new op is one
definition in one of the modules below, added to :data:`OPS` here. Nothing in this package
imports torch or onnx.
"""

from __future__ import annotations

from resdsl.ops import activation, conv, dense, hierarchy, merge, norm, pad, pool, radix, regularize, tokens
from resdsl.ops.base import (
    REQUIRED,
    Ctor,
    Merge,
    OpDef,
    OwnModule,
    OwnModules,
    OwnParam,
    P,
    Shape,
    ShapeError,
    channels_of,
    fmt_shape,
    is_tokens,
)

__all__ = [
    "OPS",
    "REQUIRED",
    "Ctor",
    "Merge",
    "OpDef",
    "OwnModule",
    "OwnModules",
    "OwnParam",
    "P",
    "Shape",
    "ShapeError",
    "channels_of",
    "fmt_shape",
    "is_tokens",
    "register",
]

OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the table (an op name is defined once)."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is defined twice")
    OPS[op.name] = op
    return op


for _family in (conv, norm, merge, radix, activation, pool, pad, dense, regularize, hierarchy, tokens):
    for _op in _family.OPS:
        register(_op)
