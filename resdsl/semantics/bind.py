"""Binding a call's arguments to a signature: which parameter each argument fills, whether its
value suits that parameter, and what the parameters left out get.

These are the rules of :meth:`resdsl.semantics.evaluate.Evaluator.bind` that need no evaluation;
each gives the diagnostic of a mistake (or None), and the evaluator collects them, so one call
reports every wrong argument at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from resdsl.diagnostics import Diagnostic, error
from resdsl.ops import P
from resdsl.semantics.values import SHORTCUTS, TYPE_WORDS, check_type, show_value, suggest, type_name, typo_fixes
from resdsl.syntax import ast

__all__ = ["Plan", "fill_missing", "not_a_block", "param_for", "plan_args", "suits"]


def param_for(what: str, params: Sequence[P], by_name: Mapping[str, P], call: ast.Call, i: int) -> P | Diagnostic:
    """The parameter that argument ``i`` of ``call`` fills, or why it fills none (E001 a
    positional argument after a named one, E210 too many positional ones, E203 no such name)."""
    arg = call.args[i]
    if arg.name is None:
        if i and call.args[i - 1].name is not None:
            return error("E001", "a positional argument cannot follow a named one", arg.span)
        if i >= len(params):
            return error(
                "E210",
                f"{what} takes at most {len(params)} positional argument{'s' * (len(params) != 1)}",
                arg.span,
                help=f"parameters: {', '.join(p.name for p in params) or 'none'}",
            )
        return params[i]
    found = by_name.get(arg.name)
    if found is None:
        known = ", ".join(p.name for p in params) or "none"
        return error(
            "E203",
            f"{what} has no parameter '{arg.name}'",
            arg.span,
            help=suggest(arg.name, list(by_name)) or f"parameters: {known}",
            fixes=typo_fixes(arg.name, list(by_name), arg.span),
        )
    return found


# which parameter each argument fills (or why it fills none), and the parameters filled
Plan = tuple[tuple[tuple[P | Diagnostic, ast.Arg], ...], frozenset[str]]


def plan_args(what: str, params: Sequence[P], by_name: Mapping[str, P], call: ast.Call) -> Plan:
    """Which parameter each argument of ``call`` fills, or the diagnostic of one that fills
    none (:func:`param_for`; E214 for a parameter given twice), and the names of the
    parameters filled: the part of binding that no value changes, so an evaluator can keep it
    per call site instead of working it out for every block instance."""
    plan: list[tuple[P | Diagnostic, ast.Arg]] = []
    given: set[str] = set()
    for i, arg in enumerate(call.args):
        param = param_for(what, params, by_name, call, i)
        if isinstance(param, P) and param.name in given:
            param = error("E214", f"{what} argument '{param.name}' is given twice", arg.span)
        elif isinstance(param, P):
            given.add(param.name)
        plan.append((param, arg))
    return tuple(plan), frozenset(given)


def suits(what: str, param: P, value: Any, span: ast.Span) -> tuple[Any, Diagnostic | None]:
    """``value`` as ``param`` takes it (a shortcut kind's word as the kind, a whole number as a
    decimal one), or the E205 (wrong type) or E213 (out of range, not a choice) it earns."""
    if param.type not in ("any", "name") and not check_type(value, param.type):
        if param.type == "shortcut" and isinstance(value, str) and value in SHORTCUTS:
            value = SHORTCUTS[value]
        elif param.type == "float" and check_type(value, "int"):
            value = float(value)
        else:
            words = TYPE_WORDS.get(param.type, param.type)
            message = f"{what} argument '{param.name}' must be {words}, got {type_name(value)} ({show_value(value)})"
            return value, error("E205", message, span)
    if check_type(value, "float"):
        out_of_range = _out_of_range(param, value)
        if out_of_range:
            message = f"{what} argument '{param.name}' must be {out_of_range}, got {value}"
            return value, error(param.range_code, message, span, help=param.range_help)
    if param.choices and value not in param.choices:
        choices = ", ".join(map(repr, param.choices))
        message = f"{what} argument '{param.name}' must be one of {choices}, got {show_value(value)}"
        return value, error("E213", message, span)
    return value, None


def _out_of_range(param: P, value: float) -> str | None:
    """What ``param``'s bounds ask of ``value`` ("at least 1", "in [0, 1)"), or None when it is within them."""
    low = param.minimum is not None and value < param.minimum
    if param.below is not None and (low or value >= param.below):
        return f"below {param.below}" if param.minimum is None else f"in [{param.minimum}, {param.below})"
    if low:
        return f"at least {param.minimum}"
    if param.maximum is not None and value > param.maximum:
        return f"at most {param.maximum}"
    return None


def fill_missing(
    what: str,
    params: Sequence[P],
    given: AbstractSet[str],
    args: dict[str, Any],
    call: ast.Call,
    fill_defaults: bool,
    partial: bool,
) -> list[Diagnostic]:
    """Give the parameters no argument filled their defaults (into ``args``, where
    ``fill_defaults``); E204 for each required one (unless the call is ``partial``: a layer
    held by a parameter, called with some arguments replaced)."""
    problems = []
    for param in params:
        if param.name in given:
            continue
        if param.required and not partial:
            problems.append(
                error(
                    "E204",
                    f"{what} needs argument '{param.name}'",
                    call.span,
                    help=f"e.g. {what}({', '.join(p.name + '=...' for p in params if p.required)})",
                )
            )
        elif fill_defaults and param.default_from:
            if param.default_from in args:  # else the missing argument it copies is reported
                args[param.name] = args[param.default_from]
        elif fill_defaults:
            args[param.name] = param.default
    return problems


def not_a_block(value: Any, span: ast.Span) -> Diagnostic:
    """E205: a stage's block argument that is not a block."""
    return error(
        "E205",
        f"stage repeats a block, got {type_name(value)} ({show_value(value)})",
        span,
        help="define a block (block name(...) { ... }) and pass it: stage(name(64), repeat=2)",
    )
