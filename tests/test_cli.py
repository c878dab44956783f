"""The command line: exit codes, output, overrides, and no torch import for `check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from resdsl.cli import cli
from tests.conftest import ROOT, shipped_spec_files


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=120
    )


def test_check_all_shipped_specs_is_clean() -> None:
    result = CliRunner().invoke(cli, ["check", *map(str, shipped_spec_files())])
    assert result.exit_code == 0, result.output
    assert "resnet50: 50 weighted layers, 25,557,032 parameters, 4.089 GMACs, output 1000" in result.output
    assert "resnet110: 110 weighted layers, 1,727,962 parameters" in result.output


def test_shipped_names_work_from_any_directory(tmp_path: Path) -> None:
    done = run("check", "resnet110", "resnet18", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "resnet110: 110 weighted layers, 1,727,962 parameters" in done.stdout
    assert "Traceback" not in done.stderr


def test_check_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom resdsl.cli import main\n"
        "try:\n    main(['check', 'resnet50'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'check imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_set_and_input() -> None:
    result = CliRunner().invoke(cli, ["check", "resnet110", "--set", "num_classes=100", "--input", "3x64x64"])
    assert result.exit_code == 0 and "output 100" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["check", "resnet50", "--set", "num_classes"],
        ["check", "resnet50", "--input", "3by3"],
        ["check", "resnet50", "--bogus"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def test_errors_exit_1_without_traceback(tmp_path: Path) -> None:
    done = run("check", str(tmp_path / "missing.arch"))
    assert done.returncode == 1 and "error[E004]" in done.stderr and "Traceback" not in done.stderr
    done = run("check", "no_such_network")
    assert done.returncode == 1 and "error[E104]" in done.stderr
    bad = tmp_path / "bad.arch"
    bad.write_bytes(b"network n() {\xff\xfe }")
    done = run("check", str(bad))
    assert done.returncode == 1 and "E004" in done.stderr and "Traceback" not in done.stderr
    done = run("check", "resnet50", "--set", "num_clases=3")
    assert done.returncode == 1 and "E216" in done.stderr


def test_json_is_a_list_of_diagnostics() -> None:
    broken = ROOT / "tests" / "broken" / "many_errors.arch"
    result = CliRunner().invoke(cli, ["check", "--json", str(broken)])
    assert result.exit_code == 1
    codes = [d["code"] for d in json.loads(result.stdout)]
    assert codes == ["E203", "E201"]
    result = CliRunner().invoke(cli, ["check", "--json", "resnet18"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_summary_table_and_json() -> None:
    result = CliRunner().invoke(cli, ["summary", "resnet18", "--json"])
    data = json.loads(result.stdout)
    assert data["total_params"] == 11_689_512 and data["weighted_layers"] == 18
    row = next(r for r in data["layers"] if r["name"] == "layer2.0.downsample")
    assert row["op"] == "residual (projection, stride 2)" and row["params"] == 64 * 128 + 256
    result = CliRunner().invoke(cli, ["summary", "resnet20"])
    assert result.exit_code == 0 and "269,722" in result.output and "layer3.2.conv2" in result.output


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("resdsl, version")
    assert "check" in run("--help").stdout
