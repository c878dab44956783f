"""Builtin function calls in generated code: how each is written, what it folds to, which ones a
module uses (so that it imports ``math`` and copies ``make_divisible`` only when it needs them).

The functions are those of :mod:`resdsl.semantics.builtins`; a call whose arguments are all
constants is folded by running the same function ``build_model`` runs, any other is written as
the Python call its table entry names (``math.ceil(c * w)``, ``list(range(n))``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from resdsl.semantics.arith import Refused
from resdsl.semantics.builtins import BUILTINS, apply
from resdsl.syntax import ast

_USED: ContextVar[set[str] | None] = ContextVar("resdsl_codegen_functions", default=None)


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect the builtins the code written inside the block calls."""
    used: set[str] = set()
    token = _USED.set(used)
    try:
        yield used
    finally:
        _USED.reset(token)


def used() -> frozenset[str]:
    """The builtins recorded so far (none outside :func:`recording`)."""
    return frozenset(_USED.get() or ())


def callee(name: str) -> str:
    """The Python callee for builtin ``name`` (recorded as used)."""
    used = _USED.get()
    if used is not None:
        used.add(name)
    return BUILTINS[name].python


def arguments(name: str, args: Sequence[tuple[str | None, str]]) -> str:
    """A call's arguments (each its name where the spec named it, and its source) as the callee
    takes them: Python's builtins and ``math``'s functions take theirs in order, not by name
    (``log(x, base=2)`` is ``math.log(x, 2)``); the copied ``make_divisible`` takes the spec's names."""
    builtin = BUILTINS[name]
    names = [p.name for p in builtin.params]
    copied = "." not in builtin.python and not hasattr(builtins, builtin.python)
    by_place = dict(enumerate(src for key, src in args if key is None))
    by_place |= {names.index(key): src for key, src in args if key is not None and key in names}
    if copied or builtin.variadic or sorted(by_place) != list(range(len(by_place))):
        return ", ".join(src if key is None else f"{key}={src}" for key, src in args)
    return ", ".join(by_place[i] for i in range(len(by_place)))


def needs_math(names: frozenset[str]) -> bool:
    """Whether calls of ``names`` need ``import math``."""
    return any(BUILTINS[n].python.startswith("math.") for n in names)


def folded(call: ast.FuncCall, values: Sequence[Any]) -> tuple[bool, Any]:
    """``(True, value)`` for a call the language computes from these constant arguments, else
    ``(False, None)`` (a misuse, e.g. in a side of a choice the instance does not take: it stays
    a call, and the language reported it where it was taken)."""
    try:
        return True, apply(call, values)
    except Refused:
        return False, None
