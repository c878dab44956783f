"""Statements whose condition chooses between layers, as generated code: several of them in one
block (their anonymous activations share one module per op, constructed under a condition), and
a condition that reads a parameter its own statement rebinds.

Each spec goes through the differential test's ``assert_same_network`` (the generated module
equals build_model in float64, outputs and gradients, and both script); the source is read too.
"""

from __future__ import annotations

from pathlib import Path

import resdsl
from resdsl.backends.codegen import generate
from tests.backends.codegen.test_codegen_blocks import _class
from tests.backends.codegen.test_codegen_random import assert_same_network

TWO_CONDS = """
block b(c, hs = false) {
    conv1 = conv(c, k=1)
    hardswish if hs else relu
    conv2 = conv(c, k=1)
    hardswish if hs else relu
}
network n() {
    input 3 x 8 x 8
    x1 = b(8)
    x2 = b(8, hs=true)
}
"""


def test_two_anonymous_conditional_layers_in_one_block(tmp_path: Path) -> None:
    """The second statement's layers are the modules the first constructed, under the same
    condition: its constructor writes nothing (it wrote an empty ``else:`` before, which ruff
    refused), and the two instances share one class."""
    assert_same_network(TWO_CONDS, tmp_path)
    code = generate(resdsl.compile(TWO_CONDS))
    block = _class(code, "B")
    assert "class B2" not in code
    assert block.count("self.hardswish = nn.Hardswish()") == 1 and block.count("self.relu = nn.ReLU") == 1


def test_a_layer_made_under_another_condition_is_made_again(tmp_path: Path) -> None:
    """``relu`` made where ``hs`` holds does not exist where it does not: a later statement
    that uses it unconditionally constructs it again; one side with nothing new to construct is
    left out (``if not hs:``)."""
    text = """
block b(c, hs = false) {
    conv1 = conv(c, k=1)
    relu if hs else gelu
    conv2 = conv(c, k=1)
    relu if hs else silu
    conv3 = conv(c, k=1)
    relu
}
network n() {
    input 3 x 8 x 8
    x1 = b(8)
    x2 = b(8, hs=true)
}
"""
    assert_same_network(text, tmp_path)
    block = _class(generate(resdsl.compile(text)), "B")
    assert "        if not hs:\n            self.silu = nn.SiLU(inplace=True)\n" in block
    assert "        self.conv3 = nn.Conv2d(c, c, kernel_size=1, bias=False)\n        self.relu = nn.ReLU" in block


def test_conditional_layers_under_different_conditions(tmp_path: Path) -> None:
    """Two conditions on two parameters, every combination taken: each layer is constructed
    wherever some statement that uses it runs."""
    text = """
block b(c, p = false, q = false) {
    conv1 = conv(c, k=1)
    relu if p else gelu
    conv2 = conv(c, k=1)
    relu if q else gelu
}
network n() {
    input 3 x 8 x 8
    x1 = b(8)
    x2 = b(8, p=true)
    x3 = b(8, q=true)
    x4 = b(8, p=true, q=true)
}
"""
    assert_same_network(text, tmp_path)
    assert "class B2" not in generate(resdsl.compile(text))


SHADOW = """
block sq(c) {
    pool = global_avgpool()
    fc = conv(c, k=1, bias=true)
    sigmoid
}
block b(c, se = false) {
    conv1 = conv(c, k=3, p=1)
    se = gate(sq(c)) if se else identity
}
network n() {
    input 3 x 16 x 16
    x1 = b(8, se=true)
    x2 = b(8)
}
"""


def test_a_condition_reads_the_values_before_its_statement(tmp_path: Path) -> None:
    """``se = ... if se else identity`` rebinds the parameter its test reads: the false instance
    binds the shortcut kind ``identity`` to ``se``, and the test is still the parameter's value
    (it was read after the binding, and had none: an internal error). One class, choosing."""
    assert_same_network(SHADOW, tmp_path)
    code = generate(resdsl.compile(SHADOW))
    block = _class(code, "B")
    assert "class B2" not in code
    assert "        if se:\n            self.se = Sq(c, c)\n        else:\n            self.se = None\n" in block
    assert "self.x1 = B(3, 8, se=True)" in code and "self.x2 = B(8, 8)" in code


def test_a_later_condition_reads_the_rebound_value(tmp_path: Path) -> None:
    """A statement after the binding sees the value bound: ``deep`` is rebound to a number
    before the condition that reads it."""
    text = """
block b(c, deep = false) {
    conv1 = conv(c, k=1)
    deep = 2 if deep else 0
    act = relu if deep > 1 else gelu
}
network n() {
    input 3 x 8 x 8
    x1 = b(8, deep=true)
    x2 = b(8)
}
"""
    assert_same_network(text, tmp_path)
    assert "class B2" not in generate(resdsl.compile(text))
