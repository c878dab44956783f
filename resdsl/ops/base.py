"""What an op is: its parameters (:class:`P`), its description (:class:`OpDef`), the torch
constructor call a back end makes of it (:class:`Ctor`) and the refusal its shape rule raises
(:class:`ShapeError`). The table of ops itself is resdsl/ops.py. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]  # per sample: (C, H, W) or (F,)

REQUIRED: Any = object()


@dataclass(frozen=True)
class P:
    """One parameter of an op: its name, type, default and accepted aliases."""

    name: str
    type: str  # int | float | bool | str | shortcut | name
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None
    default_from: str | None = None  # default is another parameter's value (pool stride = kernel)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.default_from is None


class ShapeError(Exception):
    """A shape rule's refusal; the checker turns it into a diagnostic at the layer's span.

    ``recovered`` is the output shape the layer would have were the mistake fixed, when that
    is clear (a residual keeps its main branch's shape): checking goes on from it, so later
    mistakes are reported in the same run instead of being hidden.
    """

    def __init__(
        self,
        code: str,
        message: str,
        notes: Sequence[str] = (),
        help: str | None = None,
        recovered: Shape | None = None,
        fixes: Sequence[Any] = (),
        related: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.notes, self.help = code, message, tuple(notes), help
        self.recovered = recovered
        self.fixes = tuple(fixes)  # resdsl.diagnostics.fixes.Fix values: mechanical repairs
        self.related = tuple(related)  # resdsl.diagnostics.Related values: places that explain it


@dataclass(frozen=True)
class Ctor:
    """A ``torch.nn`` constructor call: class name, positional and keyword arguments."""

    cls: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


# torch's own defaults, so generated code spells out only what differs.
TORCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "Conv2d": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "BatchNorm2d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "BatchNorm1d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "MaxPool2d": {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False},
    "AvgPool2d": {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True},
    "Linear": {"bias": True},
    "Dropout": {"p": 0.5, "inplace": False},
    "ReLU": {"inplace": False},
    "SiLU": {"inplace": False},
    "LeakyReLU": {"negative_slope": 0.01, "inplace": False},
    "GELU": {"approximate": "none"},
    "GroupNorm": {"eps": 1e-5, "affine": True},
}


@dataclass(frozen=True)
class OpDef:
    """Everything resdsl knows about one primitive op."""

    name: str
    doc: str
    params: tuple[P, ...]
    shape: Callable[[Sequence[Shape], Mapping[str, Any]], Shape]
    torch: Callable[[Mapping[str, Any], Any, int], Ctor] | None
    param_count: Callable[[Shape, Shape, Mapping[str, Any]], int] = lambda i, o, a: 0
    macs: Callable[[Shape, Shape, Mapping[str, Any]], int] = lambda i, o, a: 0
    channels: Callable[[Mapping[str, Any], Any], Any] = lambda a, cin: cin
    stride: Callable[[Mapping[str, Any]], Any] = lambda a: 1
    stateful: bool = False  # has parameters or buffers: never shared between call sites
    weighted: bool = False  # counts towards the paper's "N-layer" depth
    flatten_input: bool = False  # the back ends flatten a spatial input first
    can_inplace: bool = False  # an elementwise activation that may overwrite its input
    # backward reads this op's output (relu, sigmoid...): nothing may overwrite it in place
    output_saved: bool = False
    returns_input: bool = False  # may return its input itself or a view of it (identity, flatten)
    example: str = ""  # a typical call, for help texts
    # a multi-input op: its Python operator combining the main input with the other one
    # (port 1, or what its shortcut makes of port 1/2), e.g. "+" for a residual addition
    merge: str | None = None
    normalizes: bool = False  # a normalization layer (zero_init_residual zeroes the last one's scale)
    # a composite op whose shape and costs depend on the network around it (a residual's
    # shortcut): the checker realises it (resdsl.checks.realise.REALISERS), not its shape rule
    composite: bool = False
    # its ONNX nodes: (emitter, bound arguments) -> the output tensor's name (resdsl/ops/onnx.py)
    onnx: Callable[[Any, Mapping[str, Any]], str] | None = None

    def param(self, name: str) -> P | None:
        for p in self.params:
            if p.name == name or name in p.aliases:
                return p
        return None
