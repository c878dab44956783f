"""Syntax tree of an ``.arch`` file.

Every node is a frozen dataclass carrying the :class:`Span` it was parsed from, so that
every later stage can point a diagnostic at the exact source text that caused it.
The parser's Transformer only builds these nodes; all meaning is given by ``elaborate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from resdsl.diagnostics.span import NO_SPAN, Span

# the language's built-in forms: names no definition may take
BUILTIN_FORMS = ("stage", "residual", "sequential", "gate")


# -- expressions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntLit:
    value: int
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class FloatLit:
    value: float
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class StrLit:
    value: str
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Index:
    """``depths[0]``: an element of a list."""

    value: Expr
    index: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class BinOp:
    """Binary arithmetic (``+ - * / // %``) or a comparison (``== != < <= > >=``)."""

    op: str
    left: Expr
    right: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Cond:
    """``then if test else orelse``: a value chosen by a boolean (v1 vs v1.5 strides)."""

    test: Expr
    then: Expr
    orelse: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Arg:
    """One call argument; ``name`` is None for a positional argument."""

    name: str | None
    value: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Call:
    """``func(args)``: an op, a block, ``stage``, ``residual`` or a network."""

    func: str
    args: tuple[Arg, ...]
    span: Span = NO_SPAN
    func_span: Span = NO_SPAN


# Binding strength of the binary operators (higher binds tighter); printers use it to
# parenthesise only where needed.
PRECEDENCE = {"==": 0, "!=": 0, "<": 0, "<=": 0, ">": 0, ">=": 0, "+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2}
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})

Expr = IntLit | FloatLit | StrLit | BoolLit | Name | ListExpr | Index | BinOp | Neg | Cond | Call
Literal = (IntLit, FloatLit, StrLit, BoolLit)


def walk(expr: Expr, into_calls: bool = True) -> Iterator[Expr]:
    """Every sub-expression, outermost first (depth is bounded by the parser), the arguments of
    calls too unless ``into_calls`` is false: what name resolution and the search for instance
    values read."""
    yield expr
    if isinstance(expr, BinOp):
        yield from walk(expr.left, into_calls)
        yield from walk(expr.right, into_calls)
    elif isinstance(expr, Neg):
        yield from walk(expr.operand, into_calls)
    elif isinstance(expr, Index):
        yield from walk(expr.value, into_calls)
        yield from walk(expr.index, into_calls)
    elif isinstance(expr, ListExpr):
        for item in expr.items:
            yield from walk(item, into_calls)
    elif isinstance(expr, Call) and into_calls:
        for arg in expr.args:
            yield from walk(arg.value, into_calls)
    elif isinstance(expr, Cond):
        yield from walk(expr.test, into_calls)
        yield from walk(expr.then, into_calls)
        yield from walk(expr.orelse, into_calls)


# -- statements ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputStmt:
    """``input 3 x 224 x 224``: the per-sample shape the network is checked at."""

    dims: tuple[int, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class MetaEntry:
    name: str
    value: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class MetaStmt:
    """``meta { mean = [...] std = [...] }``: preprocessing facts carried to the outputs."""

    entries: tuple[MetaEntry, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Assign:
    """``name = expr``: a named layer when ``expr`` makes a layer, otherwise a value binding."""

    name: str
    value: Expr
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class LayerStmt:
    """An anonymous layer: ``relu`` or ``residual(shortcut)``."""

    value: Expr
    span: Span = NO_SPAN


Stmt = InputStmt | MetaStmt | Assign | LayerStmt


# -- definitions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Expr | None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class NetworkDef:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class NetworkAlias:
    """``network resnet110 = cifar_resnet(n=18)``: a network with other defaults."""

    name: str
    target: Call
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    span: Span = NO_SPAN


Definition = BlockDef | NetworkDef | NetworkAlias


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed ``.arch`` file."""

    path: str
    imports: tuple[Import, ...]
    definitions: tuple[Definition, ...]
    span: Span = NO_SPAN
