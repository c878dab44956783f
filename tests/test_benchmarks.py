"""The benchmark suite (benchmarks/run.py): discovery, one tiny benchmark run end to end, the
Markdown it renders, and the committed docs/benchmarks.md. No timing is asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import cpu, discover, render
from tests.conftest import ROOT


def test_discovers_every_benchmark() -> None:
    names = discover()
    assert {"check_speed", "codegen_speed", "forward_speed", "summary_speed", "inference_speed"} <= set(names)
    assert not [n for n in names if n.startswith("_") or n in ("run", "__main__")]


def test_every_benchmark_takes_the_convention() -> None:
    for name in discover():
        source = (ROOT / "benchmarks" / f"{name}.py").read_text()
        assert "convention(" in source and "write_json(args.json" in source, name


@pytest.mark.slow
def test_suite_runs_a_benchmark_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "check_speed", "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "| CPU cores |" in text and "| torch |" in text and "--quick" in text
    assert "## check_speed" in text and "| resdsl check resnet1202" in text


def test_unknown_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope", "--output", str(tmp_path / "b.md")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2 and "no benchmark named nope" in done.stderr
    assert not (tmp_path / "b.md").exists()


def test_the_machine_facts_name_the_cpu_and_its_instruction_sets() -> None:
    info = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\n"
    assert cpu(info) == ("AMD EPYC 7B13", "avx2, fma")
    xeon = "model name : Intel(R) Xeon(R) Platinum 8480+\nflags : avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
    model, isa = cpu(xeon)
    assert model.startswith("Intel(R) Xeon(R)") and isa == "avx2, avx512f, avx512_bf16, amx_tile, amx_bf16"
    assert cpu("model name : Old\nflags : sse2\n")[1].startswith("none of avx2")


def test_render() -> None:
    results = [
        {
            "benchmark": "demo",
            "title": "a title",
            "rows": [
                {"case": "x", "measure": "m", "ratio": 1.5, "low": 1.2, "high": 1.7, "target": ">= 1.3", "met": True},
                {"case": "y|z", "measure": "m", "ratio": 0.9, "low": 0.8, "high": 1.0, "target": None, "met": None},
            ],
        },
        {"benchmark": "broken", "error": "exit status 1", "output": ["Traceback", "ValueError: no"]},
    ]
    text = render(results, {"CPU cores": "2"}, False, "today")
    assert "| x | m | 1.500 | 1.200 - 1.700 | >= 1.3 | yes |" in text
    assert "| y\\|z | m | 0.900 | 0.800 - 1.000 | - | - |" in text
    assert (
        "a title (`benchmarks/demo.py`)" in text and "**Failed** (exit status 1)" in text and "ValueError: no" in text
    )


def test_committed_report_covers_every_benchmark() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks") and "| CPU cores |" in text and "| onnxruntime |" in text
    for name in discover():
        assert f"## {name}" in text, f"docs/benchmarks.md lacks {name}: rerun python -m benchmarks"
