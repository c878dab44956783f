"""The language's arithmetic and comparisons, on the values that expressions evaluate to.

Numbers are exact where the language promises it: ``/`` on whole numbers must divide exactly
(and then gives a whole number), ``//`` and ``%`` round as Python's do, and a result that no
float can hold is refused rather than carried on as ``inf``. Lists concatenate with ``+``.
A refusal is a :class:`Refused` carrying the diagnostic; the evaluator reports it.
"""

from __future__ import annotations

import math
from typing import Any

from resdsl.diagnostics import Diagnostic, error
from resdsl.semantics.values import check_type, show, type_name
from resdsl.syntax import ast


class Refused(Exception):
    """An operation the language does not define on these values, with the diagnostic that says why."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def compare(expr: ast.BinOp, left: Any, right: Any) -> bool:
    """``left <op> right`` for a comparison: any two values of one type for ``==``/``!=``, numbers otherwise."""
    op = expr.op
    numbers = check_type(left, "float") and check_type(right, "float")
    if op in ("==", "!="):
        comparable = numbers or type(left) is type(right) or (isinstance(left, str) and isinstance(right, str))
        if comparable:
            return (left == right) == (op == "==")
    elif numbers:
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    raise Refused(error("E212", f"cannot compare {type_name(left)} {op} {type_name(right)}", expr.span))


MAX_POWER_BITS = 1024  # a whole-number power past 2 ** 1024 (a float's range) is refused, not computed


def arith(expr: ast.BinOp, left: Any, right: Any) -> Any:
    """``left <op> right`` for ``+ - * / // % **``, refusing results that overflow a float."""
    try:
        value = _values(expr, left, right)
    except OverflowError:  # a huge whole number meeting a decimal one
        raise Refused(
            error(
                "E605", f"'{show(expr)}' is too large to compute with decimals", expr.span, help="use smaller numbers"
            )
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise Refused(error("E605", f"'{show(expr)}' overflows to {value}", expr.span, help="use smaller numbers"))
    return value


_INEXACT_HELP = "'/' on whole numbers must divide exactly: choose numbers that divide, or write '//' to round down"


def _values(expr: ast.BinOp, left: Any, right: Any) -> Any:
    op = expr.op
    if not (check_type(left, "float") and check_type(right, "float")):
        if op == "+" and isinstance(left, list) and isinstance(right, list):
            return left + right
        raise Refused(error("E212", f"cannot compute {type_name(left)} {op} {type_name(right)}", expr.span))
    if op in ("/", "//", "%") and right == 0:
        raise Refused(error("E209", f"division by zero in '{show(expr)}'", expr.span))
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "//":
        return left // right
    if op == "%":
        return left % right
    if op == "**":
        return _power(expr, left, right)
    if isinstance(left, int) and isinstance(right, int):
        if left % right:
            raise Refused(
                error(
                    "E208",
                    f"{left} / {right} is not a whole number ({show(expr)})",
                    expr.span,
                    help=_INEXACT_HELP,
                )
            )
        return left // right
    return left / right


def _power(expr: ast.BinOp, left: Any, right: Any) -> Any:
    """``left ** right`` as Python computes it, where it is a real number of a float's size:
    0 to a negative power is a division by zero (E209), a negative number to a fractional power
    no real number (E220), a whole-number power past :data:`MAX_POWER_BITS` too large (E605)."""
    if left == 0 and right < 0:
        raise Refused(error("E209", f"division by zero in '{show(expr)}' (0 to a negative power)", expr.span))
    if left < 0 and isinstance(right, float) and not right.is_integer():
        raise Refused(
            error(
                "E220",
                f"'{show(expr)}': a negative number to a fractional power is no real number",
                expr.span,
                help="raise its absolute value: abs(x) ** p",
            )
        )
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * math.log2(abs(left)) > MAX_POWER_BITS:
            raise Refused(
                error("E605", f"'{show(expr)}' is too large to compute", expr.span, help="use smaller numbers")
            )
    return left**right
