"""``linear``, ``pointwise_linear`` and the ops that reshape or pass values on: ``flatten``,
``dropout``, ``identity``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, P, Shape, ShapeError, fmt_shape, is_tokens
from resdsl.ops.lowering import linear_nodes, passthrough, unary
from resdsl.ops.rules import same


def _features(shape: Shape) -> int:
    """What one linear map reads: a token's channels, or the whole (flattened) input."""
    return shape[-1] if is_tokens(shape) else math.prod(shape)


def _linear_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    features = _features(ins[0])
    out = (ins[0][0], a["out"]) if is_tokens(ins[0]) else (a["out"],)  # tokens: each token mapped
    if a.get("in_features") is not None and a["in_features"] != features:
        raise ShapeError(
            "E304",
            f"linear expects {a['in_features']} input features, the input {fmt_shape(ins[0])} has {features}",
            help="drop in_features= to infer it, or add global_avgpool() before the linear layer",
            recovered=out,
        )
    return out


def _linear_onnx(e: Any, a: Mapping[str, Any]) -> str:
    if is_tokens(e.shape):
        return linear_nodes(e, e.x, "", e.shape[1], a["out"], a["bias"])
    features = math.prod(e.shape)
    x = e.node("Flatten", [e.x], axis=1) if len(e.shape) > 1 else e.x
    bound = 1 / math.sqrt(features)  # torch's default init for nn.Linear, weight and bias
    inputs = [x, e.param("weight", (a["out"], features), ("uniform", bound))]
    if a["bias"]:
        inputs.append(e.param("bias", (a["out"],), ("uniform", bound)))
    return e.node("Gemm", inputs, transB=1)


LINEAR = OpDef(
    "linear",
    "Fully connected layer; a spatial input is flattened first, N x C tokens are mapped one by one.",
    (
        P("out", "int", aliases=("out_features",), minimum=1),
        P("bias", "bool", True),
        P("in_features", "int", None, minimum=1),
    ),
    _linear_shape,
    lambda a, cin, shape: Ctor("Linear", (cin, a["out"]), {"bias": a["bias"]}),
    param_count=lambda i, o, a: _features(i) * o[-1] + (o[-1] if a["bias"] else 0),
    macs=lambda i, o, a: math.prod(i) * o[-1],
    channels=lambda a, cin: a["out"],
    weighted=True,
    stateful=True,
    flatten_input=True,
    onnx=_linear_onnx,
    torch_defaults={"Linear": {"bias": True}},
)


def _pointwise_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    if len(ins[0]) != 3:
        raise ShapeError(
            "E307",
            f"pointwise_linear maps the channels of a C x H x W map, got {fmt_shape(ins[0])}",
            help="use linear(...) on features (after flatten or a global pool)",
        )
    return (a["out"], *ins[0][1:])


def _pointwise_onnx(e: Any, a: Mapping[str, Any]) -> str:
    cin = e.shape[0]
    bound = 1 / math.sqrt(cin)  # nn.Linear's default init
    weight = e.param("weight", (a["out"], cin), ("uniform", bound))
    bias = e.param("bias", (a["out"],), ("uniform", bound)) if a["bias"] else None
    nhwc = e.node("Transpose", [e.x], perm=[0, 2, 3, 1])
    y = e.node("MatMul", [nhwc, e.node("Transpose", [weight], perm=[1, 0])])
    if bias is not None:
        y = e.node("Add", [y, bias])
    return e.node("Transpose", [y], perm=[0, 3, 1, 2])


POINTWISE_LINEAR = OpDef(
    "pointwise_linear",
    "A linear layer at every position of a C x H x W map, over the channels (timm's "
    "channels-last MLPs, ConvNeXt): weights [out, in], the function of a 1x1 conv.",
    (P("out", "int", aliases=("out_features",), minimum=1), P("bias", "bool", True)),
    _pointwise_shape,
    lambda a, cin, shape: Ctor("PointwiseLinear", (cin, a["out"]), {"bias": a["bias"]}, runtime=True),
    param_count=lambda i, o, a: i[0] * o[0] + (o[0] if a["bias"] else 0),
    macs=lambda i, o, a: i[0] * math.prod(o),
    channels=lambda a, cin: a["out"],
    weighted=True,
    stateful=True,
    onnx=_pointwise_onnx,
    torch_defaults={"PointwiseLinear": {"bias": True}},
)
FLATTEN = OpDef(
    "flatten",
    "C x H x W -> C*H*W.",
    (),
    lambda ins, a: (math.prod(ins[0]),),
    lambda a, cin, shape: Ctor("Flatten"),
    returns_input=True,
    onnx=unary("Flatten", axis=1),
)
DROPOUT = OpDef(
    "dropout",
    "Dropout with probability p (identity in eval mode).",
    (P("p", "float", 0.5, minimum=0, maximum=1),),
    same,
    lambda a, cin, shape: Ctor("Dropout", (), {"p": a["p"]}),
    returns_input=True,  # in eval mode
    onnx=passthrough,
    torch_defaults={"Dropout": {"p": 0.5, "inplace": False}},
)
IDENTITY = OpDef(
    "identity",
    "Does nothing; a named placeholder.",
    (),
    same,
    lambda a, cin, shape: Ctor("Identity"),
    returns_input=True,
    onnx=passthrough,
)

OPS = (LINEAR, POINTWISE_LINEAR, FLATTEN, DROPOUT, IDENTITY)
