"""`resdsl import MODULE:CALLABLE -o FILE.arch`: a formatted, verified file, or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from resdsl.tools.cli import cli

MODELS = Path(__file__).resolve().parents[1] / "importing" / "models.py"


def test_import_writes_a_formatted_spec_naming_its_source(tmp_path: Path) -> None:
    out = tmp_path / "r.arch"
    argv = ["import", f"{MODELS}:ResNet", "--arg", "layers=(1, 2, 1, 1)", "--arg", "num_classes=5"]
    result = CliRunner().invoke(cli, [*argv, "--input", "3x32x32", "--name", "r", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# imported from") and "models.py:ResNet" in text.splitlines()[0]
    assert "network r() {" in text and "layer2  = stage(bottleneck(128), repeat=2, stride=2)" in text
    assert "fc      = linear(5)" in text


def test_a_refusal_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "r.arch"
    result = CliRunner().invoke(cli, ["import", f"{MODELS}:ResNet", "--arg", "layers=oops", "-o", str(out)])
    assert result.exit_code == 1 and "E906" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_spec_that_does_not_rebuild_the_model_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resdsl.importing.emit as emit

    write = emit.write_spec
    monkeypatch.setattr(emit, "write_spec", lambda *a: write(*a).replace("maxpool(k=3, s=2", "avgpool(k=3, s=2"))
    out = tmp_path / "r.arch"
    argv = ["import", f"{MODELS}:resnet18", "--arg", "num_classes=5", "--input", "3x32x32", "-o", str(out)]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1 and "error[E905]" in result.output
    assert "first at `maxpool` (2 x 64 x 8 x 8)" in result.output and "the spec's" in result.output
    assert list(tmp_path.iterdir()) == []
