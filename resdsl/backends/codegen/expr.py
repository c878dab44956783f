"""Expressions for the code generator.

Spec expressions become Python source here: ``/`` on whole numbers becomes ``//``, names
are substituted and constants folded, so a generated class computes channel counts from
its own parameters; builtin calls fold or become the Python their table names
(:mod:`resdsl.backends.codegen.functions`). The names and escapes every string passes through
(:func:`py_name`, :func:`py_str`, :func:`doc_text`, :func:`comment_text`) live in
:mod:`resdsl.backends.codegen.pynames` and are re-exported from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resdsl.backends.codegen import functions
from resdsl.backends.codegen.pynames import (  # noqa: F401 (re-exported: the code generator imports them from here)
    GENERATED_NAMES,
    RESERVED,
    attr_name,
    comment_text,
    doc_text,
    fresh,
    py_float,
    py_name,
    py_str,
    renaming,
    value_names,
)
from resdsl.ir import Layer, Network
from resdsl.semantics.arith import Refused, arith
from resdsl.semantics.elaborate import SHORTCUTS
from resdsl.syntax import ast

# -- expression trees ---------------------------------------------------------------------

_EXPR_TYPES = (
    ast.Cond,
    ast.IntLit,
    ast.FloatLit,
    ast.StrLit,
    ast.BoolLit,
    ast.Name,
    ast.ListExpr,
    ast.Index,
    ast.BinOp,
    ast.Neg,
    ast.Not,
    ast.FuncCall,
    ast.ListComp,
)
_COMPUTED = (
    ast.Name,
    ast.BinOp,
    ast.Neg,
    ast.Not,
    ast.Index,
    ast.Call,
    ast.FuncCall,
    ast.ListComp,
    ast.ListExpr,
    ast.Cond,
)


def is_expr(e: Any) -> bool:
    return isinstance(e, _EXPR_TYPES)


def is_const(e: Any) -> bool:
    if isinstance(e, (ast.IntLit, ast.FloatLit, ast.StrLit, ast.BoolLit)):
        return True
    if isinstance(e, ast.ListExpr):
        return all(is_const(i) for i in e.items)
    return not isinstance(e, _COMPUTED)


def free_names(e: Any) -> set[str]:
    """The names an expression reads."""
    if isinstance(e, ast.Name):
        return {e.id}
    if isinstance(e, ast.BinOp):
        return free_names(e.left) | free_names(e.right)
    if isinstance(e, ast.Neg):
        return free_names(e.operand)
    if isinstance(e, ast.Index):
        return free_names(e.value) | free_names(e.index)
    if isinstance(e, ast.ListExpr):
        return set().union(*(free_names(i) for i in e.items)) if e.items else set()
    if isinstance(e, ast.Cond):
        return free_names(e.test) | free_names(e.then) | free_names(e.orelse)
    if isinstance(e, (ast.Not, ast.FuncCall)):
        return set().union(*(free_names(c) for c in ast.children(e)))
    if isinstance(e, ast.ListComp):  # a loop's variable is bound in the loops after it and the item
        found: set[str] = set()
        bound: set[str] = set()
        for loop in e.loops:
            found |= free_names(loop.iterable) - bound
            bound.add(loop.name)
            found |= free_names(loop.cond) - bound
        return found | (free_names(e.item) - bound)
    return set()


def lit(value: Any) -> ast.Expr:
    """A Python value as an expression node."""
    if isinstance(value, bool):
        return ast.BoolLit(value)
    if isinstance(value, int):
        return ast.IntLit(value)
    if isinstance(value, float):
        return ast.FloatLit(value)
    if isinstance(value, str):
        return ast.StrLit(str(value))
    if isinstance(value, (list, tuple)):
        return ast.ListExpr(tuple(lit(v) for v in value))
    raise TypeError(value)


def const_value(e: ast.Expr) -> Any:
    if isinstance(e, ast.ListExpr):
        return [const_value(i) for i in e.items]
    return e.value  # type: ignore[union-attr]


class Translator:
    """Turns spec expressions into folded Python expressions for one network."""

    def __init__(self, network: Network) -> None:
        self.int_divisions = network.int_divisions
        # per class being written (innermost last): parameters fixed for the whole network, by
        # name, and the constant each stands for (a shortcut kind every instance shares)
        self.fixed: list[dict[str, ast.Expr]] = [{}]

    def normalize(self, e: ast.Expr, names: frozenset[str] = frozenset()) -> ast.Expr:
        """Spec semantics -> Python semantics: exact '/' on whole numbers becomes '//',
        shortcut kinds (not shadowed by a parameter) become strings, and so do the parameters
        of the class being written that hold one kind in every instance (:attr:`fixed`)."""
        if isinstance(e, ast.BinOp):
            op = "//" if e.op == "/" and e in self.int_divisions else e.op
            return ast.BinOp(op, self.normalize(e.left, names), self.normalize(e.right, names))
        if isinstance(e, ast.Name) and e.id not in names and e.id in self.fixed[-1]:
            return self.fixed[-1][e.id]
        if isinstance(e, ast.Name) and e.id not in names and e.id in SHORTCUTS:
            return ast.StrLit(e.id)
        if isinstance(e, ast.Neg):
            return ast.Neg(self.normalize(e.operand, names))
        if isinstance(e, ast.ListExpr):
            return ast.ListExpr(tuple(self.normalize(i, names) for i in e.items))
        if isinstance(e, ast.Index):
            return ast.Index(self.normalize(e.value, names), self.normalize(e.index, names))
        if isinstance(e, ast.Cond):
            return ast.Cond(
                self.normalize(e.test, names), self.normalize(e.then, names), self.normalize(e.orelse, names)
            )
        if isinstance(e, ast.Not):
            return ast.Not(self.normalize(e.operand, names))
        if isinstance(e, ast.FuncCall):
            return ast.FuncCall(e.func, tuple(ast.Arg(a.name, self.normalize(a.value, names)) for a in e.args))
        if isinstance(e, ast.ListComp):
            return self._normalize_comp(e, names)
        if isinstance(e, ast.Call):
            raise AssertionError(f"codegen: a call {e.func}(...) where a value was expected, at {e.span}")
        return e

    def _normalize_comp(self, e: ast.ListComp, names: frozenset[str]) -> ast.ListComp:
        """A comprehension normalized: its loop variables shadow the names normalize rewrites."""
        loops = []
        for loop in e.loops:
            iterable = self.normalize(loop.iterable, names)
            names = names | {loop.name}
            cond = None if loop.cond is None else self.normalize(loop.cond, names)
            loops.append(ast.Loop(loop.name, iterable, cond))
        return ast.ListComp(self.normalize(e.item, names), tuple(loops))

    def subst(self, e: Any, mapping: Mapping[str, Any]) -> Any:
        """Replace names by expressions, folding constants as it goes."""
        return subst(e, mapping)


def subst(e: Any, mapping: Mapping[str, Any]) -> Any:
    """Replace names by expressions, folding constants as it goes."""
    if isinstance(e, ast.Name):
        return mapping.get(e.id, e)
    if isinstance(e, ast.BinOp):
        return fold(ast.BinOp(e.op, subst(e.left, mapping), subst(e.right, mapping)))
    if isinstance(e, ast.Neg):
        return fold(ast.Neg(subst(e.operand, mapping)))
    if isinstance(e, ast.ListExpr):
        return ast.ListExpr(tuple(subst(i, mapping) for i in e.items))
    if isinstance(e, ast.Index):
        return fold(ast.Index(subst(e.value, mapping), subst(e.index, mapping)))
    if isinstance(e, ast.Cond):
        return fold(ast.Cond(subst(e.test, mapping), subst(e.then, mapping), subst(e.orelse, mapping)))
    if isinstance(e, ast.Not):
        return fold(ast.Not(subst(e.operand, mapping)))
    if isinstance(e, ast.FuncCall):
        return fold(ast.FuncCall(e.func, tuple(ast.Arg(a.name, subst(a.value, mapping)) for a in e.args)))
    if isinstance(e, ast.ListComp):
        return fold(_subst_comp(e, mapping))
    return e


def _subst_comp(e: ast.ListComp, mapping: Mapping[str, Any]) -> ast.ListComp:
    """A comprehension with names replaced, except its loop variables where they are bound."""
    loops = []
    for loop in e.loops:
        iterable = subst(loop.iterable, mapping)
        mapping = {k: v for k, v in mapping.items() if k != loop.name}
        cond = None if loop.cond is None else subst(loop.cond, mapping)
        loops.append(ast.Loop(loop.name, iterable, cond))
    return ast.ListComp(subst(e.item, mapping), tuple(loops))


_FOLD = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "**": lambda a, b: a**b,
    "and": lambda a, b: a and b,
    "or": lambda a, b: a or b,
}


def _fold_new(e: Any) -> Any:
    """Folding of the nodes of numbers and lists: ``not``, builtin calls and comprehensions
    whose operands are constants become their value (computed as the language computes it)."""
    if isinstance(e, ast.Not) and isinstance(e.operand, ast.BoolLit):
        return ast.BoolLit(not e.operand.value)
    if isinstance(e, ast.FuncCall) and all(is_const(a.value) for a in e.args):
        done, value = functions.folded(e, [const_value(a.value) for a in e.args])
        if done:
            return lit(value)
    if isinstance(e, ast.ListComp):
        return _fold_comp(e)
    return e


def _fold_comp(e: ast.ListComp) -> Any:
    """The list a comprehension makes, where every loop runs over constants and every item and
    condition folds to one (the loop variable replaced by each value in turn); else ``e``."""
    rows: list[dict[str, ast.Expr]] = [{}]
    sub = subst
    for loop in e.loops:
        grown = []
        for row in rows:
            iterable = sub(loop.iterable, row)
            if not (isinstance(iterable, ast.ListExpr) and is_const(iterable)):
                return e
            for item in iterable.items:
                bound = {**row, loop.name: item}
                test = True if loop.cond is None else sub(loop.cond, bound)
                if isinstance(test, ast.BoolLit):
                    test = test.value
                if not isinstance(test, bool):
                    return e
                if test:
                    grown.append(bound)
        rows = grown
    items = [sub(e.item, row) for row in rows]
    return ast.ListExpr(tuple(items)) if all(is_const(i) for i in items) else e


def _int_offset(e: Any) -> tuple[ast.Name, int] | None:
    """``(name, n)`` where ``e`` is ``name + n`` (or ``name - n``, then -n), ``n`` a whole number:
    the offsets the stage loops write on their index (``dims[i - 1 + 1]`` is ``dims[i]``)."""
    if isinstance(e, ast.BinOp) and e.op in ("+", "-") and isinstance(e.left, ast.Name):
        if isinstance(e.right, ast.IntLit) and not isinstance(e.right.value, bool):
            return e.left, e.right.value if e.op == "+" else -e.right.value
    return None


def fold(e: Any) -> Any:
    if isinstance(e, (ast.Not, ast.FuncCall, ast.ListComp)):
        return _fold_new(e)
    if isinstance(e, ast.BinOp) and e.op in ast.BOOLEAN_OPS:
        if isinstance(e.left, ast.BoolLit) and isinstance(e.right, ast.BoolLit):
            return lit(_FOLD[e.op](e.left.value, e.right.value))
        return e
    if isinstance(e, ast.Cond) and isinstance(e.test, ast.BoolLit):
        return e.then if e.test.value else e.orelse
    if isinstance(e, ast.Cond) and py(e.then) == py(e.orelse):  # both sides the same: no choice
        return e.then
    if isinstance(e, ast.Cond) and isinstance(e.test, ast.BinOp) and e.test.op in ("!=", "=="):
        # s if s != 1 else 1 is s (either side gives s's value), as is 1 if s == 1 else s
        operands = {py(e.test.left), py(e.test.right)}
        kept, other = (e.then, e.orelse) if e.test.op == "!=" else (e.orelse, e.then)
        if {py(kept), py(other)} == operands and py(kept) != py(other):
            return kept
    if isinstance(e, ast.Cond) and isinstance(e.orelse, ast.Cond) and py(e.orelse.test) == py(e.test):
        return fold(ast.Cond(e.test, e.then, e.orelse.orelse))  # a if t else (b if t else c): a if t else c
    if isinstance(e, ast.Cond) and isinstance(e.then, ast.Cond) and py(e.then.test) == py(e.test):
        return fold(ast.Cond(e.test, e.then.then, e.orelse))
    if isinstance(e, ast.BinOp) and isinstance(e.left, ast.Cond) and isinstance(e.right, ast.Cond):
        a, b = e.left, e.right
        if py(a.test) == py(b.test):  # (a if t else b) * (c if t else d) = (a*c if t else b*d)
            then = fold(ast.BinOp(e.op, a.then, b.then))
            orelse = fold(ast.BinOp(e.op, a.orelse, b.orelse))
            return fold(ast.Cond(a.test, then, orelse))
    if isinstance(e, ast.BinOp) and e.op in ast.COMPARISONS:
        if is_const(e.left) and is_const(e.right) and not isinstance(e.left, ast.ListExpr):
            return lit(_FOLD[e.op](const_value(e.left), const_value(e.right)))
        return e
    if isinstance(e, ast.BinOp):
        left, right = e.left, e.right
        if isinstance(left, (ast.IntLit, ast.FloatLit)) and isinstance(right, (ast.IntLit, ast.FloatLit)):
            if e.op == "**":  # as the language computes it: no huge, complex or infinite result
                try:
                    return lit(arith(e, left.value, right.value))
                except Refused:
                    return e
            try:
                return lit(_FOLD[e.op](left.value, right.value))
            except (ZeroDivisionError, OverflowError):
                return e
        if e.op in ("*", "//", "/") and isinstance(right, ast.IntLit) and right.value == 1:
            return left
        if e.op == "*" and isinstance(left, ast.IntLit) and left.value == 1:
            return right
        if e.op in ("+", "-") and isinstance(right, ast.IntLit) and right.value == 0:
            return left
        offset = _int_offset(left)
        if e.op in ("+", "-") and isinstance(right, ast.IntLit) and offset is not None:
            # (i - 1) + 1 is i: whole-number offsets on one name combine
            total = offset[1] + (right.value if e.op == "+" else -right.value)
            return fold(ast.BinOp("+" if total >= 0 else "-", offset[0], ast.IntLit(abs(total))))
        return e
    if isinstance(e, ast.Neg) and isinstance(e.operand, (ast.IntLit, ast.FloatLit)):
        return lit(-e.operand.value)
    if isinstance(e, ast.Index) and isinstance(e.value, ast.ListExpr) and isinstance(e.index, ast.IntLit):
        if -len(e.value.items) <= e.index.value < len(e.value.items):
            return e.value.items[e.index.value]
    return e


def py(e: Any, parent: int = 0, right: bool = False) -> str:
    """Python source for an expression (or a plain Python value)."""
    if isinstance(e, tuple):
        return py_default(list(e))
    if not isinstance(e, _EXPR_TYPES):
        e = lit(e)
    if isinstance(e, ast.BoolLit):
        return "True" if e.value else "False"
    if isinstance(e, ast.IntLit):
        return repr(e.value)
    if isinstance(e, ast.FloatLit):
        return py_float(e.value)
    if isinstance(e, ast.StrLit):
        return py_str(e.value)
    if isinstance(e, ast.Name):
        return py_name(e.id)
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(py(i) for i in e.items) + "]"
    if isinstance(e, ast.Index):
        return f"{py(e.value, 3)}[{py(e.index)}]"
    if isinstance(e, ast.Neg):  # parenthesised as the base of a power: (-a) ** 2
        return f"(-{py(e.operand, 3)})" if parent > 3 else f"-{py(e.operand, 3)}"
    if isinstance(e, (ast.Not, ast.FuncCall, ast.ListComp)) or (isinstance(e, ast.BinOp) and e.op in _OWN_LAYOUT):
        return _py_new(e, parent, right)
    if isinstance(e, ast.BinOp):
        prec = ast.PRECEDENCE[e.op]
        if prec == 0:  # comparisons do not chain in the language: both sides are sums
            text = f"{py(e.left, 1)} {e.op} {py(e.right, 1)}"
            return f"({text})" if parent > -1 else text
        text = f"{py(e.left, prec)} {e.op} {py(e.right, prec, True)}"
        return f"({text})" if prec < parent or (right and prec == parent) else text
    if isinstance(e, ast.Cond):  # the loosest Python expression: parenthesised unless alone
        text = f"{py(e.then, 1)} if {py(e.test, 1)} else {py(e.orelse, 1)}"
        return f"({text})" if parent > -1 else text
    raise TypeError(e)


_OWN_LAYOUT = frozenset({"and", "or", "**"})


def _py_new(e: Any, parent: int, right: bool) -> str:
    """Python for ``and``/``or``/``not``, ``**``, builtin calls and comprehensions. A boolean
    operation is parenthesised unless it stands alone (``parent`` -1), like a comparison; its
    operands are, unless they bind tighter (a comparison, a ``not``, a name, a call)."""
    if isinstance(e, ast.BinOp) and e.op == "**":  # right-associative; binds tighter than unary minus
        text = f"{py(e.left, 4, True)} ** {py(e.right, 3)}"
        return f"({text})" if parent > 4 or (parent == 4 and right) else text
    if isinstance(e, ast.BinOp):  # left-associative: a left operand of the same operator stays bare
        same = isinstance(e.left, ast.BinOp) and e.left.op == e.op
        text = f"{py(e.left, -1) if same else _bool_operand(e.left)} {e.op} {_bool_operand(e.right)}"
        return f"({text})" if parent > -1 else text
    if isinstance(e, ast.Not):
        text = f"not {_bool_operand(e.operand)}"
        return f"({text})" if parent > -1 else text
    if isinstance(e, ast.FuncCall):
        args = functions.arguments(e.func, [(a.name, py(a.value, -1)) for a in e.args])
        callee = functions.callee(e.func)
        call = callee.format(args) if "{}" in callee else f"{callee}({args})"
        return f"list({call})" if e.func == "range" else call
    loops = " ".join(
        f"for {py_name(loop.name)} in {_iterable(loop.iterable)}"
        + ("" if loop.cond is None else f" if {py(loop.cond, 1)}")
        for loop in e.loops
    )
    return f"[{py(e.item, -1)} {loops}]"


def _iterable(e: Any) -> str:
    """A comprehension's iterable: a ``range(...)`` is iterated as it is, not made a list first."""
    if isinstance(e, ast.FuncCall) and e.func == "range":
        return py(e, 1).removeprefix("list(").removesuffix(")")
    return py(e, 1)


