"""The op table: every primitive op described once.

Each :class:`OpDef` says what parameters the op takes (names, types, defaults), how it maps
an input shape to an output shape (raising :class:`ShapeError` with a stable code when it
cannot), how many parameters and multiply-accumulates it costs, which ``torch.nn``
constructor realises it and which ONNX nodes express it. Elaboration binds arguments with it,
the checker runs its shape rule, the summary adds up its costs, and the back ends build
modules and graphs from it, so a new primitive is one entry here. Nothing in this module
imports torch or onnx.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resdsl.ops import onnx as ops_onnx
from resdsl.ops.base import REQUIRED, TORCH_DEFAULTS, Ctor, OpDef, P, Shape, ShapeError

__all__ = ["OPS", "REQUIRED", "TORCH_DEFAULTS", "Ctor", "OpDef", "P", "Shape", "ShapeError", "fmt_shape", "register"]


# -- shape helpers ------------------------------------------------------------------------


def fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else " x ".join(str(d) for d in shape)


def _spatial(op: str, ins: Sequence[Shape]) -> Shape:
    (shape,) = ins
    if len(shape) != 3:
        raise ShapeError(
            "E307",
            f"{op} needs a C x H x W input, got {fmt_shape(shape)}",
            help="spatial ops must come before flatten/linear",
        )
    return shape


def _window(op: str, size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, axis: str) -> int:
    """Output size along one axis, by torch's own formula (floor, or ceil for ceil_mode)."""
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # torch: the last window must start inside the input
        out -= 1
    if out <= 0:
        if span > size + 2 * p:
            message = f"{op} window {span} is larger than the padded input {axis} {size + 2 * p}"
        else:
            message = f"{op} reduces the {axis} to {out}"
        raise ShapeError(
            "E303", message, help="reduce the kernel or stride, add padding, or feed a larger input (--input)"
        )
    return out


def _conv_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c, h, w = _spatial("conv", ins)
    groups, out = a["groups"], a["out"]
    k, s, p, d = a["k"], a["s"], a["p"], a["d"]
    shape = (out, _window("conv", h, k, s, p, d, False, "height"), _window("conv", w, k, s, p, d, False, "width"))
    if a.get("in_channels") is not None and a["in_channels"] != c:
        raise ShapeError(
            "E305",
            f"conv expects {a['in_channels']} input channels, the input has {c}",
            help="drop in_channels= to infer it from the input",
            recovered=shape,
        )
    if c % groups or out % groups:
        bad = c if c % groups else out
        which = "input" if c % groups else "output"
        raise ShapeError(
            "E302",
            f"conv {which} channels {bad} are not divisible by groups={groups}",
            notes=[f"input {fmt_shape((c, h, w))}, output channels {out}"],
            help="choose groups that divide both channel counts",
            recovered=shape,
        )
    return shape


