"""The ONNX half of the op table: how each primitive op becomes ONNX nodes.

Each function here is an op's ``onnx`` hook in :data:`resdsl.ops.OPS`: it takes the emitter of
:mod:`resdsl.backends.onnx` (``e.x`` the main input, ``e.inputs`` every operand, ``e.shape`` the
per-sample input shape, ``e.node(op_type, inputs, **attributes)`` adding a node and returning
its output, ``e.param(name, shape, init, stored=True)`` an initializer named by the layer's
state_dict key) and the layer's bound arguments, and returns the name of its output tensor.
Initial values are described, not made (``("normal", std)``, ``("uniform", bound)``,
``("const", value)``), with the distributions ``build_model`` uses, so nothing here imports
numpy, torch or onnx, and the checker's import of the op table stays light.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Emit = Callable[[Any, Mapping[str, Any]], str]


def conv(e: Any, a: Mapping[str, Any]) -> str:
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


def norm_inputs(e: Any, a: Mapping[str, Any]) -> list[str]:
    """A norm's scale and shift: parameters when affine, fixed ones and zeros otherwise."""
    c = e.shape[0]
    return [e.param("weight", (c,), ("const", 1.0), a["affine"]), e.param("bias", (c,), ("const", 0.0), a["affine"])]


def batchnorm(e: Any, a: Mapping[str, Any]) -> str:
    c = e.shape[0]
    affine = norm_inputs(e, a)  # asked first: initializers come in state_dict order
    stats = [e.param("running_mean", (c,), ("const", 0.0)), e.param("running_var", (c,), ("const", 1.0))]
    return e.node("BatchNormalization", [e.x, *affine, *stats], epsilon=a["eps"])


def _drops_last(size: int, k: int, s: int, p: int) -> bool:
    """Whether torch's ceil mode drops a last window that would start in the right padding.
    ONNX's output-size formula keeps it (onnxruntime's kernels drop it), so there the two differ."""
    return -(-(size + 2 * p - k) // s) * s >= size + p


def _end_pad(size: int, k: int, s: int, p: int) -> int:
    """The end padding that makes floor mode compute the windows torch's ceil mode does."""
    out = -(-(size + 2 * p - k) // s) + 1 - _drops_last(size, k, s, p)
    return max(0, (out - 1) * s + k - size - p)


def pool(op_type: str) -> Emit:
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


def linear(e: Any, a: Mapping[str, Any]) -> str:
    features = math.prod(e.shape)
    x = e.node("Flatten", [e.x], axis=1) if len(e.shape) > 1 else e.x
    bound = 1 / math.sqrt(features)  # torch's default init for nn.Linear, weight and bias
    inputs = [x, e.param("weight", (a["out"], features), ("uniform", bound))]
    if a["bias"]:
        inputs.append(e.param("bias", (a["out"],), ("uniform", bound)))
    return e.node("Gemm", inputs, transB=1)


def unary(op_type: str, **attrs: Any) -> Emit:
    return lambda e, a: e.node(op_type, [e.x], **attrs)


def groupnorm(e: Any, a: Mapping[str, Any]) -> str:
    return e.node("GroupNormalization", [e.x, *norm_inputs(e, a)], num_groups=a["groups"], epsilon=a["eps"])


def silu(e: Any, a: Mapping[str, Any]) -> str:
    return e.node("Mul", [e.x, e.node("Sigmoid", [e.x])])


def passthrough(e: Any, a: Mapping[str, Any]) -> str:
    """Identity, and dropout in an inference graph: no node, the input flows on."""
    return str(e.x)


def merge(op_type: str) -> Emit:
    """A two-operand merge (residual addition, gate multiply): main input and the other one.
    A residual's shortcut nodes are the back end's (they come from the realised shortcut)."""
    return lambda e, a: e.node(op_type, e.inputs)
