"""The activations, each defined once: relu, relu6, silu, gelu, sigmoid, leaky_relu, hardswish
and hardsigmoid.

``can_inplace``: torch may overwrite the input (its backward reads only the output, or
nothing); ``output_saved``: backward reads the output, so nothing after it may overwrite it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resdsl.ops.base import Ctor, OpDef, P, Shape
from resdsl.ops.lowering import unary
from resdsl.ops.rules import same

_INPLACE = {"inplace": False}


def _inplace(cls: str) -> Any:
    """The module of an activation that may run in place (the IR decides where it does)."""
    return lambda a, cin, shape: Ctor(cls, (), {"inplace": bool(a.get("inplace", False))})


def _plain(cls: str) -> Any:
    return lambda a, cin, shape: Ctor(cls)


def _silu_onnx(e: Any, a: Mapping[str, Any]) -> str:
    return e.node("Mul", [e.x, e.node("Sigmoid", [e.x])])


def _relu6_onnx(e: Any, a: Mapping[str, Any]) -> str:
    low = e.param("min", (), ("const", 0.0), stored=False)
    high = e.param("max", (), ("const", 6.0), stored=False)
    return e.node("Clip", [e.x, low, high])


def _leaky_torch(a: Mapping[str, Any], cin: Any, shape: Shape) -> Ctor:
    return Ctor("LeakyReLU", (), {"negative_slope": a["slope"], "inplace": bool(a.get("inplace"))})


RELU = OpDef(
    "relu",
    "Rectified linear unit.",
    (),
    same,
    _inplace("ReLU"),
    can_inplace=True,
    output_saved=True,
    onnx=unary("Relu"),
    torch_defaults={"ReLU": _INPLACE},
)
RELU6 = OpDef(
    "relu6",
    "ReLU capped at 6 (MobileNetV2): min(max(x, 0), 6).",
    (),
    same,
    _inplace("ReLU6"),
    can_inplace=True,
    output_saved=True,  # hardtanh's backward reads its output
    onnx=_relu6_onnx,
    torch_defaults={"ReLU6": _INPLACE},
)
SILU = OpDef(
    "silu",
    "Sigmoid-weighted linear unit (swish).",
    (),
    same,
    _inplace("SiLU"),
    can_inplace=True,
    output_saved=True,
    onnx=_silu_onnx,
    torch_defaults={"SiLU": _INPLACE},
)
GELU = OpDef(
    "gelu",
    "Gaussian error linear unit.",
    (),
    same,
    _plain("GELU"),
    onnx=unary("Gelu"),
    torch_defaults={"GELU": {"approximate": "none"}},
)
SIGMOID = OpDef("sigmoid", "Logistic sigmoid.", (), same, _plain("Sigmoid"), output_saved=True, onnx=unary("Sigmoid"))
LEAKY_RELU = OpDef(
    "leaky_relu",
    "Leaky ReLU with the given negative slope.",
    (P("slope", "float", 0.01, aliases=("negative_slope",)),),
    same,
    _leaky_torch,
    can_inplace=True,
    output_saved=True,  # when it runs in place, backward reads its output
    onnx=lambda e, a: e.node("LeakyRelu", [e.x], alpha=a["slope"]),
    torch_defaults={"LeakyReLU": {"negative_slope": 0.01, "inplace": False}},
)
# hardswish and hardsigmoid: backward reads the input, so they never run in place
HARDSWISH = OpDef(
    "hardswish",
    "Hard swish (MobileNetV3): x * relu6(x + 3) / 6.",
    (),
    same,
    _plain("Hardswish"),
    onnx=unary("HardSwish"),
)
HARDSIGMOID = OpDef(
    "hardsigmoid",
    "Hard sigmoid (MobileNetV3's gates): relu6(x + 3) / 6.",
    (),
    same,
    _plain("Hardsigmoid"),
    onnx=unary("HardSigmoid", alpha=1 / 6, beta=0.5),
)

OPS = (RELU, RELU6, SILU, GELU, SIGMOID, LEAKY_RELU, HARDSWISH, HARDSIGMOID)
