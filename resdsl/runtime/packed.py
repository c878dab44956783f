"""Convolutions with their weights reordered once, for the inference build on CPU.

An eager ``nn.Conv2d`` hands oneDNN its weight in PyTorch's layout, and oneDNN reorders it
into its own blocked layout on every call; for a folded inference model, whose weights never
change, that reorder is most of what ``torch.jit.optimize_for_inference`` saves (measured in
benchmarks/inference_speed.py). :func:`pack_convolutions` swaps each ``nn.Conv2d`` of a float32
CPU model for a :class:`PackedConv2d` that keeps its parameters (same ``state_dict``) and runs
on the weight reordered once for each input size it sees, and fuses the convs with the ReLUs
and residual additions after them (:mod:`resdsl.runtime.fusion`). Where oneDNN is missing,
or for another dtype, device or autograd, it is the plain conv. Generated inference modules
carry the part below the marker (it imports only torch), with what the inference build's
``compile=True`` runs: :func:`missing_compiler`, asked first, and :func:`compile_frozen`.
"""

# no "from __future__ import annotations": TorchScript reads the class annotations below as types

import os
import shutil
import time
from typing import Any, Final

import torch
from torch import Tensor, nn

from resdsl.runtime.fusion import fuse_convolutions

__all__ = ["PackedConv2d", "compile_frozen", "missing_compiler", "pack_convolutions", "packing_available"]


# --- copied into generated inference modules from here ---


def missing_compiler() -> str | None:
    """Why ``compile=True`` cannot work here, or None. Inductor writes C++ for the CPU and builds
    it with the system's compiler (``$CXX``, else ``c++``, ``g++`` or ``clang++``): without one
    the first call would fail deep inside torch, so a build asks this first."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    if any(shutil.which(name) for name in names):
        return None
    return f"compile=True needs a C++ compiler, and none of {', '.join(names)} is on PATH"


def compile_frozen(model: nn.Module) -> None:
    """Compile ``model``'s forward in place with inductor under freezing (its weights become
    constants of the graph: batchnorm folded, conv weights prepacked for oneDNN, conv+relu and
    conv+add+relu fused), and run, for each float32 input size, the faster of that graph and
    the uncompiled build (:class:`CompiledCall`). The module, its class and its state_dict
    stay; it compiles on its first call, for that call's input shape. Freezing is read while
    dynamo traces, not only while inductor compiles, so ``torch.compile(options={"freezing":
    True})`` leaves it off (torch 2.13: the graph keeps its batchnorms and aten convs); each
    call here runs under ``torch._inductor.config.patch`` instead, so a recompile for a new
    shape freezes too. oneDNN's weight packing takes no float64, and once a float32 graph was
    frozen in the process torch 2.13 packs every frozen conv's weight, so a float64 call is
    compiled without freezing (weights stay inputs of the graph). A frozen graph reads the
    weights once: a weight edited afterwards is not seen."""
    model._compiled_call_impl = CompiledCall(model)  # what nn.Module.compile sets: __call__ runs it


CHOICE_ROUNDS: Final[int] = 5  # samples of each path compile=True chooses between, interleaved
SAMPLE_SECONDS: Final[float] = 0.05  # a sample's length: short calls are repeated up to it


def _seconds(run: Any, x: Tensor, calls: int) -> float:
    """Seconds a call of ``run(x)``, over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        run(x)
    return (time.perf_counter() - start) / calls


