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


def test_inference_speed_rows_judge_the_targets_from_given_times() -> None:
    """The rows inference_speed writes, from made-up times (nothing is timed): torch.compile's
    better memory format, ours compiled against it and against ours, the layout rows, the
    compile times as one figure each."""
    from benchmarks import inference_speed as bench  # it puts benchmarks/ on sys.path for its helpers

    compiled = [bench.COMPILED.format(f) for f in bench.FORMATS]
    times = {"eager": 2.0, "ours": 1.0, bench.UNPACKED: 1.2, bench.CONTIGUOUS: 1.5}
    times |= {"fx fuse + channels_last": 1.4, "optimize_for_inference": 0.9}
    times |= {compiled[0]: 1.1, compiled[1]: 0.8, bench.OURS_COMPILED: 0.7}
    times |= {bench.ORT_OURS: 0.65, bench.ORT_FIXED: 0.6, bench.ORT_TORCH: 0.63}
    runs = {name: [t, t * 1.01, t * 0.99] for name, t in times.items()}
    seconds = {compiled[0]: 20.0, compiled[1]: 16.0, bench.OURS_COMPILED: 12.0}
    rows = {r["case"].split(": ", 1)[1]: r for r in bench.case_rows("case", runs, seconds)}
    assert rows["ours"]["met"] and rows["ours"]["ratio"] == 2.0
    assert rows["ours against torch's best fused path"]["met"] is False  # 0.9 / 1.0
    assert rows["ours against torch's best fused path"]["detail"] == "the faster by median: optimize_for_inference"
    fixed = rows["resdsl export against torch.onnx.export, both in onnxruntime, the batch fixed in both"]
    assert fixed["met"] and abs(fixed["ratio"] - 0.63 / 0.6) < 1e-9
    slower = {**runs, bench.ORT_FIXED: [0.7, 0.7, 0.7]}  # slower, yet onnxruntime runs one graph for both
    same = {r["case"].split(": ", 1)[1]: r for r in bench.case_rows("case", slower, seconds, same_graph=True)}
    assert same["resdsl export against torch.onnx.export, both in onnxruntime, the batch fixed in both"]["met"]
    differ = {r["case"].split(": ", 1)[1]: r for r in bench.case_rows("case", slower, seconds, same_graph=False)}
    assert not differ["resdsl export against torch.onnx.export, both in onnxruntime, the batch fixed in both"]["met"]
    dynamic = rows["resdsl export (its default dynamic batch) against torch.onnx.export (the batch fixed)"]
    assert dynamic["met"] is None and abs(dynamic["ratio"] - 0.63 / 0.65) < 1e-9
    assert rows["torch.compile, channels_last against contiguous"]["detail"] == "the better: channels_last"
    assert abs(rows["ours, compile=True against torch.compile"]["ratio"] - 0.8 / 0.7) < 1e-9
    assert rows["ours, compile=True against ours"]["met"] and rows["ours against torch.compile"]["met"] is None
    assert rows[f"ours (packed, channels_last) against {bench.UNPACKED}"]["met"]
    slow_compiled = {**runs, bench.OURS_COMPILED: [1.05, 1.05, 1.05]}  # noise, where it runs ours' code
    for chose_uncompiled in (False, True):
        found = bench.case_rows("case", slow_compiled, seconds, runs_uncompiled=chose_uncompiled)
        against_ours = {r["case"].split(": ", 1)[1]: r for r in found}["ours, compile=True against ours"]
        assert (
            against_ours["met"] is chose_uncompiled and ("the same code" in against_ours["detail"]) is chose_uncompiled
        )
    compile_time = rows["compile time, ours, compile=True against torch.compile"]
    assert compile_time["ratio"] == 12.0 / 16.0 and compile_time["low"] == compile_time["high"]