def _conv_params(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    return o[0] * (i[0] // a["groups"]) * a["k"] * a["k"] + (o[0] if a["bias"] else 0)


def _conv_macs(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    return o[0] * o[1] * o[2] * (i[0] // a["groups"]) * a["k"] * a["k"]


def _conv_torch(a: Mapping[str, Any], cin: Any, rank: int) -> Ctor:
    return Ctor(
        "Conv2d",
        (cin, a["out"]),
        {
            "kernel_size": a["k"],
            "stride": a["s"],
            "padding": a["p"],
            "dilation": a["d"],
            "groups": a["groups"],
            "bias": a["bias"],
        },
    )


def _pool_shape(op: str) -> Callable[[Sequence[Shape], Mapping[str, Any]], Shape]:
    def rule(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
        c, h, w = _spatial(op, ins)
        k, s, p, ceil = a["k"], a["s"], a["p"], a["ceil"]
        if p * 2 > k:
            raise ShapeError("E303", f"{op} padding {p} is more than half the window {k}", help="torch refuses this")
        return (c, _window(op, h, k, s, p, 1, ceil, "height"), _window(op, w, k, s, p, 1, ceil, "width"))

    return rule


def _same(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    return ins[0]


def _bn_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    if len(ins[0]) not in (1, 3):
        raise ShapeError("E307", f"batchnorm needs a C x H x W or a vector input, got {fmt_shape(ins[0])}")
    return ins[0]


def _linear_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    features = math.prod(ins[0])
    if a.get("in_features") is not None and a["in_features"] != features:
        raise ShapeError(
            "E304",
            f"linear expects {a['in_features']} input features, the input {fmt_shape(ins[0])} has {features}",
            help="drop in_features= to infer it, or add global_avgpool() before the linear layer",
            recovered=(a["out"],),
        )
    return (a["out"],)


def _residual_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    return ins[0]


def _simple(cls: str, **fixed: Any) -> Callable[[Mapping[str, Any], Any, int], Ctor]:
    return lambda a, cin, rank: Ctor(cls, (), dict(fixed))


def _act(cls: str) -> Callable[[Mapping[str, Any], Any, int], Ctor]:
    return lambda a, cin, rank: Ctor(cls, (), {"inplace": bool(a.get("inplace", False))})


_POOL_PARAMS = (
    P("k", "int", aliases=("kernel", "kernel_size"), minimum=1),
    P("s", "int", default_from="k", aliases=("stride",), minimum=1),
    P("p", "int", 0, aliases=("padding",), minimum=0),
    P("ceil", "bool", False, aliases=("ceil_mode",)),
)

OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    OPS[op.name] = op
    return op


register(
    OpDef(
        "conv",
        "2-D convolution; bias off by default because batchnorm follows it.",
        (
            P("out", "int", aliases=("out_channels",), minimum=1),
            P("k", "int", 1, aliases=("kernel", "kernel_size"), minimum=1),
            P("s", "int", 1, aliases=("stride",), minimum=1),
            P("p", "int", 0, aliases=("padding",), minimum=0),
            P("d", "int", 1, aliases=("dilation",), minimum=1),
            P("groups", "int", 1, minimum=1),
            P("bias", "bool", False),
            P("in_channels", "int", None, minimum=1),
        ),
        _conv_shape,
        _conv_torch,
        param_count=_conv_params,
        macs=_conv_macs,
        channels=lambda a, cin: a["out"],
        stride=lambda a: a["s"],
        weighted=True,
        stateful=True,
        onnx=ops_onnx.conv,
    )
)
register(
    OpDef(
        "batchnorm",
        "Batch normalization over channels (eps 1e-5, momentum 0.1 as in the paper's setup).",
        (
            P("eps", "float", 1e-5, minimum=0),
            P("momentum", "float", 0.1, minimum=0, maximum=1),
            P("affine", "bool", True),
        ),
        _bn_shape,
        lambda a, cin, rank: Ctor(
            "BatchNorm2d" if rank == 3 else "BatchNorm1d",
            (cin,),
            {"eps": a["eps"], "momentum": a["momentum"], "affine": a["affine"]},
        ),
        param_count=lambda i, o, a: 2 * i[0] if a["affine"] else 0,
        stateful=True,
        normalizes=True,
        onnx=ops_onnx.batchnorm,
    )
)


def _gn_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c = _spatial("groupnorm", ins)[0]
    if c % a["groups"]:
        raise ShapeError(
            "E302",
            f"groupnorm: {c} channels are not divisible by groups={a['groups']}",
            help="choose a number of groups that divides the channels (32 is usual)",
            recovered=ins[0],
        )
    return ins[0]


register(
    OpDef(
        "groupnorm",
        "Group normalization: channels in `groups` groups, statistics per sample (batch-size independent).",
        (P("groups", "int", minimum=1), P("eps", "float", 1e-5, minimum=0), P("affine", "bool", True)),
        _gn_shape,
        lambda a, cin, rank: Ctor("GroupNorm", (a["groups"], cin), {"eps": a["eps"], "affine": a["affine"]}),
        param_count=lambda i, o, a: 2 * i[0] if a["affine"] else 0,
        stateful=True,
        normalizes=True,
        example="groupnorm(32)",
        onnx=ops_onnx.groupnorm,
    )
)


def _mul_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    x, gate = ins[0], ins[1]
    if len(x) != len(gate) or x[0] != gate[0] or (len(x) == 3 and gate[1:] not in ((1, 1), x[1:])):
        raise ShapeError(
            "E308",
            f"gate: {fmt_shape(gate)} cannot scale {fmt_shape(x)}",
            [f"input  {fmt_shape(x)}", f"gate   {fmt_shape(gate)}"],
            help="the gate's channels must equal the input's, its map be 1 x 1 (broadcast) or the input's",
            recovered=x,
        )
    return x


register(
    OpDef(
        "mul",
        "Channel-wise multiply: the input scaled by a gate branch (made by gate(...), not called directly).",
        (),
        _mul_shape,
        None,
        merge="*",
        onnx=ops_onnx.merge("Mul"),
    )
)
register(
    OpDef(
        "relu",
        "Rectified linear unit.",
        (),
        _same,
        _act("ReLU"),
        can_inplace=True,
        output_saved=True,
        onnx=ops_onnx.unary("Relu"),
    )
)
register(
    OpDef(
        "silu",
        "Sigmoid-weighted linear unit (swish).",
        (),
        _same,
        _act("SiLU"),
        can_inplace=True,
        output_saved=True,
        onnx=ops_onnx.silu,
    )
)
register(OpDef("gelu", "Gaussian error linear unit.", (), _same, _simple("GELU"), onnx=ops_onnx.unary("Gelu")))
register(
    OpDef(
        "sigmoid", "Logistic sigmoid.", (), _same, _simple("Sigmoid"), output_saved=True, onnx=ops_onnx.unary("Sigmoid")
    )
)
register(
    OpDef(
        "leaky_relu",
        "Leaky ReLU with the given negative slope.",
        (P("slope", "float", 0.01, aliases=("negative_slope",)),),
        _same,
        lambda a, cin, rank: Ctor("LeakyReLU", (), {"negative_slope": a["slope"], "inplace": bool(a.get("inplace"))}),
        can_inplace=True,
        output_saved=True,  # when it runs in place, backward reads its output
        onnx=lambda e, a: e.node("LeakyRelu", [e.x], alpha=a["slope"]),
    )
)
register(
    OpDef(
        "maxpool",
        "Max pooling; stride defaults to the window.",
        _POOL_PARAMS,
        _pool_shape("maxpool"),
        lambda a, cin, rank: Ctor(
            "MaxPool2d", (), {"kernel_size": a["k"], "stride": a["s"], "padding": a["p"], "ceil_mode": a["ceil"]}
        ),
        stride=lambda a: a["s"],
        onnx=ops_onnx.pool("MaxPool"),
    )
)
register(
    OpDef(
        "avgpool",
        "Average pooling; stride defaults to the window.",
        (*_POOL_PARAMS, P("count_include_pad", "bool", True)),
        _pool_shape("avgpool"),
        lambda a, cin, rank: Ctor(
            "AvgPool2d",
            (),
            {
                "kernel_size": a["k"],
                "stride": a["s"],
                "padding": a["p"],
                "ceil_mode": a["ceil"],
                "count_include_pad": a["count_include_pad"],
            },
        ),
        stride=lambda a: a["s"],
        onnx=ops_onnx.pool("AveragePool"),
    )
)
register(
    OpDef(
        "global_avgpool",
        "Average over the whole map: C x H x W -> C x 1 x 1.",
        (),
        lambda ins, a: (_spatial("global_avgpool", ins)[0], 1, 1),
        lambda a, cin, rank: Ctor("AdaptiveAvgPool2d", ((1, 1),), {}),
        onnx=ops_onnx.unary("GlobalAveragePool"),
    )
)
register(
    OpDef(
        "flatten",
        "C x H x W -> C*H*W.",
        (),
        lambda ins, a: (math.prod(ins[0]),),
        _simple("Flatten"),
        returns_input=True,
        onnx=ops_onnx.unary("Flatten", axis=1),
    )
)
register(
    OpDef(
        "linear",
        "Fully connected layer; a spatial input is flattened first.",
        (
            P("out", "int", aliases=("out_features",), minimum=1),
            P("bias", "bool", True),
            P("in_features", "int", None, minimum=1),
        ),
        _linear_shape,
        lambda a, cin, rank: Ctor("Linear", (cin, a["out"]), {"bias": a["bias"]}),
        param_count=lambda i, o, a: math.prod(i) * o[0] + (o[0] if a["bias"] else 0),
        macs=lambda i, o, a: math.prod(i) * o[0],
        channels=lambda a, cin: a["out"],
        weighted=True,
        stateful=True,
        flatten_input=True,
        onnx=ops_onnx.linear,
    )
)
register(
    OpDef(
        "dropout",
        "Dropout with probability p (identity in eval mode).",
        (P("p", "float", 0.5, minimum=0, maximum=1),),
        _same,
        lambda a, cin, rank: Ctor("Dropout", (), {"p": a["p"]}),
        returns_input=True,  # in eval mode
        onnx=ops_onnx.passthrough,
    )
)
register(
    OpDef(
        "identity",
        "Does nothing; a named placeholder.",
        (),
        _same,
        _simple("Identity"),
        returns_input=True,
        onnx=ops_onnx.passthrough,
    )
)
register(
    OpDef(
        "residual",
        "The residual addition: main branch + shortcut(branch input); realised by the checker.",
        (
            P("shortcut", "shortcut"),
            P("project_from", "name", None),
            P("name", "str", "downsample"),
            # a projection's 1x1 conv is followed by batchnorm (true), nothing (false) or this layer
            P("norm", "any", True),
        ),
        _residual_shape,
        None,
        merge="+",
        composite=True,
        onnx=ops_onnx.merge("Add"),
    )
)
