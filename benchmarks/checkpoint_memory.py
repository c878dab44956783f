"""How much activation memory does per-stage gradient checkpointing save, and what does it cost?

The network is the deepest one shipped: ResNet-1202 for CIFAR (1202 weighted layers, 600 basic
blocks in three stages; preact_resnet1001 has 1001, the deepest ImageNet net, resnet152, 152). The
deeper the net, the more a training step keeps for backward, which is what checkpointing trades
away. Each model is built with ``checkpoint=True`` or a list of stages (each stage of n blocks
run as about sqrt(n) segments) and the baseline is the same model with its
``grad_checkpointing`` switch off, so all variants have the same weights and the off variant is
exactly the plain forward. One more variant turns ``checkpoint_reentrant`` off, to show what the
non-reentrant checkpoint (needed for ``torch.autograd.grad``) costs. One training step =
forward, loss, backward (gradients already allocated, zeroed in place, so they are not counted:
they are the same either way).

Activation memory is measured on the CPU, where torch keeps no allocator statistics, by counting
storages: a dispatch mode sees every tensor each aten op returns (forward, backward and the
recomputation alike), adds the bytes of each storage it has not seen, and subtracts them when the
storage is freed (a weak reference); storages that existed before the step (weights, gradients,
the input) are not counted. The peak of that count over the step is the memory the step needed on
top of the model: activations kept for backward, gradients in flight, temporaries. As a cross-check
independent of that bookkeeping, each variant also runs in a fresh process that reports how much
its peak resident set size grew during the step (malloc may keep freed pages, so this is coarser).

    memory ratio = peak without checkpointing / peak with      (target >= 3)
    time ratio   = step time with / step time without          (target <= 1.5; interleaved medians)

    python benchmarks/checkpoint_memory.py [--batch 8] [--repeat 3] [--quick] [--json PATH]

--quick runs ResNet-110 at batch 2 once: a smoke test of the script, not the figure.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import resource
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import resdsl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, write_json  # noqa: E402

from resdsl.ir.features import Checkpoint  # noqa: E402

SPEC = "resnet1202"
QUICK_SPEC = "resnet110"


class StoragePeak(TorchDispatchMode):
    """Live bytes of the storages created while active, and their peak."""

    def __init__(self, existing: list[Tensor]) -> None:
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in existing}
        self.refs: dict[int, weakref.ref[Any]] = {}
        self.live = 0
        self.peak = 0

    def _freed(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self.refs.pop(key, None)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, Tensor):
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self.known or key in self.refs:
                continue
            self.refs[key] = weakref.ref(storage, lambda _, k=key, n=nbytes: self._freed(k, n))
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out


def stages(spec: str) -> list[str]:
    from resdsl.ir.features import plan

    return list(plan(resdsl.compile(spec), checkpoint=True).checkpoint)


def variants(spec: str) -> dict[str, tuple[Checkpoint, bool]]:
    """The runs compared, each (checkpoint, reentrant): none, every stage, every stage but the
    last (the deeper stages of a ResNet hold the smaller maps, so they save the least memory per
    recomputed MAC), and every stage under the non-reentrant checkpoint."""
    every = stages(spec)
    return {
        "off": (None, True),
        "all stages": (True, True),
        "all but the last": (every[:-1], True),
        "all stages, non-reentrant": (True, False),
    }


def build(spec: str, batch: int, variant: tuple[Checkpoint, bool]) -> tuple[nn.Module, Tensor]:
    """The model with gradients allocated (zeroed), and an input batch; weights from seed 0."""
    checkpoint, reentrant = variant
    torch.manual_seed(0)
    model = resdsl.build_model(spec, checkpoint=checkpoint or True).train()
    model.grad_checkpointing = bool(checkpoint)  # type: ignore[assignment]
    model.checkpoint_reentrant = reentrant  # type: ignore[assignment]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    return model, torch.randn(batch, *resdsl.compile(spec).input_shape)


def step(model: nn.Module, x: Tensor) -> None:
    """One training step's forward and backward; gradients accumulate into the zeroed ones."""
    model.zero_grad(set_to_none=False)
    model(x).square().mean().backward()


def peak_bytes(model: nn.Module, x: Tensor) -> int:
    existing = [x, *model.parameters(), *model.buffers(), *(p.grad for p in model.parameters() if p.grad is not None)]
    tracker = StoragePeak(existing)
    with tracker:
        step(model, x)
    return tracker.peak


