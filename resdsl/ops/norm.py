"""The normalizations: ``batchnorm``, ``groupnorm`` and ``layernorm``, each defined once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, P, Shape, ShapeError, channels_of, fmt_shape
from resdsl.ops.lowering import norm_inputs
from resdsl.ops.rules import spatial


def _affine(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    return 2 * i[0] if a["affine"] else 0


# -- batchnorm -------------------------------------------------------------------------------


def _bn_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    if len(ins[0]) not in (1, 3):  # tokens: layernorm
        raise ShapeError("E307", f"batchnorm needs a C x H x W or a vector input, got {fmt_shape(ins[0])}")
    return ins[0]


def _bn_onnx(e: Any, a: Mapping[str, Any]) -> str:
    c = e.shape[0]
    affine = norm_inputs(e, a)  # asked first: initializers come in state_dict order
    stats = [e.param("running_mean", (c,), ("const", 0.0)), e.param("running_var", (c,), ("const", 1.0))]
    return e.node("BatchNormalization", [e.x, *affine, *stats], epsilon=a["eps"])


_BN_DEFAULTS = {"eps": 1e-5, "momentum": 0.1, "affine": True}

BATCHNORM = OpDef(
    "batchnorm",
    "Batch normalization over channels (eps 1e-5, momentum 0.1 as in the paper's setup).",
    (
        P("eps", "float", 1e-5, minimum=0),
        P("momentum", "float", 0.1, minimum=0, maximum=1),
        P("affine", "bool", True),
    ),
    _bn_shape,
    lambda a, cin, shape: Ctor(
        "BatchNorm2d" if len(shape) == 3 else "BatchNorm1d",
        (cin,),
        {"eps": a["eps"], "momentum": a["momentum"], "affine": a["affine"]},
    ),
    param_count=_affine,
    stateful=True,
    normalizes=True,
    onnx=_bn_onnx,
    torch_defaults={"BatchNorm2d": _BN_DEFAULTS, "BatchNorm1d": _BN_DEFAULTS, "SyncBatchNorm": _BN_DEFAULTS},
)


# -- groupnorm -------------------------------------------------------------------------------


def _gn_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c = spatial("groupnorm", ins)[0]
    if c % a["groups"]:
        raise ShapeError(
            "E302",
            f"groupnorm: {c} channels are not divisible by groups={a['groups']}",
            help="choose a number of groups that divides the channels (32 is usual)",
            recovered=ins[0],
        )
    return ins[0]


def _gn_onnx(e: Any, a: Mapping[str, Any]) -> str:
    return e.node("GroupNormalization", [e.x, *norm_inputs(e, a)], num_groups=a["groups"], epsilon=a["eps"])


GROUPNORM = OpDef(
    "groupnorm",
    "Group normalization: channels in `groups` groups, statistics per sample (batch-size independent).",
    (P("groups", "int", minimum=1), P("eps", "float", 1e-5, minimum=0), P("affine", "bool", True)),
    _gn_shape,
    lambda a, cin, shape: Ctor("GroupNorm", (a["groups"], cin), {"eps": a["eps"], "affine": a["affine"]}),
    param_count=_affine,
    stateful=True,
    normalizes=True,
    example="groupnorm(32)",
    onnx=_gn_onnx,
    torch_defaults={"GroupNorm": {"eps": 1e-5, "affine": True}},
)


# -- layernorm -------------------------------------------------------------------------------


def _ln_size(shape: Shape, a: Mapping[str, Any]) -> int:
    """How many values one normalization spans: the channels, or the last dimension."""
    return channels_of(shape) if a["over"] == "channels" else shape[-1]


def _ln_channels_first(shape: Shape, a: Mapping[str, Any]) -> bool:
    return a["over"] == "channels" and len(shape) == 3


def _ln_torch(a: Mapping[str, Any], cin: Any, shape: Shape) -> Ctor:
    kwargs = {"eps": a["eps"], "elementwise_affine": a["affine"]}
    if _ln_channels_first(shape, a):  # timm's LayerNorm2d: over C at every position
        return Ctor("LayerNorm2d", (cin,), kwargs, runtime=True)
    return Ctor("LayerNorm", (cin if len(shape) <= 2 else shape[-1],), kwargs)  # tokens: over C, cin


def _ln_onnx(e: Any, a: Mapping[str, Any]) -> str:
    size = _ln_size(e.shape, a)
    scale_shift = norm_inputs(e, a, size)
    if not _ln_channels_first(e.shape, a):
        return e.node("LayerNormalization", [e.x, *scale_shift], axis=-1, epsilon=a["eps"])
    nhwc = e.node("Transpose", [e.x], perm=[0, 2, 3, 1])
    normed = e.node("LayerNormalization", [nhwc, *scale_shift], axis=-1, epsilon=a["eps"])
    return e.node("Transpose", [normed], perm=[0, 3, 1, 2])


LAYERNORM = OpDef(
    "layernorm",
    "Layer normalization over the channels at each position (timm's LayerNorm2d) or over the last dimension.",
    (
        P("over", "str", "channels", choices=("channels", "last")),
        P("eps", "float", 1e-5, minimum=0),
        P("affine", "bool", True, aliases=("elementwise_affine",)),
    ),
    lambda ins, a: ins[0],
    _ln_torch,
    param_count=lambda i, o, a: 2 * _ln_size(i, a) if a["affine"] else 0,
    stateful=True,
    normalizes=True,
    example="layernorm(eps=1e-6)",
    onnx=_ln_onnx,
    torch_defaults={
        "LayerNorm": {"eps": 1e-5, "elementwise_affine": True},
        "LayerNorm2d": {"eps": 1e-5, "elementwise_affine": True},
    },
)

OPS = (BATCHNORM, GROUPNORM, LAYERNORM)
