"""Checks that need no network: names, ops, blocks and arguments, read off the syntax tree.

Elaboration checks everything a network uses, with real values. A library file (blocks and
no network) or a block no network uses would otherwise pass unchecked, so this pass resolves
every name and call in such blocks statically: unknown names (E201), unknown ops or blocks
(E202), unknown keyword arguments (E203), too many positional arguments (E210), repeated
layer names (E206), layer names that Python or ``nn.Module`` own (E505) and misplaced ``input``/``meta``
(E217).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from resdsl.diagnostics import Diagnostic, error
from resdsl.ops import OPS, P
from resdsl.semantics.values import (
    INSTANCE_HELP,
    INSTANCE_NAMES,
    STAGE_PARAMS,
    Meaning,
    meaning,
    name_options,
    suggest,
    typo_fixes,
)
from resdsl.semantics.walk import Frame
from resdsl.syntax import ast
from resdsl.syntax.ast import BUILTIN_FORMS
from resdsl.syntax.loader import Program
from resdsl.syntax.names import bad_layer_name, layer_name_problem


@dataclass(frozen=True)
class _Seen:
    """The names visible where an expression stands: the body's bindings (parameters, values
    bound so far), and the instance values inside a stage's block argument. What each name
    means is the evaluator's table (:func:`~resdsl.semantics.values.meaning`)."""

    bound: frozenset[str]
    instance: tuple[str, ...] = ()

    def means(self, name: str, globals: dict[str, ast.Definition]) -> Meaning | None:
        return meaning(name, self.bound, globals, self.instance)


