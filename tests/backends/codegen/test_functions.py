"""Builtin functions, ``**``, booleans and comprehensions in generated code: a block computes its
widths from its parameters with every builtin, and the generated module builds the same network
as build_model (``assert_same_network``: same state_dict keys and shapes, same float64 outputs
and gradients, both script); math is imported and make_divisible copied only where used."""

from __future__ import annotations

import re
from pathlib import Path

import resdsl
from resdsl.backends.codegen import generate
from tests.backends.codegen.test_codegen_random import assert_same_network

# every builtin reads the block's parameters, so the class must compute them, not fold them
EVERY = """
block unit(c, w = 1.0, d = 2, s = 1) {
    widths = [make_divisible(c * w * m, divisor=4) for m in [1, 2] if m > 0 and not m > 2]
    conv1 = conv(widths[0], k=3, p=1, s=s)
    conv2 = conv(max(widths) + min(c, d) + abs(d - 3) + round(w * 2.5) + ceil(w) + floor(w), k=1)
    conv3 = conv(int(sqrt(c * 4)) + int(log(c, 2)) + int(log(c)) + len(range(d)) + sum(range(1, d)), k=1)
    conv4 = conv(int(float(c) ** 0.5 * 2 ** 2) + max([c, d]) + (1 if s == 1 or w > 1 else 2), k=1)
    bn = batchnorm
    relu
}
network every() {
    input 3 x 16 x 16
    stem = conv(16, k=3, p=1)
    b1 = unit(16, w=0.75, d=3)
    b2 = unit(32, w=1.25, d=2, s=2)
    b3 = unit(64)
    fc = linear(5)
}
"""

# builtins of instance values in a stage's block argument, and a shortcut chosen by a boolean
INSTANCES = """
block mb(c, e = 1.0, stride = 1, expand = 6, same = false) {
    conv1 = conv(make_divisible(c * e), k=1, s=stride)
    bn1 = batchnorm
    relu
    conv2 = conv(c, k=3, p=1)
    residual(identity if same and stride == 1 and not expand == 1 else projection)
}
network n() {
    input 3 x 16 x 16
    stem = conv(16, k=3, p=1)
    layer1 = stage(mb(max(24, in_channels), e=2 ** index, same=index > 0 or false), repeat=3)
    layer2 = stage(mb(32, e=max(1, index), expand=1), repeat=ceil(log(9, 3)), stride=2)
    layer3 = stage(mb(32, expand=1), repeat=2)
    fc = linear(4)
}
"""

FOLDED = """
network folded(w = 0.75) {
    input 3 x 16 x 16
    widths = [make_divisible(c * w) for c in [32, 64]]
    stem = conv(widths[0], k=3, p=1)
    conv2 = conv(ceil(log(widths[1], 2)) * 8, k=3, p=1)
    fc = linear(10)
}
"""

PLAIN = """
network plain() {
    input 3 x 16 x 16
    stem = conv(8 * 2 ** 2, k=3, p=1)
    fc = linear(round(2.5) + abs(-3))
}
"""


def test_every_builtin_in_a_block_builds_the_same_module(tmp_path: Path) -> None:
    assert_same_network(EVERY, tmp_path)
    code = generate(resdsl.compile(EVERY))
    assert "import math\n" in code and "\ndef make_divisible(" in code
    unit = re.search(r"^class Unit\(nn\.Module\):\n(?:(?:    .*)?\n)+", code, re.M)
    assert unit is not None
    body = unit.group(0)  # one class, computing from its parameters in Python's words
    for python in ("make_divisible(", "math.ceil(", "math.floor(", "math.sqrt(", "math.log(", "list(range(", "round("):
        assert python in body, python
    assert " and not " in body and " or " in body and "**" in body


def test_builtins_of_instance_values_and_boolean_choices(tmp_path: Path) -> None:
    assert_same_network(INSTANCES, tmp_path)
    code = generate(resdsl.compile(INSTANCES))
    assert "same and stride == 1 and not expand == 1" in code  # no parentheses it does not need
    assert "for i in range(math.ceil(math.log(9, 3)) - 1)" in code


# one '/' that divides whole numbers exactly for one item and a decimal for the other
MIXED = """
block b(c, ws = [4, 3.0]) {
    hs = [int(x / 2 * c) for x in ws]
    conv1 = conv(hs[1], k=1)
}
network mixed() {
    input 3 x 8 x 8
    a = b(8)
    fc = linear(3)
}
"""


def test_a_division_exact_for_one_item_only_stays_a_true_division(tmp_path: Path) -> None:
    """Regression: the '/' was written '//' because the first item divided exactly, so the
    generated comprehension computed 3.0 // 2 = 1.0 where the language computes 1.5."""
    assert_same_network(MIXED, tmp_path)
    code = generate(resdsl.compile(MIXED))
    assert "hs = [int(x_ / 2 * c) for x_ in ws]" in code and "nn.Conv2d(in_channels, hs[1]," in code


def test_constant_calls_fold(tmp_path: Path) -> None:
    """A network's bindings are read by name, so the factory's ``w`` changes the layers (the
    binding calls the copied helper); constant calls fold; a module that calls no builtin carries
    no helper."""
    module = assert_same_network(FOLDED, tmp_path)
    code = generate(resdsl.compile(FOLDED))
    assert "nn.Conv2d(3, widths[0], " in code and "math.ceil(math.log(widths[1], 2)) * 8," in code
    assert "widths = [make_divisible(c * w) for c in [32, 64]]" in code and "\ndef make_divisible(" in code
    narrow, built = module.folded(w=0.25), resdsl.build_model(FOLDED, params={"w": 0.25})
    shapes = lambda m: [(k, v.shape) for k, v in m.state_dict().items()]  # noqa: E731
    assert shapes(narrow) == shapes(built) and narrow.stem.out_channels == 8  # make_divisible(32 * 0.25)
    (tmp_path / "plain").mkdir()
    assert_same_network(PLAIN, tmp_path / "plain")
    plain = generate(resdsl.compile(PLAIN))  # a layer's argument is written as the spec wrote it
    assert "nn.Conv2d(3, 8 * 2**2, " in plain and "round(2.5) + abs(-3))" in plain
    assert "import math" not in plain and "make_divisible" not in plain


# named arguments where Python's callee takes none: math.log(x, /, base) and round(number, ...)
NAMED = """
block named(c, b = 2) {
    conv1 = conv(int(log(c, base=b)) + round(x=c / 4) + make_divisible(c, divisor=b * 2, round_limit=0.5), k=1)
}
network named_args() {
    input 3 x 8 x 8
    a = named(16)
    b = named(32, b=4)
    fc = linear(3)
}
"""


def test_named_arguments_are_passed_as_the_callee_takes_them(tmp_path: Path) -> None:
    """Regression (found by the random networks): ``log(x, base=b)`` was written
    ``math.log(x, base=b)``, which Python refuses (TypeError: log() takes no keyword arguments)."""
    assert_same_network(NAMED, tmp_path)
    code = generate(resdsl.compile(NAMED))
    assert "math.log(c, b)" in code and "round(c // 4)" in code  # (a division exact in every instance)
    assert "make_divisible(c, divisor=b * 2, round_limit=0.5)" in code  # the copied helper takes the names
