"""Test helper: hypothesis strategies for valid .arch programs and a printer back to text.

Used only by the round-trip property test; the compiler itself never prints .arch text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from resdsl.syntax import ast

KEYWORDS = {"import", "block", "network", "input", "meta", "true", "false", "x", "if", "else"}
KEYWORDS |= {"and", "or", "not", "for", "in"}
# a call of a builtin function's name parses as a FuncCall: other names only for ast.Call
names = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS and n not in ast.BUILTIN_FUNCTIONS
)


def strip(node: Any) -> Any:
    """The node with every span removed, so trees can be compared by structure."""
    if isinstance(node, tuple):
        return tuple(strip(n) for n in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, ast.Span):
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            changes[f.name] = ast.NO_SPAN if isinstance(value, ast.Span) else strip(value)
        return dataclasses.replace(node, **changes)
    return node


def exprs() -> st.SearchStrategy[ast.Expr]:
    leaves = st.one_of(
        st.integers(0, 10_000).map(ast.IntLit),
        st.floats(0, 100, allow_nan=False).map(lambda f: ast.FloatLit(round(f, 4))),
        st.text("abc xyz_-", max_size=6).map(ast.StrLit),
        st.booleans().map(ast.BoolLit),
        names.map(ast.Name),
    )

    def extend(inner: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
        return st.one_of(
            st.builds(ast.BinOp, st.sampled_from(["+", "-", "*", "/", "//", "%", "==", "<", ">="]), inner, inner),
            st.builds(ast.BinOp, st.sampled_from(["**", "and", "or"]), inner, inner),
            st.builds(ast.Cond, inner, inner, inner),
            st.builds(ast.Neg, inner),
            st.builds(ast.Not, inner),
            st.builds(
                ast.FuncCall, st.sampled_from(ast.BUILTIN_FUNCTIONS), st.lists(args(inner), max_size=3).map(tuple)
            ),
            st.builds(ast.ListComp, inner, st.lists(loops(inner), min_size=1, max_size=2).map(tuple)),
            st.lists(inner, max_size=3).map(lambda items: ast.ListExpr(tuple(items))),
            st.builds(ast.Index, names.map(ast.Name), inner),
            st.builds(ast.Call, names, st.lists(args(inner), max_size=3).map(tuple)),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def loops(inner: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Loop]:
    return st.builds(ast.Loop, names, inner, st.one_of(st.none(), inner))


def args(inner: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Arg]:
    return st.builds(ast.Arg, st.one_of(st.none(), names), inner)


def statements() -> st.SearchStrategy[ast.Stmt]:
    e = exprs()
    call = st.builds(ast.Call, names, st.lists(args(e), max_size=3).map(tuple))
    layer = st.one_of(names.map(ast.Name), call)
    return st.one_of(
        st.builds(ast.Assign, names, e),
        names.map(lambda n: ast.LayerStmt(ast.Name(n))),
        call.map(ast.LayerStmt),
        st.builds(lambda then, test, orelse: ast.LayerStmt(ast.Cond(test, then, orelse)), layer, e, e),
    )


def params() -> st.SearchStrategy[tuple[ast.Param, ...]]:
    return st.lists(st.builds(ast.Param, names, st.one_of(st.none(), exprs())), max_size=3).map(tuple)


def modules() -> st.SearchStrategy[ast.Module]:
    body = st.lists(statements(), max_size=5).map(tuple)
    size = st.one_of(st.integers(1, 512).map(ast.IntLit), exprs())  # input 3 x img_size x img_size
    shape = st.lists(size, min_size=1, max_size=3).map(lambda d: (ast.InputStmt(tuple(d)),))
    meta = st.lists(st.builds(ast.MetaEntry, names, exprs()), max_size=2).map(
        lambda es: (ast.MetaStmt(tuple(es)),) if es else ()
    )
    network = st.builds(lambda n, p, s, m, b: ast.NetworkDef(n, p, s + m + b), names, params(), shape, meta, body)
    block = st.builds(ast.BlockDef, names, params(), body)
    alias = st.builds(
        ast.NetworkAlias, names, st.builds(ast.Call, names, st.lists(args(exprs()), max_size=2).map(tuple))
    )
    imports = st.lists(st.text("abcdef/", min_size=1, max_size=8).map(lambda p: ast.Import(p + ".arch")), max_size=2)
    defs = st.lists(st.one_of(network, block, alias), max_size=3)
    return st.builds(lambda i, d: ast.Module("<test>", tuple(i), tuple(d)), imports, defs)


# Binding levels of the grammar, loosest first: a node of level L is written bare where the
# position allows level L or looser (``ctx <= L``), in parentheses otherwise.
COND, OR, AND, NOT, CMP, SUM, PROD, UNARY, POW, ATOM = range(10)
_LEVEL = {"or": OR, "and": AND, "+": SUM, "-": SUM, "*": PROD, "/": PROD, "//": PROD, "%": PROD}
_LEVEL |= {op: CMP for op in ("==", "!=", "<", "<=", ">", ">=")}


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Cond):
        return COND
    if isinstance(e, ast.Not):
        return NOT
    if isinstance(e, ast.Neg):
        return UNARY
    if isinstance(e, ast.BinOp):
        return POW if e.op == "**" else _LEVEL[e.op]
    return ATOM


def show(e: ast.Expr, ctx: int = COND) -> str:
    text = _text(e)
    return f"({text})" if _level(e) < ctx else text


def _text(e: ast.Expr) -> str:
    if isinstance(e, ast.IntLit):
        return str(e.value)
    if isinstance(e, ast.FloatLit):
        return repr(float(e.value)) if "e" not in repr(e.value) else f"{e.value:.6f}"
    if isinstance(e, ast.StrLit):
        return '"' + e.value + '"'
    if isinstance(e, ast.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(show(i) for i in e.items) + "]"
    if isinstance(e, ast.ListComp):
        return f"[{show(e.item)} {' '.join(_show_loop(loop) for loop in e.loops)}]"
    if isinstance(e, ast.Index):
        return f"{show(e.value, ATOM)}[{show(e.index)}]"
    if isinstance(e, ast.Neg):
        return f"-{show(e.operand, UNARY)}"
    if isinstance(e, ast.Not):
        return f"not {show(e.operand, NOT)}"
    if isinstance(e, (ast.Call, ast.FuncCall)):
        return f"{e.func}({', '.join(show_arg(a) for a in e.args)})"
    if isinstance(e, ast.BinOp) and e.op == "**":  # atom ** unary: right-associative
        return f"{show(e.left, ATOM)} ** {show(e.right, UNARY)}"
    if isinstance(e, ast.BinOp) and _LEVEL[e.op] == CMP:  # comparisons do not chain: both sides are sums
        return f"{show(e.left, SUM)} {e.op} {show(e.right, SUM)}"
    if isinstance(e, ast.BinOp):  # left-associative
        level = _LEVEL[e.op]
        return f"{show(e.left, level)} {e.op} {show(e.right, level + 1)}"
    if isinstance(e, ast.Cond):
        return f"{show(e.then, OR)} if {show(e.test, OR)} else {show(e.orelse)}"
    raise TypeError(e)


def _show_loop(loop: ast.Loop) -> str:
    cond = "" if loop.cond is None else f" if {show(loop.cond, OR)}"
    return f"for {loop.name} in {show(loop.iterable, OR)}{cond}"


def show_arg(a: ast.Arg) -> str:
    return f"{a.name}={show(a.value)}" if a.name else show(a.value)


def show_stmt(s: ast.Stmt) -> str:
    if isinstance(s, ast.InputStmt):
        return "input " + " x ".join(show(d, SUM) for d in s.dims)
    if isinstance(s, ast.MetaStmt):
        return "meta { " + "  ".join(f"{e.name} = {show(e.value)}" for e in s.entries) + " }"
    if isinstance(s, ast.Assign):
        return f"{s.name} = {show(s.value)}"
    if isinstance(s.value, ast.Cond):  # relu if act else identity: a layer statement, never in brackets
        c = s.value
        return f"{show(c.then, ATOM)} if {show(c.test, OR)} else {show(c.orelse)}"
    return show(s.value)


def show_params(ps: tuple[ast.Param, ...]) -> str:
    return ", ".join(p.name if p.default is None else f"{p.name} = {show(p.default)}" for p in ps)


def show_module(m: ast.Module) -> str:
    out = [f'import "{i.path}"' for i in m.imports]
    for d in m.definitions:
        if isinstance(d, ast.NetworkAlias):
            out.append(f"network {d.name} = {show(d.target)}  # an alias")
            continue
        kind = "network" if isinstance(d, ast.NetworkDef) else "block"
        out.append(f"{kind} {d.name}({show_params(d.params)}) {{")
        out.extend(f"    {show_stmt(s)}" for s in d.body)
        out.append("}")
    return "\n".join(out) + "\n"
