"""The ONNX file resdsl writes, in onnxruntime, against eager PyTorch eval mode, side by side.

Both run the same network with the same weights: build_model's ResNet in eval mode under
``torch.inference_mode()``, and ``resdsl.export_onnx`` of it (written from the IR, BatchNorm as
BatchNormalization, which onnxruntime folds into the convs when it loads the model) in an
onnxruntime CPU session with every graph optimisation on. Both get the same thread count: one
by default, because on a shared machine torch's OpenMP pool degrades badly once the cores are
oversubscribed (eager ResNet-50 measured 3-15x slower at 2 threads with other jobs running,
onnxruntime about 2x), which would flatter onnxruntime; ``--threads N`` for more.
Each repeat times a few calls of each side, alternating which goes first; the ratio of one
repeat is eager time / onnxruntime time, reported as the median with the min and max.

    ResNet-18, batch 1, 224 x 224: target >= 1.5x (issue #11)
    ResNet-50, batch 8, 224 x 224: reported, no target

    python benchmarks/onnx_speed.py [--quick] [--json PATH] [--repeat 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

import resdsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, write_json

CASES = (("resnet18", 1, 1.5), ("resnet50", 8, None))


def _seconds(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def ratios(eager: Callable[[], object], onnx: Callable[[], object], repeat: int, calls: int) -> list[float]:
    """Per repeat: eager seconds / onnxruntime seconds, the two timed back to back."""
    eager(), onnx()  # warm-up: first-call allocations, onnxruntime's lazy kernels
    out = []
    for i in range(repeat):
        if i % 2:
            t_onnx, t_eager = _seconds(onnx, calls), _seconds(eager, calls)
        else:
            t_eager, t_onnx = _seconds(eager, calls), _seconds(onnx, calls)
        out.append(t_eager / t_onnx)
    return out


def case(spec: str, batch: int, size: int, threads: int, repeat: int, calls: int) -> dict[str, Any]:
    model = resdsl.build_model(spec).eval()
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    proto = resdsl.export_onnx(spec, weights=weights, batch=batch, input_shape=f"3x{size}x{size}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    feed = {"input": x.numpy()}

    def eager() -> object:
        with torch.inference_mode():
            return model(x)

    def onnx() -> object:
        return session.run(None, feed)

    got, want = onnx()[0], eager().numpy()  # type: ignore[index, attr-defined]
    error = float(np.abs(got - want).max() / np.abs(want).max())
    assert error < 1e-3, f"{spec}: onnxruntime and eager disagree ({error:.1e})"  # a sanity check, not a test
    values = ratios(eager, onnx, repeat, calls)
    return {"values": values, "error": error}


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="threads for both (default 1, see above)")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    size = 112 if args.quick else 224
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, {size} x {size}, "
        f"median (min - max) of {repeat} interleaved repeats"
    )
    print(f"{'case':<26} {'eager / onnxruntime':>20} {'spread':>16} {'target':>8}")
    rows = []
    for spec, batch, target in CASES:
        calls = max(1, 8 // batch)
        result = case(spec, batch, size, args.threads, repeat, calls)
        values = result["values"]
        median, low, high = statistics.median(values), min(values), max(values)
        met = None if target is None else median >= target
        label = f"{spec}, batch {batch}, {size}"
        goal = f">= {target}x" if target else "-"
        print(f"{label:<26} {median:19.2f}x {low:7.2f} - {high:5.2f}x {goal:>8}")
        rows.append(
            {
                "case": label,
                "measure": "speed-up of the exported ONNX in onnxruntime over eager eval",
                "ratio": median,
                "low": low,
                "high": high,
                "target": goal if target else None,
                "met": met,
                "detail": f"{repeat} repeats x {calls} calls each side, {args.threads} threads; "
                f"max relative difference of outputs {result['error']:.1e}",
            }
        )
    write_json(args.json, "onnx_speed", "resdsl export in onnxruntime against eager PyTorch eval mode", rows)


if __name__ == "__main__":
    main()
