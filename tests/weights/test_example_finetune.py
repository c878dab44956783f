"""examples/finetune.py (issue #10): fine-tuning mode 2 end to end on synthetic data, as shipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_finetune_example_learns_the_task_with_the_early_layers_frozen() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "finetune.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "kept 2 at initialisation (fc.weight, fc.bias)" in done.stdout  # the 1000-way classifier
    assert "warning[W721]: fc.weight kept at initialisation: model [4, 512], checkpoint [1000, 512]" in done.stdout
    match = re.search(r"test accuracy ([\d.]+) -> ([\d.]+); frozen layers and statistics unchanged: (\w+)", done.stdout)
    assert match, done.stdout
    before, after, unchanged = float(match[1]), float(match[2]), match[3]
    assert unchanged == "True"
    assert before < 0.5 and after >= 0.9, done.stdout  # 4 classes: chance is 0.25
