"""Shortcut kinds and how a residual's shortcut is realised from two shapes (pure rules).

The paper's options are first class: identity, zero_pad (A), projection (B), projection_all
(C), avgpool_projection (ResNet-D) and none (a plain network). :func:`realise_shortcut` decides
what a kind does to the shortcut's input so it can be added to the main branch; the checker
calls it through the residual's op-table entry (:mod:`resdsl.checks.realise`). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from resdsl.ops import OPS, Shape, ShapeError, fmt_shape

SHORTCUT_KINDS = ("identity", "zero_pad", "projection", "projection_all", "avgpool_projection", "none")
PROJECTING = ("projection", "projection_all", "avgpool_projection")
# What each kind does, in a sentence (editor hovers and completions show it).
SHORTCUT_DOCS = {
    "identity": "adds the block input unchanged; the shapes must already agree",
    "zero_pad": "option A: subsamples the input by the stride and pads the new channels with zeros (no parameters)",
    "projection": "option B: a 1x1 conv (+ norm) only where the shape changes, identity elsewhere",
    "projection_all": "option C: a 1x1 conv (+ norm) on every shortcut, even where the shape is kept",
    "avgpool_projection": "ResNet-D: average pooling for the stride, then a 1x1 conv (+ norm), where the shape changes",
    "none": "no addition: the block is a plain stack of layers (the paper's plain networks)",
}
SHORTCUT_HELP = "use shortcut=projection (option B) or zero_pad (option A) where channels or stride change"


@dataclass(frozen=True)
class Shortcut:
    """How a residual's shortcut is realised once both shapes are known."""

    kind: str  # identity | zero_pad | projection | avgpool_projection
    stride: int
    in_channels: int
    out_channels: int
    norm: bool = True  # projections: a norm after the 1x1 conv (pre-activation nets have none)
    norm_op: str = "batchnorm"  # which op that norm is (its arguments in norm_args)
    norm_args: tuple[tuple[str, Any], ...] = ()
    bias: bool = False  # projections: the 1x1 conv has a bias (inference builds fold the norm into it)
    add_into: bool = False  # zero_pad, inference builds: add into the first channels, no padded copy

    @property
    def params(self) -> int:  # 1x1 conv without bias + the norm's parameters
        if not self.projects:
            return 0
        norm = OPS[self.norm_op].param_count((self.out_channels,), (self.out_channels,), self.norm_attrs)
        bias = self.out_channels if self.bias else 0
        return self.in_channels * self.out_channels + (norm if self.norm else 0) + bias

    @property
    def projects(self) -> bool:
        return self.kind in PROJECTING

    @property
    def norm_attrs(self) -> dict[str, Any]:
        """The norm layer's arguments, defaults filled in."""
        op = OPS[self.norm_op]
        return {p.name: p.default for p in op.params if not p.required} | dict(self.norm_args)

    def macs(self, out: Shape) -> int:
        return out[0] * out[1] * out[2] * self.in_channels if self.projects else 0


def infer_stride(src: Shape, dst: Shape) -> int | None:
    if len(src) != 3:
        return 1 if src[1:] == dst[1:] else None
    for s in {max(src[1] // max(dst[1], 1), 1), max(src[1] // max(dst[1], 1), 1) + 1}:
        if -(-src[1] // s) == dst[1] and -(-src[2] // s) == dst[2]:
            return s
    return None


def realise_shortcut(
    kind: str, main: Shape, src: Shape, norm: Any = True, stride: int | None = None, changes: bool | None = None
) -> Shortcut:
    """Decide what a shortcut of ``kind`` does to ``src`` so it can be added to ``main``.

    ``changes`` says whether the block changes the shape (its input against ``main``); it
    differs from ``src != main`` when ``src`` is a ``project_from`` tap that already has the
    main branch's shape: the projection is then a 1x1 conv that keeps the shape.
    """
    same = main == src if changes is None else not changes
    mismatch = [f"main branch  {fmt_shape(main)}", f"shortcut     {fmt_shape(src)}   ({kind})"]
    if len(main) != len(src):
        raise ShapeError("E301", "residual addition: shapes differ", mismatch, help="both branches must keep C x H x W")
    if kind == "identity" or (same and kind in ("zero_pad", "projection", "avgpool_projection")):
        if main != src:
            raise ShapeError("E301", "residual addition: shapes differ", mismatch, help=SHORTCUT_HELP)
        return _with_norm(Shortcut("identity", 1, src[0], main[0]), norm)  # the norm a class may still need
    # the main branch's own stride when it explains the shapes; else the smallest stride that does
    if not (stride and len(src) == 3 and -(-src[1] // stride) == main[1] and -(-src[2] // stride) == main[2]):
        stride = infer_stride(src, main)
    if stride is None:
        raise ShapeError(
            "E306",
            f"{kind} shortcut cannot map {fmt_shape(src)} onto {fmt_shape(main)}: no whole stride fits",
            mismatch,
            help="the main branch must keep the map or shrink it by a whole stride (check its padding)",
        )
    if kind == "zero_pad" and main[0] < src[0]:
        raise ShapeError(
            "E306",
            f"zero_pad shortcut cannot reduce channels from {src[0]} to {main[0]}",
            mismatch,
            help="use shortcut=projection to change channels downwards",
        )
    realised = "projection" if kind == "projection_all" else kind
    return _with_norm(Shortcut(realised, stride, src[0], main[0]), norm)


def _with_norm(shortcut: Shortcut, norm: Any) -> Shortcut:
    """``norm`` is true/false, or (op name, bound arguments) of a normalization layer."""
    if isinstance(norm, bool):
        return replace(shortcut, norm=norm)
    op, args = norm
    return replace(shortcut, norm=True, norm_op=op, norm_args=tuple(sorted(args.items())))
