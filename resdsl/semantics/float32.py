"""``linspace``: torch's float32 ``linspace`` values, computed without torch.

timm spaces its drop-path rates with ``torch.linspace(0, drop_path_rate, n)`` (ViT, ConvNeXt,
RegNet): float32 numbers, which differ from the float64 ``rate * i / (n - 1)`` by up to an ulp
of float32, enough to change a float64 training forward by 1e-9. ``resdsl check`` must not
import torch, so this computes the same values: torch's CPU kernel takes the float32 step
``(stop - start) / (steps - 1)`` and writes ``start + step * i`` for the first half and
``stop - step * (steps - 1 - i)`` for the rest, each a fused multiply-add (one rounding). The
tests compare it with ``torch.linspace`` over thousands of inputs.
"""

from __future__ import annotations

import struct
from fractions import Fraction

__all__ = ["linspace", "to_float32"]


def to_float32(x: float) -> float:
    """``x`` rounded to the nearest float32 (ties to even), as a Python float."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def _rounded(exact: Fraction) -> float:
    """The float32 nearest to ``exact``, ties to even: the rounding of an exact result once,
    as a fused multiply-add does (a double first and then a float32 could round twice)."""
    guess = to_float32(float(exact))
    bits = struct.unpack("<i", struct.pack("<f", guess))[0]
    near = [guess]
    for other in (bits - 1, bits + 1):
        if -(2**31) <= other < 2**31:
            value = float(struct.unpack("<f", struct.pack("<i", other))[0])
            if value == value and abs(value) != float("inf"):  # not NaN, not infinite
                near.append(value)
    return min(near, key=lambda v: (abs(Fraction(v) - exact), struct.unpack("<i", struct.pack("<f", v))[0] & 1))


def linspace(start: float, stop: float, steps: int) -> list[float]:
    """``torch.linspace(start, stop, steps).tolist()`` (float32 values) in pure Python."""
    a, b = to_float32(start), to_float32(stop)
    if steps <= 1:
        return [a] * steps
    step = to_float32(to_float32(b - a) / (steps - 1))
    first = [_rounded(Fraction(a) + Fraction(step) * i) for i in range(steps // 2)]
    return first + [_rounded(Fraction(b) - Fraction(step) * (steps - 1 - i)) for i in range(steps // 2, steps)]
