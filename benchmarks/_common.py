"""Helpers shared by the benchmarks: interleaved timing and loading a generated module."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def processes(cmds: dict[str, list[str]], repeat: int) -> dict[str, float]:
    """Median wall seconds of each command run as a fresh process (what a user waits for),
    interleaved so that machine noise hits every command alike."""
    return interleaved(
        {name: lambda c=cmd: subprocess.run(c, check=True, capture_output=True) for name, cmd in cmds.items()},
        repeat,
    )


def interleaved(fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, alternating them so drift hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


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
