"""The builtin functions, ``**``, ``and``/``or``/``not`` and list comprehensions, as the one
evaluator computes them: every builtin, make_divisible against timm's definition worked by hand,
the EfficientNet and MobileNet widths, and a diagnostic (code, message, place) for each misuse."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import resdsl
from resdsl.diagnostics import Collector, Diagnostic
from resdsl.semantics.builtins import BUILTINS, MAX_LIST, signature
from resdsl.semantics.divisible import make_divisible
from resdsl.semantics.evaluate import Evaluator
from resdsl.semantics.values import Failed
from resdsl.syntax import ast
from resdsl.syntax.loader import Program
from resdsl.syntax.parser import parse_expr


def value(text: str, **env: Any) -> Any:
    """``text`` evaluated where ``env`` is bound."""
    return Evaluator(Program("<test>"), Collector()).eval(parse_expr(text), dict(env))


def refused(text: str, **env: Any) -> Diagnostic:
    """The one diagnostic evaluating ``text`` gives."""
    collector = Collector()
    with pytest.raises(Failed):
        Evaluator(Program("<test>"), collector).eval(parse_expr(text), dict(env))
    (found,) = collector.items
    return found


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("round(2.5)", 2),  # halves to the even number, as Python's round (timm's depth multipliers)
        ("round(3.5)", 4),
        ("round(-2.5)", -2),
        ("round(2.6)", 3),
        ("round(7)", 7),
        ("ceil(2.1)", 3),
        ("ceil(-2.1)", -2),
        ("floor(2.9)", 2),
        ("floor(-2.1)", -3),
        ("int(2.9)", 2),
        ("int(-2.9)", -2),  # toward zero
        ("float(3)", 3.0),
        ("min(3, 1, 2)", 1),
        ("min([4, 2.5])", 2.5),
        ("max(3, 1, 2)", 3),
        ("max([4, 9])", 9),
        ("abs(-3)", 3),
        ("abs(2.5)", 2.5),
        ("log(1)", 0.0),
        ("log(8, 2)", math.log(8, 2)),
        ("sqrt(16)", 4.0),
        ("len([1, 2, 3])", 3),
        ("len([])", 0),
        ("sum([1, 2, 3])", 6),
        ("sum([])", 0),
        ("sum([0.5, 1])", 1.5),
        ("range(4)", [0, 1, 2, 3]),
        ("range(1, 4)", [1, 2, 3]),
        ("range(10, 0, -3)", [10, 7, 4, 1]),
        ("range(0)", []),
        ("make_divisible(32 * 0.75)", 24),
        ("make_divisible(10, divisor=4, min_value=12)", 12),
        ("make_divisible(v=20, round_limit=0.0)", 24),
    ],
)
def test_every_builtin(text: str, want: Any) -> None:
    got = value(text)
    assert got == want and type(got) is type(want), (got, want)


def test_the_table_and_the_parser_agree() -> None:
    assert tuple(BUILTINS) == ast.BUILTIN_FUNCTIONS
    assert all(isinstance(parse_expr(f"{name}(1)"), ast.FuncCall) for name in BUILTINS)
    assert signature("log") == "log(x, base=e)"
    assert signature("range") == "range(n) / range(start, stop, step=1)"
    assert signature("make_divisible") == "make_divisible(v, divisor=8, min_value=None, round_limit=0.9)"


# make_divisible(v) = max(min_value, int(v + divisor / 2) // divisor * divisor), plus one divisor
# where that is below round_limit * v (timm.layers.helpers.make_divisible), worked by hand:
#   32 * 0.35 = 11.2: int(15.2) // 8 * 8 = 8, and 8 < 0.9 * 11.2 = 10.08, so 16
#   32 * 0.75 = 24.0: int(28.0) // 8 * 8 = 24
#   40 * 1.1 = 44.0: int(48.0) // 8 * 8 = 48 (the half rounds up)
#   112 * 1.1 = 123.2: int(127.2) // 8 * 8 = 120, not below 110.88
#   3 with divisor 8: int(7) // 8 * 8 = 0, so min_value = 8
#   100 with divisor 64: int(132) // 64 * 64 = 128
@pytest.mark.parametrize(
    ("v", "kwargs", "want"),
    [
        (32 * 0.35, {}, 16),
        (32 * 0.75, {}, 24),
        (40 * 1.1, {}, 48),
        (112 * 1.1, {}, 120),
        (3, {}, 8),
        (100, {"divisor": 64}, 128),
        (20, {"divisor": 16, "round_limit": 0.0}, 16),
    ],
)
def test_make_divisible_as_timm_defines_it(v: float, kwargs: dict[str, Any], want: int) -> None:
    assert make_divisible(v, **kwargs) == want
    args = ", ".join([repr(v), *(f"{k}={x!r}" for k, x in kwargs.items())])
    assert value(f"make_divisible({args})") == want


def test_efficientnet_and_mobilenet_widths() -> None:
    """EfficientNet-B0's stage widths at B2's multiplier 1.1 (timm's round_channels) and
    MobileNetV2 at 0.35 and 0.75 (torchvision's _make_divisible)."""
    b0 = [32, 16, 24, 40, 80, 112, 192, 320]
    assert value("[make_divisible(c * 1.1) for c in b0]", b0=b0) == [32, 16, 24, 48, 88, 120, 208, 352]
    mnv2 = [32, 16, 24, 32, 64, 96, 160, 320]
    assert value("[make_divisible(c * 0.35) for c in ws]", ws=mnv2) == [16, 8, 8, 16, 24, 32, 56, 112]
    assert value("[make_divisible(c * 0.75) for c in ws]", ws=mnv2) == [24, 16, 24, 24, 48, 72, 120, 240]
    # B3's depths: ceil(1.2 * d) as timm's depth multiplier rounds up
    assert value("[ceil(d * 1.2) for d in [1, 2, 2, 3, 3, 4, 1]]") == [2, 3, 3, 4, 4, 5, 2]


@given(v=st.floats(0.5, 10_000), divisor=st.sampled_from([1, 2, 4, 8, 16, 32]))
def test_make_divisible_is_divisible_and_near(v: float, divisor: int) -> None:
    got = make_divisible(v, divisor)
    assert got % divisor == 0 and got >= 0.9 * v and got >= divisor
    assert value("make_divisible(v, divisor=d)", v=v, d=divisor) == got


def test_power_is_right_associative_and_binds_past_unary_minus() -> None:
    assert value("2 ** 3 ** 2") == 512
    assert value("-2 ** 2") == -4
    assert value("(-2) ** 2") == 4
    assert value("2 ** -1") == 0.5
    assert value("4 ** 0.5") == 2.0
    assert value("2 * 3 ** 2") == 18


def test_boolean_operators() -> None:
    assert value("s == 1 and c == 64", s=1, c=64) is True
    assert value("s == 1 and c == 64", s=2, c=64) is False
    assert value("true or false and false") is True  # and binds tighter
    assert value("not s == 2", s=1) is True  # not binds looser than ==
    assert value("not true or true") is True
    # the right side is not evaluated where the left decides
    assert value("i < len(ws) and ws[i] > 8", i=5, ws=[1]) is False
    assert value("i >= len(ws) or ws[i] > 8", i=5, ws=[1]) is True


def test_comprehensions() -> None:
    assert value("[c * 2 for c in ws]", ws=[8, 16]) == [16, 32]
    assert value("[c for c in ws if c > 8]", ws=[8, 16]) == [16]
    assert value("[a * 10 + b for a in range(2) for b in range(a + 1)]") == [0, 10, 11]
    assert value("[make_divisible(c * w) for c in [32, 64]][1]", w=0.5) == 32
    assert value("sum([d for d in depths])", depths=[3, 4, 6, 3]) == 16
    assert value("[[i] for i in range(2)]") == [[0], [1]]


def test_the_loop_variable_is_local_to_its_comprehension() -> None:
    env: dict[str, Any] = {"ws": [1, 2]}
    evaluator = Evaluator(Program("<test>"), Collector())
    assert evaluator.eval(parse_expr("[i for i in ws]"), env) == [1, 2]
    assert "i" not in env
    assert refused("[i for i in ws] + [i]", ws=[1]).code == "E201"


def test_a_builtin_in_a_network_folds_before_shapes_are_checked() -> None:
    spec = """
    network n(w = 0.75) {
        input 3 x 16 x 16
        widths = [make_divisible(c * w) for c in [32, 64]]
        conv1 = conv(widths[0], k=3, p=1)
        conv2 = conv(max(widths), k=3, p=1, s=2 if w < 1 and not false else 1)
        fc = linear(int(2 ** 3))
    }
    """
    model = resdsl.build_model(spec)
    assert model.conv1.out_channels == 24 and model.conv2.out_channels == 48 and model.conv2.stride == (2, 2)
    assert model.fc.out_features == 8


@pytest.mark.parametrize(
    ("text", "code", "words", "column"),
    [
        ("log(0)", "E220", "log of 0", 5),
        ("log(8, 1)", "E220", "base 1", 8),
        ("sqrt(0 - 1)", "E220", "sqrt of -1", 6),
        ("(-8) ** 0.5", "E220", "fractional power", 1),
        ("0 ** -1", "E209", "division by zero", 1),
        ("10 ** 1000", "E605", "too large", 1),
        ("range(1, 5, 0)", "E213", "step must not be 0", 13),
        ("range(10 ** 9)", "E605", "limit is 100,000", 1),
        ("min([])", "E213", "empty list", 1),
        ("max()", "E204", "max needs numbers", 1),
        ("max(1, [2])", "E205", "max compares numbers", 8),
        ("min(3)", "E205", "must be given a list", 5),
        ("min(a=1)", "E203", "no named arguments", 5),
        ("round(1, 2)", "E210", "round takes at most 1 argument", 10),
        ("round()", "E204", "round needs its argument 'x'", 1),
        ("sqrt([1])", "E205", "sqrt argument 'x' must be a number", 6),
        ("len(3)", "E205", "len argument 'list' must be a list", 5),
        ("sum([true])", "E205", "a list of numbers", 5),
        ("make_divisible(8, divisr=2)", "E203", "no parameter 'divisr'", 19),
        ("make_divisible(8, v=2)", "E214", "given twice", 19),
        ("make_divisible(8, divisor=0)", "E213", "divisor must be at least 1", 27),
        ("range(1.5)", "E205", "range argument 'start' must be a whole number", 7),
        ("1 and true", "E212", "'and' takes true or false", 1),
        ("not 3", "E212", "'not' takes true or false", 5),
        ("[i for i in 3]", "E221", "loops over a list, not a whole number", 13),
        ("[i for i in ws if i]", "E212", "comprehension's 'if' takes true or false", 19),
        ("[c for c in ws]", "E222", "'c' shadows a parameter or value", 8),
        ("[relu for relu in ws]", "E222", "'relu' shadows an op or block", 11),
        ("[i for i in ws for i in ws]", "E222", "'i' shadows a parameter or value", 20),
        ("[i for i in range(1000) for j in range(1000)]", "E605", "more than 100,000 items", 1),
    ],
)
def test_each_misuse_is_a_diagnostic_at_its_place(text: str, code: str, words: str, column: int) -> None:
    found = refused(text, ws=[1, 2], c=3)
    assert found.code == code and words in found.message, found
    assert (found.span.line, found.span.column) == (1, column), found.span


def test_limits() -> None:
    assert len(value(f"range({MAX_LIST})")) == MAX_LIST


def test_an_unknown_function_suggests_the_close_one() -> None:
    result = resdsl.check("network n() {\n    input 3 x 8 x 8\n    conv1 = conv(rond(3.5))\n}\n")
    (found,) = result.diagnostics
    assert (
        found.code == "E202"
        and found.help == "did you mean 'round'?"
        and (found.span.line, found.span.column) == (3, 18)
    )


def test_a_block_cannot_take_a_function_name() -> None:
    result = resdsl.check("block max(c) {\n    conv1 = conv(c)\n}\n")
    assert [d.code for d in result.diagnostics] == ["E103"] and "built-in function" in result.diagnostics[0].message


def test_a_network_may_take_a_function_name_and_be_aliased() -> None:
    """A network is never called in an expression, so it may be named len; an alias to it stays a
    network call (the parser makes a call of a function's name a FuncCall everywhere else)."""
    spec = "network len(c = 8) {\n    input 3 x 8 x 8\n    conv1 = conv(c)\n}\nnetwork big = len(c=16)\n"
    assert resdsl.check(spec).ok
    assert resdsl.build_model(spec, network="big").conv1.out_channels == 16


def test_a_parameter_named_like_a_function_stays_a_value() -> None:
    model = resdsl.build_model("network n(min = 3) {\n    input 3 x 8 x 8\n    conv1 = conv(min(min, 8))\n}\n")
    assert model.conv1.out_channels == 3


def test_unused_blocks_resolve_loop_variables_and_function_names() -> None:
    """The static pass over blocks no network uses knows loop variables (no E201 for them) and
    calls of functions (their arguments' names are checked; a misspelt one is E202)."""
    spec = """
    block lib(c, w = 1.0) {
        ws = [make_divisible(x * w) for x in [c, 2 * c] if x > 0 and not w < 0]
        conv1 = conv(ws[0] + int(w ** 2), k=3, p=1)
        conv2 = conv(mx(ws) + y, k=3)
    }
    """
    found = sorted((d.code, d.message) for d in resdsl.check(spec).diagnostics)
    assert found == [("E201", "unknown name 'y'"), ("E202", "unknown op or block 'mx'")]
