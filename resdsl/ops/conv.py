"""``conv``: the 2-D convolution, defined once (parameters, shape rule, counts, module, ONNX)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, P, Shape, ShapeError, fmt_shape
from resdsl.ops.rules import spatial, window


def _shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c, h, w = spatial("conv", ins)
    groups, out = a["groups"], a["out"]
    k, s, p, d = a["k"], a["s"], a["p"], a["d"]
    shape = (out, window("conv", h, k, s, p, d, False, "height"), window("conv", w, k, s, p, d, False, "width"))
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


def _params(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    return o[0] * (i[0] // a["groups"]) * a["k"] * a["k"] + (o[0] if a["bias"] else 0)


def _macs(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    return o[0] * o[1] * o[2] * (i[0] // a["groups"]) * a["k"] * a["k"]


def _torch(a: Mapping[str, Any], cin: Any, shape: Shape) -> Ctor:
    keys = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "groups": "groups", "bias": "bias"}
    return Ctor("Conv2d", (cin, a["out"]), {key: a[name] for key, name in keys.items()})


def _onnx(e: Any, a: Mapping[str, Any]) -> str:
    k, s, p, d, groups = a["k"], a["s"], a["p"], a["d"], a["groups"]
    fan_in = e.shape[0] // groups * k * k
    # torchvision's init: Kaiming normal over fan_out; a bias keeps torch's default uniform
    inputs = [
        e.x,
        e.param("weight", (a["out"], e.shape[0] // groups, k, k), ("normal", math.sqrt(2 / (a["out"] * k * k)))),
    ]
    if a["bias"]:
        inputs.append(e.param("bias", (a["out"],), ("uniform", 1 / math.sqrt(fan_in))))
    return e.node("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, dilations=[d, d], group=groups)


CONV = OpDef(
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
    _shape,
    _torch,
    param_count=_params,
    macs=_macs,
    channels=lambda a, cin: a["out"],
    stride=lambda a: a["s"],
    weighted=True,
    stateful=True,
    onnx=_onnx,
    torch_defaults={"Conv2d": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}},
)

OPS = (CONV,)
