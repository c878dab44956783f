"""`resdsl list [FILE...]`: every shipped network (or those of the files named), aliases included,
with its depth, size and file; a missing or broken file gets its diagnostics and exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import resdsl
from resdsl.api import shipped_names
from resdsl.tools.catalog import catalog
from resdsl.tools.cli import cli
from tests.conftest import CIFAR_PARAMS, SPECS


def test_every_shipped_name_is_listed_with_its_figures() -> None:
    entries, failed = catalog()
    assert not failed
    names = [e.name for e in entries]
    assert set(shipped_names()) <= set(names) and len(names) == len(set(names))
    by_name = {e.name: e for e in entries}
    for name, params in CIFAR_PARAMS.items():
        assert by_name[name].params == params and by_name[name].weighted_layers == int(name[6:])
    r50 = by_name["resnet50"]
    assert (r50.weighted_layers, r50.params, r50.macs, r50.base) == (50, 25_557_032, 4_089_184_256, "resnet_bottleneck")
    assert r50.file == "specs/resnet50.arch"
    assert by_name["preact_resnet1001"].params == 10_327_706 and by_name["preact_resnet1001"].weighted_layers == 1001


def test_table_one_line_per_network() -> None:
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["network", "depth", "params", "GMACs", "input", "base", "file"]
    r50 = next(line for line in lines if line.startswith("resnet50 "))
    assert r50.split() == [
        "resnet50",
        "50",
        "25,557,032",
        "4.089",
        "3",
        "x",
        "224",
        "x",
        "224",
        "resnet_bottleneck",
        "specs/resnet50.arch",
    ]
    assert len(lines) == 2 + len(list(SPECS.glob("*.arch")))  # one network per shipped file today


def test_json() -> None:
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    row = next(r for r in data if r["name"] == "resnet1202")
    assert row["weighted_layers"] == 1202 and row["params"] == 19_421_274 and row["base"] == "cifar_resnet"
    assert row["file"] == "specs/resnet1202.arch" and row["path"].endswith("resnet1202.arch")
    assert row["input"] == [3, 32, 32] and row["output"] == [10] and row["gmacs"] == round(row["macs"] / 1e9, 3)


TWO = (
    'import "std/blocks.arch"\n\nnetwork small(n = 1) {\n    input 3 x 16 x 16\n    conv1  = conv(8, k=3, p=1)\n'
    "    layer1 = stage(basic(8), repeat=n)\n    fc     = linear(4)\n}\n\nnetwork deeper = small(n=3)\n"
)


def test_a_file_lists_its_own_networks_with_the_same_columns(tmp_path: Path) -> None:
    spec = tmp_path / "two.arch"
    spec.write_text(TWO)
    result = CliRunner().invoke(cli, ["list", str(spec)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["network", "depth", "params", "GMACs", "input", "base", "file"] and len(lines) == 4
    checked = {n.name: n for n in resdsl.check(spec).networks}
    for line, name in zip(lines[2:], ["small", "deeper"], strict=True):
        net = checked[name]
        cells = [name, str(net.weighted_layers), f"{net.num_params:,}", f"{net.macs / 1e9:.3f}", "3", "x", "16"]
        assert line.split() == [*cells, "x", "16", "small", str(spec)]
    assert checked["deeper"].weighted_layers == 2 + 2 * 3
    data = json.loads(CliRunner().invoke(cli, ["list", "--json", str(spec)]).stdout)
    assert [(r["name"], r["base"], r["params"]) for r in data] == [
        ("small", "small", checked["small"].num_params),
        ("deeper", "small", checked["deeper"].num_params),
    ]
    assert data[0]["file"] == str(spec) and data[0]["path"] == str(spec.resolve()) and data[0]["output"] == [4]


def test_files_folders_and_shipped_names_in_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "two.arch").write_text(TWO)
    (tmp_path / "sub" / "lib.arch").write_text("block b(c) {\n    conv1 = conv(c)\n}\n")
    result = CliRunner().invoke(cli, ["list", "resnet20", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert names == ["resnet20", "small", "deeper"]
    assert "specs/resnet20.arch" in result.stdout  # a shipped file is shown as `resdsl list` shows it
    assert f"{tmp_path / 'sub' / 'lib.arch'}: defines no network (only blocks)" in result.stderr


def test_a_missing_or_broken_file_gets_its_diagnostics_and_exit_1(tmp_path: Path) -> None:
    good, broken = tmp_path / "good.arch", tmp_path / "broken.arch"
    good.write_text(TWO)
    broken.write_text("network n() {\n    input 3 x 8 x 8\n    c = conv(8, kernal=3)\n}\n")
    missing = tmp_path / "missing.arch"
    result = CliRunner().invoke(cli, ["list", str(missing), str(broken), str(good)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{missing}: error[E004]: cannot read" in result.stderr
    assert f"{broken}:3:17: error[E203]: conv has no parameter 'kernal'" in result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["small", "deeper"]  # the good file still
    unparsable = tmp_path / "bad.arch"
    unparsable.write_text("network n( {\n")
    done = CliRunner().invoke(cli, ["list", "--json", str(unparsable)])
    assert done.exit_code == 1 and json.loads(done.stdout) == [] and f"{unparsable}:1:12: error[E001]" in done.stderr
