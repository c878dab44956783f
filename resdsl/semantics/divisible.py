"""``make_divisible``: timm's rounding of a scaled width to a multiple of a divisor.

The language's ``make_divisible`` (:mod:`resdsl.semantics.builtins`) runs this function, and a
generated module that calls it carries a copy of the part after the marker
(:mod:`resdsl.backends.codegen.copied`), so both compute every width the same way. It follows
``timm.layers.helpers.make_divisible``: the nearest multiple of ``divisor`` (halves round up),
at least ``min_value`` (``divisor`` when it is not given or 0), and one divisor more where
rounding down lost more than ``1 - round_limit`` of ``v``.
"""

from __future__ import annotations

# --- copied into generated modules that call make_divisible, from here ---


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (timm's rule: at least ``min_value``,
    and never more than ``1 - round_limit`` below ``v``)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:  # rounding down must not lose more than 10%
        new_v += divisor
    return new_v