class CompiledCall:
    """What ``model(x)`` runs with ``compile=True``. On the first call for each float32 CPU input
    size (and thread count) it compiles, then times inductor's graph against the uncompiled
    build (its packed and fused convs, or its own forward), each path's best of
    ``CHOICE_ROUNDS`` interleaved samples of about ``SAMPLE_SECONDS`` after a warm-up (about
    4 s more at ResNet-50 batch 8 on 1 core, beside 11 s of compiling), and keeps the faster
    for that size: inductor compiles the same folded graph torch.compile of the eager model
    does, and where its kernels lose to oneDNN's packed and fused convs on this processor
    (ResNet-18 at batch 1, say) the build runs those. The times are ``model.resdsl_compiled``.
    Other inputs (float64, gradients) run the compiled graph."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.uncompiled = model._compiled_call_impl or model._call_impl  # fused, where it fuses
        self.compiled: Any = None  # torch.compile's function, made on first use (also after a copy)
        self.chosen: dict[str, bool] = {}  # input size and threads -> whether the compiled graph is faster
        self.times: dict[str, dict[str, float]] = {}  # input size and threads -> the two best times
        model.resdsl_compiled = self.times  # type: ignore[assignment]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        x = args[0] if len(args) == 1 and not kwargs else None
        if not isinstance(x, Tensor) or x.dtype != torch.float32 or x.device.type != "cpu" or x.requires_grad:
            return self.run_compiled(*args, **kwargs)
        key = f"{list(x.shape)}, {torch.get_num_threads()} threads"
        if key not in self.chosen:
            self.chosen[key] = self.choose(key, x)
        return self.run_compiled(x) if self.chosen[key] else self.uncompiled(x)

    def run_compiled(self, *args: Any, **kwargs: Any) -> Any:
        import torch._inductor.config as inductor_config

        if self.compiled is None:
            self.compiled = torch.compile(self.model._call_impl)
        doubles = any(isinstance(a, Tensor) and a.dtype == torch.float64 for a in args)
        with inductor_config.patch(freezing=not doubles):
            return self.compiled(*args, **kwargs)

    def choose(self, key: str, x: Tensor) -> bool:
        """Whether the compiled graph is the faster at ``x``'s size; records both times (each
        path's best of ``CHOICE_ROUNDS`` samples, interleaved, in seconds a call)."""
        runs = {"compiled": self.run_compiled, "uncompiled": self.uncompiled}
        for run in runs.values():  # the first call of each compiles, packs and builds oneDNN's kernels
            run(x)
        best = {name: _seconds(run, x, 1) for name, run in runs.items()}
        calls = max(1, round(SAMPLE_SECONDS / min(best.values())))  # small inputs: a sample of several calls
        names = list(runs)
        for i in range(CHOICE_ROUNDS):
            for name in names if i % 2 else names[::-1]:  # neither always first
                best[name] = min(best[name], _seconds(runs[name], x, calls))
        self.times[key] = best
        compiled = best["compiled"] <= best["uncompiled"]
        if compiled:  # the packed weights for this size are not needed
            for conv in self.model.modules():
                if isinstance(conv, PackedConv2d):
                    conv.packs.pop(str(x.size()), None)
        return compiled

    def __getstate__(self) -> dict[str, Any]:
        # torch.compile's function neither copies nor pickles: a copy compiles and chooses again
        return {**self.__dict__, "compiled": None, "chosen": {}, "times": self.model.resdsl_compiled}


def packing_available() -> bool:
    """Whether this torch has oneDNN and the convolution ops that take a packed weight."""
    mkldnn = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_convolution_pointwise")
        and hasattr(mkldnn, "_reorder_convolution_weight")
    )


class PackedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that also holds its weight in oneDNN's layout, packed on its first call
    for each input size (the layout oneDNN picks depends on it: a weight packed for batch 1 is
    reordered again on every call at batch 8), for the last ``MAX_PACKED`` sizes. Not in the
    state_dict; ``load_state_dict`` drops them, to be packed again. ``packing`` False: the
    plain weight, as ``nn.Conv2d``."""

    MAX_PACKED: Final[int] = 4  # input sizes a conv keeps a packed weight for; a fifth replaces the oldest
    packs: dict[str, Tensor]
    packing: bool

    def weight_for(self, x: Tensor) -> Tensor:
        """The weight to run ``x`` with: packed for ``x``'s size, or the plain one."""
        if not self.packing:
            return self.weight
        size = x.size()
        key = str(size)
        packed = self.packs.get(key)
        if packed is None:
            if len(self.packs) >= self.MAX_PACKED:
                self.packs.pop(list(self.packs.keys())[0])  # noqa: RUF015  # TorchScript has no iter()
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight.detach().contiguous(memory_format=torch.channels_last),
                list(self.padding),  # type: ignore[arg-type]
                list(self.stride),
                list(self.dilation),
                self.groups,
                size,
            )
            self.packs[key] = packed
        return packed

    def forward(self, x: Tensor) -> Tensor:
        plain = x.dtype == torch.float32 and x.device.type == "cpu" and not x.requires_grad
        if self.packing and plain and self.weight.dtype == torch.float32 and not torch.compiler.is_compiling():
            return torch.ops.mkldnn._convolution_pointwise(
                x,
                self.weight_for(x),
                self.bias,
                list(self.padding),  # type: ignore[arg-type]
                list(self.stride),
                list(self.dilation),
                self.groups,
                "none",
                [],
                "",
            )
        return self._conv_forward(x, self.weight, self.bias)

    def __getstate__(self) -> dict[str, Any]:
        # oneDNN's tensors have no storage to copy or pickle: drop them, to be packed again on use
        return {**self.__dict__, "packs": {}}

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.packs = {}  # new weights: pack them again


