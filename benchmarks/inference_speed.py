"""The inference build against eager PyTorch and torch's own fused paths, side by side.

Every variant runs the same network with the same weights (random batchnorm statistics, so
nothing folds to a no-op) on the same NCHW input, in ``torch.inference_mode()``:

- eager: ``build_model(spec).eval()`` (torchvision's layout; the baseline of every ratio)
- ours: ``build_model(spec, mode="inference", weights=...)``: batchnorm folded into the convs,
  ``channels_last``
- ours + optimize_for_inference: that module through ``torch.jit.optimize_for_inference(
  torch.jit.freeze(torch.jit.script(...)))`` (what freezing our module adds: oneDNN layouts,
  conv+relu fusion)
- fx fuse + channels_last: ``torch.fx.experimental.optimization.fuse`` of the eager model
- optimize_for_inference: ``torch.jit.optimize_for_inference(torch.jit.freeze(script))``
- onnxruntime: a ``torch.onnx.export`` (the TorchScript exporter, offline) in an
  onnxruntime session with every graph optimisation (resdsl's own exporter: onnx_speed.py)

Each round times every variant once (a few calls each for small inputs), the order alternating
between rounds; a ratio is eager time / variant time per round, reported as the median with the
min and max. One thread by default, for every variant alike: on a shared machine torch's
OpenMP pool degrades badly once the cores are oversubscribed, which would make the figures
the neighbours' (``--threads N`` for more).

Targets (issue #11): ours >= 1.3x eager and not slower than the best of fx fuse +
channels_last and optimize_for_inference, at ResNet-50 batch 8 and ResNet-18 batch 1, 224 x 224.

    python benchmarks/inference_speed.py [--quick] [--json PATH] [--repeat 9] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.fx.experimental.optimization import fuse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, print_rows, ratios, row, samples, write_json

import resdsl

TITLE = "the inference build (batchnorm folded, channels_last) against eager eval and torch's fused paths"
CASES = (("resnet50", 8), ("resnet18", 1))


def random_norms(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def onnxruntime_variant(eager: torch.nn.Module, x: torch.Tensor, threads: int) -> Callable[[], Any] | str:
    """A torch.onnx export run by onnxruntime, or why there is none."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(eager, (x,), buf, dynamo=False, input_names=["x"])
    except Exception as exc:  # an exporter that needs what is not installed: say so, run the rest
        return f"torch.onnx.export failed: {type(exc).__name__}: {str(exc)[:120]}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: session.run(None, feed)


def variants(spec: str, x: torch.Tensor, threads: int) -> tuple[dict[str, Callable[[], Any]], list[str]]:
    torch.manual_seed(0)
    eager = resdsl.build_model(spec).eval()
    random_norms(eager)
    ours = resdsl.build_model(spec, mode="inference", weights=eager.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        frozen_ours = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(ours)))
        fused = fuse(copy.deepcopy(eager)).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimized = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(copy.deepcopy(eager))))
    models = {
        "eager": eager,
        "ours": ours,
        "ours + optimize_for_inference": frozen_ours,
        "fx fuse + channels_last": fused,
        "optimize_for_inference": optimized,
    }
    fns: dict[str, Callable[[], Any]] = {name: (lambda m=m: m(x)) for name, m in models.items()}
    notes = []
    with torch.inference_mode():
        reference = eager(x)
        for name, fn in fns.items():
            err = float((fn() - reference).abs().max() / reference.abs().max())
            assert err < 1e-3, f"{spec}: {name} differs from eager by {err:.1e}"  # float32, reordered sums
            notes.append(f"{name} {err:.0e}")
    ort_fn = onnxruntime_variant(eager, x, threads)
    if callable(ort_fn):
        fns["onnxruntime (torch.onnx export)"] = ort_fn
    else:
        notes.append(f"no onnxruntime row: {ort_fn}")
    return fns, notes


def timed(fn: Callable[[], Any], calls: int) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                fn()

    return run


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = 112 if args.quick else 224
    repeat = 2 if args.quick else args.repeat
    print(f"torch {torch.__version__}, {args.threads} thread(s), {size} x {size}, median of {repeat} rounds")
    rows = []
    for spec, batch in CASES:
        batch = 1 if args.quick else batch
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
        fns, notes = variants(spec, x, args.threads)
        calls = 1 if batch > 1 or args.quick else 5
        runs = samples({name: timed(fn, calls) for name, fn in fns.items()}, repeat)
        case = f"{spec}, batch {batch}, {size} x {size}"
        print(f"\n{case} ({calls} call(s) a round); max relative difference to eager: {', '.join(notes)}")
        for name, values in runs.items():
            median = statistics.median(values) / calls
            print(f"  {name:<34} {median * 1e3:9.1f} ms   {statistics.median(ratios(runs['eager'], values)):5.2f}x")
        speedup = "speed-up over eager eval"
        for name in runs:
            if name == "eager":
                continue
            ours = name == "ours"
            rows.append(
                row(
                    f"{case}: {name}",
                    speedup,
                    ratios(runs["eager"], runs[name]),
                    ">= 1.3" if ours else None,
                    (lambda r: r >= 1.3) if ours else None,
                )
            )
        best = [min(a, b) for a, b in zip(runs["fx fuse + channels_last"], runs["optimize_for_inference"], strict=True)]
        rows.append(
            row(
                f"{case}: ours against torch's best fused path",
                "best of fx fuse + channels_last and optimize_for_inference, time / ours",
                ratios(best, runs["ours"]),
                ">= 1.0",
                lambda r: r >= 1.0,
                "per round, the faster of the two torch paths",
            )
        )
    print()
    print_rows(rows)
    write_json(args.json, "inference_speed", TITLE, rows)


if __name__ == "__main__":
    main()
