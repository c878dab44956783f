"""build_model's side of :mod:`resdsl.ir.init`: a scheme's statements run on every module of
its kinds, in ``model.modules()`` order, as generated code's constructor runs the same text."""

from __future__ import annotations

import math
from types import CodeType

from torch import nn

from resdsl.ir.init import KINDS, Scheme

__all__ = ["apply_scheme"]

_COMPILED: dict[tuple[str, str], CodeType] = {}


def apply_scheme(model: nn.Module, scheme: Scheme) -> None:
    """Initialise ``model``'s convs, linears and batch norms as ``scheme`` says; the first kind
    that matches a module is the one it gets (an ``if ... elif`` chain, as generated)."""
    kinds = [(tuple(getattr(nn, c) for c in KINDS[kind]), _code(scheme, kind, lines)) for kind, lines in scheme.rules]
    names = {"nn": nn, "math": math}
    for m in model.modules():
        for classes, code in kinds:
            if isinstance(m, classes):
                exec(code, names, {"m": m})  # the scheme's own statements (resdsl.ir.init), nothing else
                break


def _code(scheme: Scheme, kind: str, lines: tuple[str, ...]) -> CodeType:
    key = (scheme.name, kind)
    if key not in _COMPILED:
        _COMPILED[key] = compile("\n".join(lines), f"<init {scheme.name} {kind}>", "exec")
    return _COMPILED[key]
