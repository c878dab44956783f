"""The README stays true: its tour checks as written, and CI runs its set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

import resdsl
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_tour_spec_checks_as_written(tmp_path: Path) -> None:
    (block,) = re.findall(r"```\n(# my_net\.arch\n.*?)```", README, flags=re.S)
    spec = tmp_path / "my_net.arch"
    spec.write_text(block)
    result = resdsl.check(spec)
    assert result.diagnostics == []
    assert {n.name: n.weighted_layers for n in result.networks} == {"my_net": 20, "my_net_deep": 32}


def test_ci_runs_the_readme_commands() -> None:
    setup = re.search(r"## Set-up.*?```\n(.*?)```", README, flags=re.S)
    assert setup is not None
    install, tests = setup.group(1).strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in [*install.split(" && "), tests]:
        assert command in ci, command