class _BlockChecker:
    def __init__(self, program: Program, block: ast.BlockDef) -> None:
        self.block = block
        self.globals = program.definitions(block.span.file)
        self.out: list[Diagnostic] = []
        self.layers: dict[str, ast.Span] = {}  # the body's layers so far: what a merge's tap may name

    def run(self) -> list[Diagnostic]:
        params = frozenset(p.name for p in self.block.params)
        seen = _Seen(params)
        for param in self.block.params:
            if param.default is not None:
                self.expr(param.default, seen)
        frame = Frame(self.block.body, network=False)
        self.layers = frame.layers
        for stmt in self.block.body:
            if isinstance(stmt, (ast.InputStmt, ast.MetaStmt)):
                word = "input" if isinstance(stmt, ast.InputStmt) else "meta"
                self.out.append(error("E217", f"'{word}' belongs in a network, not in a block", stmt.span))
            elif isinstance(stmt, ast.LayerStmt):
                value = stmt.value
                if isinstance(value, ast.Call) and value.func == "residual":
                    self.call(value, seen, OPS["residual"].params, layers=frame.layers)
                else:
                    self.expr(value, seen)
            else:
                self.expr(stmt.value, seen)
                seen = self._assign(stmt, seen, frame, params)
        return self.out

    def _assign(self, stmt: ast.Assign, seen: _Seen, frame: Frame, params: frozenset[str]) -> _Seen:
        """Bind ``stmt``'s name in the body (E206), as a layer where its value may make one
        (what ``project_from`` may name; E505 where it surely does), as a value otherwise."""
        first = frame.bound_before(stmt.name)
        if first is not None:
            self.out.append(
                error(
                    "E206",
                    f"'{stmt.name}' is already defined in block '{self.block.name}'",
                    stmt.name_span,
                    notes=[f"first defined at {first}"],
                )
            )
        frame.names[stmt.name] = stmt.name_span
        makes = self._makes_layer(stmt.value, seen, frame, params)
        if makes is not False:
            frame.layers[stmt.name] = stmt.name_span
        if makes is True:
            problem = layer_name_problem(stmt.name)
            if problem is not None:
                self.out.append(bad_layer_name(stmt.name, problem, stmt.name_span))
        if isinstance(stmt.value, ast.Call):  # a call that evaluates makes a layer, never a value
            return seen
        return _Seen(seen.bound | {stmt.name}, seen.instance)

    def _makes_layer(self, expr: ast.Expr, seen: _Seen, frame: Frame, params: frozenset[str]) -> bool | None:
        """Whether a binding's value makes a layer, as the evaluator decides from the value:
        True surely (an op, a block, a form, called or named), None perhaps (a parameter may
        hold a layer, and calling one gives a layer), False not (a number, a list, ...)."""
        if isinstance(expr, ast.Call):  # a call is looked up as the evaluator's _call does
            if expr.func in seen.bound:
                return None
            op_or_block = expr.func in OPS or isinstance(self.globals.get(expr.func), ast.BlockDef)
            return expr.func != "residual" and (op_or_block or expr.func in BUILTIN_FORMS)
        if isinstance(expr, ast.Name):
            found = seen.means(expr.id, self.globals)
            if found is Meaning.LAYER:
                return True
            return None if found is Meaning.BOUND and (expr.id in params or expr.id in frame.layers) else False
        if isinstance(expr, ast.Cond):
            sides = (self._makes_layer(e, seen, frame, params) for e in (expr.then, expr.orelse))
            return None if any(side is not False for side in sides) else False
        return False

    def expr(self, expr: ast.Expr, seen: _Seen) -> None:
        for node in _outside_comprehensions(expr):  # a call checks its own arguments
            if isinstance(node, ast.ListComp):  # its loop variables are seen inside it
                self._comprehension(node, seen)
            elif isinstance(node, ast.Name) and seen.means(node.id, self.globals) is None:
                options = name_options(seen.bound, self.globals)
                fixes = typo_fixes(node.id, options, node.span)
                hint = suggest(node.id, options)
                if node.id in INSTANCE_NAMES:  # an instance value outside a stage's block arguments
                    fixes, hint = (), INSTANCE_HELP
                self.out.append(error("E201", f"unknown name '{node.id}'", node.span, help=hint, fixes=fixes))
            elif isinstance(node, ast.Call):
                self.call(node, seen, None)

    def _comprehension(self, comp: ast.ListComp, seen: _Seen) -> None:
        for loop in comp.loops:
            self.expr(loop.iterable, seen)
            seen = _Seen(seen.bound | {loop.name}, seen.instance)
            if loop.cond is not None:
                self.expr(loop.cond, seen)
        self.expr(comp.item, seen)

    def call(
        self,
        call: ast.Call,
        seen: _Seen,
        params: Iterable[P] | None,
        layers: dict[str, ast.Span] | None = None,
    ) -> None:
        if params is None:
            params = self._params_of(call, seen)
            if params is None:  # no signature to check against: the values only
                if call.func not in ("sequential", "gate"):  # (those checked theirs)
                    for arg in call.args:
                        self.expr(arg.value, seen)
                return
        params = tuple(params)
        names = {n for p in params for n in (p.name, *p.aliases)}
        positional = [a for a in call.args if a.name is None]
        if len(positional) > len(params):
            self.out.append(
                error("E210", f"{call.func} takes at most {len(params)} positional arguments", positional[-1].span)
            )
        for i, arg in enumerate(call.args):
            if arg.name is not None and arg.name not in names:
                self.out.append(
                    error(
                        "E203",
                        f"{call.func} has no parameter '{arg.name}'",
                        arg.span,
                        help=suggest(arg.name, names) or f"parameters: {', '.join(p.name for p in params) or 'none'}",
                        fixes=typo_fixes(arg.name, names, arg.span),
                    )
                )
            if arg.name == "project_from" and layers is not None:
                self._named_layer(arg, layers, "residual")
                continue
            op = OPS.get(call.func) if call.func not in seen.bound else None
            at_tap = arg.name is None and i < len(params) and params[i].name == getattr(op, "tap", None)
            if op is not None and op.tap is not None and (arg.name == op.tap or at_tap):  # a layer's name, not a value
                self._named_layer(arg, self.layers, call.func)
                continue
            if call.func == "stage" and (arg.name == "block" or (i == 0 and arg.name is None)):
                self.expr(arg.value, _Seen(seen.bound, INSTANCE_NAMES))  # the stage binds them for each block
                continue
            self.expr(arg.value, seen)

    def _named_layer(self, arg: ast.Arg, layers: dict[str, ast.Span], where: str) -> None:
        """E201 where ``project_from=`` or a merge's tap names no layer before it."""
        if not (isinstance(arg.value, ast.Name) and arg.value.id in layers):
            target = arg.value.id if isinstance(arg.value, ast.Name) else "?"
            self.out.append(error("E201", f"no layer named '{target}' before this {where}", arg.value.span))

    def _params_of(self, call: ast.Call, seen: _Seen) -> tuple[P, ...] | None:
        if call.func in seen.bound:
            return None  # a parameter holding a layer: its signature is known only with a value
        if call.func == "stage":
            return STAGE_PARAMS
        if call.func in ("sequential", "gate"):
            for arg in call.args:
                self.expr(arg.value, seen)
            return None
        if call.func == "residual":
            self.out.append(error("E217", "residual(...) is a statement of its own, not a value", call.span))
            return None
        if call.func in OPS:
            return OPS[call.func].params
        target = self.globals.get(call.func)
        if isinstance(target, ast.BlockDef):
            return tuple(P(p.name, "any") for p in target.params)
        what = "a network and cannot be used as a layer" if target is not None else "not an op or block"
        blocks = (n for n, d in self.globals.items() if isinstance(d, ast.BlockDef))
        options = [*OPS, *BUILTIN_FORMS, *blocks, *ast.BUILTIN_FUNCTIONS]
        self.out.append(
            error(
                "E202",
                f"'{call.func}' is {what}" if target is not None else f"unknown op or block '{call.func}'",
                call.func_span,
                help=suggest(call.func, options),
                fixes=typo_fixes(call.func, options, call.func_span) if target is None else (),
            )
        )
        return None


def _outside_comprehensions(expr: ast.Expr) -> list[ast.Expr]:
    """The nodes of ``expr`` (calls' arguments aside), a comprehension's but not the nodes inside it."""
    out, stack = [], [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, (ast.Call, ast.ListComp)):
            stack.extend(reversed(ast.children(node)))
    return out


def check_unused_blocks(program: Program, used: set[int]) -> list[Diagnostic]:
    """Static checks for the root file's blocks that no checked network used."""
    module = program.modules.get(program.root)
    if module is None:
        return []
    out: list[Diagnostic] = []
    for definition in module.definitions:
        if isinstance(definition, ast.BlockDef) and id(definition) not in used:
            out.extend(_BlockChecker(program, definition).run())
    return out
