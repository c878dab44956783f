"""Values of the language and their names: shortcut kinds, layer calls, type words.

Shared by evaluation, binding and elaboration; nothing here knows about the graph.
"""

from __future__ import annotations

import difflib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from resdsl.diagnostics.fixes import Edit, Fix
from resdsl.ops import OPS, OpDef, P
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
    # the blocks' module names: prefix + number, numbered from start ("b1" ... in timm's RegNet,
    # "denselayer1" ... in DenseNet); by default 0, 1, ... as nn.Sequential numbers them
    P("prefix", "str", ""),
    P("start", "int", 0, minimum=0),
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


class Meaning(str, Enum):
    """What a name read in an expression stands for (see :func:`meaning`)."""

    BOUND = "bound"  # a parameter, or a value or layer bound earlier in the body
    SHORTCUT = "shortcut"  # a shortcut kind: identity, projection, ...
    LAYER = "layer"  # an op or a block, used as a layer without arguments
    INSTANCE = "instance"  # an instance value, inside a stage's block argument


def meaning(
    name: str,
    bound: Container[str],
    globals: Mapping[str, ast.Definition],
    instance: Container[str] = (),
) -> Meaning | None:
    """What ``name`` means where ``bound`` (the names the body has bound) and ``globals`` (the
    file's definitions) are seen, innermost scope first; ``instance``: the instance names
    visible there (inside a stage's block argument). None: it means nothing. The one table of
    the language's scopes: the evaluator reads names by it, the static checks of unused blocks
    (:mod:`resdsl.semantics.resolve`) resolve them by it."""
    if name in bound:
        return Meaning.BOUND
    if name in SHORTCUTS:
        return Meaning.SHORTCUT
    if name in OPS or isinstance(globals.get(name), ast.BlockDef):
        return Meaning.LAYER
    if name in instance:
        return Meaning.INSTANCE
    return None


def name_options(bound: Iterable[str], globals: Mapping[str, ast.Definition]) -> list[str]:
    """The names a misspelt one is compared with (the suggestions of E201)."""
    return [*bound, *SHORTCUTS, *OPS, *globals]


def instance_reads(expr: ast.Expr, bound: Container[str], globals: Mapping[str, ast.Definition]) -> frozenset[str]:
    """The instance values a stage's block argument reads: instance names that nothing else
    (a binding, a shortcut kind, an op, a block) defines where it is seen."""
    return frozenset(
        n.id
        for n in ast.walk(expr)
        if isinstance(n, ast.Name) and n.id in INSTANCE_NAMES and meaning(n.id, bound, globals) is None
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

    def at(self, span: ast.Span) -> LayerCall:
        """This layer placed where ``span`` is (diagnostics point there): ``replace(self,
        span=span)`` without its walk over the fields, as a name holding a layer is read once
        per block instance."""
        return LayerCall(self.kind, self.target, self.args, self.exprs, self.arg_spans, span)


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
    if kind == "names":
        return isinstance(value, list) and all(isinstance(v, str) and not isinstance(v, ShortcutKind) for v in value)
    return True


TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "shortcut": f"a shortcut kind ({', '.join(SHORTCUT_KINDS)})",
    "layer": "a block, e.g. basic(64)",
    "names": 'a list of module names, e.g. ["conv", "bn"]',
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


class _Shown(ast.ExprVisitor[str]):
    """Expressions as the user wrote them, parenthesised where the precedence needs it."""

    def visit_BinOp(self, expr: ast.BinOp, parent: int, right: bool) -> str:
        prec = ast.PRECEDENCE[expr.op]
        power = expr.op == "**"  # right-associative, and takes a unary minus on its right
        left_text = self.visit(expr.left, prec, power)
        right_text = self.visit(expr.right, 3 if power else prec, not power)
        text = f"{left_text} {expr.op} {right_text}"
        return f"({text})" if prec < parent or (right and prec == parent) else text

    def visit_Not(self, expr: ast.Not, parent: int, right: bool) -> str:
        text = f"not {self.visit(expr.operand, ast.NOT_PRECEDENCE, False)}"
        return f"({text})" if ast.NOT_PRECEDENCE < parent else text

    def visit_FuncCall(self, expr: ast.FuncCall, parent: int, right: bool) -> str:
        args = (
            self.visit(a.value, _ALONE, False) if a.name is None else f"{a.name}={self.visit(a.value, _ALONE, False)}"
            for a in expr.args
        )
        return f"{expr.func}({', '.join(args)})"

    def visit_Name(self, expr: ast.Name, parent: int, right: bool) -> str:
        return expr.id

    def visit_IntLit(self, expr: ast.IntLit | ast.FloatLit, parent: int, right: bool) -> str:
        return repr(expr.value)

    visit_FloatLit = visit_IntLit

    def visit_Neg(self, expr: ast.Neg, parent: int, right: bool) -> str:
        text = f"-{self.visit(expr.operand, 3, False)}"
        return f"({text})" if parent > 3 else text

    def visit_Index(self, expr: ast.Index, parent: int, right: bool) -> str:
        return f"{self.visit(expr.value, 3, False)}[{self.visit(expr.index, _ALONE, False)}]"

    def visit_Call(self, expr: ast.Call, parent: int, right: bool) -> str:
        return f"{expr.func}(...)"

    def visit_Cond(self, expr: ast.Cond, parent: int, right: bool) -> str:
        then, test, orelse = (self.visit(e, -3, False) for e in (expr.then, expr.test, expr.orelse))
        text = f"{then} if {test} else {orelse}"
        return f"({text})" if parent > _ALONE else text

    def generic_visit(self, expr: ast.Expr, parent: int, right: bool) -> str:
        return "..."


_SHOWN = _Shown()
_ALONE = -9  # the parent of an expression that stands alone: nothing around it binds


def show(expr: ast.Expr, parent: int = _ALONE, right: bool = False) -> str:
    """An expression as the user wrote it (for messages), parenthesised where needed."""
    return _SHOWN.visit(expr, parent, right)


def show_value(value: Any) -> str:
    if isinstance(value, LayerCall):
        return getattr(value.target, "name", value.kind)
    if isinstance(value, ShortcutKind):
        return str(value)
    return repr(value)
