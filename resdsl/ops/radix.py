"""The radix ops of split attention (Zhang et al. 2020, ResNeSt; timm's SplitAttn), each defined
once: ``radix_sum`` (a map's R splits added up), ``radix_softmax`` (the attention weights, a
softmax over the splits) and the merge ``radix_combine`` (the splits summed, each weighted by
its share of the attention).

A map of R * C channels holds R splits of C channels, one after another (what a conv with
``groups = cardinality * R`` makes). ``specs/std/resnest.arch`` writes SplitAttn from these and
convs, norms and a pool: nothing of ResNeSt is built into the language. A radix that does not
divide the channels is refused (E398) with both numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, Merge, OpDef, P, Shape, ShapeError, fmt_shape
from resdsl.ops.rules import spatial


def _divides(op: str, c: int, by: int, what: str, shape: Shape, recovered: Shape) -> None:
    """E398 where ``by`` (the radix, or radix * groups) does not divide the ``c`` channels;
    checking goes on from ``recovered``, the output the layer would have."""
    if c % by:
        raise ShapeError(
            "E398",
            f"{op}: {what} {by} does not divide the {c} input channels",
            [f"input {fmt_shape(shape)}: {c} channels, {what} {by}"],
            help=f"make the channels before it a multiple of {by} (R splits of C channels: R * C), "
            f"or choose a {what} that divides {c}",
            recovered=recovered,
        )


def _sum_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c, h, w = spatial("radix_sum", ins)
    out = (max(c // a["radix"], 1), h, w)
    _divides("radix_sum", c, a["radix"], "radix", ins[0], out)
    return out


def _sum_onnx(e: Any, a: Mapping[str, Any]) -> str:
    """Reshape N x RC x H x W to N x R x C x H x W (0: the batch as it is), then ReduceSum over R."""
    c, h, w = e.shape
    split = e.node("Reshape", [e.x, e.ints([0, a["radix"], c // a["radix"], h, w], "splits")])
    return str(e.node("ReduceSum", [split, e.ints([1], "axes")], keepdims=0))


def _softmax_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c, _, _ = spatial("radix_softmax", ins)
    _divides("radix_softmax", c, a["radix"] * a["groups"], "radix * groups", ins[0], ins[0])
    return ins[0]


def _softmax_onnx(e: Any, a: Mapping[str, Any]) -> str:
    """Sigmoid for radix 1; else Reshape to N x G x R x rest, Transpose to N x R x G x rest,
    Softmax over R, Reshape back to N x RC x H x W."""
    if a["radix"] == 1:
        return str(e.node("Sigmoid", [e.x]))
    c, h, w = e.shape
    rest = c // (a["radix"] * a["groups"]) * h * w
    grouped = e.node("Reshape", [e.x, e.ints([0, a["groups"], a["radix"], rest], "groups")])
    weights = e.node("Softmax", [e.node("Transpose", [grouped], perm=[0, 2, 1, 3])], axis=1)
    return str(e.node("Reshape", [weights, e.ints([0, c, h, w], "shape")]))


def _combine_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    attn, x = ins[0], ins[1]
    if len(x) != 3 or len(attn) != 3 or attn[0] != x[0] or attn[1:] not in ((1, 1), x[1:]):
        raise ShapeError(
            "E308",
            f"radix_combine: weights {fmt_shape(attn)} cannot weigh {fmt_shape(x)}",
            [f"splits   {fmt_shape(x)}", f"weights  {fmt_shape(attn)}"],
            help="the weights' channels must equal the splits', their map be 1 x 1 (broadcast) or the splits'",
            recovered=(max(x[0] // a["radix"], 1), *x[1:]),
        )
    out = (max(x[0] // a["radix"], 1), *x[1:])
    _divides("radix_combine", x[0], a["radix"], "radix", x, out)
    return out


def _combine_onnx(e: Any, a: Mapping[str, Any]) -> str:
    """Both operands reshaped to N x R x C x ..., multiplied, and ReduceSum over R."""
    attn, x = e.inputs[0], e.inputs[1]
    (c, h, w), r = e.shapes[1], a["radix"]
    splits = e.node("Reshape", [x, e.ints([0, r, c // r, h, w], "splits")])
    weights = e.node("Reshape", [attn, e.ints([0, r, c // r, *e.shapes[0][1:]], "weights")])
    return str(e.node("ReduceSum", [e.node("Mul", [splits, weights]), e.ints([1], "axes")], keepdims=0))


RADIX = P("radix", "int", minimum=1)

RADIX_SUM = OpDef(
    "radix_sum",
    "The sum of a map's radix splits: R * C x H x W read as R maps of C channels, added up to C x H x W.",
    (RADIX,),
    _sum_shape,
    lambda a, cin, shape: Ctor("RadixSum", (a["radix"],), runtime=True),
    channels=lambda a, cin: cin // a["radix"],
    example="radix_sum(2)",
    onnx=_sum_onnx,
)
RADIX_SOFTMAX = OpDef(
    "radix_softmax",
    "Split attention's weights (timm's RadixSoftmax): a softmax over the radix splits of each of `groups` "
    "groups, channels read group-major and written radix-major; a sigmoid where radix is 1.",
    (RADIX, P("groups", "int", 1, minimum=1)),
    _softmax_shape,
    lambda a, cin, shape: Ctor("RadixSoftmax", (a["radix"],), {"groups": a["groups"]}, runtime=True),
    output_saved=True,
    example="radix_softmax(2, groups=1)",
    onnx=_softmax_onnx,
    torch_defaults={"RadixSoftmax": {"groups": 1}},
)
# A statement of its own in a block, like concat(): its weights are the main branch, its splits
# the output of the layer that splits= names (std/resnest.arch: splits=act0), or without it the
# block input (or the value the last residual(...) or merge left)
RADIX_COMBINE = OpDef(
    "radix_combine",
    "Split attention's merge: the R splits of layer `splits` (the block input without it) summed, "
    "each times its weights from the main branch: R * C x H x W -> C x H x W.",
    (RADIX, P("splits", "name", None)),
    _combine_shape,
    None,
    merge=Merge(function="({other}.unflatten(1, ({radix}, -1)) * {main}.unflatten(1, ({radix}, -1))).sum(1)"),
    merge_channels=lambda main, other, a: other // a["radix"],
    tap="splits",
    example="radix_combine(2, splits=act0)",
    onnx=_combine_onnx,
)

OPS = (RADIX_SUM, RADIX_SOFTMAX, RADIX_COMBINE)
