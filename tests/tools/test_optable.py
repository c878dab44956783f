"""docs/language.md's op table is the one resdsl.tools.optable renders from the op definitions."""

from __future__ import annotations

from resdsl.ops import OPS
from resdsl.tools import optable
from tests.conftest import ROOT


def test_the_reference_holds_the_generated_op_table() -> None:
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert optable.rewrite(doc) == doc, "run: python -m resdsl.tools.optable"


def test_the_table_lists_every_op_with_its_parameters() -> None:
    table = optable.render()
    for name, op in OPS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert all(f"`{p.name}`" in row for p in op.params) and op.doc in row


def test_an_exclusive_bound_is_documented() -> None:
    row = next(line for line in optable.render().splitlines() if line.startswith("| `drop_path` |"))
    assert "`p` float = 0.0 (in [0, 1))" in row
