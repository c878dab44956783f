"""`resdsl list`: every shipped network, aliases included, with its depth, size and file."""

from __future__ import annotations

import json

from click.testing import CliRunner

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