def _packable(m: nn.Module) -> bool:
    """A plain float32 CPU conv with values (not on the meta device) that pads with zeros,
    the only padding oneDNN's conv has."""
    if type(m) is not nn.Conv2d:
        return False
    w = m.weight
    plain_padding = m.padding_mode == "zeros" and not isinstance(m.padding, str)
    return w.dtype == torch.float32 and w.device.type == "cpu" and not w.is_meta and plain_padding


def pack_convolutions(model: nn.Module, input_shape: tuple[int, ...], measure: bool = True) -> int:
    """Make every plain float32 ``nn.Conv2d`` of ``model`` (in place) a :class:`PackedConv2d`,
    and fuse the convs with the ReLUs and additions after them
    (:func:`~resdsl.runtime.fusion.fuse_convolutions`); returns how many convs pack. Nothing
    happens where oneDNN's ops are missing. ``measure``: keep the packing only where a
    forward at batch 1 with inputs of ``input_shape`` (C x H x W) is faster with it on this
    processor (:func:`packing_pays`), and otherwise put the plain convs back (still fused);
    ``model.resdsl_packing`` says what was chosen and the two times."""
    convs = [m for m in model.modules() if _packable(m)]
    if not convs or len(input_shape) != 3 or not packing_available():
        return 0
    for conv in convs:
        conv.__class__ = PackedConv2d  # same parameters and attributes; a forward that uses the packed weight
        conv.packs, conv.packing = {}, True  # type: ignore[assignment]
    fuse_convolutions(model)
    if measure:
        times = packing_pays(model, input_shape, convs)  # type: ignore[arg-type]
        model.resdsl_packing = times  # type: ignore[assignment]
        if times["packed"] > times["plain"]:
            for conv in convs:
                unpack(conv)
            return 0
    return len(convs)


def packing_pays(
    model: nn.Module, input_shape: tuple[int, ...], convs: list[PackedConv2d], rounds: int = 3
) -> dict[str, float]:
    """The best of ``rounds`` batch-1 forwards of ``model`` with its convs' packed weights and
    with the plain ones (interleaved, after a warm-up of each: oneDNN builds its kernels and
    the convs pack on first use), in seconds. Which is faster depends on the processor (its
    ISA and the kernels oneDNN picks there), so the inference build measures rather than assumes."""
    x = torch.zeros(1, *input_shape).contiguous(memory_format=torch.channels_last)

    def run(on: bool) -> float:
        for conv in convs:
            conv.packing = on
        start = time.perf_counter()
        model(x)
        return time.perf_counter() - start

    best = {"packed": float("inf"), "plain": float("inf")}
    with torch.inference_mode():
        run(True)
        run(False)
        for _ in range(rounds):
            best["packed"] = min(best["packed"], run(True))
            best["plain"] = min(best["plain"], run(False))
    for conv in convs:
        conv.packing = True
    return best


def unpack(conv: nn.Module) -> None:
    """``conv`` a plain ``nn.Conv2d`` again (its parameters untouched)."""
    del conv.packs, conv.packing
    conv.__class__ = nn.Conv2d  # type: ignore[assignment]
