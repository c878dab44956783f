"""The static checks of blocks no network uses (resdsl/semantics/resolve.py) resolve names by
the evaluator's own table (values.meaning), so a library file gets the diagnostics the same
block would get where a network uses it, and no others."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import resdsl
from resdsl.tools.cli import cli

ACT_BLOCK = """block pre_act(c, act = relu) {
    pre   = act()
    conv1 = conv(c, k=3, p=1)
    residual(projection, project_from=pre)
}
"""

USE = "\nnetwork n() {\n    input 8 x 8 x 8\n    pre_act(8)\n}\n"


def _codes(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "lib.arch"
    path.write_text(text)
    return [d.code for d in resdsl.check(path).diagnostics]


def test_a_layer_made_by_a_layer_parameter_can_be_projected_from(tmp_path: Path) -> None:
    """Regression: resolve flagged project_from=pre (E201) where pre = act() and act is a
    parameter holding a layer; elaboration accepts it."""
    path = tmp_path / "lib.arch"
    path.write_text(ACT_BLOCK)
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "E201" not in result.output
    assert _codes(tmp_path, ACT_BLOCK + USE) == []  # and used by a network, as elaboration sees it


@pytest.mark.parametrize(
    "body, code",
    [
        ("    c1 = conv(c, k=1)\n    x = c1\n", "E201"),  # a layer name is no value
        ("    conv = conv(c, k=1)\n    eval = conv(c, k=1)\n", "E505"),  # conv is still the op
        ("    w = index\n", "E201"),  # instance values only in a stage's block argument
        ("    n = resnet\n", "E201"),  # a network is no value
    ],
)
def test_unused_blocks_get_what_elaboration_reports(tmp_path: Path, body: str, code: str) -> None:
    block = f"network resnet() {{\n    input 8 x 8 x 8\n    relu\n}}\n\nblock b(c) {{\n{body}}}\n"
    used = block + "\nnetwork user() {\n    input 8 x 8 x 8\n    b(8)\n}\n"
    assert code in _codes(tmp_path, block)
    assert code in _codes(tmp_path, used)


SPLATS = """block splat(c) {
    conv = conv(c * 2, k=3, p=1)
    act0 = relu
    radix_sum(2)
    pool = global_avgpool()
    fc   = conv(c * 2, k=1)
    radix_softmax(2)
    TAP
}
"""


@pytest.mark.parametrize(
    ("tap", "codes"),
    [
        ("radix_combine(2, splits=act0)", []),
        ("out = radix_combine(2, act0)", []),  # by position, and bound to a name
        ("radix_combine(2, splits=act1)", ["E201"]),  # no layer of that name before it
        ("out = radix_combine(2, splits=out)", ["E201"]),  # itself: not before it
    ],
)
def test_a_merges_tap_names_a_layer_before_it(tmp_path: Path, tap: str, codes: list[str]) -> None:
    """radix_combine's splits= is a layer's name, as project_from is: an unused block and a used
    one report the same (the resolver does not take act0 for an unknown value)."""
    block = SPLATS.replace("TAP", tap)
    used = block + "\nnetwork n() {\n    input 3 x 8 x 8\n    stem = conv(8, k=3, p=1)\n    s = splat(8)\n}\n"
    assert _codes(tmp_path, block) == codes
    assert _codes(tmp_path, used) == codes
