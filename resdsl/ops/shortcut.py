"""Shortcut kinds and how a residual's shortcut is realised from two shapes (pure rules).

The paper's options are first class: identity, zero_pad (A), projection (B), projection_all
(C), avgpool_projection (ResNet-D) and none (a plain network). :func:`realise_shortcut` decides
what a kind does to the shortcut's input so it can be added to the main branch; the checker
calls it through the residual's op-table entry (:mod:`resdsl.checks.realise`).

What a realised :class:`Shortcut` is made of is said once, by :meth:`Shortcut.steps`: ops of
the table with their bound arguments, each at its place in the shortcut's module. The checker
counts its parameters and MACs from them, ``build_model`` builds its modules from them and the
ONNX back end emits their nodes, each through the op's own definition, so no back end decides
anything by kind. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from resdsl.ops import OPS, Shape, ShapeError, fmt_shape

SHORTCUT_KINDS = (
    "identity",
    "zero_pad",
    "projection",
    "projection_all",
    "avgpool_projection",
    "identity_if_same",
    "none",
)
PROJECTING = ("projection", "projection_all", "avgpool_projection")
# What each kind does, in a sentence (editor hovers and completions show it).
SHORTCUT_DOCS = {
    "identity": "adds the block input unchanged; the shapes must already agree",
    "zero_pad": "option A: subsamples the input by the stride and pads the new channels with zeros (no parameters)",
    "projection": "option B: a 1x1 conv (+ norm) only where the shape changes, identity elsewhere",
    "projection_all": "option C: a 1x1 conv (+ norm) on every shortcut, even where the shape is kept",
    "avgpool_projection": "ResNet-D: average pooling for the stride, then a 1x1 conv (+ norm), where the shape changes",
    "identity_if_same": "adds the block input unchanged where the shapes agree, and nothing where they do not "
    "(timm's has_skip: MobileNet's and EfficientNet's inverted residuals)",
    "none": "no addition: the block is a plain stack of layers (the paper's plain networks)",
}
SHORTCUT_HELP = "use shortcut=projection (option B) or zero_pad (option A) where channels or stride change"


@dataclass(frozen=True)
class ShortcutStep:
    """One module of a realised shortcut: an op of the table with its bound arguments (every
    parameter, defaults filled in), its per-sample input and output shapes, and its index in
    the shortcut's ``nn.Sequential`` (``downsample.0``, ``downsample.1``), or None where the
    step is the shortcut's module itself (option A's one ``pad_channels``)."""

    op: str
    args: Mapping[str, Any]
    in_shape: Shape
    out_shape: Shape
    index: int | None
    name: str | None = None  # its module name where the residual names the steps (step_names=)

    @property
    def key(self) -> str | None:
        """Its module name in the shortcut's module: ``name``, else its index (None: the module itself)."""
        return self.name if self.name is not None else None if self.index is None else str(self.index)

    def params(self) -> int:
        return OPS[self.op].param_count(self.in_shape, self.out_shape, self.args)

    def macs(self) -> int:
        return OPS[self.op].macs(self.in_shape, self.out_shape, self.args)


@dataclass(frozen=True)
class Shortcut:
    """How a residual's shortcut is realised once both shapes are known."""

    kind: str  # identity | zero_pad | projection | avgpool_projection | none (identity_if_same, shapes differ)
    stride: int
    in_channels: int
    out_channels: int
    norm: bool = True  # projections: a norm after the 1x1 conv (pre-activation nets have none)
    norm_op: str = "batchnorm"  # which op that norm is (its arguments in norm_args)
    norm_args: tuple[tuple[str, Any], ...] = ()
    bias: bool = False  # projections: the 1x1 conv has a bias (inference builds fold the norm into it)
    add_into: bool = False  # zero_pad, inference builds: add into the first channels, no padded copy
    step_names: tuple[str, ...] = ()  # the steps' module names (step_names=), else they are numbered
    in_size: Shape = field(default=())  # the shortcut input's map (H, W): its shape is (in_channels, *in_size)

    @property
    def params(self) -> int:
        """The parameters of its steps (a projection's 1x1 conv, its bias and its norm's)."""
        return sum(step.params() for step in self.steps())

    @property
    def macs(self) -> int:
        """The multiply-accumulates of its steps (a projection's 1x1 conv)."""
        return sum(step.macs() for step in self.steps())

    @property
    def adds(self) -> bool:
        """Whether the residual adds anything: ``identity_if_same`` realised where the shapes
        differ is no addition, the main branch passing on alone."""
        return self.kind != "none"

    @property
    def projects(self) -> bool:
        return self.kind in PROJECTING

    @property
    def norm_attrs(self) -> dict[str, Any]:
        """The norm layer's arguments, defaults filled in."""
        return _bound(self.norm_op, dict(self.norm_args))

    def steps(self) -> tuple[ShortcutStep, ...]:
        """What the shortcut is made of, in order; empty: its input is added as it is.

        zero_pad is one ``pad_channels`` (the shortcut's module itself); a projection is an
        ``nn.Sequential`` of a 1x1 ``conv`` (with a bias in an inference build, whose norm is
        folded into it) and its norm; ResNet-D's avgpool_projection pools first (``avgpool``
        at index 0, an ``identity`` there where the stride is 1, so the conv stays at index 1).
        Each step's output shape comes from its op's shape rule, which may raise ShapeError
        (a projection of a vector input: E307).
        """
        calls: list[tuple[str, dict[str, Any], int | None]]
        if self.kind == "zero_pad":
            calls = [("pad_channels", {"s": self.stride, "extra": self.out_channels - self.in_channels}, None)]
        elif self.projects:
            calls = list(self._projection())
        else:  # identity, none: nothing maps the input
            return ()
        shape: Shape = (self.in_channels, *self.in_size)
        steps = []
        names = self.step_names if len(self.step_names) == len(calls) else ()
        for k, (op, given, index) in enumerate(calls):
            args = _bound(op, given)
            out = OPS[op].shape([shape], args)
            steps.append(ShortcutStep(op, args, shape, out, index, names[k] if names else None))
            shape = out
        return tuple(steps)

    def _projection(self) -> list[tuple[str, dict[str, Any], int]]:
        calls: list[tuple[str, dict[str, Any], int]] = []
        stride = self.stride
        if self.kind == "avgpool_projection":  # pool first, so that the 1x1 conv sees every position
            pool = {"k": stride, "s": stride, "p": 0, "ceil": True, "count_include_pad": False}
            calls.append(("avgpool", pool, 0) if stride > 1 else ("identity", {}, 0))
            stride = 1
        conv = {"out": self.out_channels, "k": 1, "s": stride, "bias": self.bias}
        calls.append(("conv", conv, len(calls)))
        if self.norm:
            calls.append((self.norm_op, dict(self.norm_args), len(calls)))
        return calls


