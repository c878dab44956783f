"""The installed package carries its grammar and library and works from any directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import resdsl
from resdsl.resources import grammar_path, library_dir, shipped_specs


def test_data_files_are_found() -> None:
    assert grammar_path().is_file()
    assert (library_dir() / "std" / "blocks.arch").is_file()
    assert {p.stem for p in shipped_specs()} >= {"resnet50", "resnet110", "cifar_resnet", "wide_resnet101_2"}


def test_installed_package_runs_elsewhere(tmp_path: Path) -> None:
    code = (
        "import resdsl, resdsl.resources as r\nprint(r.grammar_path())\nprint(resdsl.compile('resnet20').num_params)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    grammar, params = done.stdout.split()
    assert Path(grammar).is_file() and params == "269722"


def test_version_is_exported() -> None:
    assert resdsl.__version__.count(".") == 2