def step_times(models: dict[str, nn.Module], x: Tensor, repeat: int) -> dict[str, list[float]]:
    """Seconds per step of each model, interleaved (one round of warm-up)."""
    samples: dict[str, list[float]] = {name: [] for name in models}
    for i in range(repeat + 1):
        for name, model in models.items():
            start = time.perf_counter()
            step(model, x)
            if i:
                samples[name].append(time.perf_counter() - start)
    return samples


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_child(spec: str, batch: int, variant: str, threads: int) -> None:
    """Run in a fresh process: print how much the peak RSS grew during one step (bytes).

    One warm-up step first (one-time costs: kernel caches, imports), then freed heap pages are
    handed back (glibc's ``malloc_trim``) and the peak is reset to the current RSS
    (``/proc/self/clear_refs``, Linux); where that cannot be done the earlier peak may hide
    part of the step's."""
    torch.set_num_threads(threads)
    model, x = build(spec, batch, variants(spec)[variant])
    step(model, x)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before, peak = _status_kib("VmRSS"), lambda: _status_kib("VmHWM")
    except OSError:
        before, peak = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        )
    step(model, x)
    print(json.dumps({"growth": (peak() - before) * 1024}))  # KiB on Linux


def rss_growth(spec: str, batch: int, variant: str, threads: int) -> int:
    cmd = [sys.executable, __file__, "--child", variant, "--spec", spec]
    cmd += ["--batch", str(batch), "--threads", str(threads)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1])["growth"])


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--spec", default=None, help=f"network (default {SPEC}; {QUICK_SPEC} with --quick)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8; 2 with --quick)")
    parser.add_argument("--repeat", type=int, default=None, help="timed steps per variant (default 10; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    spec = args.spec or (QUICK_SPEC if args.quick else SPEC)
    batch = args.batch or (2 if args.quick else 8)
    repeat = args.repeat or (1 if args.quick else 10)
    if args.child is not None:
        rss_child(spec, batch, args.child, args.threads)
        return
    torch.set_num_threads(args.threads)

    runs = variants(spec)
    net = resdsl.compile(spec)
    models: dict[str, nn.Module] = {}
    for name, variant in runs.items():
        models[name], x = build(spec, batch, variant)
        models[name].load_state_dict(models["off"].state_dict())
    print(
        f"{spec}: {net.weighted_layers} weighted layers, batch {batch}, torch {torch.__version__}, "
        f"{args.threads} threads; each checkpointed stage of n blocks runs as about sqrt(n) segments"
    )
    for model in models.values():
        step(model, x)  # warm-up: kernels chosen, caches filled
    peak = {name: peak_bytes(model, x) for name, model in models.items()}
    times = step_times(models, x, repeat)
    rss = {name: rss_growth(spec, batch, name, args.threads) for name in runs}

    print(f"{'checkpointed':44} {'step memory peak':>17} {'peak RSS growth':>16} {'step time':>10} {'time ratio':>11}")
    rows = []
    for name, (checkpoint, reentrant) in runs.items():
        stages_run = "none" if not checkpoint else ", ".join(stages(spec) if checkpoint is True else checkpoint)
        label = stages_run if reentrant else f"{stages_run}, non-reentrant"
        per_repeat = [a / b for a, b in zip(times[name], times["off"], strict=True)]
        ratio = statistics.median(per_repeat)
        t = statistics.median(times[name])
        memory = peak["off"] / peak[name]
        print(
            f"{label:44} {mib(peak[name]):>17} {mib(rss[name]):>16} {t:>9.2f}s {ratio:>10.2f}x"
            + ("" if name == "off" else f"   ({memory:.2f}x less memory)")
        )
        if name == "off":
            continue
        case = f"{spec}, batch {batch}, checkpoint {name} ({stages_run})"
        rows += [
            {
                "case": case,
                "measure": "activation memory ratio (without / with checkpointing)",
                "ratio": memory,
                "low": memory,
                "high": memory,
                "target": ">= 3",
                "met": memory >= 3,
                "detail": f"peak bytes allocated during one step: {mib(peak['off'])} without, {mib(peak[name])} "
                f"with; peak RSS growth in a fresh process: {mib(rss['off'])} without, {mib(rss[name])} with "
                f"({rss['off'] / max(rss[name], 1):.2f}x)",
            },
            {
                "case": case,
                "measure": "step time ratio (with / without checkpointing)",
                "ratio": ratio,
                "low": min(per_repeat),
                "high": max(per_repeat),
                "target": "<= 1.5",
                "met": ratio <= 1.5,
                "detail": f"median step {statistics.median(times['off']):.2f}s without, {t:.2f}s with; "
                f"median of {repeat} interleaved pairs",
            },
        ]
        if not reentrant:  # for comparison: the opt-out that torch.autograd.grad needs
            rows[-1]["target"], rows[-1]["met"] = None, None
    if args.quick:
        for row in rows:  # a smoke test on a shallower net: the figures are not the target's
            row["target"], row["met"] = None, None
    write_json(args.json, "checkpoint_memory", __doc__.splitlines()[0], rows)


if __name__ == "__main__":
    main()
