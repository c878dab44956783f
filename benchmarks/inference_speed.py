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

- torch.compile: ``torch.compile`` of the eager model (inductor, ``freezing``, channels_last),
  the path most torch users reach for now
- onnxruntime (resdsl export): ``resdsl export``'s file (dynamic batch), in a session set up as
  the README serves one; onnxruntime (torch.onnx export): the TorchScript exporter's file

Each round times every variant once (a few calls each for small inputs), the order alternating
between rounds; a ratio is eager time / variant time per round, reported as the median with the
min and max. Every case runs at 1 and at 2 threads (``--threads``), every variant alike; the
report's header names the CPU and its instruction sets, which decide the kernels.

Targets (issues #11, #21), on the processor at hand: ours >= 1.3x eager and not slower than the
best of fx fuse + channels_last and optimize_for_inference; resdsl export's file not slower than
torch.onnx.export's in onnxruntime; at ResNet-50 batch 8 and ResNet-18 batch 1, 224 x 224.

    python benchmarks/inference_speed.py [--quick] [--json PATH] [--repeat 9] [--threads 1,2] [--no-compile]
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


def _session(model: bytes, threads: int) -> Callable[[Any], Any]:
    """An onnxruntime CPU session as the README serves one: every graph optimisation, ``threads``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def onnx_variants(spec: str, eager: torch.nn.Module, x: torch.Tensor, threads: int) -> dict[str, Any]:
    """onnxruntime on ``resdsl export``'s file (its default: a dynamic batch) and on
    ``torch.onnx.export``'s (the TorchScript exporter's default: this batch fixed); for each, a
    function, or why there is none."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {"onnxruntime": "onnxruntime is not installed"}
    out: dict[str, Any] = {}
    arrays = {k: v.numpy() for k, v in eager.state_dict().items()}
    size = "x".join(map(str, x.shape[1:]))
    ours = resdsl.export_onnx(spec, weights=arrays, input_shape=size).SerializeToString()
    out["onnxruntime (resdsl export)"] = _session(ours, threads)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(eager, (x,), buf, dynamo=False, input_names=["x"])
        out["onnxruntime (torch.onnx export)"] = _session(buf.getvalue(), threads)
    except Exception as exc:  # an exporter that needs what is not installed: say so, run the rest
        out["onnxruntime (torch.onnx export)"] = f"torch.onnx.export failed: {type(exc).__name__}: {str(exc)[:120]}"
    feed = x.numpy()
    return {k: (lambda f=f: f(feed)) if callable(f) else f for k, f in out.items()}


def compiled_eager(eager: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    """``torch.compile`` of the eager model as torch's docs advise for CPU inference: inductor,
    ``freezing`` (weights become constants, conv+batchnorm folded), channels_last; compiled on
    the first call, here, not in the timed rounds."""
    model = copy.deepcopy(eager).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fn = torch.compile(model, options={"freezing": True})
    with torch.inference_mode():
        fn(x)
    return lambda: fn(x)


def variants(
    spec: str, x: torch.Tensor, threads: int, compile_: bool
) -> tuple[dict[str, Callable[[], Any]], list[str]]:
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
        if compile_:
            fns["torch.compile (inductor, freezing, channels_last)"] = compiled_eager(eager, x)
        for name, fn in onnx_variants(spec, eager, x, threads).items():
            if callable(fn):
                fns[name] = fn
            else:
                notes.append(f"no {name} row: {fn}")
        reference = eager(x)
        for name, fn in fns.items():
            got = torch.as_tensor(fn())
            err = float((got - reference).abs().max() / reference.abs().max())
            assert err < 1e-3, f"{spec}: {name} differs from eager by {err:.1e}"  # float32, reordered sums
            notes.append(f"{name} {err:.0e}")
    return fns, notes


def timed(fn: Callable[[], Any], calls: int) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                fn()

    return run


def case_rows(case: str, runs: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Speed-ups over eager, and the comparisons the targets are about, per round."""
    rows = []
    for name in runs:
        if name != "eager":
            ours = name == "ours"
            target, met = (">= 1.3", lambda r: r >= 1.3) if ours else (None, None)
            speedup = ratios(runs["eager"], runs[name])
            rows.append(row(f"{case}: {name}", "speed-up over eager eval", speedup, target, met))
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
    compiled = "torch.compile (inductor, freezing, channels_last)"
    if compiled in runs:
        against = ratios(runs[compiled], runs["ours"])
        rows.append(row(f"{case}: ours against torch.compile", "torch.compile time / ours", against))
    ort_ours, ort_torch = "onnxruntime (resdsl export)", "onnxruntime (torch.onnx export)"
    if ort_ours in runs and ort_torch in runs:
        rows.append(
            row(
                f"{case}: resdsl export against torch.onnx.export, both in onnxruntime",
                "torch.onnx.export's file time / resdsl export's file",
                ratios(runs[ort_torch], runs[ort_ours]),
                ">= 1.0",
                lambda r: r >= 1.0,
                "ours with its default dynamic batch, torch's with the batch fixed",
            )
        )
    return rows


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--threads", default="1,2", help="thread counts to run at, comma-separated (default 1,2)")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (minutes of compiling)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    size = 112 if args.quick else 224
    repeat = 2 if args.quick else args.repeat
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        print(f"torch {torch.__version__}, {n} thread(s), {size} x {size}, median of {repeat} rounds")
        for spec, batch in CASES:
            batch = 1 if args.quick else batch
            x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
            fns, notes = variants(spec, x, n, compile_=not args.no_compile)
            calls = 1 if batch > 1 or args.quick else 5
            runs = samples({name: timed(fn, calls) for name, fn in fns.items()}, repeat)
            case = f"{spec}, batch {batch}, {size} x {size}, {n} thread{'s' if n > 1 else ''}"
            print(f"\n{case} ({calls} call(s) a round); max relative difference to eager: {', '.join(notes)}")
            for name, values in runs.items():
                median = statistics.median(values) / calls
                speedup = statistics.median(ratios(runs["eager"], values))
                print(f"  {name:<50} {median * 1e3:9.1f} ms   {speedup:5.2f}x")
            rows += case_rows(case, runs)
    print()
    print_rows(rows)
    write_json(args.json, "inference_speed", TITLE, rows)


if __name__ == "__main__":
    main()
