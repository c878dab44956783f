"""The inference build against eager PyTorch, torch's fused paths, torch.compile and
onnxruntime, side by side.

Every variant runs the same network with the same weights (random batchnorm statistics, so
nothing folds to a no-op) on the same NCHW input, in ``torch.inference_mode()``:

- eager: ``build_model(spec).eval()`` (torchvision's layout; the baseline of every ratio)
- ours: ``build_model(spec, mode="inference", weights=...)``: batchnorm folded into the convs,
  ``channels_last``, conv weights packed for oneDNN for each input size, each conv fused with
  the ReLU and the residual addition after it (resdsl/runtime/fusion.py)
- ours, weights not packed: the same build with packing off (each conv runs on its plain
  channels_last weight, still fused); ours, not fused: the same build running its own
  forward (packed, every op apart); ours, contiguous: ``channels_last=False`` (NCHW, no
  packing, no fusion). The build keeps the packing only where its own batch-1 measurement
  finds it faster on this processor; these rows check that choice at the benchmark's batch
- ours + optimize_for_inference: that module through ``torch.jit.optimize_for_inference(
  torch.jit.freeze(torch.jit.script(...)))`` (what freezing our module adds: oneDNN layouts,
  conv+relu fusion)
- fx fuse + channels_last: ``torch.fx.experimental.optimization.fuse`` of the eager model
- optimize_for_inference: ``torch.jit.optimize_for_inference(torch.jit.freeze(script))``
- torch.compile (contiguous; channels_last): ``torch.compile`` of the eager model, the path most
  torch users reach for now (inductor, ``freezing``), in both memory formats: the better one
  is torch.compile's figure
- ours, compile=True: ``build_model(spec, mode="inference", compile=True)`` (inductor's frozen
  graph of the folded module, or the uncompiled build where that measured faster on its
  first call at this size: the output says which)
- onnxruntime (resdsl export): ``resdsl export``'s file (dynamic batch), in a session set up as
  the README serves one; onnxruntime (resdsl export --batch N): the same with the batch fixed;
  onnxruntime (torch.onnx export): the TorchScript exporter's file (the batch fixed), in the
  same session options. The target compares the two files with the batch fixed

Compiling happens on a compiled variant's first call, before the timed rounds; that call is
its compile time, reported apart (inductor's on-disk cache is an empty folder for each compile,
as on a new server; one small model is compiled first so that starting inductor is not
counted, and ours is compiled before torch.compile's, so that kernels kept in memory favour
torch.compile's time). Each round times every variant once (as many calls as make ours' round
last ``ROUND_SECONDS``, 0.25 s: one at ResNet-50 batch 8, a few tens at ResNet-18 batch 1),
the order alternating between rounds; a ratio is a peer's time / the variant's per round,
reported as the median with the min and max. Where a peer has two forms (torch.compile's memory
formats, torch's two fused paths), the one with the lower median is the peer. Every case runs at 1 and at 2 threads
(``--threads``), every variant alike; the output names the processor, the instruction sets its
kernels choose between, the thread count and the load average.

Targets (issues #11, #21), checkable on any machine, at ResNet-50 batch 8 and ResNet-18 batch 1,
224 x 224: ours >= 1.3x eager and not slower than the best of fx fuse + channels_last and
optimize_for_inference, nor than its own layouts without packing; ours with compile=True not
slower than torch.compile (its memory format with the lower median) nor than ours uncompiled; resdsl export's
file not slower than torch.onnx.export's in onnxruntime.

    python benchmarks/inference_speed.py [--quick] [--json PATH] [--repeat N] [--threads 1,2] [--no-compile]

``--quick`` (or ``RESDSL_BENCH_QUICK=1``): the same cases in 3 rounds instead of 9 (about
six minutes on a quiet 2-core machine, a third of it compiling). No test times anything.
"""

from __future__ import annotations

import argparse
import copy
import io
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._inductor.config
from torch.fx.experimental.optimization import fuse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, print_rows, ratios, row, samples, write_json
from run import cpu

import resdsl
from resdsl.runtime.packed import PackedConv2d

