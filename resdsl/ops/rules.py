"""Shape rules shared by several ops: the spatial-input check, torch's window arithmetic and
the rule of ops that keep their input's shape. Nothing here imports torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Shape, ShapeError, fmt_shape


def spatial(op: str, ins: Sequence[Shape]) -> Shape:
    """The input of a spatial op, which must be a C x H x W map (E307)."""
    shape = ins[0]
    if len(shape) != 3:
        tokens = len(shape) == 2  # N x C: a transformer's tokens, which no map op reads
        raise ShapeError(
            "E307",
            f"{op} needs a C x H x W input, got {fmt_shape(shape)}" + (" tokens" if tokens else ""),
            help="map ops come before patch_embed turns the map into tokens"
            if tokens
            else "spatial ops must come before flatten/linear",
        )
    return shape


def window(op: str, size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, axis: str) -> int:
    """Output size along one axis, by torch's own formula (floor, or ceil for ceil_mode)."""
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # torch: the last window must start inside the input
        out -= 1
    if out <= 0:
        if span > size + 2 * p:
            message = f"{op} window {span} is larger than the padded input {axis} {size + 2 * p}"
        else:
            message = f"{op} reduces the {axis} to {out}"
        raise ShapeError(
            "E303", message, help="reduce the kernel or stride, add padding, or feed a larger input (--input)"
        )
    return out


def same(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    """Elementwise ops: the output has the input's shape."""
    return ins[0]
