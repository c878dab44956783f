"""The merges, ops of several inputs, each defined once: ``residual`` (the addition of a
shortcut), ``mul`` (a gate's scaling) and ``concat`` (channel concatenation, DenseNet's).

A merge's first operand is the main input; its other operand is port 1 (for a residual, what
the realised shortcut makes of port 1, or of the port-2 tap). Its :class:`Merge` is the
Python both back ends write, and says whether it may run in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Merge, OpDef, P, Shape, ShapeError, fmt_shape
from resdsl.ops.lowering import merge


def _mul_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    x, gate = ins[0], ins[1]
    if len(x) != len(gate) or x[0] != gate[0] or (len(x) == 3 and gate[1:] not in ((1, 1), x[1:])):
        raise ShapeError(
            "E308",
            f"gate: {fmt_shape(gate)} cannot scale {fmt_shape(x)}",
            [f"input  {fmt_shape(x)}", f"gate   {fmt_shape(gate)}"],
            help="the gate's channels must equal the input's, its map be 1 x 1 (broadcast) or the input's",
            recovered=x,
        )
    return x


def _map(shape: Shape) -> str:
    """A shape without its channels (``8 x 8``), what a concatenation needs to agree."""
    return fmt_shape(shape[1:]) if len(shape) > 1 else f"{shape[0]} features (no map)"


def _concat_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    main, other = ins[0], ins[1]
    if len(main) != len(other) or main[1:] != other[1:]:
        raise ShapeError(
            "E309",
            f"concat: the maps differ: block input {_map(other)}, main branch {_map(main)}",
            [f"block input  {fmt_shape(other)}", f"main branch  {fmt_shape(main)}"],
            help="channels may differ, the rest must agree: keep the stride at 1 in a block that concatenates",
            recovered=(other[0] + main[0], *main[1:]),
        )
    return (other[0] + main[0], *main[1:])


RESIDUAL = OpDef(
    "residual",
    "The residual addition: main branch + shortcut(branch input); realised by the checker.",
    (
        P("shortcut", "shortcut"),
        P("project_from", "name", None),
        P("name", "str", "downsample"),
        # a projection's 1x1 conv is followed by batchnorm (true), nothing (false) or this layer
        P("norm", "any", True),
        # the shortcut module's parts by name (timm's RegNet: downsample.conv, downsample.bn), not 0, 1
        P("step_names", "names", None),
    ),
    lambda ins, a: ins[0],
    None,
    merge=Merge("+"),
    called=False,
    composite=True,
    onnx=merge("Add"),
)
MUL = OpDef(
    "mul",
    "Channel-wise multiply: the input scaled by a gate branch (made by gate(...), not called directly).",
    (),
    _mul_shape,
    None,
    merge=Merge("*"),
    called=False,
    made_by="gate(...)",
    onnx=merge("Mul"),
)
# A statement of its own in a block, like residual(...): the block input (or what the last
# merge left) and the main branch, cat([input, main], 1), the input's channels first as
# DenseNet's features are
CONCAT = OpDef(
    "concat",
    "Channel concatenation of the block input and the main branch: cat([input, main], dim=1) (DenseNet).",
    (),
    _concat_shape,
    None,
    merge=Merge(function="torch.cat([{other}, {main}], 1)"),
    merge_channels=lambda main, other, a: other + main,
    onnx=lambda e, a: e.node("Concat", [e.inputs[1], e.inputs[0]], axis=1),
)

OPS = (RESIDUAL, MUL, CONCAT)