def _bound(op: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` for ``op``, with the defaults of the parameters not given filled in (one
    that defaults to another parameter, as a pool's stride to its window, takes its value)."""
    args = dict(given)
    for p in OPS[op].params:
        if p.name not in args and not p.required:
            args[p.name] = p.default if p.default_from is None else args.get(p.default_from)
    return args


def infer_stride(src: Shape, dst: Shape) -> int | None:
    if len(src) != 3:
        return 1 if src[1:] == dst[1:] else None
    for s in {max(src[1] // max(dst[1], 1), 1), max(src[1] // max(dst[1], 1), 1) + 1}:
        if -(-src[1] // s) == dst[1] and -(-src[2] // s) == dst[2]:
            return s
    return None


def realise_shortcut(
    kind: str, main: Shape, src: Shape, norm: Any = True, stride: int | None = None, changes: bool | None = None
) -> Shortcut:
    """Decide what a shortcut of ``kind`` does to ``src`` so it can be added to ``main``.

    ``changes`` says whether the block changes the shape (its input against ``main``); it
    differs from ``src != main`` when ``src`` is a ``project_from`` tap that already has the
    main branch's shape: the projection is then a 1x1 conv that keeps the shape.
    """
    same = main == src if changes is None else not changes
    if kind == "identity_if_same":  # timm's has_skip: an addition only where nothing would map the input
        if same and main == src:
            return Shortcut("identity", 1, src[0], main[0], in_size=src[1:])
        return Shortcut("none", infer_stride(src, main) or 1, src[0], main[0], in_size=src[1:])
    mismatch = [f"main branch  {fmt_shape(main)}", f"shortcut     {fmt_shape(src)}   ({kind})"]
    if len(main) != len(src):
        raise ShapeError("E301", "residual addition: shapes differ", mismatch, help="both branches must keep C x H x W")
    if kind == "identity" or (same and kind in ("zero_pad", "projection", "avgpool_projection")):
        if main != src:
            raise ShapeError("E301", "residual addition: shapes differ", mismatch, help=SHORTCUT_HELP)
        # the norm a class may still need
        return _with_norm(Shortcut("identity", 1, src[0], main[0], in_size=src[1:]), norm)
    # the main branch's own stride when it explains the shapes; else the smallest stride that does
    if not (stride and len(src) == 3 and -(-src[1] // stride) == main[1] and -(-src[2] // stride) == main[2]):
        stride = infer_stride(src, main)
    if stride is None:
        raise ShapeError(
            "E306",
            f"{kind} shortcut cannot map {fmt_shape(src)} onto {fmt_shape(main)}: no whole stride fits",
            mismatch,
            help="the main branch must keep the map or shrink it by a whole stride (check its padding)",
        )
    if kind == "zero_pad" and main[0] < src[0]:
        raise ShapeError(
            "E306",
            f"zero_pad shortcut cannot reduce channels from {src[0]} to {main[0]}",
            mismatch,
            help="use shortcut=projection to change channels downwards",
        )
    realised = "projection" if kind == "projection_all" else kind
    return _checked(_with_norm(Shortcut(realised, stride, src[0], main[0], in_size=src[1:]), norm))


def _checked(shortcut: Shortcut) -> Shortcut:
    """``shortcut``, once its steps' own shape rules accept their inputs: a 1x1 conv or zero
    channels need a map (E307 on a vector), a groupnorm its channels in whole groups (E302)."""
    try:
        shortcut.steps()
    except ShapeError as exc:
        help = exc.help
        if exc.code == "E307":
            help = "a shortcut that maps its input needs a C x H x W map: put the residual before flatten"
        raise ShapeError(exc.code, f"the {shortcut.kind} shortcut's {exc.message}", exc.notes, help) from None
    return shortcut


def _with_norm(shortcut: Shortcut, norm: Any) -> Shortcut:
    """``norm`` is true/false, or (op name, bound arguments) of a normalization layer."""
    if isinstance(norm, bool):
        return replace(shortcut, norm=norm)
    op, args = norm
    return replace(shortcut, norm=True, norm_op=op, norm_args=tuple(sorted(args.items())))
