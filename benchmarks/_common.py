"""Helpers shared by the benchmarks: interleaved timing, loading a generated module, and the
suite's convention (``--quick``, ``--json PATH``; see benchmarks/run.py).

A benchmark's JSON is ``{"benchmark", "title", "rows": [{"case", "measure", "ratio", "low",
"high", "target", "met", "detail"}]}``: every ratio measured side by side in one run, the
median of several repeats with their min and max.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


def processes(cmds: dict[str, list[str]], repeat: int) -> dict[str, float]:
    """Median wall seconds of each command run as a fresh process (what a user waits for),
    interleaved so that machine noise hits every command alike."""
    return interleaved(
        {name: lambda c=cmd: subprocess.run(c, check=True, capture_output=True) for name, cmd in cmds.items()},
        repeat,
    )


def interleaved(fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, alternating them so drift hits all alike."""
    return {name: statistics.median(values) for name, values in samples(fns, repeat, warmup).items()}


def samples(fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of every call of each function, in rounds that call each once; the order within a
    round alternates (forward, then backward) so neither side always runs first."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for i in range(repeat):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            out[name].append(time.perf_counter() - start)
    return out


def process_samples(cmds: dict[str, list[str]], repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each command run as a fresh process, every round, interleaved."""
    return samples(
        {name: lambda c=cmd: subprocess.run(c, check=True, capture_output=True) for name, cmd in cmds.items()},
        repeat,
        warmup,
    )


# -- the suite's convention ---------------------------------------------------------------


def convention(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--quick`` (fewer repeats, smaller sizes: a smoke test) and ``--json PATH``."""
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (a smoke test)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the rows as JSON (benchmarks/run.py)")
    return parser


def row(
    case: str,
    measure: str,
    ratios: Sequence[float],
    target: str | None = None,
    met: Callable[[float], bool] | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """One result: the median of per-repeat ``ratios`` with their spread; ``met`` judges the median."""
    median = statistics.median(ratios)
    return {
        "case": case,
        "measure": measure,
        "ratio": median,
        "low": min(ratios),
        "high": max(ratios),
        "target": target,
        "met": None if met is None else bool(met(median)),
        "detail": detail,
    }


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-round ratios of two interleaved series of times."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def write_json(path: str | None, benchmark: str, title: str, rows: list[dict[str, Any]]) -> None:
    """Write the convention's JSON (atomically) if ``--json`` asked for it."""
    if path is None:
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"benchmark": benchmark, "title": title, "rows": rows}, f, indent=1)
    os.replace(tmp, target)


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The rows as a plain table (after a benchmark's own output)."""
    for r in rows:
        verdict = "" if r["met"] is None else ("  met" if r["met"] else "  NOT met")
        target = f"  target {r['target']}" if r["target"] else ""
        print(f"{r['case']}: {r['measure']} {r['ratio']:.3f} ({r['low']:.3f} - {r['high']:.3f}){target}{verdict}")


def generated_module(spec: str) -> ModuleType:
    """Generate ``spec`` with resdsl and import the file, as a vendoring project would."""
    import resdsl

    folder = Path(tempfile.mkdtemp(prefix="resdsl-bench-"))
    path = folder / f"{spec}.py"
    path.write_text(resdsl.generate(spec))
    module_spec = importlib.util.spec_from_file_location(f"bench_{spec}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