def _bool_operand(e: Any) -> str:
    """An operand of ``and``/``or``/``not``: bare where it binds tighter than they do."""
    bare = isinstance(e, ast.Not) or (isinstance(e, ast.BinOp) and e.op not in ast.BOOLEAN_OPS)
    return py(e, -1) if bare and not isinstance(e, ast.Cond) else py(e, 0)


def py_default(value: Any) -> str:
    """A parameter default: lists become tuples so no default is mutable."""
    if isinstance(value, list):
        inner = ", ".join(py_default(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return py(value)


def py_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        kinds = {py_type(v) for v in value}
        return f"tuple[{kinds.pop() if len(kinds) == 1 else 'Any'}, ...]"
    return "Any"


def symbolic_shape(channels: Any, stride: Any, layer: Layer, pooled: bool = False) -> str:
    """A block layer's output shape for a comment: ``width x H/stride x W/stride``; ``C x 1 x 1``
    for a global pool and what follows it (``pooled``)."""
    shape = layer.shape or ()
    width = py(channels, 3)  # parenthesised when compound; already in Python's names
    if len(shape) == 2:  # tokens: N x C
        return f"N x {width}"
    if len(shape) != 3:
        return width
    if shape[1:] == (1, 1) and (pooled or layer.op == "global_avgpool"):
        return f"{width} x 1 x 1"
    if isinstance(stride, ast.IntLit) and stride.value == 1:
        return f"{width} x H x W"
    div = py(stride, 3)
    if len(div) > 16:  # a conditional stride (v1 vs v1.5): the comment would outgrow the line
        return f"{width} x H/s x W/s (s = {py(stride, -1)})" if len(div) < 40 else f"{width} x H' x W'"
    return f"{width} x H/{div} x W/{div}"
