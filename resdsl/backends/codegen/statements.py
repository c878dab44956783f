"""Which statement of a body each IR item came from, and which side of each condition an
instance took.

A block type is written once, as a class, but the IR holds every instance unrolled. Instances
of one block can differ in what a statement made: ``down = identity if first else conv(c, k=1)``
makes an identity in one and a conv in another, and ``residual(shortcut)`` adds in one and is
absent (``none``) in another. The emitter lines the instances up statement by statement (an
item belongs to the statement whose source span holds it) so that the class can be written
with each statement in the form every instance needs; which side of a condition an instance
took is found by evaluating its test with the instance's values. Nothing here writes code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from resdsl.backends.codegen.expr import free_names
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS
from resdsl.ops.shortcut import SHORTCUT_KINDS
from resdsl.semantics.values import INSTANCE_NAMES
from resdsl.syntax import ast

__all__ = [
    "Condition",
    "Entry",
    "Variant",
    "body_of",
    "chosen",
    "conditions",
    "entries",
    "layerish",
    "read_after",
    "variant",
    "within",
]

Variant = tuple[tuple[int, bool], ...]  # (condition index, took the 'then' side)


@dataclass
class Entry:
    """What one statement of a body became in one instance: layers and scopes (a gate makes
    two: its branch and the multiply), a value binding, a residual that is absent here, or
    nothing (an inference build folds a batchnorm away)."""

    index: int  # position among the body's statements (past the end: an item no statement wrote, head=N)
    stmt: ast.Assign | ast.LayerStmt | None
    items: list[Layer | Scope] = field(default_factory=list)
    let: tuple[str, ast.Expr] | None = None
    plain: ast.Expr | None = None  # residual(none) in this instance: its kind as written

    @property
    def name(self) -> str | None:
        return self.stmt.name if isinstance(self.stmt, ast.Assign) else None


def within(inner: ast.Span, outer: ast.Span) -> bool:
    """Whether ``inner`` lies inside ``outer`` (the same file, inclusive)."""
    return (
        inner.file == outer.file
        and (outer.line, outer.column) <= (inner.line, inner.column)
        and (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column)
    )


def body_of(network: Network, scope: Scope) -> tuple[ast.Assign | ast.LayerStmt, ...]:
    """The statements a block instance or the network body was elaborated from."""
    if scope.block is not None:
        body: Sequence[ast.Stmt] = scope.block.body
    else:
        body = network.definition.body if network.definition is not None else ()
    return tuple(s for s in body if isinstance(s, (ast.Assign, ast.LayerStmt)))


def _is_residual(stmt: ast.Stmt) -> bool:
    return isinstance(stmt, ast.LayerStmt) and isinstance(stmt.value, ast.Call) and stmt.value.func == "residual"


def entries(network: Network, scope: Scope) -> list[Entry]:
    """One entry per statement of the scope's body, in order, then any item added after it.

    The scope records where its bindings and skipped residuals stood only as a count of items
    before them; among those at one place, each statement takes the one it wrote."""
    if len(scope.let_at) != len(scope.lets):
        raise AssertionError(
            f"codegen: scope {scope.path!r} records {len(scope.lets)} bindings, {len(scope.let_at)} places"
        )
    lets = list(zip(scope.let_at, scope.lets, strict=True))
    plains = list(scope.plain)
    out: list[Entry] = []
    i = 0  # items placed so far
    for index, stmt in enumerate(body_of(network, scope)):
        entry = Entry(index, stmt)
        let = next(
            (x for x in lets if x[0] == i and isinstance(stmt, ast.Assign) and x[1] == (stmt.name, stmt.value)), None
        )
        plain = next((x for x in plains if x[0] == i and _is_residual(stmt) and within(x[1].span, stmt.span)), None)
        if let is not None:
            entry.let = let[1]
            lets.remove(let)
        elif plain is not None:
            entry.plain = plain[1]
            plains.remove(plain)
        else:
            while i < len(scope.items) and within(scope.items[i].span, stmt.span):
                entry.items.append(scope.items[i])
                i += 1
        out.append(entry)
    if lets or plains:
        raise AssertionError(f"codegen: a binding or skipped residual of {scope.path or scope.name!r} has no statement")
    out += [Entry(len(out) + n, None, [item]) for n, item in enumerate(scope.items[i:])]
    return out


@dataclass(frozen=True)
class Condition:
    """A condition in a statement, and where it stands: in a side of another (``parent``)."""

    cond: ast.Cond
    parent: int | None  # index of the condition whose side holds this one
    side: bool | None  # which side of it: True, 'then'


def conditions(stmt: ast.Assign | ast.LayerStmt | None) -> list[Condition]:
    """Every condition in a statement's value that may choose between layers, outermost first:
    those reached through the arguments of blocks, stages, groups and gates and the sides of
    other conditions (an op's arguments are values; their conditions are the class's)."""
    if stmt is None or _is_residual(stmt):
        return []
    out: list[Condition] = []

    def walk(e: ast.Expr, parent: int | None, side: bool | None, per_block: bool) -> None:
        if isinstance(e, ast.Cond) and not layerish(e, frozenset()):
            return  # a value (``s=1 if index == 0 else 2``): the class's, or an instance value's
        if isinstance(e, ast.Cond) and per_block and free_names(e.test) & set(INSTANCE_NAMES):
            return  # a stage's block argument chosen per block (act=relu6 if index == 0 else ...): its classes'
        if isinstance(e, ast.Cond):
            out.append(Condition(e, parent, side))
            index = len(out) - 1
            walk(e.then, index, True, per_block)
            walk(e.orelse, index, False, per_block)
        elif isinstance(e, ast.Call) and (e.func not in OPS or e.func in ast.BUILTIN_FORMS):
            for arg in e.args:
                walk(arg.value, parent, side, per_block or e.func == "stage")

    walk(stmt.value, None, None, False)
    return out


def variant(conds: Sequence[Condition], test: Callable[[ast.Expr], Any]) -> Variant:
    """Which side of each condition it reaches an instance takes; ``test`` gives a test's
    value for the instance."""
    taken: dict[int, bool] = {}
    for i, c in enumerate(conds):
        if c.parent is not None and taken.get(c.parent) is not c.side:
            continue
        value = test(c.cond.test)
        if not isinstance(value, bool):
            raise AssertionError(f"codegen: the condition at {c.cond.span} has no value for an instance")
        taken[i] = value
    return tuple(taken.items())


def chosen(expr: ast.Expr, taken: Variant, conds: Sequence[Condition]) -> ast.Expr:
    """The side of ``expr`` (a statement's value) that an instance took: what it binds."""
    sides = dict(taken)
    while isinstance(expr, ast.Cond):
        index = next(i for i, c in enumerate(conds) if c.cond is expr)
        expr = expr.then if sides[index] else expr.orelse
    return expr


def read_after(stmts: Sequence[ast.Stmt], index: int, name: str) -> bool:
    """Whether a statement after ``index`` reads the value ``name``."""

    def reads(e: ast.Expr) -> bool:
        return any(
            (isinstance(n, ast.Name) and n.id == name) or (isinstance(n, ast.Call) and n.func == name)
            for n in ast.walk(e)
        )

    return any(reads(s.value) for s in stmts[index + 1 :] if isinstance(s, (ast.Assign, ast.LayerStmt)))


def layerish(expr: ast.Expr, names: frozenset[str]) -> bool:
    """Whether a side of a condition in ``expr`` may be a layer: a call, or the name of an op
    (``identity`` names the shortcut kind)."""
    if isinstance(expr, ast.Cond):
        return layerish(expr.then, names) or layerish(expr.orelse, names)
    if isinstance(expr, ast.Call):
        return True
    return isinstance(expr, ast.Name) and expr.id in OPS and expr.id not in SHORTCUT_KINDS and expr.id not in names