TITLE = (
    "the inference build (batchnorm folded, channels_last; and compiled) against eager eval, torch's fused paths, "
    "torch.compile and onnxruntime"
)
CASES = (("resnet50", 8), ("resnet18", 1))
FULL, QUICK = 9, 3  # rounds
ROUND_SECONDS = 0.25  # a variant's round repeats its call up to this long


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


def optimized_ops(model: bytes) -> list[str]:
    """The op types, in order, of the graph onnxruntime runs for ``model`` once it has applied every
    graph optimisation (its optimised model, written to a temporary file and read back)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3  # its warning that the file holds CPU-specific nodes
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


SAME_GRAPH = "same optimized graph"  # the note key: whether both fixed-batch files optimise to one graph


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
    out[ORT_OURS] = _session(ours, threads)
    fixed = resdsl.export_onnx(spec, weights=arrays, input_shape=size, batch=x.shape[0]).SerializeToString()
    out[ORT_FIXED] = _session(fixed, threads)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(eager, (x,), buf, dynamo=False, input_names=["x"])
        out[ORT_TORCH] = _session(buf.getvalue(), threads)
        out[SAME_GRAPH] = optimized_ops(fixed) == optimized_ops(buf.getvalue())
    except Exception as exc:  # an exporter that needs what is not installed: say so, run the rest
        out[ORT_TORCH] = f"torch.onnx.export failed: {type(exc).__name__}: {str(exc)[:120]}"
    feed = x.numpy()
    return {k: (lambda f=f: f(feed)) if callable(f) else f for k, f in out.items()}


def onnx_runs(found: dict[str, Any], fns: dict[str, Callable[[], Any]], notes: list[str]) -> bool | None:
    """Add ``onnx_variants``' functions to ``fns`` and why any is missing to ``notes``; returns
    whether the two fixed-batch files optimise to the same graph (None: not compared)."""
    same = found.pop(SAME_GRAPH, None)
    for name, fn in found.items():
        if callable(fn):
            fns[name] = fn
        else:
            notes.append(f"no {name} row: {fn}")
    return same


FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
COMPILED = "torch.compile (inductor, freezing, {})"
OURS_COMPILED = "ours, compile=True"
UNPACKED, CONTIGUOUS, UNFUSED = "ours, weights not packed", "ours, contiguous", "ours, not fused"
ORT_OURS, ORT_FIXED = "onnxruntime (resdsl export)", "onnxruntime (resdsl export --batch N)"
ORT_TORCH = "onnxruntime (torch.onnx export)"


def warm_inductor() -> None:
    """Compile a one-conv model first, so that importing and starting inductor (tens of
    seconds the first time in a process) is not counted in the first network's compile time."""
    tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    fn = torch.compile(tiny)
    with torch.inference_mode():
        fn(torch.randn(1, 3, 8, 8))


def fresh_cache() -> None:
    """Point inductor at an empty on-disk cache, so the next compile is a first one. Kernels it
    built already in this process stay in memory, so ours is compiled first: what a later
    compile reuses from it favours torch.compile's time, not ours."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="resdsl-bench-inductor-")


def first_call(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
    """Seconds of ``fn``'s first call: for a compiled model, compiling it (and one run)."""
    start = time.perf_counter()
    with torch.inference_mode():
        fn(x)
    return time.perf_counter() - start


