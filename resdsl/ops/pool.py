"""The poolings, each defined once: ``maxpool``, ``avgpool`` and ``global_avgpool``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, P, Shape, ShapeError
from resdsl.ops.lowering import Emit, unary
from resdsl.ops.rules import spatial, window

PARAMS = (
    P("k", "int", aliases=("kernel", "kernel_size"), minimum=1),
    P("s", "int", default_from="k", aliases=("stride",), minimum=1),
    P("p", "int", 0, aliases=("padding",), minimum=0),
    P("ceil", "bool", False, aliases=("ceil_mode",)),
)


def _shape(op: str) -> Callable[[Sequence[Shape], Mapping[str, Any]], Shape]:
    def rule(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
        c, h, w = spatial(op, ins)
        k, s, p, ceil = a["k"], a["s"], a["p"], a["ceil"]
        if p * 2 > k:
            raise ShapeError("E303", f"{op} padding {p} is more than half the window {k}", help="torch refuses this")
        return (c, window(op, h, k, s, p, 1, ceil, "height"), window(op, w, k, s, p, 1, ceil, "width"))

    return rule


def _drops_last(size: int, k: int, s: int, p: int) -> bool:
    """Whether torch's ceil mode drops a last window that would start in the right padding.
    ONNX's output-size formula keeps it (onnxruntime's kernels drop it), so there the two differ."""
    return -(-(size + 2 * p - k) // s) * s >= size + p


def _end_pad(size: int, k: int, s: int, p: int) -> int:
    """The end padding that makes floor mode compute the windows torch's ceil mode does."""
    out = -(-(size + 2 * p - k) // s) + 1 - _drops_last(size, k, s, p)
    return max(0, (out - 1) * s + k - size - p)


def onnx_pool(op_type: str) -> Emit:
    """A pooling's ONNX node, with torch's ceil-mode windows."""

    def emit(e: Any, a: Mapping[str, Any]) -> str:
        extra = {"count_include_pad": int(a["count_include_pad"])} if "count_include_pad" in a else {}
        k, s, p, ceil = a["k"], a["s"], a["p"], a["ceil"]
        pads = [p] * 4
        drops = [ceil and _drops_last(size, k, s, p) for size in e.shape[1:]]
        if any(drops):  # floor mode over explicit end padding: the windows torch computes
            ends = [_end_pad(size, k, s, p) for size in e.shape[1:]]
            counted = a.get("count_include_pad", False)  # padding beyond torch's would be averaged in
            if counted and any(end > p for end in ends):
                raise ValueError("ceil-mode average pooling counting its padding, on this map, has no ONNX form")
            pads, ceil = [p, p, *ends], False
        return e.node(op_type, [e.x], kernel_shape=[k, k], strides=[s, s], pads=pads, ceil_mode=int(ceil), **extra)

    return emit


def _window_kwargs(a: Mapping[str, Any]) -> dict[str, Any]:
    return {"kernel_size": a["k"], "stride": a["s"], "padding": a["p"], "ceil_mode": a["ceil"]}


MAXPOOL = OpDef(
    "maxpool",
    "Max pooling; stride defaults to the window.",
    PARAMS,
    _shape("maxpool"),
    lambda a, cin, shape: Ctor("MaxPool2d", (), _window_kwargs(a)),
    stride=lambda a: a["s"],
    onnx=onnx_pool("MaxPool"),
    torch_defaults={"MaxPool2d": {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}},
)
AVGPOOL = OpDef(
    "avgpool",
    "Average pooling; stride defaults to the window.",
    (*PARAMS, P("count_include_pad", "bool", True)),
    _shape("avgpool"),
    lambda a, cin, shape: Ctor("AvgPool2d", (), {**_window_kwargs(a), "count_include_pad": a["count_include_pad"]}),
    stride=lambda a: a["s"],
    onnx=onnx_pool("AveragePool"),
    torch_defaults={"AvgPool2d": {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True}},
)
GLOBAL_AVGPOOL = OpDef(
    "global_avgpool",
    "Average over the whole map: C x H x W -> C x 1 x 1.",
    (),
    lambda ins, a: (spatial("global_avgpool", ins)[0], 1, 1),
    lambda a, cin, shape: Ctor("AdaptiveAvgPool2d", ((1, 1),), {}),
    onnx=unary("GlobalAveragePool"),
)

OPS = (MAXPOOL, AVGPOOL, GLOBAL_AVGPOOL)
