"""The evaluator's rules for booleans, builtin function calls and list comprehensions.

:class:`Computing` is the part of :class:`~resdsl.semantics.evaluate.Evaluator` that computes
numbers and lists from numbers and lists: ``and``/``or`` (short-circuit, on booleans only),
``not``, calls of :mod:`resdsl.semantics.builtins`, and ``[item for x in xs if c]`` with a
scope of its own per loop. Problems become diagnostics and abandon the statement (Failed).
"""

from __future__ import annotations

from typing import Any

from resdsl.diagnostics import Collector, error
from resdsl.semantics.arith import Refused
from resdsl.semantics.builtins import MAX_LIST, apply
from resdsl.semantics.values import Failed, Meaning, meaning, show_value, type_name
from resdsl.syntax import ast


class Computing(ast.ExprVisitor[Any]):
    """Evaluation by node class (:class:`ast.ExprVisitor`), with the rules for booleans, builtin
    calls and comprehensions; the evaluator sets the attributes below and adds the rest."""

    diags: Collector
    globals: dict[str, ast.Definition]
    instance: Any  # the instance values of a stage's block argument, or None

    def eval(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        """The value of ``expr`` where ``env`` (parameters and bindings) is seen."""
        return self.dispatch[type(expr)](self, expr, env)  # self.visit(expr, env), a call fewer

    def _boolean(self, expr: ast.BinOp, env: dict[str, Any]) -> bool:
        """``a and b``, ``a or b`` on booleans; the right side is evaluated only where the left
        does not decide (``i < len(ws) and ws[i] > 8`` never indexes past the end)."""
        left = self.truth(expr.left, env, f"'{expr.op}'")
        if left is (expr.op == "or"):
            return left
        return self.truth(expr.right, env, f"'{expr.op}'")

    def visit_Not(self, expr: ast.Not, env: dict[str, Any]) -> bool:
        return not self.truth(expr.operand, env, "'not'")

    def truth(self, expr: ast.Expr, env: dict[str, Any], what: str) -> bool:
        """The value of ``expr``, which must be true or false (E212 otherwise)."""
        value = self.eval(expr, env)
        if not isinstance(value, bool):
            self.diags.add(
                error(
                    "E212",
                    f"{what} takes true or false, got {type_name(value)} ({show_value(value)})",
                    expr.span,
                    help="compare it: 'stride == 1 and c > 8'",
                )
            )
            raise Failed
        return value

    def visit_FuncCall(self, expr: ast.FuncCall, env: dict[str, Any]) -> Any:
        values = [self.eval(arg.value, env) for arg in expr.args]
        try:
            return apply(expr, values)
        except Refused as refused:
            self.diags.add(refused.diagnostic)
            raise Failed from None

    def visit_ListComp(self, expr: ast.ListComp, env: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        self._loop(expr, 0, env, out)
        return out

    def _loop(self, expr: ast.ListComp, depth: int, env: dict[str, Any], out: list[Any]) -> None:
        """The items of ``expr``'s loops from ``depth`` on, appended to ``out``; each loop's
        variable is bound in a scope of its own, seen by the loops inside it and the item."""
        if depth == len(expr.loops):
            if len(out) >= MAX_LIST:
                self.diags.add(
                    error("E605", f"a comprehension of more than {MAX_LIST:,} items", expr.span, help="make fewer")
                )
                raise Failed
            out.append(self.eval(expr.item, env))
            return
        loop = expr.loops[depth]
        items = self.eval(loop.iterable, env)
        if not isinstance(items, list):
            self.diags.add(
                error(
                    "E221",
                    f"a comprehension loops over a list, not {type_name(items)} ({show_value(items)})",
                    loop.iterable.span,
                    help=f"loop over range(n) for n numbers: [... for {loop.name} in range(n)]",
                )
            )
            raise Failed
        self._shadowing(loop, env)
        local = dict(env)
        for item in items:
            local[loop.name] = item
            if loop.cond is None or self.truth(loop.cond, local, "a comprehension's 'if'"):
                self._loop(expr, depth + 1, local, out)

    def _shadowing(self, loop: ast.Loop, env: dict[str, Any]) -> None:
        """E222 for a loop variable named like something already seen (a parameter, a value, an
        outer loop's variable, an op, block or shortcut kind, an instance value): inside the
        comprehension the name would mean two things."""
        found = meaning(loop.name, env, self.globals, self.instance or ())
        if found is None:
            return
        what = {
            Meaning.BOUND: "a parameter or value",
            Meaning.SHORTCUT: "a shortcut kind",
            Meaning.LAYER: "an op or block",
            Meaning.INSTANCE: "an instance value of the stage",
        }[found]
        self.diags.add(
            error(
                "E222",
                f"the loop variable '{loop.name}' shadows {what} of that name",
                loop.name_span,
                help=f"give the loop variable a name of its own, e.g. '{loop.name}_'",
            )
        )
        raise Failed
