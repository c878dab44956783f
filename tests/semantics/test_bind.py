"""Binding a call's arguments (resdsl/semantics/bind.py): the plan of which parameter each
argument fills is worked out from the call alone, so an evaluator may keep it per call site."""

from __future__ import annotations

from resdsl.diagnostics import Diagnostic
from resdsl.ops import OPS
from resdsl.semantics.bind import plan_args
from resdsl.syntax import ast
from resdsl.syntax.parser import parse_expr


def plan(text: str) -> tuple[list[str], frozenset[str]]:
    call = parse_expr(text)
    assert isinstance(call, ast.Call)
    params = OPS[call.func].params
    by_name = {n: p for p in params for n in (p.name, *p.aliases)}
    steps, given = plan_args(call.func, params, by_name, call)
    assert [arg for _, arg in steps] == list(call.args)
    return [p.code if isinstance(p, Diagnostic) else p.name for p, _ in steps], given


def test_a_plan_says_which_parameter_each_argument_fills() -> None:
    assert plan("conv(64, k=3, s=2)") == (["out", "k", "s"], frozenset({"out", "k", "s"}))


def test_a_plan_keeps_the_mistakes_in_argument_order() -> None:
    # a parameter given twice (E214), a positional one after a named one (E001), no such name (E203)
    steps, given = plan("conv(64, k=3, kernel_size=5, 7, kk=1)")
    assert steps == ["out", "k", "E214", "E001", "E203"]
    assert given == frozenset({"out", "k"})  # what failed fills nothing: its default still applies
