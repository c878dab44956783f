"""Ops of deep residual training, each defined once: ``drop_path`` (stochastic depth) and
``layer_scale`` (a learnable per-channel scale of the residual branch, ConvNeXt's ``gamma``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, OwnParam, P, Shape, ShapeError, channels_of, fmt_shape
from resdsl.ops.lowering import passthrough
from resdsl.ops.rules import same


def _scale_apply(x: str, param: str, shape: Shape, a: Mapping[str, Any]) -> str:
    """``x`` times the per-channel vector, broadcast over the map of a C x H x W input (and over
    the tokens of an N x C one, whose channels are last); a (C, 1, 1) tensor broadcasts as it is."""
    return f"{x} * {param}.reshape(-1, 1, 1)" if len(shape) == 3 and a["dims"] == 1 else f"{x} * {param}"


def _scale_shape(a: Mapping[str, Any], c: Any) -> tuple[Any, ...]:
    """(C,) as timm's gamma, or (C, 1, 1) as torchvision's ConvNeXt ``layer_scale``."""
    return (c,) if a["dims"] == 1 else (c, 1, 1)


def _scale_rule(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    if a["dims"] == 2:
        raise ShapeError("E213", "layer_scale's dims is 1, a (C,) tensor, or 3, a (C, 1, 1) one; not 2")
    if a["dims"] == 3 and len(ins[0]) != 3:
        raise ShapeError("E307", f"layer_scale(dims=3) scales a C x H x W map, got {fmt_shape(ins[0])}")
    return ins[0]


def _scale_onnx(e: Any, a: Mapping[str, Any]) -> str:
    c = channels_of(e.shape)
    scale = e.param("", _scale_shape(a, c), ("const", a["init"]))  # the layer's own key, as in the state_dict
    if len(e.shape) == 3 and a["dims"] == 1:
        scale = e.node("Reshape", [scale, e.ints([c, 1, 1])])
    return e.node("Mul", [e.x, scale])


# A probability of dropping the branch: at 1 every sample drops it in training, so the branch never
# learns, and eval mode (which always keeps it) runs a branch training never saw.
_RATE_HELP = (
    "a drop-path rate is the probability of dropping the branch in training, in [0, 1): at 1 the "
    "branch would never train, and eval mode would run it untrained"
)

# timm's DropPath: each sample's branch is dropped with probability p in training, and the
# kept ones scaled by 1 / (1 - p); identity in eval mode
DROP_PATH = OpDef(
    "drop_path",
    "Stochastic depth: drops the whole branch per sample with probability p in training (kept ones "
    "scaled by 1/(1-p)); identity in eval mode.",
    (
        P("p", "float", 0.0, minimum=0, below=1, range_code="E223", range_help=_RATE_HELP),
        P("scale_by_keep", "bool", True),
    ),
    same,
    lambda a, cin, shape: Ctor("DropPath", (a["p"],), {"scale_by_keep": a["scale_by_keep"]}, runtime=True),
    returns_input=True,  # in eval mode
    example="drop_path(0.1)",
    onnx=passthrough,
    torch_defaults={"DropPath": {"scale_by_keep": True}},
)
LAYER_SCALE = OpDef(
    "layer_scale",
    "A learnable scale per channel, initialised to `init`; its state_dict key is the layer's own name, "
    "shape (C,) (timm's gamma) or with `dims=3` (C, 1, 1) (torchvision's ConvNeXt layer_scale).",
    (P("init", "float", 1e-6), P("dims", "int", 1, minimum=1, maximum=3)),
    _scale_rule,
    None,
    param_count=lambda i, o, a: channels_of(i),
    stateful=True,
    own_param=OwnParam(shape=_scale_shape, fill=lambda a: a["init"], apply=_scale_apply),
    example="layer_scale(1e-6)",
    onnx=_scale_onnx,
)

OPS = (DROP_PATH, LAYER_SCALE)