def compiled_variants(
    spec: str, eager: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor
) -> tuple[dict[str, Callable[[], Any]], dict[str, float], str, bool]:
    """``torch.compile`` of the eager model in each memory format, as torch's docs advise for
    CPU inference (inductor with ``torch._inductor.config.freezing``, set in main: weights become
    constants, batchnorm folded, conv weights prepacked, conv+relu and conv+add+relu fused; in
    torch 2.13 ``options={"freezing": True}`` leaves freezing off, see
    resdsl/runtime/packed.py), and our ``compile=True`` build; each compiled here on its first
    call, not in the timed rounds. Returns the functions and each one's compile time (its first
    call) in seconds, which path our compiled build chose at this size, and whether that is
    the uncompiled build."""
    fns: dict[str, Callable[[], Any]] = {}
    seconds: dict[str, float] = {}
    fresh_cache()
    ours = resdsl.build_model(spec, mode="inference", weights=state, compile=True)
    seconds[OURS_COMPILED] = first_call(ours, x)
    fns[OURS_COMPILED] = lambda: ours(x)
    ((times),) = ours.resdsl_compiled.values()
    uncompiled = times["compiled"] > times["uncompiled"]
    chosen = "the uncompiled build" if uncompiled else "the compiled graph"
    note = (
        f"{OURS_COMPILED} runs {chosen} (its first call: compiled {times['compiled'] * 1e3:.1f} ms, "
        f"uncompiled {times['uncompiled'] * 1e3:.1f} ms)"
    )
    for label, fmt in FORMATS.items():
        fresh_cache()
        model = copy.deepcopy(eager).to(memory_format=fmt)  # type: ignore[call-overload]
        fn = torch.compile(model)
        seconds[COMPILED.format(label)] = first_call(fn, x)
        fns[COMPILED.format(label)] = lambda fn=fn: fn(x)
    return fns, seconds, note, uncompiled


def variants(
    spec: str, x: torch.Tensor, threads: int, compile_: bool
) -> tuple[dict[str, Callable[[], Any]], dict[str, float], list[str], bool | None, bool]:
    """Every variant's function (the same weights), the compiled ones' compile seconds,
    notes (each variant's largest difference to eager, and the rows left out and why), whether
    the fixed-batch ONNX files optimise to one graph, and whether our compiled build chose its
    uncompiled path."""
    torch.manual_seed(0)
    eager = resdsl.build_model(spec).eval()
    random_norms(eager)
    state = eager.state_dict()
    ours = resdsl.build_model(spec, mode="inference", weights=state)
    unpacked = resdsl.build_model(spec, mode="inference", weights=state)
    for m in unpacked.modules():
        if isinstance(m, PackedConv2d):
            m.packing = False  # its forward is then nn.Conv2d's
    unfused = resdsl.build_model(spec, mode="inference", weights=state)
    unfused._compiled_call_impl = None  # its own forward: what fusion gives it (resdsl/runtime/fusion.py)
    contiguous = resdsl.build_model(spec, mode="inference", weights=state, channels_last=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        frozen_ours = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(ours)))
        fused = fuse(copy.deepcopy(eager)).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimized = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(copy.deepcopy(eager))))
    models = {
        "eager": eager,
        "ours": ours,
        UNPACKED: unpacked,
        UNFUSED: unfused,
        CONTIGUOUS: contiguous,
        "ours + optimize_for_inference": frozen_ours,
        "fx fuse + channels_last": fused,
        "optimize_for_inference": optimized,
    }
    fns: dict[str, Callable[[], Any]] = {name: (lambda m=m: m(x)) for name, m in models.items()}
    seconds: dict[str, float] = {}
    uncompiled = False
    times = getattr(ours, "resdsl_packing", None)
    notes = [] if times is None else [packing_note(ours, times)]
    with torch.inference_mode():
        if compile_:
            compiled, seconds, chosen, uncompiled = compiled_variants(spec, eager, state, x)
            fns |= compiled
            notes.append(chosen)
        same = onnx_runs(onnx_variants(spec, eager, x, threads), fns, notes)
        reference = eager(x)
        for name, fn in fns.items():
            got = torch.as_tensor(fn())
            err = float((got - reference).abs().max() / reference.abs().max())
            assert err < 1e-3, f"{spec}: {name} differs from eager by {err:.1e}"  # float32, reordered sums
            notes.append(f"{name} {err:.0e}")
    return fns, seconds, notes, same, uncompiled


def packing_note(model: torch.nn.Module, times: dict[str, float]) -> str:
    """What the build chose from its batch-1 measurement (resdsl/runtime/packed.py)."""
    chosen = "packed" if any(isinstance(m, PackedConv2d) for m in model.modules()) else "plain"
    packed, plain = (times[k] * 1e3 for k in ("packed", "plain"))
    return f"the build chose {chosen} convs (batch 1: packed {packed:.1f} ms, plain {plain:.1f} ms)"


