"""Values of the language and their names: shortcut kinds, layer calls, type words.

Shared by evaluation, binding and elaboration; nothing here knows about the graph.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from resdsl.diagnostics.fixes import Edit, Fix
from resdsl.ops import OpDef, P
from resdsl.ops.shortcut import SHORTCUT_KINDS
from resdsl.syntax import ast


class ShortcutKind(str):
    """A shortcut kind value (``projection``, ``zero_pad``...): a name, not a string literal."""


SHORTCUTS = {kind: ShortcutKind(kind) for kind in SHORTCUT_KINDS}

# The built-in forms that are not ops: how they are called.
STAGE_PARAMS = (
    P("block", "layer"),
    P("repeat", "int", 1, minimum=1),
    P("stride", "int", None, minimum=1),
    P("shortcut", "shortcut", None),
)


# The values a stage binds for each of its blocks, visible in the arguments of the block it
# repeats (and nowhere else): the block's position in its stage and in the network, the counts
# of both, and its input channels. They are the outermost scope: a parameter, a binding, a
# shortcut kind, an op or a block of the same name shadows them.
INSTANCE_NAMES = ("index", "count", "net_index", "net_count", "in_channels")
INSTANCE_DOCS = {
    "index": "the block's position in its stage, from 0",
    "count": "the number of blocks in the stage (its repeat)",
    "net_index": "the block's position among the stage blocks of the whole network, from 0",
    "net_count": "the number of stage blocks in the whole network",
    "in_channels": "the block's input channels (features for a flat input)",
}
INSTANCE_HELP = (
    "index, count, net_index, net_count and in_channels are bound only in the arguments of the block a "
    "stage repeats: stage(block(c, drop=0.1 * net_index / (net_count - 1)), repeat=3)"
)


class CallKind(str, Enum):
    """What a :class:`LayerCall` makes; compares equal to its value ("op")."""

    OP = "op"
    BLOCK = "block"
    STAGE = "stage"
    SEQUENTIAL = "sequential"
    GATE = "gate"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LayerCall:
    """The value of ``conv(64, k=3)`` or ``bottleneck(128)``: a layer not yet placed."""

    kind: CallKind
    target: OpDef | ast.BlockDef | None
    args: dict[str, Any]
    exprs: dict[str, ast.Expr]
    arg_spans: dict[str, ast.Span]
    span: ast.Span


@dataclass(frozen=True, eq=False)
class PerInstance:
    """The block argument of a stage that reads instance values (``stage(b(c, drop=index *
    0.1), repeat=3)``): kept unevaluated, with the names it could see, and evaluated once per
    block by whoever places the stage (elaboration) or counts it (the layer counter)."""

    expr: ast.Expr
    env: dict[str, Any]
    globals: dict[str, ast.Definition]
    names: frozenset[str]  # the instance names it reads


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, ShortcutKind):
        return "a shortcut kind"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, LayerCall):
        return "a layer"
    return type(value).__name__


def check_type(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and not isinstance(value, ShortcutKind)
    if kind == "shortcut":
        return isinstance(value, ShortcutKind)
    if kind == "layer":
        return isinstance(value, LayerCall)
    return True


TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "shortcut": f"a shortcut kind ({', '.join(SHORTCUT_KINDS)})",
    "layer": "a block, e.g. basic(64)",
}


def suggest(name: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def typo_fixes(name: str, options: Iterable[str], span: ast.Span) -> tuple[Fix, ...]:
    """The close match of :func:`suggest` as an edit of ``span`` (where ``name`` is written).
    A guess: an editor offers it, ``check --fix`` never applies it."""
    close = difflib.get_close_matches(name, list(options), n=1)
    if not close or not span.line:
        return ()
    at = ast.Span(span.file, span.line, span.column, span.line, span.column + len(name))
    return (Fix(f"change '{name}' to '{close[0]}'", (Edit(at, close[0]),), safe=False),)


class Failed(Exception):
    """Abandons one statement after its diagnostics were recorded."""


class _Poison:
    """The value of a binding whose expression failed: using it fails without a second message."""


POISON = _Poison()


def show(expr: ast.Expr, parent: int = 0, right: bool = False) -> str:
    """An expression as the user wrote it (for messages), parenthesised where needed."""
    if isinstance(expr, ast.BinOp):
        prec = ast.PRECEDENCE[expr.op]
        text = f"{show(expr.left, prec)} {expr.op} {show(expr.right, prec, True)}"
        return f"({text})" if prec < parent or (right and prec == parent) else text
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, (ast.IntLit, ast.FloatLit)):
        return repr(expr.value)
    if isinstance(expr, ast.Neg):
        return f"-{show(expr.operand, 3)}"
    if isinstance(expr, ast.Index):
        return f"{show(expr.value, 3)}[{show(expr.index)}]"
    if isinstance(expr, ast.Call):
        return f"{expr.func}(...)"
    if isinstance(expr, ast.Cond):
        return f"{show(expr.then)} if {show(expr.test)} else {show(expr.orelse)}"
    return "..."


def show_value(value: Any) -> str:
    if isinstance(value, LayerCall):
        return getattr(value.target, "name", value.kind)
    if isinstance(value, ShortcutKind):
        return str(value)
    return repr(value)
