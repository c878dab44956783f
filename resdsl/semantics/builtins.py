"""The language's builtin functions of numbers and lists: one table, one definition each.

Each :class:`Builtin` holds its name, its parameters (name, type, default), the doc line that
completion, hover and docs/language.md show, the Python function that computes it, and how
generated code spells it (:attr:`Builtin.python`). They are compile-time values: a call
evaluates to a number or a list before any shape is checked. :func:`apply` binds a call's
evaluated arguments, checks their types, and runs the function; every misuse is a
:class:`~resdsl.semantics.arith.Refused` carrying its diagnostic, pointed at the argument at
fault (E203, E204, E205, E210, E214 as for ops; E213 a value no result exists for; E220 a value
outside the function's domain; E605 a result too large).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from resdsl.diagnostics import error
from resdsl.semantics.arith import Refused
from resdsl.semantics.divisible import make_divisible
from resdsl.semantics.float32 import linspace
from resdsl.semantics.values import check_type, show_value, suggest, type_name, typo_fixes
from resdsl.syntax import ast

__all__ = ["BUILTINS", "MAX_LIST", "Builtin", "BuiltinParam", "Invalid", "apply", "signature"]

MAX_LIST = 100_000  # items a range or a comprehension may make: far above any network's lists

_REQUIRED = object()  # a parameter without a default
ABSENT = object()  # the default of an optional parameter that has no value of the language (log's base)

_TYPE_WORDS = {
    "number": "a number",
    "int": "a whole number",
    "list": "a list",
    "numbers": "a list of numbers",
}


class Invalid(Exception):
    """A value the function has no result for: ``code`` (E213, E220, E605), and the parameter at
    fault (None: the call as a whole)."""

    def __init__(self, code: str, message: str, param: str | None = None, help: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param, self.help = code, message, param, help


@dataclass(frozen=True)
class BuiltinParam:
    name: str
    type: str  # a key of _TYPE_WORDS, or "any"
    default: Any = _REQUIRED
    shown: str | None = None  # the default as the signature shows it (None: the default's repr)

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def __str__(self) -> str:
        if self.required:
            return self.name
        return f"{self.name}={self.shown if self.shown is not None else show_value(self.default)}"


@dataclass(frozen=True)
class Builtin:
    """One builtin function. ``variadic``: any number of numbers, or one list of them (min, max);
    ``positional``: no keyword arguments (range, min, max, as in Python)."""

    name: str
    params: tuple[BuiltinParam, ...]
    doc: str
    fn: Callable[..., Any]
    python: str  # the callee in generated code (a builtin, math.X, the copied helper), or a call: {} the arguments
    variadic: bool = False
    positional: bool = False
    forms: tuple[str, ...] = ()  # the signatures shown, where the parameters alone do not tell

    def signatures(self) -> tuple[str, ...]:
        return self.forms or (f"{self.name}({', '.join(map(str, self.params))})",)


def _number(value: Any) -> bool:
    return check_type(value, "float")


def _fits(value: Any, kind: str) -> bool:
    if kind == "number":
        return _number(value)
    if kind == "int":
        return check_type(value, "int")
    if kind == "list":
        return isinstance(value, list)
    if kind == "numbers":
        return isinstance(value, list) and all(_number(v) for v in value)
    return True


# -- the functions --------------------------------------------------------------------------


def _log(x: float, base: Any = ABSENT) -> float:
    if x <= 0:
        raise Invalid("E220", f"log of {show_value(x)}: the logarithm is defined for positive numbers only", "x")
    if base is ABSENT:
        return math.log(x)
    if base <= 0 or base == 1:
        raise Invalid("E220", f"log to base {show_value(base)}: a base must be positive and not 1", "base")
    return math.log(x, base)


def _sqrt(x: float) -> float:
    if x < 0:
        raise Invalid("E220", f"sqrt of {show_value(x)}: the square root is defined for numbers >= 0 only", "x")
    return math.sqrt(x)


def _float(x: float) -> float:
    try:
        return float(x)
    except OverflowError:
        raise Invalid("E605", f"{x} is too large for a decimal number", "x") from None


def _range(start: int, stop: Any = ABSENT, step: int = 1) -> list[int]:
    if stop is ABSENT:
        start, stop = 0, start
    if step == 0:
        raise Invalid("E213", "range's step must not be 0", "step", help="count up with step=1, down with step=-1")
    made = range(start, stop, step)
    if len(made) > MAX_LIST:
        raise Invalid("E605", f"range of {len(made):,} numbers; the limit is {MAX_LIST:,}")
    return list(made)


def _linspace(start: float, stop: float, steps: int) -> list[float]:
    if steps < 0:
        raise Invalid("E213", f"linspace of {steps} steps: the number of steps must not be negative", "steps")
    if steps > MAX_LIST:
        raise Invalid("E605", f"linspace of {steps:,} numbers; the limit is {MAX_LIST:,}", "steps")
    return linspace(start, stop, steps)


def _extreme(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        items = values[0] if len(values) == 1 and isinstance(values[0], list) else list(values)
        if not items:
            raise Invalid("E213", f"{name} of an empty list", help="give it at least one number")
        bad = next((v for v in items if not _number(v)), None)
        if bad is not None:
            what = "a list of numbers" if len(values) == 1 else "numbers"
            raise Invalid("E205", f"{name} takes {what}, got {type_name(bad)} ({show_value(bad)})")
        return pick(items)

    return extreme


def _divisible(v: float, divisor: int = 8, min_value: Any = ABSENT, round_limit: float = 0.9) -> int:
    if divisor < 1:
        raise Invalid("E213", f"make_divisible's divisor must be at least 1, got {divisor}", "divisor")
    if min_value is not ABSENT and min_value < 0:
        raise Invalid("E213", f"make_divisible's min_value must not be negative, got {min_value}", "min_value")
    return make_divisible(v, divisor, None if min_value is ABSENT else min_value, round_limit)


def _one(name: str, kind: str = "number") -> tuple[BuiltinParam, ...]:
    return (BuiltinParam(name, kind),)


_NUMBERS = (BuiltinParam("values", "any"),)

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("round", _one("x"), "the nearest whole number (halves to the even one, as Python)", round, "round"),
        Builtin("ceil", _one("x"), "the smallest whole number >= x", math.ceil, "math.ceil"),
        Builtin("floor", _one("x"), "the largest whole number <= x", math.floor, "math.floor"),
        Builtin("int", _one("x"), "x as a whole number, rounded toward zero", int, "int"),
        Builtin("float", _one("x"), "x as a decimal number", _float, "float"),
        Builtin(
            "min", _NUMBERS, "the smallest of its numbers, or of a list", _extreme(min, "min"), "min",
            variadic=True, positional=True, forms=("min(a, b, ...)", "min(list)"),
        ),
        Builtin(
            "max", _NUMBERS, "the largest of its numbers, or of a list", _extreme(max, "max"), "max",
            variadic=True, positional=True, forms=("max(a, b, ...)", "max(list)"),
        ),
        Builtin("abs", _one("x"), "the absolute value of x", abs, "abs"),
        Builtin(
            "log", (BuiltinParam("x", "number"), BuiltinParam("base", "number", ABSENT, "e")),
            "the logarithm of x (natural, or to base)", _log, "math.log",
        ),
        Builtin("sqrt", _one("x"), "the square root of x", _sqrt, "math.sqrt"),
        Builtin("len", _one("list", "list"), "the number of items of a list", len, "len"),
        Builtin("sum", _one("list", "numbers"), "the sum of a list of numbers (0 for an empty one)", sum, "sum"),
        Builtin(
            "range",
            (BuiltinParam("start", "int"), BuiltinParam("stop", "int", ABSENT, ""), BuiltinParam("step", "int", 1)),
            "the list of whole numbers from start (0) up to stop, excluded, by step",
            _range, "range", positional=True, forms=("range(n)", "range(start, stop, step=1)"),
        ),
        Builtin(
            "linspace",
            (BuiltinParam("start", "number"), BuiltinParam("stop", "number"), BuiltinParam("steps", "int")),
            "steps evenly spaced numbers from start to stop, the float32 values torch.linspace gives "
            "(timm's drop-path schedules)",
            _linspace, "torch.linspace({}, device=\"cpu\").tolist()",
        ),
        Builtin(
            "make_divisible",
            (
                BuiltinParam("v", "number"),
                BuiltinParam("divisor", "int", 8),
                BuiltinParam("min_value", "int", ABSENT, "None"),
                BuiltinParam("round_limit", "number", 0.9),
            ),
            "v rounded to a multiple of divisor, at least min_value and not 10% below v (timm's make_divisible)",
            _divisible, "make_divisible",
        ),
    )
}  # fmt: skip
assert tuple(BUILTINS) == ast.BUILTIN_FUNCTIONS, "the parser's names and the table must agree"


def signature(name: str) -> str:
    """How a builtin is called, e.g. ``log(x, base=e)`` (forms separated by ``' / '``)."""
    return " / ".join(BUILTINS[name].signatures())


# -- calling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Given:
    name: str | None
    value: Any
    span: ast.Span  # the value's (a wrong type is pointed at it)
    arg_span: ast.Span  # the whole argument's (a wrong name is pointed at it)


def apply(call: ast.FuncCall, values: Sequence[Any]) -> Any:
    """The value of ``call`` given its arguments' values (in the order written); raises
    :class:`Refused` with the diagnostic of a misuse."""
    builtin = BUILTINS[call.func]
    given = [_Given(arg.name, value, arg.value.span, arg.span) for arg, value in zip(call.args, values, strict=True)]
    spans: dict[str, ast.Span] = {}
    if builtin.variadic:
        args = _variadic(builtin, call, given)
    else:
        args, spans = _bind(builtin, call, given)
    try:
        result = builtin.fn(*args)
    except Invalid as invalid:
        span = spans.get(invalid.param or "", call.span)
        raise Refused(error(invalid.code, invalid.message, span, help=invalid.help)) from None
    except OverflowError:
        raise Refused(error("E605", f"{call.func}(...) is too large to compute", call.span)) from None
    if isinstance(result, float) and not math.isfinite(result):
        raise Refused(error("E605", f"{call.func}(...) overflows to {result}", call.span))
    return result


def _variadic(builtin: Builtin, call: ast.FuncCall, given: list[_Given]) -> list[Any]:
    for g in given:
        if g.name is not None:
            raise Refused(_keyword_refused(builtin, g))
    if not given:
        raise Refused(
            error("E204", f"{builtin.name} needs numbers to compare", call.span, help=" or ".join(builtin.signatures()))
        )
    if len(given) == 1 and not isinstance(given[0].value, list):
        raise Refused(
            error(
                "E205",
                f"{builtin.name} of one value must be given a list, got {type_name(given[0].value)}",
                given[0].span,
                help=f"{builtin.name}(a, b) compares numbers, {builtin.name}(list) the items of a list",
            )
        )
    for g in given if len(given) > 1 else ():
        if not _number(g.value):
            raise Refused(
                error(
                    "E205", f"{builtin.name} compares numbers, got {type_name(g.value)} ({show_value(g.value)})", g.span
                )
            )
    return [g.value for g in given]


def _keyword_refused(builtin: Builtin, g: _Given) -> Any:
    return error(
        "E203",
        f"{builtin.name} takes no named arguments ('{g.name}=')",
        g.arg_span,
        help=f"pass them in order: {' or '.join(builtin.signatures())}",
    )


def _bind(builtin: Builtin, call: ast.FuncCall, given: list[_Given]) -> tuple[list[Any], dict[str, ast.Span]]:
    """Fill the parameters from the arguments: the positional ones in order, then the named."""
    params = builtin.params
    names = [p.name for p in params]
    filled: dict[str, _Given] = {}
    for i, g in enumerate(given):
        if g.name is None:
            if i >= len(params):
                count = f"{len(params)} argument{'s' * (len(params) != 1)}"
                raise Refused(
                    error(
                        "E210", f"{builtin.name} takes at most {count}", g.span, help=" or ".join(builtin.signatures())
                    )
                )
            name = names[i]
        elif builtin.positional:
            raise Refused(_keyword_refused(builtin, g))
        elif g.name not in names:
            raise Refused(
                error(
                    "E203",
                    f"{builtin.name} has no parameter '{g.name}'",
                    g.arg_span,
                    help=suggest(g.name, names) or f"parameters: {', '.join(names)}",
                    fixes=typo_fixes(g.name, names, g.arg_span),
                )
            )
        else:
            name = g.name
        if name in filled:
            raise Refused(error("E214", f"{builtin.name} argument '{name}' is given twice", g.arg_span))
        filled[name] = g
    return _checked(builtin, call, filled)


def _checked(builtin: Builtin, call: ast.FuncCall, filled: dict[str, _Given]) -> tuple[list[Any], dict[str, ast.Span]]:
    """The bound values in parameter order (a default where none was given), each of its
    parameter's type (E205), none of the required missing (E204)."""
    args: list[Any] = []
    for p in builtin.params:
        g = filled.get(p.name)
        if g is None:
            args.append(p.default)
            if p.required:
                raise Refused(
                    error(
                        "E204",
                        f"{builtin.name} needs its argument '{p.name}'",
                        call.span,
                        help=" or ".join(builtin.signatures()),
                    )
                )
            continue
        if not _fits(g.value, p.type):
            raise Refused(
                error(
                    "E205",
                    f"{builtin.name} argument '{p.name}' must be {_TYPE_WORDS[p.type]}, "
                    f"got {type_name(g.value)} ({show_value(g.value)})",
                    g.span,
                )
            )
        args.append(g.value)
    return args, {name: g.span for name, g in filled.items()}