def timed(fn: Callable[[], Any], calls: int) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                fn()

    return run


def better_by_median(runs: dict[str, list[float]], names: list[str]) -> str:
    """Of ``names``, the path with the lower median time: the one a user would pick after
    measuring (a per-round minimum of two paths would credit the peer with the noise of both)."""
    return min(names, key=lambda n: statistics.median(runs[n]))


def speedup_rows(case: str, runs: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Every variant's speed-up over eager eval; ours' target is 1.3x (issue #11)."""
    rows = []
    for name in runs:
        if name != "eager":
            target, met = (">= 1.3", lambda r: r >= 1.3) if name == "ours" else (None, None)
            rows.append(
                row(f"{case}: {name}", "speed-up over eager eval", ratios(runs["eager"], runs[name]), target, met)
            )
    return rows


def compile_rows(
    case: str, runs: dict[str, list[float]], seconds: dict[str, float], runs_uncompiled: bool = False
) -> list[dict[str, Any]]:
    """torch.compile's better memory format; ours compiled against it and against ours
    uncompiled (the targets of issue #21 item 2); the compile times, measured once each.
    ``runs_uncompiled``: our compiled build chose the uncompiled build at this size (its first
    call measured it faster), so against ours it runs the same code and that ratio is noise."""
    formats = [COMPILED.format(label) for label in FORMATS]
    if not all(name in runs for name in [*formats, OURS_COMPILED]):
        return []
    contiguous, channels_last = formats
    order = ratios(runs[contiguous], runs[channels_last])
    better = "channels_last" if statistics.median(order) >= 1 else "contiguous"
    best = runs[better_by_median(runs, formats)]
    at_least = (">= 1.0", lambda r: r >= 1.0)
    times = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
    cold = seconds[OURS_COMPILED] / min(seconds[n] for n in formats)
    return [
        row(
            f"{case}: torch.compile, channels_last against contiguous",
            "contiguous time / channels_last",
            order,
            detail=f"the better: {better}",
        ),
        row(
            f"{case}: {OURS_COMPILED} against torch.compile",
            "torch.compile time (its better format by median) / ours compiled",
            ratios(best, runs[OURS_COMPILED]),
            *at_least,
        ),
        row(
            f"{case}: {OURS_COMPILED} against ours",
            "ours (uncompiled) time / ours compiled",
            ratios(runs["ours"], runs[OURS_COMPILED]),
            ">= 1.0, or the same code",
            lambda r: r >= 1.0 or runs_uncompiled,
            "its first call chose "
            + (
                "the uncompiled build (measured faster than its compiled graph): the same code as ours,"
                " the ratio is this run's noise"
                if runs_uncompiled
                else "its compiled graph"
            ),
        ),
        row(
            f"{case}: ours against torch.compile",
            "torch.compile time (its better format by median) / ours",
            ratios(best, runs["ours"]),
        ),
        row(
            f"{case}: compile time, {OURS_COMPILED} against torch.compile",
            "ours' first call / the faster-compiling torch.compile's",
            [cold],
            detail=f"first calls, inductor's cache empty: {times}; one figure, no spread",
        ),
    ]


def case_rows(
    case: str,
    runs: dict[str, list[float]],
    seconds: dict[str, float],
    same_graph: bool | None = None,
    runs_uncompiled: bool = False,
) -> list[dict[str, Any]]:
    """Speed-ups over eager, and the comparisons the targets are about, per round."""
    rows = speedup_rows(case, runs)
    fused = better_by_median(runs, ["fx fuse + channels_last", "optimize_for_inference"])
    rows.append(
        row(
            f"{case}: ours against torch's best fused path",
            "the faster of fx fuse + channels_last and optimize_for_inference, time / ours",
            ratios(runs[fused], runs["ours"]),
            ">= 1.0",
            lambda r: r >= 1.0,
            f"the faster by median: {fused}",
        )
    )
    for other in (UNPACKED, CONTIGUOUS):
        rows.append(
            row(
                f"{case}: ours (packed, channels_last) against {other}",
                f"{other} time / ours",
                ratios(runs[other], runs["ours"]),
                ">= 1.0",
                lambda r: r >= 1.0,
                "the default layout, checked on this processor",
            )
        )
    if UNFUSED in runs:
        rows.append(
            row(
                f"{case}: ours against {UNFUSED}",
                f"{UNFUSED} time / ours",
                ratios(runs[UNFUSED], runs["ours"]),
                detail="what fusing each conv with its ReLU and residual addition gives",
            )
        )
    rows += compile_rows(case, runs, seconds, runs_uncompiled)
    if ORT_TORCH in runs:
        rows.append(
            row(
                f"{case}: resdsl export against torch.onnx.export, both in onnxruntime, the batch fixed in both",
                "torch.onnx.export's file time / resdsl export --batch N's file",
                ratios(runs[ORT_TORCH], runs[ORT_FIXED]),
                ">= 1.0, or the same optimized graph",
                lambda r: r >= 1.0 or bool(same_graph),
                "the same network and batch; "
                + {
                    True: "onnxruntime optimizes both files to the same graph (its op types, in order):"
                    " equal by construction, the ratio is this run's noise",
                    False: "onnxruntime optimizes them to different graphs",
                    None: "optimized graphs not compared",
                }[same_graph],
            )
        )
        rows.append(
            row(
                f"{case}: resdsl export (its default dynamic batch) against torch.onnx.export (the batch fixed)",
                "torch.onnx.export's file time / resdsl export's file",
                ratios(runs[ORT_TORCH], runs[ORT_OURS]),
                detail="what a dynamic batch costs in onnxruntime",
            )
        )
    return rows


def where(threads: int) -> str:
    """The processor, the instruction sets its kernels choose between, threads and load."""
    model, isa = cpu()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{model} ({os.cpu_count()} cores; {isa}), {threads} thread(s), load average {load}"


def calls_a_round(fn: Callable[[], Any]) -> int:
    """How many calls make a round of at least ``ROUND_SECONDS`` of ``fn`` (ours, the fastest
    variant or near it): a round of one 10 ms call measures the machine's interruptions more
    than the network."""
    with torch.inference_mode():
        fn()
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return max(1, math.ceil(ROUND_SECONDS / seconds))


def run_case(spec: str, batch: int, size: int, threads: int, repeat: int, compile_: bool) -> list[dict[str, Any]]:
    """One network and batch at ``threads``: every variant timed side by side, its rows."""
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    fns, seconds, notes, same, uncompiled = variants(spec, x, threads, compile_)
    calls = calls_a_round(fns["ours"])
    runs = samples({name: timed(fn, calls) for name, fn in fns.items()}, repeat)
    case = f"{spec}, batch {batch}, {size} x {size}, {threads} thread{'s' if threads > 1 else ''}"
    print(f"\n{case} ({calls} call(s) a round); max relative difference to eager: {', '.join(notes)}")
    for name, values in runs.items():
        median = statistics.median(values) / calls
        speedup = statistics.median(ratios(runs["eager"], values))
        print(f"  {name:<50} {median * 1e3:9.1f} ms   {speedup:5.2f}x")
    for name, s in seconds.items():
        print(f"  compile time (first call): {name:<40} {s:6.1f} s")
    return case_rows(case, runs, seconds, same, uncompiled)


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=None, help=f"rounds (default {FULL}; {QUICK} with --quick)")
    parser.add_argument("--threads", default="1,2", help="thread counts to run at, comma-separated (default 1,2)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled variants")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("RESDSL_BENCH_QUICK", "") not in ("", "0")
    repeat = args.repeat or (QUICK if quick else FULL)
    if not args.no_compile:
        fresh_cache()
        torch._inductor.config.freezing = True  # for torch.compile of the eager model
        warm_inductor()
    rows = []
    for n in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(n)
        print(f"torch {torch.__version__}; {where(n)}; median of {repeat} rounds{' (quick)' if quick else ''}")
        for spec, batch in CASES:
            rows += run_case(spec, batch, 224, n, repeat, compile_=not args.no_compile)
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print_rows(rows)
    write_json(args.json, "inference_speed", TITLE, rows)


if __name__ == "__main__":
    main()
