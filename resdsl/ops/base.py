"""What an op is: its parameters (:class:`P`), its description (:class:`OpDef`), the torch
constructor call a back end makes of it (:class:`Ctor`), how a merge combines its operands
(:class:`Merge`), how an op held as a parameter applies it (:class:`OwnParam`) and the refusal
its shape rule raises (:class:`ShapeError`).

Each op is defined once, in one of the modules beside this one (conv.py, norm.py, ...), with
all of these; :mod:`resdsl.ops` collects them into the table. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]  # per sample: (C, H, W) a map, (N, C) tokens, or (F,) features


def is_tokens(shape: Shape) -> bool:
    """Whether a per-sample shape is a sequence of tokens, ``N x C`` (a transformer's), not a
    ``C x H x W`` map or a feature vector."""
    return len(shape) == 2


def channels_of(shape: Shape) -> int:
    """The channels of a per-sample shape: a map's first size, the last of tokens (``N x C``),
    a vector's features."""
    return shape[-1] if is_tokens(shape) else shape[0]


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
    below: int | float | None = None  # an exclusive upper bound (a probability that may not be 1)
    range_code: str = "E213"  # the code of a value outside [minimum, maximum] or not below ``below``
    range_help: str | None = None  # the help line of that diagnostic
    default_from: str | None = None  # default is another parameter's value (pool stride = kernel)
    choices: tuple[str, ...] = ()  # the values a str parameter accepts (E213 otherwise)

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
    """A module constructor call: class name, positional and keyword arguments.

    ``runtime``: the class is resdsl's own (:mod:`resdsl.runtime.layers`, copied into the
    generated files that use it), not ``torch.nn``'s.
    """

    cls: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    runtime: bool = False


@dataclass(frozen=True)
class Merge:
    """How a multi-input op combines its operands, as Python source that both back ends write.

    ``operator``: an infix operator (``+``): ``main + other``, which may run in place
    (``x += y``) where nothing else reads the main operand. ``function``: a call instead, with
    ``{main}`` and ``{other}`` in it (``torch.cat([{other}, {main}], 1)``), and any of the op's
    arguments by name (``{radix}``: a number, or in a generated class the attribute that holds
    it); never in place.
    """

    operator: str | None = None
    function: str | None = None

    @property
    def in_place(self) -> bool:
        return self.operator is not None

    def expr(self, main: str, other: str, args: Mapping[str, str] | None = None) -> str:
        """The merge as Python source; ``args``: the source of each of the layer's arguments."""
        if self.operator is not None:
            return f"{main} {self.operator} {other}"
        assert self.function is not None
        return self.function.format(main=main, other=other, **(args or {}))

    @property
    def label(self) -> str:
        """A short picture of the merge for tables and graphs: ``+``, ``*``, ``cat``."""
        if self.operator is not None:
            return self.operator
        assert self.function is not None
        return self.function.split("(")[0].split(".")[-1]


@dataclass(frozen=True)
class OwnParam:
    """An op held as a learnable tensor of the enclosing module, not as a child module: its
    state_dict key is the layer's own name (timm's layer scale, ``blocks.0.gamma``).

    ``shape`` and ``fill`` give the tensor and its initial value from the bound arguments and
    the input channels (numbers in the checker, expressions in generated code); ``apply``
    writes the forward expression from the input's and the tensor's source, the input shape
    and the bound arguments (numbers) (``x * self.gamma.reshape(-1, 1, 1)``).
    """

    shape: Callable[[Mapping[str, Any], Any], tuple[Any, ...]]  # (arguments, input channels)
    fill: Callable[[Mapping[str, Any]], Any]
    # (input source, tensor source, input shape, arguments)
    apply: Callable[[str, str, Shape, Mapping[str, Any]], str]


@dataclass(frozen=True)
class OwnModule:
    """One attribute that an op with modules of its own sets on the enclosing module: the
    module of the table's op ``op`` with its bound arguments ``args`` built for input channels
    ``cin`` (``count``: an ``nn.ModuleList`` of that many, None: the module itself; ``present``
    false: the attribute is None), or, without ``op``, a plain value (``value``). Arguments,
    channels, count, presence and value are numbers in the checker and may be expressions in
    generated code; ``in_shape`` is the layer's per-sample input shape (which says a map)."""

    attr: str
    op: str | None
    args: Mapping[str, Any] = field(default_factory=dict)
    cin: Any = None
    in_shape: Shape = ()
    count: Any = None
    present: Any = True
    value: Any = None


@dataclass(frozen=True)
class OwnModules:
    """An op whose modules are attributes of the enclosing module, named by the op, not by the
    layer (timm's Res2Net: ``layer1.0.convs.0``, ``layer1.0.bns.0``, ``layer1.0.pool``).

    ``modules`` gives them from the bound arguments, the input shape and a subtraction (numbers in
    the checker, expressions in generated code: a ModuleList of ``scale - 1``);
    ``forward`` writes the lines of the enclosing forward that run them, from the input's
    source, the target variable, the bound arguments and a function that gives a free name for
    each local variable the lines use (only ``self``'s attributes and ``torch`` are read):
    TorchScript cannot pass modules to a function, so the loop over them is written inline.
    """

    modules: Callable[[Mapping[str, Any], Shape, Callable[[Any, int], Any]], tuple[OwnModule, ...]]
    forward: Callable[[str, str, Mapping[str, Any], Callable[[str], str]], list[str]]
    attrs: tuple[str, ...] = ()  # every attribute it may set: the block's names it takes (E206)


@dataclass(frozen=True)
class OpDef:
    """Everything resdsl knows about one primitive op."""

    name: str
    doc: str
    params: tuple[P, ...]
    shape: Callable[[Sequence[Shape], Mapping[str, Any]], Shape]
    # its module: (bound arguments, input channels or features, input shape) -> constructor call;
    # the channels may be an expression in generated code, the shape's other sizes are numbers
    torch: Callable[[Mapping[str, Any], Any, Shape], Ctor] | None
    param_count: Callable[[Shape, Shape, Mapping[str, Any]], int] = lambda i, o, a: 0
    macs: Callable[[Shape, Shape, Mapping[str, Any]], int] = lambda i, o, a: 0
    # its output channels from its bound arguments and input channels (numbers, or in generated
    # code values that compute with + - * // as numbers do)
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
    # a multi-input op: how it combines the main input with the other one (port 1, or what its
    # shortcut makes of port 1/2), e.g. Merge("+") for a residual addition
    merge: Merge | None = None
    # the language calls the op by name; False: only a form makes it (gate(...) makes mul,
    # residual(zero_pad) makes pad_channels, residual(...) is a form of its own)
    called: bool = True
    made_by: str = ""  # an op not called: the form that makes it, for the language reference
    # a merge's output channels from its operands' and its bound arguments (main, other,
    # arguments): concatenation adds them up; None keeps the main input's (addition,
    # multiplication). Like ``channels``, numbers for the checker and, in generated code,
    # values that compute with + - * // as numbers do (symbolic channel counts)
    merge_channels: Callable[[Any, Any, Mapping[str, Any]], Any] | None = None
    # an op held as a parameter of the enclosing module instead of a module of its own
    own_param: OwnParam | None = None
    # an op whose modules are attributes of the enclosing module (Res2Net's convs, bns, pool)
    own_modules: OwnModules | None = None
    # a merge whose other operand a parameter names: the output of that layer of the body
    # (radix_combine(radix, splits=act0)) instead of the unit's start, as a residual's
    # project_from names the layer its projection reads
    tap: str | None = None
    # torch's own defaults for the classes ``torch`` builds, so generated code spells out only
    # what differs: {class name: {keyword: default}}
    torch_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    normalizes: bool = False  # a normalization layer (zero_init_residual zeroes the last one's scale)
    # a composite op whose shape and costs depend on the network around it (a residual's
    # shortcut): the checker realises it (resdsl.checks.realise.REALISERS), not its shape rule
    composite: bool = False
    # its ONNX nodes: (emitter, bound arguments) -> the output tensor's name (the emitter of
    # resdsl.backends.onnx: e.x, e.inputs, e.shape, e.node, e.param, e.ints; see ops/lowering.py)
    onnx: Callable[[Any, Mapping[str, Any]], str] | None = None

    def param(self, name: str) -> P | None:
        for p in self.params:
            if p.name == name or name in p.aliases:
                return p
        return None


def fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else " x ".join(str(d) for d in shape)
