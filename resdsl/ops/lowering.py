"""Building blocks of the ops' ONNX forms (each op's own form lives in its definition).

An op's ``onnx`` hook takes the emitter of :mod:`resdsl.backends.onnx` (``e.x`` the main input,
``e.inputs`` every operand, ``e.shape`` the per-sample input shape, ``e.shapes`` every operand's,
``e.node(op_type, inputs, **attributes)`` adding a node and returning its output, ``e.param(name, shape, init,
stored=True)`` an initializer named by the layer's state_dict key, ``name=""`` for the layer's
own key, and ``e.ints(values, name)`` an int64 constant named ``<layer>.<name>``) and the
layer's bound arguments, and returns the name of its output tensor. Initial values are
described, not made (``("normal", std)``, ``("uniform", bound)``, ``("const", value)``), with
the distributions ``build_model`` uses, so nothing here imports numpy, torch or onnx, and the
checker's import of the op table stays light.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Emit = Callable[[Any, Mapping[str, Any]], str]


def unary(op_type: str, **attrs: Any) -> Emit:
    """An op that is one ONNX node of the same meaning (Relu, Sigmoid, Flatten...)."""
    return lambda e, a: e.node(op_type, [e.x], **attrs)


def passthrough(e: Any, a: Mapping[str, Any]) -> str:
    """Identity, and dropout or drop path in an inference graph: no node, the input flows on."""
    return str(e.x)


def merge(op_type: str) -> Emit:
    """A two-operand merge (residual addition, gate multiply): main input and the other one.
    A residual's other operand is what its shortcut's steps made of it (each step an op of its
    own, emitted by its own form: see resdsl.ops.shortcut)."""
    return lambda e, a: e.node(op_type, e.inputs)


def norm_inputs(e: Any, a: Mapping[str, Any], size: int | None = None) -> list[str]:
    """A norm's scale and shift: parameters when affine, fixed ones and zeros otherwise."""
    c = e.shape[0] if size is None else size
    return [e.param("weight", (c,), ("const", 1.0), a["affine"]), e.param("bias", (c,), ("const", 0.0), a["affine"])]


def linear_nodes(e: Any, x: str, prefix: str, cin: int, out: int, bias: bool) -> str:
    """An ``nn.Linear`` over the last dimension of ``x`` (tokens: ``[batch, N, C]``) as MatMul
    and Add, its weights at ``<layer>.<prefix>weight`` and ``bias``, with nn.Linear's init."""
    bound = 1 / math.sqrt(cin)
    weight = e.param(f"{prefix}weight", (out, cin), ("uniform", bound))
    b = e.param(f"{prefix}bias", (out,), ("uniform", bound)) if bias else None
    y = e.node("MatMul", [x, e.node("Transpose", [weight], perm=[1, 0])])
    return y if b is None else e.node("Add", [y, b])
