"""How much activation memory does per-stage gradient checkpointing save, and what does it cost?

The network is the deepest one shipped: ResNet-1202 for CIFAR (1202 weighted layers, 600 basic
blocks in three stages; preact_resnet1001 has 1001, the deepest ImageNet net, resnet152, 152). The
deeper the net, the more a training step keeps for backward, which is what checkpointing trades
away. One model is built with ``checkpoint=True`` (every stage, one segment per block) and run
with its ``grad_checkpointing`` switch on and off, so both variants have the same weights and the
off variant is exactly the plain forward. One training step = forward, loss, backward (gradients
already allocated, zeroed in place, so they are not counted: they are the same either way).

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


def build(spec: str, batch: int) -> tuple[nn.Module, Tensor]:
    torch.manual_seed(0)
    model = resdsl.build_model(spec, checkpoint=True).train()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    return model, torch.randn(batch, *resdsl.compile(spec).input_shape)


def step(model: nn.Module, x: Tensor) -> None:
    """One training step's forward and backward; gradients accumulate into the zeroed ones."""
    model.zero_grad(set_to_none=False)
    model(x).square().mean().backward()


def peak_bytes(model: nn.Module, x: Tensor, checkpointing: bool) -> int:
    model.grad_checkpointing = checkpointing  # type: ignore[assignment]
    existing = [x, *model.parameters(), *model.buffers(), *(p.grad for p in model.parameters() if p.grad is not None)]
    tracker = StoragePeak(existing)
    with tracker:
        step(model, x)
    return tracker.peak


def step_times(model: nn.Module, x: Tensor, repeat: int) -> dict[bool, list[float]]:
    """Seconds per step with checkpointing on and off, interleaved after one warm-up each."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    for i in range(repeat + 1):
        for checkpointing in (False, True):
            model.grad_checkpointing = checkpointing  # type: ignore[assignment]
            start = time.perf_counter()
            step(model, x)
            if i:
                samples[checkpointing].append(time.perf_counter() - start)
    return samples


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_child(spec: str, batch: int, checkpointing: bool, threads: int) -> None:
    """Run in a fresh process: print how much the peak RSS grew during one step (bytes).

    One warm-up step first (one-time costs: kernel caches, imports), then freed heap pages are
    handed back (glibc's ``malloc_trim``) and the peak is reset to the current RSS
    (``/proc/self/clear_refs``, Linux); where that cannot be done the earlier peak may hide
    part of the step's."""
    torch.set_num_threads(threads)
    model, x = build(spec, batch)
    model.grad_checkpointing = checkpointing  # type: ignore[assignment]
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


def rss_growth(spec: str, batch: int, checkpointing: bool, threads: int) -> int:
    cmd = [sys.executable, __file__, "--child", "on" if checkpointing else "off", "--spec", spec]
    cmd += ["--batch", str(batch), "--threads", str(threads)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1])["growth"])


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=None, help=f"network (default {SPEC}; {QUICK_SPEC} with --quick)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8; 2 with --quick)")
    parser.add_argument("--repeat", type=int, default=None, help="timed steps per variant (default 3; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="a small, fast smoke test")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--child", choices=["on", "off"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    spec = args.spec or (QUICK_SPEC if args.quick else SPEC)
    batch = args.batch or (2 if args.quick else 8)
    repeat = args.repeat or (1 if args.quick else 3)
    if args.child is not None:
        rss_child(spec, batch, args.child == "on", args.threads)
        return
    torch.set_num_threads(args.threads)

    model, x = build(spec, batch)
    net = resdsl.compile(spec)
    print(
        f"{spec}: {net.weighted_layers} weighted layers, batch {batch}, torch {torch.__version__}, "
        f"{args.threads} threads; checkpointed: {', '.join(_stages(net))}, one segment per block"
    )
    step(model, x)  # warm-up: kernels chosen, caches filled
    peak = {c: peak_bytes(model, x, c) for c in (False, True)}
    times = step_times(model, x, repeat)
    rss = {c: rss_growth(spec, batch, c, args.threads) for c in (False, True)}

    memory_ratio = peak[False] / peak[True]
    per_repeat = [a / b for a, b in zip(times[True], times[False], strict=True)]
    time_ratio = statistics.median(times[True]) / statistics.median(times[False])
    print(f"{'':34} {'without':>14} {'with':>14} {'ratio':>7}")
    print(f"{'step memory peak (storages)':34} {mib(peak[False]):>14} {mib(peak[True]):>14} {memory_ratio:>6.2f}x")
    rss_ratio = rss[False] / max(rss[True], 1)
    print(f"{'peak RSS growth (fresh process)':34} {mib(rss[False]):>14} {mib(rss[True]):>14} {rss_ratio:>6.2f}x")
    t_off, t_on = statistics.median(times[False]), statistics.median(times[True])
    print(f"{'step time (median of ' + str(repeat) + ')':34} {t_off:>13.2f}s {t_on:>13.2f}s {time_ratio:>6.2f}x")
    case = f"{spec}, batch {batch}"
    rows = [
        {
            "case": case,
            "measure": "activation memory ratio (without / with checkpointing)",
            "ratio": memory_ratio,
            "low": memory_ratio,
            "high": memory_ratio,
            "target": ">= 3",
            "met": memory_ratio >= 3,
            "detail": f"peak bytes allocated during one step: {mib(peak[False])} without, {mib(peak[True])} with; "
            f"peak RSS growth in a fresh process: {mib(rss[False])} without, {mib(rss[True])} with",
        },
        {
            "case": case,
            "measure": "step time ratio (with / without checkpointing)",
            "ratio": time_ratio,
            "low": min(per_repeat),
            "high": max(per_repeat),
            "target": "<= 1.5",
            "met": time_ratio <= 1.5,
            "detail": f"median step {t_off:.2f}s without, {t_on:.2f}s with, {repeat} interleaved repeats",
        },
    ]
    if args.quick:
        for row in rows:  # a smoke test on a shallower net: the figures are not the target's
            row["target"], row["met"] = None, None
    if args.json_path:
        payload = {"benchmark": "checkpoint_memory", "title": __doc__.splitlines()[0], "rows": rows}
        Path(args.json_path).write_text(json.dumps(payload, indent=2) + "\n")


def _stages(net: Any) -> list[str]:
    from resdsl.features import plan

    return list(plan(net, checkpoint=True).checkpoint)


if __name__ == "__main__":
    main()
