"""Syntax tree of an ``.arch`` file.

Every node is a frozen dataclass carrying the :class:`Span` it was parsed from, so that
every later stage can point a diagnostic at the exact source text that caused it.
The parser's Transformer only builds these nodes; all meaning is given by ``elaborate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from resdsl.diagnostics.span import NO_SPAN, Span

# the language's built-in forms: names no definition may take
BUILTIN_FORMS = ("stage", "residual", "sequential", "gate")
# the language's functions of numbers and lists (resdsl/semantics/builtins.py defines each one;
# a call of one of these names parses as a FuncCall, and no definition may take one)
BUILTIN_FUNCTIONS = (
    "round", "ceil", "floor", "int", "float", "min", "max", "abs", "log", "sqrt", "len", "sum", "range",
    "linspace", "make_divisible",
)  # fmt: skip

T = TypeVar("T")


# -- expressions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntLit:
    """A whole number: ``64``."""

    value: int
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class FloatLit:
    """A decimal number: ``0.5``, ``1e-5``."""

    value: float
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class StrLit:
    """A string: ``"CIFAR-10"``."""

    value: str
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class BoolLit:
    """``true`` or ``false``."""

    value: bool
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Name:
    """A name read in an expression: a parameter, a binding, an op, a block or a shortcut kind."""

    id: str
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class ListExpr:
    """``[1, 2, 3]``: a list of expressions."""

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
    """Binary arithmetic (``+ - * / // % **``), a comparison (``== != < <= > >=``) or a boolean
    ``and``/``or`` (which evaluates its right side only where the left does not decide)."""

    op: str
    left: Expr
    right: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Neg:
    """``-x``: a negated expression."""

    operand: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Not:
    """``not test``: the negation of a boolean."""

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


@dataclass(frozen=True, slots=True)
class FuncCall:
    """``make_divisible(c * 0.75)``: a call of one of :data:`BUILTIN_FUNCTIONS`, a number or a
    list computed before anything is placed (never a layer)."""

    func: str
    args: tuple[Arg, ...]
    span: Span = NO_SPAN
    func_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Loop:
    """``for name in iterable`` (``if cond``) in a comprehension: ``name`` is bound to each item
    of the list in turn, and seen only inside the comprehension."""

    name: str
    iterable: Expr
    cond: Expr | None
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class ListComp:
    """``[item for name in iterable if cond]``: a list computed item by item; later loops
    nest inside earlier ones, as in Python."""

    item: Expr
    loops: tuple[Loop, ...]
    span: Span = NO_SPAN


# Binding strength of the binary operators (higher binds tighter); printers use it to
# parenthesise only where needed.
# Unary minus binds at 3 and ``not`` at NOT_PRECEDENCE, between ``and`` and the comparisons, as in Python.
PRECEDENCE = {
    "or": -3, "and": -2,
    "==": 0, "!=": 0, "<": 0, "<=": 0, ">": 0, ">=": 0,
    "+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2, "**": 4,
}  # fmt: skip
NOT_PRECEDENCE = -1
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
BOOLEAN_OPS = frozenset({"and", "or"})

Expr = (
    IntLit
    | FloatLit
    | StrLit
    | BoolLit
    | Name
    | ListExpr
    | Index
    | BinOp
    | Neg
    | Not
    | Cond
    | Call
    | FuncCall
    | ListComp
)
Literal = (IntLit, FloatLit, StrLit, BoolLit)


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``expr`` in source order (a call's argument values, a
    condition's test before its sides): the one place that knows the shape of each node."""
    if isinstance(expr, BinOp):
        return (expr.left, expr.right)
    if isinstance(expr, (Neg, Not)):
        return (expr.operand,)
    if isinstance(expr, FuncCall):
        return tuple(arg.value for arg in expr.args)
    if isinstance(expr, ListComp):  # in source order: the item is written first
        return (expr.item, *(e for loop in expr.loops for e in (loop.iterable, loop.cond) if e is not None))
    if isinstance(expr, Index):
        return (expr.value, expr.index)
    if isinstance(expr, ListExpr):
        return expr.items
    if isinstance(expr, Call):
        return tuple(arg.value for arg in expr.args)
    if isinstance(expr, Cond):
        return (expr.test, expr.then, expr.orelse)
    return ()


def walk(expr: Expr, into_calls: bool = True) -> Iterator[Expr]:
    """Every sub-expression, outermost first, the arguments of calls too unless ``into_calls``
    is false: what name resolution and the search for instance values read. Iterative, so no
    nesting exhausts the stack."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if into_calls or not isinstance(node, Call):
            stack.extend(reversed(children(node)))


class ExprVisitor(Generic[T]):
    """Dispatches an expression on its node class, as jinja2's ``NodeVisitor`` does:
    ``visit(expr)`` calls ``visit_BinOp(expr, *args)`` for a :class:`BinOp`, and
    :meth:`generic_visit` for a class without its own method (by default: visit the children,
    give None). The evaluator and the printer of expressions are two of them."""

    # per visitor class, its method for each node class (found on first use): a deep network
    # evaluates tens of thousands of expressions, and a lookup by name for each would show
    dispatch: ClassVar[VisitMethods]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.dispatch = VisitMethods(cls)

    def visit(self, expr: Expr, *args: Any) -> T:
        return self.dispatch[type(expr)](self, expr, *args)  # type: ignore[no-any-return]

    def generic_visit(self, expr: Expr, *args: Any) -> T:
        for child in children(expr):
            self.visit(child, *args)
        return None  # type: ignore[return-value]


class VisitMethods(dict[type, Callable[..., Any]]):
    """One visitor class's method for each expression class: ``visit_<Class>``, else
    ``generic_visit``, looked up the first time that class is visited."""

    def __init__(self, visitor: type[ExprVisitor[Any]]) -> None:
        super().__init__()
        self.visitor = visitor

    def __missing__(self, node: type) -> Callable[..., Any]:
        found = getattr(self.visitor, f"visit_{node.__name__}", None)
        method = self[node] = found if found is not None else self.visitor.generic_visit
        return method


ExprVisitor.dispatch = VisitMethods(ExprVisitor)


# -- statements ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputStmt:
    """``input 3 x 224 x 224``: the per-sample shape the network is checked at, one expression
    per size (``input 3 x img_size x img_size`` reads the network's parameters)."""

    dims: tuple[Expr, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class MetaEntry:
    """One ``name = value`` of a ``meta { ... }`` statement."""

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
    """A parameter of a block or a network, with its default expression if it has one."""

    name: str
    default: Expr | None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class BlockDef:
    """``block name(params) { body }``: a layer of layers that networks and stages repeat."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class NetworkDef:
    """``network name(params) { body }``: what a spec builds."""

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
    """``import "path.arch"``: another file whose definitions this one sees."""

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
