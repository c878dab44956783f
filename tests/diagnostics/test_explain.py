"""`resdsl explain CODE` and docs/errors.md come from one catalog; every example gives its code.

Each example of resdsl/errors_catalog/ is written to ``example.arch`` (next to its other files) in
a fresh folder and run through the command line (``resdsl check example.arch`` unless the entry
says otherwise): it must report exactly its own code, and its fix must report no error (nor the
code, for a warning).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from resdsl.diagnostics import CODES
from resdsl.diagnostics.codes import entries, explain_text, render_docs
from resdsl.diagnostics.codes.entry import Entry
from resdsl.tools.cli import cli
from tests.conftest import ROOT

CATALOG = entries()
RUNNABLE = [e for e in CATALOG.values() if e.runs]
REPORTED = re.compile(r"\b(?:error|warning)\[([EW]\d{3})\]")


def run(entry: Entry, text: str, argv: tuple[str, ...], folder: Path) -> tuple[int, list[str], str]:
    """Exit code, the codes reported, and the output of running ``argv`` in ``folder``."""
    folder.mkdir()
    (folder / "example.arch").write_text(text)
    for name, other in entry.files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(other) if isinstance(other, str) else path.write_bytes(other)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(cli, list(argv))
    finally:
        os.chdir(cwd)
    return result.exit_code, REPORTED.findall(result.output), result.output


def test_every_code_has_one_entry_and_docs_are_current() -> None:
    assert set(CATALOG) == set(CODES)
    for entry in CATALOG.values():
        assert entry.explanation and entry.example and entry.fix and entry.summary, entry.code
        assert entry.runs or entry.why, entry.code
    assert (ROOT / "docs" / "errors.md").read_text() == render_docs(), (
        "run: python -m resdsl.diagnostics.codes > docs/errors.md"
    )


@pytest.mark.parametrize("entry", RUNNABLE, ids=[e.code for e in RUNNABLE])
def test_example_gives_exactly_its_code_and_the_fix_none(entry: Entry, tmp_path: Path) -> None:
    status, codes, output = run(entry, entry.example, entry.argv, tmp_path / "example")
    assert set(codes) == {entry.code}, output
    assert status == (0 if entry.code.startswith("W") else 1), output
    status, codes, output = run(entry, entry.fix, entry.fix_command, tmp_path / "fix")
    assert status == 0 and entry.code not in codes and not [c for c in codes if c.startswith("E")], output


def test_only_codes_no_command_can_give_are_not_run() -> None:
    api_only = [
        "E219",
        "E705",
        "E706",
        "E707",
        "W721",
        "E801",
        "E802",
        "E803",
        "E804",
        "E805",
    ]  # build_model and save_weights alone
    assert sorted(e.code for e in CATALOG.values() if not e.runs) == sorted(["E503", "E504", "E820", "E825", *api_only])


def test_explain_prints_the_catalog_entry() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["explain", "e301"])
    assert result.exit_code == 0
    assert result.output == explain_text(CATALOG["E301"])
    assert result.output.startswith("E301: residual shapes differ\n")
    assert "residual(identity)" in result.output and "residual(projection)" in result.output
    with_option = runner.invoke(cli, ["explain", "E216"]).output
    assert "resdsl check example.arch --set num_class=100" in with_option and "num_classes=100" in with_option


def test_explain_an_unknown_code_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["explain", "E399"])
    assert result.exit_code == 2 and "unknown code 'E399'" in result.output and "E301" in result.output
