"""Ops of deep residual training, each defined once: ``drop_path`` (stochastic depth) and
``layer_scale`` (a learnable per-channel scale of the residual branch, ConvNeXt's ``gamma``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resdsl.ops.base import Ctor, OpDef, OwnParam, P, Shape, channels_of
from resdsl.ops.lowering import passthrough
from resdsl.ops.rules import same


def _scale_apply(x: str, param: str, shape: Shape, a: Mapping[str, Any]) -> str:
    """``x`` times the per-channel vector, broadcast over the map of a C x H x W input (and over
    the tokens of an N x C one, whose channels are last)."""
    return f"{x} * {param}.reshape(-1, 1, 1)" if len(shape) == 3 else f"{x} * {param}"


def _scale_onnx(e: Any, a: Mapping[str, Any]) -> str:
    c = channels_of(e.shape)
    scale = e.param("", (c,), ("const", a["init"]))  # the layer's own key, as in the state_dict
    if len(e.shape) == 3:
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
    "A learnable scale per channel, initialised to `init`; its state_dict key is the layer's own name (timm's gamma).",
    (P("init", "float", 1e-6),),
    same,
    None,
    param_count=lambda i, o, a: channels_of(i),
    stateful=True,
    own_param=OwnParam(shape=lambda a, c: (c,), fill=lambda a: a["init"], apply=_scale_apply),
    example="layer_scale(1e-6)",
    onnx=_scale_onnx,
)

OPS = (DROP_PATH, LAYER_SCALE)
